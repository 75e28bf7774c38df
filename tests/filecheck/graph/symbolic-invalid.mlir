// Verifier errors on symbolic sizes: each names the op and the sizes it
// cannot reconcile (two different symbols are never assumed equal).
// RUN: irc opt %s --split-input-file --verify-diagnostics
func.func @main(%x: tensor<?x4xf32, ["s0"]>, %z: tensor<?x4xf32, ["s1"]>) {
  // expected-error @+1 {{operand shapes s0x4 and s1x4 do not broadcast}}
  %r = graph.add %x, %z : (tensor<?x4xf32, ["s0"]>, tensor<?x4xf32, ["s1"]>) -> tensor<?x4xf32, ["s0"]>
  func.return
}

// -----

func.func @main(%x: tensor<?x4xf32, ["s0"]>, %w: tensor<?x3xf32, ["s1"]>) {
  // expected-error @+1 {{contraction sizes differ: s0x4 @ s1x3 (4 vs s1)}}
  %r = graph.matmul %x, %w : (tensor<?x4xf32, ["s0"]>, tensor<?x3xf32, ["s1"]>) -> tensor<?x3xf32, ["s0"]>
  func.return
}

// -----

func.func @main(%x: tensor<?x4xf32, ["s0"]>) {
  // expected-error @+1 {{cannot reshape s0x4 (4*s0 elements) to 2*s0 (2*s0 elements)}}
  %r = graph.reshape %x : tensor<?x4xf32, ["s0"]> -> tensor<?xf32, ["2*s0"]>
  func.return
}

// -----

func.func @main(%x: tensor<?x4xf32, ["s0"]>) {
  // expected-error @+1 {{result shape s0 should be s0x4}}
  %r = graph.slice %x {dim = 0 : i64, start = 0 : i64, end = "s0", step = 1 : i64} : tensor<?x4xf32, ["s0"]> -> tensor<?xf32, ["s0"]>
  func.return
}
