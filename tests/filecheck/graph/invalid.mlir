// One case per verifier error class; each must fail with its message at its line.
// RUN: irc opt %s --split-input-file --verify-diagnostics
// unary result shape
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{result shape 3x2 differs from input shape 2x3}}
  %r = graph.neg %x : tensor<2x3xf32> -> tensor<3x2xf32>
  func.return
}

// -----

// unary result dtype
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{result dtype torch.int64 should be torch.float32}}
  %r = graph.exp %n : tensor<3xi64> -> tensor<3xi64>
  func.return
}

// -----

// binary broadcast
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+2 {{operand shapes 2x3 and 4 do not broadcast}}
  %r = graph.add %x, %n : (tensor<2x3xf32>, tensor<3xi64>) -> tensor<2x3xf32>
  %q = graph.add %x, %y : (tensor<2x3xf32>, tensor<4xf32>) -> tensor<2x3xf32>
  func.return
}

// -----

// binary result dtype
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{result dtype torch.float16 should be torch.float32}}
  %r = graph.add %x, %x : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf16>
  func.return
}

// -----

// binary result shape
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{should be the broadcast shape 2x3}}
  %r = graph.mul %x, %x : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<3xf32>
  func.return
}

// -----

// div rounding mode
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{rounding_mode must be none, trunc or floor}}
  %r = graph.div %n, %n {rounding_mode = "round"} : (tensor<3xi64>, tensor<3xi64>) -> tensor<3xi64>
  func.return
}

// -----

// where condition
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{condition must be bool (i1)}}
  %r = graph.where %x, %x, %x : (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  func.return
}

// -----

// cast shape
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{cannot change shape 2x3 to 6}}
  %r = graph.cast %x : tensor<2x3xf32> -> tensor<6xi32>
  func.return
}

// -----

// reduce dims
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{must be sorted, distinct and in [0, 2)}}
  %r = graph.sum %x {dims = array<i64: 2>} : tensor<2x3xf32> -> tensor<2x3xf32>
  func.return
}

// -----

// reduce result
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{result shape 2 should be 2x1}}
  %r = graph.amax %x {dims = array<i64: 1>, keepdim = true} : tensor<2x3xf32> -> tensor<2xf32>
  func.return
}

// -----

// argmax dims
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{reduces exactly one dim}}
  %r = graph.argmax %x {dims = array<i64: 0, 1>} : tensor<2x3xf32> -> tensor<i64>
  func.return
}

// -----

// reshape count
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{cannot reshape 2x3 (6 elements) to 7 (7 elements)}}
  %r = graph.reshape %x : tensor<2x3xf32> -> tensor<7xf32>
  func.return
}

// -----

// permute dims
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{is not a permutation of 0..1}}
  %r = graph.permute %x {dims = array<i64: 0, 0>} : tensor<2x3xf32> -> tensor<2x2xf32>
  func.return
}

// -----

// expand
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{cannot expand 2x3 to 4x3}}
  %r = graph.expand %x : tensor<2x3xf32> -> tensor<4x3xf32>
  func.return
}

// -----

// slice bounds
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{is not normalised for size 3}}
  %r = graph.slice %x {dim = 1 : i64, start = 2 : i64, end = 5 : i64, step = 1 : i64} : tensor<2x3xf32> -> tensor<2x3xf32>
  func.return
}

// -----

// concat
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{differ outside dim 0}}
  %r = graph.concat %x, %y {dim = 0 : i64} : (tensor<2x3xf32>, tensor<4xf32>) -> tensor<6xf32>
  func.return
}

// -----

// squeeze
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{must be size-1 dims of 2x3}}
  %r = graph.squeeze %x {dims = array<i64: 0>} : tensor<2x3xf32> -> tensor<3xf32>
  func.return
}

// -----

// unsqueeze
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{dim 3 out of range for rank 2}}
  %r = graph.unsqueeze %x {dim = 3 : i64} : tensor<2x3xf32> -> tensor<2x3x1xf32>
  func.return
}

// -----

// matmul contraction
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{contraction sizes differ}}
  %r = graph.matmul %x, %x : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  func.return
}

// -----

// matmul rank
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{operands must have rank >= 2}}
  %r = graph.matmul %y, %y : (tensor<4xf32>, tensor<4xf32>) -> tensor<f32>
  func.return
}

// -----

// gather index dtype
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{index must be i64 or i32}}
  %r = graph.gather %x, %x {dim = 0 : i64} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
  func.return
}

// -----

// embedding weight
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{weight must be 2-d}}
  %r = graph.embedding %y, %n : (tensor<4xf32>, tensor<3xi64>) -> tensor<3x4xf32>
  func.return
}

// -----

// gelu mode
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  // expected-error @+1 {{approximate must be "none" or "tanh"}}
  %r = graph.gelu %x {approximate = "fast"} : tensor<2x3xf32> -> tensor<2x3xf32>
  func.return
}

// -----

// function result
func.func @main(%x: tensor<2x3xf32>, %y: tensor<4xf32>, %n: tensor<3xi64>) {
  %r = graph.neg %y : tensor<4xf32> -> tensor<4xf32>
  // expected-error @+1 {{Expected arguments to have the same types as the function output types}}
  func.return %r : tensor<4xf32>
}

// -----

// constant type
func.func @main() {
  // expected-error @+1 {{attribute tensor<3xf32> expected from variable 'T', but got tensor<2xf32>}}
  %c = "graph.constant"() <{value = dense<1.0> : tensor<2xf32>}> : () -> tensor<3xf32>
  func.return
}

// -----

// conv_epilogue: an activation oneDNN has no post-op for
func.func @main(%x: tensor<1x5x5x2xf32>, %w: tensor<4x2x3x3xf32>) {
  // expected-error @+1 {{unary 'gelu' is not one of none, relu, hardtanh, swish, sigmoid, tanh}}
  %r = "graph.conv_epilogue"(%x, %w) <{stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilation = array<i64: 1, 1>, groups = 1 : i64, unary = "gelu", unary_scalars = array<f64>, operandSegmentSizes = array<i32: 1, 1, 0, 0>}> : (tensor<1x5x5x2xf32>, tensor<4x2x3x3xf32>) -> tensor<1x3x3x4xf32>
  func.return
}

// -----

// conv_epilogue: the residual must have the result's type
func.func @main(%x: tensor<1x5x5x2xf32>, %w: tensor<4x2x3x3xf32>, %o: tensor<1x5x5x2xf32>) {
  // expected-error @+1 {{other tensor<1x5x5x2xf32> should be the result's type tensor<1x3x3x4xf32>}}
  %r = "graph.conv_epilogue"(%x, %w, %o) <{stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilation = array<i64: 1, 1>, groups = 1 : i64, unary = "relu", unary_scalars = array<f64>, operandSegmentSizes = array<i32: 1, 1, 0, 1>}> : (tensor<1x5x5x2xf32>, tensor<4x2x3x3xf32>, tensor<1x5x5x2xf32>) -> tensor<1x3x3x4xf32>
  func.return
}

// -----

// parse error: unknown op
func.func @main() {
  // expected-error @+1 {{graph.frobnicate is not registered}}
  %c = "graph.frobnicate"() : () -> tensor<2xf32>
  func.return
}
