// RUN: irc opt %s --pass cse | filecheck %s

// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %w = graph.weight "w" : tensor<4xf32>
// CHECK-NEXT:    %c = graph.constant dense<2.000000e+00> : tensor<4xf32>
// CHECK-NEXT:    %s = graph.add %a, %b : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
// CHECK-NEXT:    %d1 = graph.sub %a, %b : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
// CHECK-NEXT:    %d2 = graph.sub %b, %a : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
// CHECK-NEXT:    %m = graph.mul %s, %c : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
// CHECK-NEXT:    %e = graph.eq %s, %w : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xi1>
// CHECK-NEXT:    %r1 = graph.sum %s {dims = array<i64: 0>} : tensor<4xf32> -> tensor<f32>
// CHECK-NEXT:    %r3 = graph.sum %s {dims = array<i64: 0>, keepdim = true} : tensor<4xf32> -> tensor<1xf32>
// CHECK-NEXT:    func.return %m, %m, %d1, %d2, %e, %e, %r1, %r1, %r3
func.func @main(%a: tensor<4xf32>, %b: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xi1>, tensor<4xi1>, tensor<f32>, tensor<f32>, tensor<1xf32>) {
  %w = graph.weight "w" : tensor<4xf32>
  %w2 = graph.weight "w" : tensor<4xf32>
  %c = graph.constant dense<2.0> : tensor<4xf32>
  %c2 = graph.constant dense<2.0> : tensor<4xf32>
  // a + b and b + a are one value (add is commutative) ...
  %s = graph.add %a, %b : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %t = graph.add %b, %a : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  // ... a - b and b - a are not.
  %d1 = graph.sub %a, %b : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %d2 = graph.sub %b, %a : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  // Constants go to the right of commutative ops, equal constants merge.
  %m = graph.mul %c, %s : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %n = graph.mul %t, %c2 : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  // Weights naming the same tensor merge.
  %e = graph.eq %w, %s : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xi1>
  %f = graph.eq %t, %w2 : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xi1>
  // Properties are part of an op's identity.
  %r1 = graph.sum %s {dims = array<i64: 0>} : tensor<4xf32> -> tensor<f32>
  %r2 = graph.sum %t {dims = array<i64: 0>} : tensor<4xf32> -> tensor<f32>
  %r3 = graph.sum %s {dims = array<i64: 0>, keepdim = true} : tensor<4xf32> -> tensor<1xf32>
  func.return %m, %n, %d1, %d2, %e, %f, %r1, %r2, %r3 : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xi1>, tensor<4xi1>, tensor<f32>, tensor<f32>, tensor<1xf32>
}
