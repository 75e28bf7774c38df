// RUN: irc opt %s --pass quantize-weights --split-input-file | filecheck %s
// RUN: irc opt %s --pass 'quantize-weights{bits=4 group-size=32}' --split-input-file | filecheck %s --check-prefix=INT4

// A linear layer (matmul by the transposed [N, K] weight) reads quantized
// weights; the float weight and its permute are gone.
// CHECK-LABEL: func.func @linear
// CHECK-NEXT:    %0 = graph.weight "fc.weight.q8" : tensor<16x80xi8>
// CHECK-NEXT:    %1 = graph.weight "fc.weight.q8.scales" : tensor<16x1xf32>
// CHECK-NEXT:    %y = graph.quantized_matmul %x, %0, %1 {bits = 8 : i64, group_size = 80 : i64} : (tensor<2x8x80xf32>, tensor<16x80xi8>, tensor<16x1xf32>) -> tensor<2x8x16xf32>
// CHECK-NEXT:    func.return %y
// Two per byte at 4 bits; K = 80 is not a multiple of 32: three groups.
// INT4-LABEL: func.func @linear
// INT4-NEXT:    %0 = graph.weight "fc.weight.q4" : tensor<16x40xi8>
// INT4-NEXT:    %1 = graph.weight "fc.weight.q4.scales" : tensor<16x3xf32>
// INT4-NEXT:    %y = graph.quantized_matmul %x, %0, %1 {bits = 4 : i64, group_size = 32 : i64}
// INT4-NOT:     graph.permute
func.func @linear(%x: tensor<2x8x80xf32>) -> tensor<2x8x16xf32> {
  %w = graph.weight "fc.weight" : tensor<16x80xf32>
  %t = graph.permute %w {dims = array<i64: 1, 0>} : tensor<16x80xf32> -> tensor<80x16xf32>
  %y = graph.matmul %x, %t : (tensor<2x8x80xf32>, tensor<80x16xf32>) -> tensor<2x8x16xf32>
  func.return %y : tensor<2x8x16xf32>
}

// -----

// A [K, N] weight used as it is; odd K at 4 bits pads the last byte.
// CHECK-LABEL: func.func @kn
// CHECK-NEXT:    %0 = graph.weight "w.t.q8" : tensor<6x7xi8>
// CHECK-NEXT:    %1 = graph.weight "w.t.q8.scales" : tensor<6x1xf32>
// CHECK-NEXT:    %y = graph.quantized_matmul %x, %0, %1
// INT4-LABEL: func.func @kn
// INT4-NEXT:    %0 = graph.weight "w.t.q4" : tensor<6x4xi8>
// INT4-NEXT:    %1 = graph.weight "w.t.q4.scales" : tensor<6x1xf32>
func.func @kn(%x: tensor<3x7xf32>) -> tensor<3x6xf32> {
  %w = graph.weight "w" : tensor<7x6xf32>
  %y = graph.matmul %x, %w : (tensor<3x7xf32>, tensor<7x6xf32>) -> tensor<3x6xf32>
  func.return %y : tensor<3x6xf32>
}

// -----

// Activation @ activation (attention scores) and non-f32 matmuls stay.
// CHECK-LABEL: func.func @activations
// CHECK-NEXT:    %y = graph.matmul %a, %b
// CHECK-NEXT:    %w = graph.weight "w64"
// CHECK-NEXT:    %z = graph.matmul %c, %w
func.func @activations(%a: tensor<4x8xf32>, %b: tensor<8x4xf32>, %c: tensor<4x8xf64>) -> (tensor<4x4xf32>, tensor<4x4xf64>) {
  %y = graph.matmul %a, %b : (tensor<4x8xf32>, tensor<8x4xf32>) -> tensor<4x4xf32>
  %w = graph.weight "w64" : tensor<8x4xf64>
  %z = graph.matmul %c, %w : (tensor<4x8xf64>, tensor<8x4xf64>) -> tensor<4x4xf64>
  func.return %y, %z : tensor<4x4xf32>, tensor<4x4xf64>
}
