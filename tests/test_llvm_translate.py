"""Golden checks on the LLVM IR text produced by irc.backends.llvm.translate."""

from __future__ import annotations

import re

import llvmlite.binding as llvm
import pytest
from xdsl.context import Context
from xdsl.dialects import arith, builtin, func, math, memref, scf
from xdsl.parser import Parser

from irc.backends.llvm.jit import optimized_ir
from irc.backends.llvm.translate import kernel_signatures, translate_module
from irc.errors import BackendError


def parse(text: str) -> builtin.ModuleOp:
    ctx = Context()
    for d in (builtin.Builtin, func.Func, scf.Scf, memref.MemRef, arith.Arith, math.Math):
        ctx.load_dialect(d)
    return Parser(ctx, text).parse_module()


ROWSUM = """
func.func @rowsum(%a: memref<64x256xf32>, %b: memref<64x256xf32>, %o: memref<64xf32>) {
  %c0 = arith.constant 0 : index
  %c64 = arith.constant 64 : index
  %c256 = arith.constant 256 : index
  %c1 = arith.constant 1 : index
  %z = arith.constant 0.0 : f32
  scf.for %i = %c0 to %c64 step %c1 {
    %s = scf.for %j = %c0 to %c256 step %c1 iter_args(%acc = %z) -> (f32) {
      %x = memref.load %a[%i, %j] : memref<64x256xf32>
      %y = memref.load %b[%i, %j] : memref<64x256xf32>
      %p = arith.addf %x, %y : f32
      %n = arith.addf %acc, %p : f32
      scf.yield %n : f32
    }
    memref.store %s, %o[%i] : memref<64xf32>
  } {irc.parallel}
  func.return
}
"""

EXP = """
func.func @k(%a: memref<1024x{t}>, %o: memref<1024x{t}>) {{
  %c0 = arith.constant 0 : index
  %cn = arith.constant 1024 : index
  %c1 = arith.constant 1 : index
  scf.for %i = %c0 to %cn step %c1 {{
    %v = memref.load %a[%i] : memref<1024x{t}>
    %e = math.exp %v : {t}
    memref.store %e, %o[%i] : memref<1024x{t}>
  }}
  func.return
}}
"""


def test_signature_noalias_and_parallel_args() -> None:
    text = translate_module(parse(ROWSUM))
    define = next(line for line in text.splitlines() if line.startswith("define"))
    assert define.count("noalias") == 3
    assert re.search(r"i64 %\"?lo\"?, i64 %\"?hi\"?\)", define), define
    assert define.startswith("define void @\"rowsum\"") or define.startswith("define void @rowsum")


def test_reassoc_only_on_reduction_accumulation() -> None:
    text = translate_module(parse(ROWSUM))
    fadds = [line for line in text.splitlines() if " fadd " in line]
    assert len(fadds) == 2
    reassoc = [line for line in fadds if "reassoc" in line]
    assert len(reassoc) == 1 and "%\"acc\"" in reassoc[0]
    for bad in ("nnan", "ninf", " fast ", "afn", "arcp"):
        assert bad not in text


def test_reduction_vectorises() -> None:
    opt = optimized_ir(translate_module(parse(ROWSUM)))
    assert re.search(r"<(8|16) x float>", opt), opt[:2000]
    assert "fadd reassoc" in opt


def test_inline_exp_f32_has_no_libm_call_and_vectorises() -> None:
    text = translate_module(parse(EXP.format(t="f32")))
    assert "llvm.exp" not in text and "expf" not in text
    assert "llvm.roundeven.f32" in text
    opt = optimized_ir(text)
    assert re.search(r"<(8|16) x float>", opt)


def test_f64_exp_uses_intrinsic() -> None:
    text = translate_module(parse(EXP.format(t="f64")))
    assert "@\"llvm.exp.f64\"" in text or "@llvm.exp.f64" in text


def test_output_is_valid_llvm() -> None:
    for src in (ROWSUM, EXP.format(t="f32"), EXP.format(t="f64"), EXP.format(t="f16")):
        llvm.parse_assembly(translate_module(parse(src))).verify()


def test_kernel_signatures() -> None:
    sigs = kernel_signatures(parse(ROWSUM))
    sig = sigs["rowsum"]
    assert (sig.n_memrefs, sig.parallel, sig.trip_count) == (3, True, 64)
    assert kernel_signatures(parse(EXP.format(t="f32")))["k"].parallel is False


def test_unsupported_op_is_named() -> None:
    src = """
func.func @k(%a: memref<4xi32>, %o: memref<4xi32>) {
  %c0 = arith.constant 0 : index
  %v = memref.load %a[%c0] : memref<4xi32>
  %p = math.ctpop %v : i32
  memref.store %p, %o[%c0] : memref<4xi32>
  func.return
}
"""
    with pytest.raises(BackendError, match=r"math\.ctpop.*loc"):
        translate_module(parse(src))


def test_two_parallel_loops_rejected() -> None:
    src = """
func.func @k(%o: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %c4 = arith.constant 4 : index
  %c1 = arith.constant 1 : index
  %z = arith.constant 0.0 : f32
  scf.for %i = %c0 to %c4 step %c1 {
    memref.store %z, %o[%i] : memref<4xf32>
  } {irc.parallel}
  scf.for %i = %c0 to %c4 step %c1 {
    memref.store %z, %o[%i] : memref<4xf32>
  } {irc.parallel}
  func.return
}
"""
    with pytest.raises(BackendError, match="irc.parallel"):
        translate_module(parse(src))


def test_bool_memref_is_bytes() -> None:
    src = """
func.func @k(%a: memref<8xi1>, %o: memref<8xi1>) {
  %c0 = arith.constant 0 : index
  %v = memref.load %a[%c0] : memref<8xi1>
  memref.store %v, %o[%c0] : memref<8xi1>
  func.return
}
"""
    text = translate_module(parse(src))
    assert "load i8" in text and "store i8" in text and "zext i1" in text
