// The kernel stage needs static sizes: on `?` dims it is refused by name.
// RUN: not irc opt %s --pass fuse 2>&1 | filecheck %s
// CHECK: pass 'fuse' needs static sizes, but the module has symbolic ones
func.func @main(%x: tensor<?x4xf32, ["s0"]>) -> tensor<?x4xf32, ["s0"]> {
  %e = graph.exp %x : tensor<?x4xf32, ["s0"]> -> tensor<?x4xf32, ["s0"]>
  func.return %e : tensor<?x4xf32, ["s0"]>
}
