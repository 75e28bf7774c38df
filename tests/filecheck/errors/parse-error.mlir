// A syntax error is reported as file:line:col with the line and a caret; exit 1.
// RUN: not irc opt %s 2>&1 | filecheck %s

// CHECK: parse-error.mlir:[[# @LINE + 4]]:{{[0-9]+}}: error: {{.*}}
// CHECK-NEXT: %y = graph.neg %x : tensor<2xf32> tensor<2xf32>
// CHECK-NEXT: {{ *}}^
func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {
  %y = graph.neg %x : tensor<2xf32> tensor<2xf32>
  func.return %y : tensor<2xf32>
}
