// RUN: irc opt %s --pass constant-fold --split-input-file | filecheck %s
// RUN: irc opt %s --pass 'constant-fold{max-elements=4}' --split-input-file | filecheck %s --check-prefix=LIMIT

// Ops on constants are evaluated with the reference semantics.
// CHECK-LABEL: func.func @fold(%x: tensor<2x3xf32>)
// CHECK-NEXT:    %s = graph.constant dense<[[5.000000e+00, 7.000000e+00, 9.000000e+00], [5.000000e+00, 7.000000e+00, 9.000000e+00]]> : tensor<2x3xf32>
// CHECK-NEXT:    %y = graph.mul %x, %s
// CHECK-NEXT:    %t = graph.constant dense<3> : tensor<4x4xi64>
// CHECK-NEXT:    func.return %y, %t
// With max-elements=4 the 3-element sum folds, the 6-element expand stays,
// and the 16-element splat folds anyway (a splat prints as one value).
// LIMIT-LABEL: func.func @fold
// LIMIT-NEXT:    %sum = graph.constant dense<[[5.000000e+00, 7.000000e+00, 9.000000e+00]]> : tensor<1x3xf32>
// LIMIT-NEXT:    %s = graph.expand %sum
// LIMIT:         %t = graph.constant dense<3> : tensor<4x4xi64>
func.func @fold(%x: tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<4x4xi64>) {
  %a = graph.constant dense<[1.0, 2.0, 3.0]> : tensor<3xf32>
  %b = graph.constant dense<[[4.0, 5.0, 6.0]]> : tensor<1x3xf32>
  %sum = graph.add %a, %b : (tensor<3xf32>, tensor<1x3xf32>) -> tensor<1x3xf32>
  %s = graph.expand %sum : tensor<1x3xf32> -> tensor<2x3xf32>
  %y = graph.mul %x, %s : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  %one = graph.constant dense<1> : tensor<4x4xi32>
  %two = graph.constant dense<2> : tensor<i64>
  %t = graph.add %one, %two : (tensor<4x4xi32>, tensor<i64>) -> tensor<4x4xi64>
  func.return %y, %t : tensor<2x3xf32>, tensor<4x4xi64>
}

// -----

// Weights are opaque without a weight store (irc opt has none): not folded.
// CHECK-LABEL: func.func @weights
// CHECK-NEXT:    %w = graph.weight "fc.weight" : tensor<4x8xf32>
// CHECK-NEXT:    %t = graph.permute %w
func.func @weights() -> tensor<8x4xf32> {
  %w = graph.weight "fc.weight" : tensor<4x8xf32>
  %t = graph.permute %w {dims = array<i64: 1, 0>} : tensor<4x8xf32> -> tensor<8x4xf32>
  func.return %t : tensor<8x4xf32>
}

// -----

// Signed zeros, infinities and NaN survive folding exactly.
// CHECK-LABEL: func.func @special
// CHECK-NEXT:    %n = graph.constant dense<[-0.000000e+00, 0x7f800000, 0xff800000, 0x7fc00000]> : tensor<4xf32>
func.func @special() -> tensor<4xf32> {
  %c = graph.constant dense<[0.0, -1.0, 1.0, 0.0]> : tensor<4xf32>
  %z = graph.constant dense<[1.0, 0.0, 0.0, 0.0]> : tensor<4xf32>
  %d = graph.div %c, %z : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %n = graph.neg %d : tensor<4xf32> -> tensor<4xf32>
  func.return %n : tensor<4xf32>
}
