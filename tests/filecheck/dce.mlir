// RUN: irc opt %s --pass dce | filecheck %s

// Unused pure ops go, transitively; @main's signature stays even with an
// unused argument.
// CHECK-LABEL: func.func @main(%x: tensor<4xf32>, %unused: tensor<4xf32>) -> tensor<4xf32> {
// CHECK-NEXT:    %y = func.call @helper(%x) : (tensor<4xf32>) -> tensor<4xf32>
// CHECK-NEXT:    func.return %y : tensor<4xf32>
// CHECK-NEXT:  }
func.func @main(%x: tensor<4xf32>, %unused: tensor<4xf32>) -> tensor<4xf32> {
  %a = graph.exp %x : tensor<4xf32> -> tensor<4xf32>
  %b = graph.add %a, %unused : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %y = func.call @helper(%x, %b) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  func.return %y : tensor<4xf32>
}

// A private function loses its unused argument; its callers stop passing it,
// which in turn made %a and %b above dead.
// CHECK-LABEL: func.func private @helper(%p: tensor<4xf32>) -> tensor<4xf32> {
// CHECK-NEXT:    %r = graph.neg %p : tensor<4xf32> -> tensor<4xf32>
// CHECK-NEXT:    func.return %r : tensor<4xf32>
// CHECK-NEXT:  }
func.func private @helper(%p: tensor<4xf32>, %q: tensor<4xf32>) -> tensor<4xf32> {
  %dead = graph.mul %q, %q : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  %r = graph.neg %p : tensor<4xf32> -> tensor<4xf32>
  func.return %r : tensor<4xf32>
}

// A public function other than @main keeps its signature too.
// CHECK-LABEL: func.func @public(%p: tensor<4xf32>, %q: tensor<4xf32>) -> tensor<4xf32> {
// CHECK-NEXT:    func.return %p : tensor<4xf32>
func.func @public(%p: tensor<4xf32>, %q: tensor<4xf32>) -> tensor<4xf32> {
  %w = graph.weight "unused.weight" : tensor<4xf32>
  func.return %p : tensor<4xf32>
}
