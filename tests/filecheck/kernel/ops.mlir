// A kernel-level module (host schedule, kernels, an extern op) prints and
// parses back unchanged, and verifies; a second round trip is stable.
// RUN: irc opt %s | filecheck %s
// RUN: irc opt %s | irc opt - | filecheck %s

builtin.module {
  func.func @main(%x: tensor<4x8xf32>, %w: tensor<8x16xf32>) -> tensor<4x16xf32> {
    %b = graph.weight "bias" : tensor<16xf32>
    %p = func.call @kernel_0(%x) : (tensor<4x8xf32>) -> tensor<4x8xf32>
    %mm = graph.matmul %p, %w : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
    %y = func.call @kernel_1(%mm, %b) : (tensor<4x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
    func.return %y : tensor<4x16xf32>
  }
  func.func private @kernel_0(%x: tensor<4x8xf32>) -> tensor<4x8xf32> attributes {irc.kernel, irc.iteration = "4x8"} {
    %e = graph.exp %x : tensor<4x8xf32> -> tensor<4x8xf32>
    func.return %e : tensor<4x8xf32>
  }
  func.func private @kernel_1(%mm: tensor<4x16xf32>, %b: tensor<16xf32>) -> tensor<4x16xf32> attributes {irc.kernel} {
    %h = graph.add %mm, %b : (tensor<4x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
    func.return %h : tensor<4x16xf32>
  }
}

// CHECK:      builtin.module {
// CHECK-NEXT:   func.func @main(%x: tensor<4x8xf32>, %w: tensor<8x16xf32>) -> tensor<4x16xf32> {
// CHECK-NEXT:     %b = graph.weight "bias" : tensor<16xf32>
// CHECK-NEXT:     %p = func.call @kernel_0(%x) : (tensor<4x8xf32>) -> tensor<4x8xf32>
// CHECK-NEXT:     %mm = graph.matmul %p, %w : (tensor<4x8xf32>, tensor<8x16xf32>) -> tensor<4x16xf32>
// CHECK-NEXT:     %y = func.call @kernel_1(%mm, %b) : (tensor<4x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
// CHECK-NEXT:     func.return %y : tensor<4x16xf32>
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func private @kernel_0(%x: tensor<4x8xf32>) -> tensor<4x8xf32> attributes {irc.kernel, irc.iteration = "4x8"} {
// CHECK-NEXT:     %e = graph.exp %x : tensor<4x8xf32> -> tensor<4x8xf32>
// CHECK-NEXT:     func.return %e : tensor<4x8xf32>
// CHECK-NEXT:   }
// CHECK-NEXT:   func.func private @kernel_1(%mm: tensor<4x16xf32>, %b: tensor<16xf32>) -> tensor<4x16xf32> attributes {irc.kernel} {
// CHECK-NEXT:     %h = graph.add %mm, %b : (tensor<4x16xf32>, tensor<16xf32>) -> tensor<4x16xf32>
// CHECK-NEXT:     func.return %h : tensor<4x16xf32>
// CHECK-NEXT:   }
// CHECK-NEXT: }
