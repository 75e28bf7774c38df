// Symbolic sizes: each `?` is tied to a size expression in the type's encoding
// (one string per `?`), a SymInt input is an `index` argument naming its
// symbol, graph.size / graph.iota / symbolic slice bounds read sizes.
// Printing is stable: print(parse(text)) == text.
// RUN: irc opt %s | filecheck %s
// RUN: irc opt %s | irc opt - | filecheck %s

// CHECK:      func.func @main(%x: tensor<?x?xf32, ["s0", "4*s1"]>, %w: tensor<?x8xf32, ["4*s1"]>, %n: index {irc.size = "s2"}) -> (tensor<?x8xf32, ["s0"]>, tensor<?xf32, ["s2"]>, tensor<?xi64, ["s0"]>) {
// CHECK-NEXT:   %m = graph.matmul %x, %w : (tensor<?x?xf32, ["s0", "4*s1"]>, tensor<?x8xf32, ["4*s1"]>) -> tensor<?x8xf32, ["s0"]>
// CHECK-NEXT:   %flat = graph.reshape %m : tensor<?x8xf32, ["s0"]> -> tensor<?xf32, ["8*s0"]>
// CHECK-NEXT:   %head = graph.slice %flat {dim = 0 : i64, start = 0 : i64, end = "s2", step = 1 : i64} : tensor<?xf32, ["8*s0"]> -> tensor<?xf32, ["s2"]>
// CHECK-NEXT:   %size = graph.size "4*s1" : tensor<i64>
// CHECK-NEXT:   %iota = graph.iota : tensor<?xi64, ["s0"]>
// CHECK-NEXT:   %pos = graph.add %iota, %size : (tensor<?xi64, ["s0"]>, tensor<i64>) -> tensor<?xi64, ["s0"]>
// CHECK-NEXT:   func.return %m, %head, %pos : tensor<?x8xf32, ["s0"]>, tensor<?xf32, ["s2"]>, tensor<?xi64, ["s0"]>
func.func @main(%x: tensor<?x?xf32, ["s0", "4*s1"]>, %w: tensor<?x8xf32, ["4*s1"]>, %n: index {irc.size = "s2"}) -> (tensor<?x8xf32, ["s0"]>, tensor<?xf32, ["s2"]>, tensor<?xi64, ["s0"]>) {
  %m = graph.matmul %x, %w : (tensor<?x?xf32, ["s0", "4*s1"]>, tensor<?x8xf32, ["4*s1"]>) -> tensor<?x8xf32, ["s0"]>
  %flat = graph.reshape %m : tensor<?x8xf32, ["s0"]> -> tensor<?xf32, ["8*s0"]>
  %head = graph.slice %flat {dim = 0 : i64, start = 0 : i64, end = "s2", step = 1 : i64} : tensor<?xf32, ["8*s0"]> -> tensor<?xf32, ["s2"]>
  %size = graph.size "4*s1" : tensor<i64>
  %iota = graph.iota : tensor<?xi64, ["s0"]>
  %pos = graph.add %iota, %size : (tensor<?xi64, ["s0"]>, tensor<i64>) -> tensor<?xi64, ["s0"]>
  func.return %m, %head, %pos : tensor<?x8xf32, ["s0"]>, tensor<?xf32, ["s2"]>, tensor<?xi64, ["s0"]>
}
