// RUN: irc opt %s --pass canonicalize --split-input-file | filecheck %s

// Arithmetic identities that are exact (NaN, inf and -0.0 included).
// CHECK-LABEL: func.func @arith(%x: tensor<3xf32>, %n: tensor<3xi32>)
// CHECK-NEXT:    %pz = graph.constant dense<0.000000e+00> : tensor<3xf32>
// CHECK-NEXT:    %keep = graph.add %x, %pz : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
// CHECK-NEXT:    func.return %x, %x, %x, %n, %keep, %x, %n : tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xi32>, tensor<3xf32>, tensor<3xf32>, tensor<3xi32>
func.func @arith(%x: tensor<3xf32>, %n: tensor<3xi32>) -> (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xi32>, tensor<3xf32>, tensor<3xf32>, tensor<3xi32>) {
  %one = graph.constant dense<1.0> : tensor<3xf32>
  %pz = graph.constant dense<0.0> : tensor<3xf32>
  %nz = graph.constant dense<-0.0> : tensor<3xf32>
  %iz = graph.constant dense<0> : tensor<3xi32>
  %a = graph.mul %one, %x : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %b = graph.div %x, %one : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %c = graph.sub %x, %pz : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %d = graph.add %n, %iz : (tensor<3xi32>, tensor<3xi32>) -> tensor<3xi32>
  // x + 0.0 is not x for x = -0.0: kept.
  %keep = graph.add %x, %pz : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %e = graph.add %x, %nz : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %m = graph.neg %n : tensor<3xi32> -> tensor<3xi32>
  %mm = graph.neg %m : tensor<3xi32> -> tensor<3xi32>
  func.return %a, %b, %c, %d, %keep, %e, %mm : tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3xi32>, tensor<3xf32>, tensor<3xf32>, tensor<3xi32>
}

// -----

// Identities that are NOT applied: x*0, x-x, x/x, x*1 that broadcasts.
// CHECK-LABEL: func.func @not_applied
// CHECK-NEXT:    graph.constant dense<0.000000e+00>
// CHECK-NEXT:    graph.constant dense<1.000000e+00> : tensor<2x3xf32>
// CHECK-NEXT:    graph.mul %x, %zero
// CHECK-NEXT:    graph.sub %x, %x
// CHECK-NEXT:    graph.div %x, %x
// CHECK-NEXT:    graph.mul %x, %ones
// CHECK-NEXT:    func.return
func.func @not_applied(%x: tensor<3xf32>) -> (tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<2x3xf32>) {
  %zero = graph.constant dense<0.0> : tensor<3xf32>
  %ones = graph.constant dense<1.0> : tensor<2x3xf32>
  %a = graph.mul %x, %zero : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %b = graph.sub %x, %x : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %c = graph.div %x, %x : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %d = graph.mul %x, %ones : (tensor<3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  func.return %a, %b, %c, %d : tensor<3xf32>, tensor<3xf32>, tensor<3xf32>, tensor<2x3xf32>
}

// -----

// Movement: permutes compose (identity vanishes), reshape-like chains become
// one reshape, no-op expand/slice/reshape vanish.
// CHECK-LABEL: func.func @movement(%x: tensor<2x3x4xf32>)
// CHECK-NEXT:    %p2 = graph.permute %x {dims = array<i64: 1, 0, 2>} : tensor<2x3x4xf32> -> tensor<3x2x4xf32>
// CHECK-NEXT:    %r3 = graph.reshape %x : tensor<2x3x4xf32> -> tensor<4x6xf32>
// CHECK-NEXT:    func.return %x, %p2, %r3, %x, %x, %x : tensor<2x3x4xf32>, tensor<3x2x4xf32>, tensor<4x6xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>
func.func @movement(%x: tensor<2x3x4xf32>) -> (tensor<2x3x4xf32>, tensor<3x2x4xf32>, tensor<4x6xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) {
  %p = graph.permute %x {dims = array<i64: 2, 0, 1>} : tensor<2x3x4xf32> -> tensor<4x2x3xf32>
  %q = graph.permute %p {dims = array<i64: 1, 2, 0>} : tensor<4x2x3xf32> -> tensor<2x3x4xf32>
  %p2 = graph.permute %p {dims = array<i64: 2, 1, 0>} : tensor<4x2x3xf32> -> tensor<3x2x4xf32>
  %r1 = graph.reshape %x : tensor<2x3x4xf32> -> tensor<24xf32>
  %r2 = graph.unsqueeze %r1 {dim = 0 : i64} : tensor<24xf32> -> tensor<1x24xf32>
  %r3 = graph.reshape %r2 : tensor<1x24xf32> -> tensor<4x6xf32>
  %u = graph.unsqueeze %x {dim = 1 : i64} : tensor<2x3x4xf32> -> tensor<2x1x3x4xf32>
  %s = graph.squeeze %u {dims = array<i64: 1>} : tensor<2x1x3x4xf32> -> tensor<2x3x4xf32>
  %e = graph.expand %x : tensor<2x3x4xf32> -> tensor<2x3x4xf32>
  %sl = graph.slice %e {dim = 2 : i64, start = 0 : i64, end = 4 : i64, step = 1 : i64} : tensor<2x3x4xf32> -> tensor<2x3x4xf32>
  func.return %q, %p2, %r3, %s, %e, %sl : tensor<2x3x4xf32>, tensor<3x2x4xf32>, tensor<4x6xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>
}

// -----

// Casts: to the same type vanish; widening then narrowing back is x; a
// narrowing round trip (f32 -> f16 -> f32 rounds) is kept.
// CHECK-LABEL: func.func @casts(%x: tensor<2xf16>, %y: tensor<2xf32>, %n: tensor<2xi32>)
// CHECK-NEXT:    %h = graph.cast %y : tensor<2xf32> -> tensor<2xf16>
// CHECK-NEXT:    %f = graph.cast %h : tensor<2xf16> -> tensor<2xf32>
// CHECK-NEXT:    %i8 = graph.cast %n : tensor<2xi32> -> tensor<2xi8>
// CHECK-NEXT:    func.return %x, %f, %i8
func.func @casts(%x: tensor<2xf16>, %y: tensor<2xf32>, %n: tensor<2xi32>) -> (tensor<2xf16>, tensor<2xf32>, tensor<2xi8>) {
  %same = graph.cast %x : tensor<2xf16> -> tensor<2xf16>
  %w = graph.cast %same : tensor<2xf16> -> tensor<2xf64>
  %back = graph.cast %w : tensor<2xf64> -> tensor<2xf16>
  %h = graph.cast %y : tensor<2xf32> -> tensor<2xf16>
  %f = graph.cast %h : tensor<2xf16> -> tensor<2xf32>
  %wide = graph.cast %n : tensor<2xi32> -> tensor<2xi64>
  %i8 = graph.cast %wide : tensor<2xi64> -> tensor<2xi8>
  func.return %back, %f, %i8 : tensor<2xf16>, tensor<2xf32>, tensor<2xi8>
}
