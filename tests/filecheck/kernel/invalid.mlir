// One case per kernel-level invariant (irc/ir/kernel.py); each must fail with
// its message at its line.
// RUN: irc opt %s --split-input-file --verify-diagnostics

// the marker is a unit attribute
builtin.module {
  func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
    %y = func.call @kernel_0(%x) : (tensor<4xf32>) -> tensor<4xf32>
    func.return %y : tensor<4xf32>
  }
  // expected-error @+1 {{'irc.kernel' of @kernel_0 must be a unit attribute}}
  func.func private @kernel_0(%x: tensor<4xf32>) -> tensor<4xf32> attributes {irc.kernel = 1 : i64} {
    func.return %x : tensor<4xf32>
  }
}

// -----

// the iteration summary is a string
builtin.module {
  func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
    %y = func.call @kernel_0(%x) : (tensor<4xf32>) -> tensor<4xf32>
    func.return %y : tensor<4xf32>
  }
  // expected-error @+1 {{'irc.iteration' of @kernel_0 must be a string}}
  func.func private @kernel_0(%x: tensor<4xf32>) -> tensor<4xf32> attributes {irc.kernel, irc.iteration = 4 : i64} {
    func.return %x : tensor<4xf32>
  }
}

// -----

// @main is not a kernel
builtin.module {
  // expected-error @+1 {{@main is the host schedule and cannot be a kernel}}
  func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> attributes {irc.kernel} {
    func.return %x : tensor<4xf32>
  }
}

// -----

// only functions are kernels
builtin.module {
  func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
    // expected-error @+1 {{'irc.kernel' marks a func.func, not this op}}
    %y = graph.exp %x {irc.kernel} : tensor<4xf32> -> tensor<4xf32>
    %z = func.call @kernel_0(%y) : (tensor<4xf32>) -> tensor<4xf32>
    func.return %z : tensor<4xf32>
  }
  func.func private @kernel_0(%x: tensor<4xf32>) -> tensor<4xf32> attributes {irc.kernel} {
    func.return %x : tensor<4xf32>
  }
}

// -----

// a kernel calls nothing
builtin.module {
  func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
    %y = func.call @kernel_0(%x) : (tensor<4xf32>) -> tensor<4xf32>
    func.return %y : tensor<4xf32>
  }
  func.func private @kernel_0(%x: tensor<4xf32>) -> tensor<4xf32> attributes {irc.kernel} {
    // expected-error @+1 {{kernel @kernel_0 calls @kernel_1; a kernel calls nothing}}
    %y = func.call @kernel_1(%x) : (tensor<4xf32>) -> tensor<4xf32>
    func.return %y : tensor<4xf32>
  }
  func.func private @kernel_1(%x: tensor<4xf32>) -> tensor<4xf32> attributes {irc.kernel} {
    func.return %x : tensor<4xf32>
  }
}

// -----

// a call passes the kernel's input types (xDSL's func.call verifier)
builtin.module {
  func.func @main(%x: tensor<4xf32>, %w: tensor<8xf32>) -> tensor<4xf32> {
    // expected-error @+1 {{operand type mismatch: expected operand type tensor<4xf32>, but provided tensor<8xf32>}}
    %y = func.call @kernel_0(%w) : (tensor<8xf32>) -> tensor<4xf32>
    func.return %y : tensor<4xf32>
  }
  func.func private @kernel_0(%x: tensor<4xf32>) -> tensor<4xf32> attributes {irc.kernel} {
    func.return %x : tensor<4xf32>
  }
}

// -----

// ... and yields its output types
builtin.module {
  func.func @main(%x: tensor<4xf32>) -> tensor<8xf32> {
    // expected-error @+1 {{result type mismatch: expected result type tensor<4xf32>, but provided tensor<8xf32>}}
    %y = func.call @kernel_0(%x) : (tensor<4xf32>) -> tensor<8xf32>
    func.return %y : tensor<8xf32>
  }
  func.func private @kernel_0(%x: tensor<4xf32>) -> tensor<4xf32> attributes {irc.kernel} {
    func.return %x : tensor<4xf32>
  }
}

// -----

// a launch names a kernel
builtin.module {
  func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
    // expected-error @+1 {{'host.launch' op: @helper is not a kernel of the module}}
    %y = host.launch @helper(%x) : (tensor<4xf32>) -> tensor<4xf32>
    func.return %y : tensor<4xf32>
  }
  func.func private @helper(%x: memref<4xf32>, %y: memref<4xf32>) {
    func.return
  }
  func.func private @kernel_0(%x: memref<4xf32>, %y: memref<4xf32>) attributes {irc.kernel} {
    func.return
  }
}
