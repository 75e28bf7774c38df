// graph.quantized_matmul prints and parses back (quantized-invalid.mlir: its verifier).
// RUN: irc opt %s --split-input-file | filecheck %s
// RUN: irc opt %s --split-input-file | irc opt - --split-input-file | filecheck %s

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %r = graph.quantized_matmul %x, %q, %s {bits = 4 : i64, group_size = 32 : i64} : (tensor<2x5x77xf32>, tensor<6x39xi8>, tensor<6x3xf32>) -> tensor<2x5x6xf32>
func.func @main(%x: tensor<2x5x77xf32>, %q: tensor<6x39xi8>, %s: tensor<6x3xf32>) -> tensor<2x5x6xf32> {
  %r = graph.quantized_matmul %x, %q, %s {bits = 4 : i64, group_size = 32 : i64} : (tensor<2x5x77xf32>, tensor<6x39xi8>, tensor<6x3xf32>) -> tensor<2x5x6xf32>
  func.return %r : tensor<2x5x6xf32>
}
