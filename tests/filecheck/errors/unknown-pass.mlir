// An unknown pass name is an error that suggests close names; exit 1.
// RUN: not irc opt %s --pass canonicalise 2>&1 | filecheck %s
// RUN: not irc opt %s --pass-pipeline 'dce,cse{bogus=1}' 2>&1 | filecheck %s --check-prefix=OPTION

// CHECK: error: unknown pass 'canonicalise'; did you mean 'canonicalize'
// OPTION: error: bad options for pass 'cse'
func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {
  func.return %x : tensor<2xf32>
}
