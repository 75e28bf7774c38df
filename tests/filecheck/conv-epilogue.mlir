// RUN: irc opt %s --split-input-file --pass channels-last --pass conv-epilogue | filecheck %s

// ReLU6 (maximum by 0, minimum by 6) after the first convolution is its
// hardtanh post-op; the residual add of the block input and the ReLU after
// the second are its binary add and relu. The residual is read channels-last
// through the permute the first convolution already made; the permutes
// between the two convolutions compose away.
// CHECK-LABEL: func.func @main(
// CHECK:         %0 = graph.permute %x {dims = array<i64: 0, 2, 3, 1>}
// CHECK-NEXT:    %y_cl = "graph.conv_epilogue"(%0, %w, %b) <{{.*}}unary = "hardtanh", unary_scalars = array<f64: 0.000000e+00, 6.000000e+00>
// CHECK-NEXT:    %z_cl = "graph.conv_epilogue"(%y_cl, %w, %b, %0) <{{.*}}unary = "relu"
// CHECK-NEXT:    %a = graph.permute %z_cl {dims = array<i64: 0, 3, 1, 2>}
// CHECK-NEXT:    func.return %a
func.func @main(%x: tensor<1x4x8x8xf32>, %w: tensor<4x4x3x3xf32>, %b: tensor<4xf32>) -> tensor<1x4x8x8xf32> {
  %c0 = graph.constant dense<0.0> : tensor<f32>
  %c6 = graph.constant dense<6.0> : tensor<f32>
  %y = graph.conv %x, %w, %b {stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilation = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x4x8x8xf32>, tensor<4x4x3x3xf32>, tensor<4xf32>) -> tensor<1x4x8x8xf32>
  %m = graph.maximum %y, %c0 : (tensor<1x4x8x8xf32>, tensor<f32>) -> tensor<1x4x8x8xf32>
  %r6 = graph.minimum %m, %c6 : (tensor<1x4x8x8xf32>, tensor<f32>) -> tensor<1x4x8x8xf32>
  %z = graph.conv %r6, %w, %b {stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilation = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x4x8x8xf32>, tensor<4x4x3x3xf32>, tensor<4xf32>) -> tensor<1x4x8x8xf32>
  %s = graph.add %x, %z : (tensor<1x4x8x8xf32>, tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
  %a = graph.relu %s : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  func.return %a : tensor<1x4x8x8xf32>
}

// -----

// The convolution's result has a second user: nothing is fused.
// CHECK-LABEL: func.func @main(
// CHECK:         graph.conv %{{.*}} channels_last
// CHECK-NOT:     graph.conv_epilogue
func.func @main(%x: tensor<1x4x8x8xf32>, %w: tensor<4x4x3x3xf32>) -> (tensor<1x4x8x8xf32>, tensor<1x4x8x8xf32>) {
  %y = graph.conv %x, %w {stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilation = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x4x8x8xf32>, tensor<4x4x3x3xf32>) -> tensor<1x4x8x8xf32>
  %a = graph.relu %y : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  func.return %a, %y : tensor<1x4x8x8xf32>, tensor<1x4x8x8xf32>
}

// -----

// SiLU alone (no bias); a maximum by a non-zero constant without a minimum is not an activation oneDNN fuses here.
// CHECK-LABEL: func.func @main(
// CHECK:         "graph.conv_epilogue"(%{{.*}}, %w) <{{.*}}unary = "swish"{{.*}}operandSegmentSizes = array<i32: 1, 1, 0, 0>
// CHECK:         graph.conv %{{.*}} channels_last
// CHECK-NEXT:    graph.permute
// CHECK-NEXT:    graph.maximum
func.func @main(%x: tensor<1x4x8x8xf32>, %w: tensor<4x4x3x3xf32>) -> tensor<1x4x8x8xf32> {
  %c1 = graph.constant dense<1.0> : tensor<f32>
  %y = graph.conv %x, %w {stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilation = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x4x8x8xf32>, tensor<4x4x3x3xf32>) -> tensor<1x4x8x8xf32>
  %s = graph.silu %y : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
  %z = graph.conv %s, %w {stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilation = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x4x8x8xf32>, tensor<4x4x3x3xf32>) -> tensor<1x4x8x8xf32>
  %m = graph.maximum %z, %c1 : (tensor<1x4x8x8xf32>, tensor<f32>) -> tensor<1x4x8x8xf32>
  func.return %m : tensor<1x4x8x8xf32>
}
