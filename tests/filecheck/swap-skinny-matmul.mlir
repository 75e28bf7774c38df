// RUN: irc opt %s --split-input-file --pass swap-skinny-matmul | filecheck %s

// Linear layers on 8 rows multiply transposed: the [N, K] weight is the left
// operand as it is (its permute is gone), the activations are permuted in,
// the [N, M] result permuted back (fuse folds those into the kernels).
// CHECK-LABEL: func.func @main(
// CHECK-NEXT:    %0 = graph.permute %x {dims = array<i64: 1, 0>} : tensor<8x16xf32> -> tensor<16x8xf32>
// CHECK-NEXT:    %h_t = graph.matmul %w1, %0 : (tensor<64x16xf32>, tensor<16x8xf32>) -> tensor<64x8xf32>
// CHECK-NEXT:    %h = graph.permute %h_t {dims = array<i64: 1, 0>}
// CHECK-NEXT:    %a = graph.add %h, %b1
// CHECK-NEXT:    %r = graph.relu %a
// CHECK-NEXT:    %1 = graph.permute %r {dims = array<i64: 1, 0>}
// CHECK-NEXT:    %y_t = graph.matmul %w2, %1 : (tensor<32x64xf32>, tensor<64x8xf32>) -> tensor<32x8xf32>
// CHECK-NEXT:    %y = graph.permute %y_t {dims = array<i64: 1, 0>} : tensor<32x8xf32> -> tensor<8x32xf32>
// CHECK-NEXT:    func.return %y
func.func @main(%x: tensor<8x16xf32>, %w1: tensor<64x16xf32>, %b1: tensor<64xf32>, %w2: tensor<32x64xf32>) -> tensor<8x32xf32> {
  %w1t = graph.permute %w1 {dims = array<i64: 1, 0>} : tensor<64x16xf32> -> tensor<16x64xf32>
  %h = graph.matmul %x, %w1t : (tensor<8x16xf32>, tensor<16x64xf32>) -> tensor<8x64xf32>
  %a = graph.add %h, %b1 : (tensor<8x64xf32>, tensor<64xf32>) -> tensor<8x64xf32>
  %r = graph.relu %a : tensor<8x64xf32> -> tensor<8x64xf32>
  %w2t = graph.permute %w2 {dims = array<i64: 1, 0>} : tensor<32x64xf32> -> tensor<64x32xf32>
  %y = graph.matmul %r, %w2t : (tensor<8x64xf32>, tensor<64x32xf32>) -> tensor<8x32xf32>
  func.return %y : tensor<8x32xf32>
}

// -----

// 512 rows: past max-rows (256), left alone.
// CHECK-LABEL: func.func @main(
// CHECK-NEXT:    %wt = graph.permute %w
// CHECK-NEXT:    %y = graph.matmul %x, %wt
func.func @main(%x: tensor<512x16xf32>, %w: tensor<1024x16xf32>) -> tensor<512x1024xf32> {
  %wt = graph.permute %w {dims = array<i64: 1, 0>} : tensor<1024x16xf32> -> tensor<16x1024xf32>
  %y = graph.matmul %x, %wt : (tensor<512x16xf32>, tensor<16x1024xf32>) -> tensor<512x1024xf32>
  func.return %y : tensor<512x1024xf32>
}
