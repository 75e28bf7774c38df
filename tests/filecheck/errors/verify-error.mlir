// A verifier failure names the op and points at it; exit 1, no traceback.
// RUN: not irc opt %s 2>&1 | filecheck %s

// CHECK: verify-error.mlir:[[# @LINE + 5]]:3: error: 'graph.add' op operand shapes 2 and 3 do not broadcast
// CHECK-NEXT: %y = graph.add %x, %z
// CHECK-NEXT: ^
// CHECK-NOT: Traceback
func.func @main(%x: tensor<2xf32>, %z: tensor<3xf32>) -> tensor<2xf32> {
  %y = graph.add %x, %z : (tensor<2xf32>, tensor<3xf32>) -> tensor<2xf32>
  func.return %y : tensor<2xf32>
}
