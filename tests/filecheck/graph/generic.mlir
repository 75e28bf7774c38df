// Generic syntax parses, and prints back in custom syntax.
// RUN: irc opt %s | filecheck %s
// RUN: irc opt %s --generic | filecheck %s --check-prefix=GENERIC

// CHECK:      func.func @main(%x: tensor<2x3xf32>, %n: tensor<3xi64>) -> (tensor<2x3xf32>, tensor<3x2xf32>, tensor<2xf32>) {
// CHECK-NEXT:   %c = graph.constant dense<5.000000e-01> : tensor<3xf32>
// CHECK-NEXT:   %w = graph.weight "w" : tensor<3x2xf32>
// CHECK-NEXT:   %a = graph.add %x, %c : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32> loc("net.py":7:3)
// CHECK-NEXT:   %p = graph.permute %a {dims = array<i64: 1, 0>} : tensor<2x3xf32> -> tensor<3x2xf32>
// CHECK-NEXT:   %s = graph.sum %x {dims = array<i64: 1>} : tensor<2x3xf32> -> tensor<2xf32>
// CHECK-NEXT:   %d = graph.div %n, %n {rounding_mode = "floor"} : (tensor<3xi64>, tensor<3xi64>) -> tensor<3xi64>
// CHECK-NEXT:   func.return %a, %p, %s : tensor<2x3xf32>, tensor<3x2xf32>, tensor<2xf32>

// GENERIC: "graph.add"(%x, %c) : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32> loc("net.py":7:3)
// GENERIC: "graph.permute"(%a) <{dims = array<i64: 1, 0>}> : (tensor<2x3xf32>) -> tensor<3x2xf32>

"builtin.module"() ({
  "func.func"() <{sym_name = "main", function_type = (tensor<2x3xf32>, tensor<3xi64>) -> (tensor<2x3xf32>, tensor<3x2xf32>, tensor<2xf32>)}> ({
  ^bb0(%x: tensor<2x3xf32>, %n: tensor<3xi64>):
    %c = "graph.constant"() <{value = dense<5.000000e-01> : tensor<3xf32>}> : () -> tensor<3xf32>
    %w = "graph.weight"() <{name = "w"}> : () -> tensor<3x2xf32>
    %a = "graph.add"(%x, %c) : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32> loc("net.py":7:3)
    %p = "graph.permute"(%a) <{dims = array<i64: 1, 0>}> : (tensor<2x3xf32>) -> tensor<3x2xf32>
    %s = "graph.sum"(%x) <{dims = array<i64: 1>, keepdim = false}> : (tensor<2x3xf32>) -> tensor<2xf32>
    %d = "graph.div"(%n, %n) <{rounding_mode = "floor"}> : (tensor<3xi64>, tensor<3xi64>) -> tensor<3xi64>
    "func.return"(%a, %p, %s) : (tensor<2x3xf32>, tensor<3x2xf32>, tensor<2xf32>) -> ()
  }) : () -> ()
}) : () -> ()
