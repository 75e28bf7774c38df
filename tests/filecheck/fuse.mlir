// RUN: irc opt %s --pass fuse | filecheck %s

// softmax -> matmul -> bias + GELU -> layer norm: two kernels around one extern.
builtin.module {
  func.func @main(%x: tensor<4x8xf32>, %w: tensor<8x16xf32>) -> tensor<4x16xf32> {
    %b = graph.weight "bias" : tensor<16xf32>
    %half = graph.constant dense<5.000000e-01> : tensor<f32>
    %eps = graph.constant dense<1.000000e-05> : tensor<f32>
    %m = graph.amax %x {dims = array<i64: 1>, keepdim = true} : tensor<4x8xf32> -> tensor<4x1xf32>
    %s = graph.sub %x, %m : (tensor<4x8xf32>, tensor<4x1xf32>) -> tensor<4x8xf32>
    %e = graph.exp %s : tensor<4x8xf32> -> tensor<4x8xf32>
    %t = graph.sum %e {dims = array<i64: 1>, keepdim = true} : tensor<4x8xf32> -> tensor<4x1xf32>
    %p = graph.div %e, %t : (tensor<4x8xf32>, tensor<4x1xf32>) -> tensor<4x8xf32>
    %mm = graph.matmul %p, %w : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
    %h = graph.add %mm, %b : (tensor<4x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
    %g = graph.gelu %h : tensor<4x16xf32> -> tensor<4x16xf32>
    %mean = graph.mean %g {dims = array<i64: 1>, keepdim = true} : tensor<4x16xf32> -> tensor<4x1xf32>
    %c = graph.sub %g, %mean : (tensor<4x16xf32>, tensor<4x1xf32>) -> tensor<4x16xf32>
    %sq = graph.mul %c, %c : (tensor<4x16xf32>, tensor<4x16xf32>) -> tensor<4x16xf32>
    %var = graph.mean %sq {dims = array<i64: 1>, keepdim = true} : tensor<4x16xf32> -> tensor<4x1xf32>
    %ve = graph.add %var, %eps : (tensor<4x1xf32>, tensor<f32>) -> tensor<4x1xf32>
    %r = graph.rsqrt %ve : tensor<4x1xf32> -> tensor<4x1xf32>
    %n = graph.mul %c, %r : (tensor<4x16xf32>, tensor<4x1xf32>) -> tensor<4x16xf32>
    %y = graph.mul %n, %half : (tensor<4x16xf32>, tensor<f32>) -> tensor<4x16xf32>
    func.return %y : tensor<4x16xf32>
  }
}

// CHECK-LABEL: func.func @main(%x: tensor<4x8xf32>, %w: tensor<8x16xf32>) -> tensor<4x16xf32> {
// CHECK-NEXT:    %b = graph.weight "bias" : tensor<16xf32>
// CHECK-NEXT:    %p = func.call @kernel_0(%x) : (tensor<4x8xf32>) -> tensor<4x8xf32>
// CHECK-NEXT:    %mm = graph.matmul %p, %w
// CHECK-NEXT:    %y = func.call @kernel_1(%mm, %b) : (tensor<4x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
// CHECK-NEXT:    func.return %y : tensor<4x16xf32>
// CHECK-NEXT:  }

// CHECK-NEXT:  func.func private @kernel_0(%x: tensor<4x8xf32>) -> tensor<4x8xf32> attributes {irc.kernel, irc.iteration = "4x8 -> reduce(1) 4x1 -> 4x8 -> reduce(1) 4x1 -> 4x8"} {
// CHECK-NEXT:    %m = graph.amax %x
// CHECK-NEXT:    %s = graph.sub %x, %m
// CHECK-NEXT:    %e = graph.exp %s
// CHECK-NEXT:    %t = graph.sum %e
// CHECK-NEXT:    %p = graph.div %e, %t
// CHECK-NEXT:    func.return %p : tensor<4x8xf32>
// CHECK-NEXT:  }

// The splat constants are used by this kernel only: they are cloned into it.
// CHECK-NEXT:  func.func private @kernel_1(%mm: tensor<4x16xf32>, %b: tensor<16xf32>) -> tensor<4x16xf32> attributes {irc.kernel, irc.iteration = "4x16 -> reduce(1) 4x1 -> 4x16 -> reduce(1) 4x1 -> 4x16"} {
// CHECK-NEXT:    %half = graph.constant dense<5.000000e-01> : tensor<f32>
// CHECK-NEXT:    %eps = graph.constant dense<1.000000e-05> : tensor<f32>
// CHECK-NEXT:    %h = graph.add %mm, %b
// CHECK-NEXT:    %g = graph.gelu %h
// CHECK-NEXT:    %mean = graph.mean %g
// CHECK-NEXT:    %c = graph.sub %g, %mean
// CHECK-NEXT:    %sq = graph.mul %c, %c
// CHECK-NEXT:    %var = graph.mean %sq
// CHECK-NEXT:    %ve = graph.add %var, %eps
// CHECK-NEXT:    %r = graph.rsqrt %ve
// CHECK-NEXT:    %n = graph.mul %c, %r
// CHECK-NEXT:    %y = graph.mul %n, %half
// CHECK-NEXT:    func.return %y : tensor<4x16xf32>
// CHECK-NEXT:  }
