// RUN: irc opt %s --pass fold-batch-norm --pass dce --split-input-file | filecheck %s

// Eval batch norm after a convolution: the per-channel scale and shift become
// ops on the weights (irc opt has no weight store, so they stay ops; with one,
// constant-fold computes them), and one convolution with the scaled weight and
// the shift as its bias replaces the chain.
// CHECK-LABEL: func.func @bn
// CHECK:         %r = graph.rsqrt %ve
// CHECK:         %[[SHIFT:.*]] = graph.mul %{{.*}}, %{{.*}} : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
// CHECK:         %[[COL:.*]] = graph.reshape %{{.*}} : tensor<2xf32> -> tensor<2x1x1x1xf32>
// CHECK-NEXT:    %[[W:.*]] = graph.mul %w, %[[COL]]
// CHECK-NEXT:    %out = graph.conv %x, %[[W]], %[[SHIFT]]
// CHECK-NEXT:    func.return %out
// CHECK-NOT:     graph.sub %y
func.func @bn(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w = graph.weight "conv.weight" : tensor<2x2x3x3xf32>
  %mean = graph.weight "bn.running_mean" : tensor<2xf32>
  %var = graph.weight "bn.running_var" : tensor<2xf32>
  %eps = graph.constant dense<1.0e-05> : tensor<f32>
  %y = graph.conv %x, %w {stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilation = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x4x4xf32>
  %m = graph.reshape %mean : tensor<2xf32> -> tensor<2x1x1xf32>
  %v = graph.reshape %var : tensor<2xf32> -> tensor<2x1x1xf32>
  %ve = graph.add %v, %eps : (tensor<2x1x1xf32>, tensor<f32>) -> tensor<2x1x1xf32>
  %r = graph.rsqrt %ve : tensor<2x1x1xf32> -> tensor<2x1x1xf32>
  %c = graph.sub %y, %m : (tensor<1x2x4x4xf32>, tensor<2x1x1xf32>) -> tensor<1x2x4x4xf32>
  %out = graph.mul %r, %c : (tensor<2x1x1xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  func.return %out : tensor<1x2x4x4xf32>
}

// -----

// A shift that depends on the input (batch statistics) is not folded.
// CHECK-LABEL: func.func @batch_stats
// CHECK:         %y = graph.conv %x, %w
// CHECK-NEXT:    %c = graph.sub %y, %x
// CHECK-NOT:     graph.rsqrt
func.func @batch_stats(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
  %w = graph.weight "conv.weight" : tensor<2x2x3x3xf32>
  %y = graph.conv %x, %w {stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilation = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x4x4xf32>
  %c = graph.sub %y, %x : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  func.return %c : tensor<1x2x4x4xf32>
}
