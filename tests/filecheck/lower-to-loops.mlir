// RUN: irc opt %s --pass lower-to-loops | filecheck %s

// CHECK-LABEL: func.func @main
// CHECK:         host.launch @kernel_0(%x) : (tensor<64x128xf32>) -> tensor<64x128xf32>
// CHECK:         host.launch @kernel_1(%h) : (tensor<4x8xf16>) -> tensor<4x8xf16>

// CHECK-LABEL: func.func @kernel_0(%{{.*}}: memref<8192xf32>, %{{.*}}: memref<8192xf32>) attributes {irc.kernel}
// CHECK-NOT:     memref.alloc
// CHECK:         scf.for %[[ROW:.*]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK-NEXT:      %[[BASE:.*]] = arith.muli %[[ROW]], %{{.*}} : index
// CHECK-NEXT:      %[[MAX:.*]] = scf.for %[[J:.*]] = {{.*}} iter_args(%[[ACC:.*]] = %{{.*}}) -> (f32) {
// CHECK-NEXT:        %[[OFF:.*]] = arith.addi %[[BASE]], %[[J]] : index
// CHECK-NEXT:        %[[X:.*]] = memref.load %{{.*}}[%[[OFF]]] : memref<8192xf32>
// CHECK-NEXT:        %[[M:.*]] = arith.maximumf %[[ACC]], %[[X]] : f32
// CHECK-NEXT:        scf.yield %[[M]] : f32
// CHECK:           %[[SUM:.*]] = scf.for {{.*}} iter_args({{.*}}) -> (f32) {
// CHECK:             arith.subf %{{.*}}, %[[MAX]] : f32
// CHECK-NEXT:        %[[E:.*]] = math.exp
// CHECK-NEXT:        memref.store %[[E]], %[[OUT:.*]][%{{.*}}] : memref<8192xf32>
// CHECK-NEXT:        arith.addf
// CHECK:           %[[RECIP:.*]] = arith.divf %{{.*}}, %[[SUM]] : f32
// CHECK:           scf.for
// CHECK-NOT:         math.exp
// CHECK:             %[[STASHED:.*]] = memref.load %[[OUT]]
// CHECK-NEXT:        %[[P:.*]] = arith.mulf %[[STASHED]], %[[RECIP]] : f32
// CHECK-NEXT:        memref.store %[[P]], %[[OUT]]
// CHECK:         } {irc.parallel}
// CHECK-NEXT:    func.return

// CHECK-LABEL: func.func @kernel_1(%{{.*}}: memref<32xf16>, %{{.*}}: memref<32xf16>) attributes {irc.kernel}
// CHECK:         %[[COLS:.*]] = memref.alloca() : memref<8xf32>
// CHECK:         scf.for
// CHECK-NEXT:      memref.store %{{.*}}, %[[COLS]]
// CHECK:         scf.for
// CHECK:           scf.for
// CHECK-NEXT:        %[[ACC:.*]] = memref.load %[[COLS]]
// CHECK:             arith.extf %{{.*}} : f16 to f32
// CHECK-NEXT:        %[[NEW:.*]] = arith.addf %[[ACC]], %{{.*}} : f32
// CHECK-NEXT:        memref.store %[[NEW]], %[[COLS]]
// CHECK:         scf.for
// CHECK:           scf.for
// CHECK:             memref.load %[[COLS]]
// CHECK:             arith.truncf %{{.*}} : f32 to f16
// CHECK-NOT:     irc.parallel

// Row softmax: one row loop (parallel) holding three inner loops: max and sum
// carry iter_args, the sum loop also stores exp(x - max) into the output, the
// third rescales it in place by 1/sum; the row base offset is hoisted.
builtin.module {
  func.func @main(%x: tensor<64x128xf32>, %h: tensor<4x8xf16>) -> (tensor<64x128xf32>, tensor<4x8xf16>) {
    %r = func.call @kernel_0(%x) : (tensor<64x128xf32>) -> tensor<64x128xf32>
    %y = func.call @kernel_1(%h) : (tensor<4x8xf16>) -> tensor<4x8xf16>
    func.return %r, %y : tensor<64x128xf32>, tensor<4x8xf16>
  }
  func.func private @kernel_0(%x: tensor<64x128xf32>) -> tensor<64x128xf32> attributes {irc.kernel} {
    %m = graph.amax %x {dims = array<i64: 1>, keepdim = true} : tensor<64x128xf32> -> tensor<64x1xf32>
    %s = graph.sub %x, %m : (tensor<64x128xf32>, tensor<64x1xf32>) -> tensor<64x128xf32>
    %e = graph.exp %s : tensor<64x128xf32> -> tensor<64x128xf32>
    %t = graph.sum %e {dims = array<i64: 1>, keepdim = true} : tensor<64x128xf32> -> tensor<64x1xf32>
    %p = graph.div %e, %t : (tensor<64x128xf32>, tensor<64x1xf32>) -> tensor<64x128xf32>
    func.return %p : tensor<64x128xf32>
  }
  // f16: load, extend to f32, compute, truncate on store; a column sum used
  // by every row is accumulated first into a stack buffer, walking the rows
  // in memory order.
  func.func private @kernel_1(%h: tensor<4x8xf16>) -> tensor<4x8xf16> attributes {irc.kernel} {
    %c = graph.sum %h {dims = array<i64: 0>, keepdim = true} : tensor<4x8xf16> -> tensor<1x8xf16>
    %q = graph.sub %h, %c : (tensor<4x8xf16>, tensor<1x8xf16>) -> tensor<4x8xf16>
    func.return %q : tensor<4x8xf16>
  }
}
