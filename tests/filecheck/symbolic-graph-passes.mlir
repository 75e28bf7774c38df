// The graph stage on symbolic sizes: cse merges values whose types carry the
// same size expressions, canonicalize drops identities (x * 1, a full slice
// whose end is the symbolic size itself), dce removes what is unused; the `?`
// types are kept as they are.
// RUN: irc opt %s --pass-pipeline 'dce,cse,canonicalize,fold-batch-norm,constant-fold,cse,dce' | filecheck %s

// CHECK-LABEL: func.func @main(%x: tensor<?x128xf32, ["s0"]>, %y: tensor<?x128xf32, ["s0"]>, %w: tensor<128x64xf32>)
// CHECK-NEXT:    %s = graph.add %x, %y : (tensor<?x128xf32, ["s0"]>, tensor<?x128xf32, ["s0"]>) -> tensor<?x128xf32, ["s0"]>
// CHECK-NEXT:    %m = graph.matmul %s, %w : (tensor<?x128xf32, ["s0"]>, tensor<128x64xf32>) -> tensor<?x64xf32, ["s0"]>
// CHECK-NEXT:    %f = graph.reshape %s : tensor<?x128xf32, ["s0"]> -> tensor<?xf32, ["128*s0"]>
// CHECK-NEXT:    func.return %m, %s, %f, %s
func.func @main(%x: tensor<?x128xf32, ["s0"]>, %y: tensor<?x128xf32, ["s0"]>, %w: tensor<128x64xf32>) -> (tensor<?x64xf32, ["s0"]>, tensor<?x128xf32, ["s0"]>, tensor<?xf32, ["128*s0"]>, tensor<?x128xf32, ["s0"]>) {
  %one = graph.constant dense<1.0> : tensor<128xf32>
  %a = graph.mul %x, %one : (tensor<?x128xf32, ["s0"]>, tensor<128xf32>) -> tensor<?x128xf32, ["s0"]>
  %s = graph.add %a, %y : (tensor<?x128xf32, ["s0"]>, tensor<?x128xf32, ["s0"]>) -> tensor<?x128xf32, ["s0"]>
  %t = graph.add %y, %x : (tensor<?x128xf32, ["s0"]>, tensor<?x128xf32, ["s0"]>) -> tensor<?x128xf32, ["s0"]>
  %m = graph.matmul %s, %w : (tensor<?x128xf32, ["s0"]>, tensor<128x64xf32>) -> tensor<?x64xf32, ["s0"]>
  %dead = graph.exp %t : tensor<?x128xf32, ["s0"]> -> tensor<?x128xf32, ["s0"]>
  %f = graph.reshape %t : tensor<?x128xf32, ["s0"]> -> tensor<?xf32, ["128*s0"]>
  %all = graph.slice %t {dim = 0 : i64, start = 0 : i64, end = "s0", step = 1 : i64} : tensor<?x128xf32, ["s0"]> -> tensor<?x128xf32, ["s0"]>
  func.return %m, %t, %f, %all : tensor<?x64xf32, ["s0"]>, tensor<?x128xf32, ["s0"]>, tensor<?xf32, ["128*s0"]>, tensor<?x128xf32, ["s0"]>
}
