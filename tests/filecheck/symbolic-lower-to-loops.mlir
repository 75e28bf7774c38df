// Symbolic sizes through the kernel and loops stages: one kernel for every
// binding. Buffers of a symbolic size are flat `memref<?xT>`; a kernel takes
// the size symbols it uses as trailing `index` arguments (`irc.sizes`) and
// computes loop bounds and strides from them; a parallel loop's symbolic trip
// count is stated (`irc.trip`) for the runtime's split.
// RUN: irc opt %s --pass fuse,lower-to-loops | filecheck %s

// CHECK-LABEL: func.func @main
// CHECK:         host.launch @kernel_0(%x, %w) : (tensor<?x?x64xf32, ["s0", "s1"]>, tensor<64xf32>) -> tensor<?x64xf32, ["s0*s1"]>
// CHECK:         host.launch @kernel_1(%s) : (tensor<4x?xf32, ["s1"]>) -> tensor<4x?xf32, ["s1"]>

// RMSNorm over rows of a static 64: one row loop of s0*s1 trips, static inner loops
// CHECK-LABEL: func.func @kernel_0(
// CHECK-SAME:    %{{[0-9]+}}: memref<?xf32>, %{{[0-9]+}}: memref<64xf32>, %{{[0-9]+}}: memref<?xf32>, %[[S0:[0-9]+]]: index, %[[S1:[0-9]+]]: index)
// CHECK-SAME:    irc.sizes = ["s0", "s1"]
// CHECK:         %[[ROWS:[0-9]+]] = arith.muli %[[S0]], %[[S1]] : index
// CHECK:         scf.for %[[ROW:[0-9]+]] = %{{.*}} to %[[ROWS]] step %{{.*}} {
// CHECK-NEXT:      %[[BASE:[0-9]+]] = arith.muli %[[ROW]], %{{.*}} : index
// CHECK-NEXT:      scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}} = %{{.*}}) -> (f32) {
// CHECK:             memref.load %{{.*}} : memref<?xf32>
// CHECK:           math.rsqrt
// CHECK:           memref.store %{{.*}} : memref<?xf32>
// CHECK:         } {irc.trip = "s0*s1", irc.parallel}

// softmax over a symbolic last dim: the inner loops run to the size argument,
// the row stride is that argument, exp computed once (stashed in the output)
// CHECK-LABEL: func.func @kernel_1(
// CHECK-SAME:    %{{[0-9]+}}: memref<?xf32>, %{{[0-9]+}}: memref<?xf32>, %[[N:[0-9]+]]: index)
// CHECK-SAME:    irc.sizes = ["s1"]
// CHECK:         scf.for %[[R:[0-9]+]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK-NEXT:      %{{.*}} = arith.muli %[[R]], %[[N]] : index
// CHECK-NEXT:      scf.for %{{.*}} = %{{.*}} to %[[N]] step %{{.*}} iter_args
// CHECK:             arith.maximumf
// CHECK:           scf.for %{{.*}} = %{{.*}} to %[[N]] step %{{.*}} iter_args
// CHECK:             math.exp
// CHECK:           scf.for %{{.*}} = %{{.*}} to %[[N]] step
// CHECK-NOT:         math.exp
// CHECK:           } {irc.trip = "s1"}
// CHECK:         } {irc.parallel}
func.func @main(%x: tensor<?x?x64xf32, ["s0", "s1"]>, %w: tensor<64xf32>, %s: tensor<4x?xf32, ["s1"]>) -> (tensor<?x64xf32, ["s0*s1"]>, tensor<4x?xf32, ["s1"]>) {
  %sq = graph.mul %x, %x : (tensor<?x?x64xf32, ["s0", "s1"]>, tensor<?x?x64xf32, ["s0", "s1"]>) -> tensor<?x?x64xf32, ["s0", "s1"]>
  %m = graph.mean %sq {dims = array<i64: 2>, keepdim = true} : tensor<?x?x64xf32, ["s0", "s1"]> -> tensor<?x?x1xf32, ["s0", "s1"]>
  %r = graph.rsqrt %m : tensor<?x?x1xf32, ["s0", "s1"]> -> tensor<?x?x1xf32, ["s0", "s1"]>
  %y = graph.mul %x, %r : (tensor<?x?x64xf32, ["s0", "s1"]>, tensor<?x?x1xf32, ["s0", "s1"]>) -> tensor<?x?x64xf32, ["s0", "s1"]>
  %z = graph.mul %y, %w : (tensor<?x?x64xf32, ["s0", "s1"]>, tensor<64xf32>) -> tensor<?x?x64xf32, ["s0", "s1"]>
  %f = graph.reshape %z : tensor<?x?x64xf32, ["s0", "s1"]> -> tensor<?x64xf32, ["s0*s1"]>
  %mx = graph.amax %s {dims = array<i64: 1>, keepdim = true} : tensor<4x?xf32, ["s1"]> -> tensor<4x1xf32>
  %d = graph.sub %s, %mx : (tensor<4x?xf32, ["s1"]>, tensor<4x1xf32>) -> tensor<4x?xf32, ["s1"]>
  %e = graph.exp %d : tensor<4x?xf32, ["s1"]> -> tensor<4x?xf32, ["s1"]>
  %t = graph.sum %e {dims = array<i64: 1>, keepdim = true} : tensor<4x?xf32, ["s1"]> -> tensor<4x1xf32>
  %p = graph.div %e, %t : (tensor<4x?xf32, ["s1"]>, tensor<4x1xf32>) -> tensor<4x?xf32, ["s1"]>
  func.return %f, %p : tensor<?x64xf32, ["s0*s1"]>, tensor<4x?xf32, ["s1"]>
}
