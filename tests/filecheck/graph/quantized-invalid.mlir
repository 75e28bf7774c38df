// graph.quantized_matmul verifier: one case per error, each at its line.
// RUN: irc opt %s --split-input-file --verify-diagnostics
func.func @main(%x: tensor<4x10xf32>, %q: tensor<3x10xi8>, %s: tensor<3x1xf32>) {
  // expected-error @+1 {{bits must be 8 or 4, got 2}}
  %r = graph.quantized_matmul %x, %q, %s {bits = 2 : i64, group_size = 10 : i64} : (tensor<4x10xf32>, tensor<3x10xi8>, tensor<3x1xf32>) -> tensor<4x3xf32>
  func.return
}

// -----

func.func @main(%x: tensor<4x10xf32>, %q: tensor<3x10xi8>, %s: tensor<3x1xf32>) {
  // expected-error @+1 {{qweight 3x10 should have 5 bytes per row for K = 10 at 4 bits}}
  %r = graph.quantized_matmul %x, %q, %s {bits = 4 : i64, group_size = 10 : i64} : (tensor<4x10xf32>, tensor<3x10xi8>, tensor<3x1xf32>) -> tensor<4x3xf32>
  func.return
}

// -----

func.func @main(%x: tensor<4x10xf32>, %q: tensor<3x10xi8>, %s: tensor<3x1xf32>) {
  // expected-error @+1 {{scales 3x1 should be 3x3}}
  %r = graph.quantized_matmul %x, %q, %s {bits = 8 : i64, group_size = 4 : i64} : (tensor<4x10xf32>, tensor<3x10xi8>, tensor<3x1xf32>) -> tensor<4x3xf32>
  func.return
}

// -----

func.func @main(%x: tensor<4x10xf32>, %q: tensor<3x5xi8>, %s: tensor<3x2xf32>) {
  // expected-error @+1 {{group_size must be positive (and even for int4), got 5}}
  %r = graph.quantized_matmul %x, %q, %s {bits = 4 : i64, group_size = 5 : i64} : (tensor<4x10xf32>, tensor<3x5xi8>, tensor<3x2xf32>) -> tensor<4x3xf32>
  func.return
}

// -----

func.func @main(%x: tensor<4x10xf32>, %q: tensor<3x10xi8>, %s: tensor<3x1xf32>) {
  // expected-error @+1 {{result should be 4x3 of the input's dtype}}
  %r = graph.quantized_matmul %x, %q, %s {bits = 8 : i64, group_size = 10 : i64} : (tensor<4x10xf32>, tensor<3x10xi8>, tensor<3x1xf32>) -> tensor<4x4xf32>
  func.return
}
