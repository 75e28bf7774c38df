// RUN: irc opt %s --pass channels-last | filecheck %s

// 2-d convolutions and pooling run on [N, H, W, C] data. The model's input is
// permuted once; conv -> conv passes channels-last data with no permute in
// between; elementwise ops see a permute (fuse folds it into their kernel);
// @main's result keeps its channels-first layout.
// CHECK-LABEL: func.func @main(
// CHECK-NEXT:    %0 = graph.permute %x {dims = array<i64: 0, 2, 3, 1>} : tensor<1x3x8x8xf32> -> tensor<1x8x8x3xf32>
// CHECK-NEXT:    %a_cl = graph.conv %0, %w1 {{.*}}channels_last} : (tensor<1x8x8x3xf32>, tensor<4x3x3x3xf32>) -> tensor<1x8x8x4xf32>
// CHECK-NEXT:    %b_cl = graph.conv %a_cl, %w2 {{.*}}channels_last} : (tensor<1x8x8x4xf32>, tensor<4x4x1x1xf32>) -> tensor<1x8x8x4xf32>
// CHECK-NEXT:    %b = graph.permute %b_cl {dims = array<i64: 0, 3, 1, 2>}
// CHECK-NEXT:    %r = graph.relu %b
// CHECK-NEXT:    %1 = graph.permute %r {dims = array<i64: 0, 2, 3, 1>}
// CHECK-NEXT:    %p_cl = graph.max_pool %1 {{.*}}channels_last} : tensor<1x8x8x4xf32> -> tensor<1x4x4x4xf32>
// CHECK-NEXT:    %p = graph.permute %p_cl {dims = array<i64: 0, 3, 1, 2>}
// CHECK-NEXT:    func.return %p : tensor<1x4x4x4xf32>
func.func @main(%x: tensor<1x3x8x8xf32>, %w1: tensor<4x3x3x3xf32>, %w2: tensor<4x4x1x1xf32>) -> tensor<1x4x4x4xf32> {
  %a = graph.conv %x, %w1 {stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilation = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x8x8xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32>
  %b = graph.conv %a, %w2 {stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilation = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x4x8x8xf32>, tensor<4x4x1x1xf32>) -> tensor<1x4x8x8xf32>
  %r = graph.relu %b : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  %p = graph.max_pool %r {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilation = array<i64: 1, 1>} : tensor<1x4x8x8xf32> -> tensor<1x4x4x4xf32>
  func.return %p : tensor<1x4x4x4xf32>
}

// Batched 1-d convolutions run on [N, L, C] data too (oneDNN: 2-d of height 1).
// CHECK-LABEL: func.func @conv1d(
// CHECK-NEXT:    %0 = graph.permute %x {dims = array<i64: 0, 2, 1>} : tensor<1x3x8xf32> -> tensor<1x8x3xf32>
// CHECK-NEXT:    %y_cl = graph.conv %0, %w {{.*}}channels_last} : (tensor<1x8x3xf32>, tensor<4x3x3xf32>) -> tensor<1x6x4xf32>
// CHECK-NEXT:    %y = graph.permute %y_cl {dims = array<i64: 0, 2, 1>}
// CHECK-NEXT:    func.return %y
func.func @conv1d(%x: tensor<1x3x8xf32>, %w: tensor<4x3x3xf32>) -> tensor<1x4x6xf32> {
  %y = graph.conv %x, %w {stride = array<i64: 1>, padding = array<i64: 0>, dilation = array<i64: 1>, groups = 1 : i64} : (tensor<1x3x8xf32>, tensor<4x3x3xf32>) -> tensor<1x4x6xf32>
  func.return %y : tensor<1x4x6xf32>
}
