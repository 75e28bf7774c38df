"""JIT-compiled loops-level kernels agree with torch (irc.backends.llvm)."""

from __future__ import annotations

import threading

import pytest
import torch
from xdsl.context import Context
from xdsl.dialects import arith, builtin, func, math, memref, scf
from xdsl.parser import Parser

from irc.backends.llvm import jit, threads
from irc.backends.llvm.translate import kernel_signatures, translate_module

TYPES = {torch.float32: "f32", torch.float64: "f64", torch.float16: "f16",
         torch.bfloat16: "bf16", torch.int64: "i64", torch.int32: "i32",
         torch.int8: "i8", torch.bool: "i1"}


def parse(text: str) -> builtin.ModuleOp:
    ctx = Context()
    for d in (builtin.Builtin, func.Func, scf.Scf, memref.MemRef, arith.Arith, math.Math):
        ctx.load_dialect(d)
    return Parser(ctx, text).parse_module()


def compile_text(text: str) -> jit.JitModule:
    return jit.compile_llvm_ir(translate_module(parse(text)))


def elementwise(body: str, ins: list[torch.dtype], outs: list[torch.dtype], n: int,
                parallel: bool = False) -> str:
    """A 1-d loop: loads %x0.. from the inputs, ``body`` defines %y0.."""
    args = [f"%a{i}: memref<{n}x{TYPES[t]}>" for i, t in enumerate(ins)]
    args += [f"%o{i}: memref<{n}x{TYPES[t]}>" for i, t in enumerate(outs)]
    loads = "\n".join(f"    %x{i} = memref.load %a{i}[%i] : memref<{n}x{TYPES[t]}>"
                      for i, t in enumerate(ins))
    stores = "\n".join(f"    memref.store %y{i}, %o{i}[%i] : memref<{n}x{TYPES[t]}>"
                       for i, t in enumerate(outs))
    attr = " {irc.parallel}" if parallel else ""
    return f"""
func.func @k({", ".join(args)}) {{
  %c0 = arith.constant 0 : index
  %cn = arith.constant {n} : index
  %c1 = arith.constant 1 : index
  scf.for %i = %c0 to %cn step %c1 {{
{loads}
{body}
{stores}
  }}{attr}
  func.return
}}
"""


def run_elementwise(body: str, inputs: list[torch.Tensor], out_dtypes: list[torch.dtype]
                    ) -> list[torch.Tensor]:
    n = inputs[0].numel()
    text = elementwise(body, [t.dtype for t in inputs], out_dtypes, n)
    outs = [torch.empty(n, dtype=d) for d in out_dtypes]
    fn = compile_text(text).function("k", len(inputs) + len(outs))
    fn(*[t.data_ptr() for t in inputs + outs])
    return outs


SPECIALS = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1e-45, -1e-45,
                         1e-40, 1.17549435e-38, 3.4e38, -3.4e38, 88.72, 88.73, 89.0, -87.3,
                         -103.0, -104.0, -150.0, 1.0, -1.0, 0.5, 2.0, 8.0])


# -- elementwise, all dtypes ------------------------------------------------
def test_f32_affine_and_max() -> None:
    x = torch.randn(1000)
    x[::97] = float("nan")
    body = """
    %two = arith.constant 2.0 : f32
    %one = arith.constant 1.0 : f32
    %zero = arith.constant 0.0 : f32
    %m = arith.mulf %x0, %two : f32
    %y0 = arith.addf %m, %one : f32
    %y1 = arith.maximumf %x0, %zero : f32
    %d = arith.divf %one, %x0 : f32
    %y2 = arith.negf %d : f32"""
    y0, y1, y2 = run_elementwise(body, [x], [torch.float32] * 3)
    torch.testing.assert_close(y0, x * 2 + 1, equal_nan=True)
    torch.testing.assert_close(y1, torch.maximum(x, torch.tensor(0.0)), equal_nan=True)
    torch.testing.assert_close(y2, -(1 / x), equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_types_via_f32(dtype: torch.dtype) -> None:
    t = TYPES[dtype]
    x = (torch.randn(4096) * 100).to(dtype)
    y = torch.randn(4096).to(dtype)
    x[:4] = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0]).to(dtype)
    body = f"""
    %a = arith.extf %x0 : {t} to f32
    %b = arith.extf %x1 : {t} to f32
    %p = arith.mulf %a, %b : f32
    %e = math.exp %b : f32
    %y0 = arith.truncf %p : f32 to {t}
    %y1 = arith.truncf %e : f32 to {t}
    %y2 = arith.extf %x0 : {t} to f32"""
    y0, y1, y2 = run_elementwise(body, [x, y], [dtype, dtype, torch.float32])
    torch.testing.assert_close(y2, x.float(), rtol=0, atol=0, equal_nan=True)
    # rounding f32 -> half must be exactly torch's (round to nearest even)
    ref = (x.float() * y.float()).to(dtype)
    assert torch.equal(y0.view(torch.int16)[~ref.isnan()], ref.view(torch.int16)[~ref.isnan()])
    assert torch.equal(y0.isnan(), ref.isnan())
    torch.testing.assert_close(y1, y.float().exp().to(dtype))


def test_bf16_rounding_is_exact() -> None:
    bits = torch.randint(-2**31, 2**31 - 1, (200_000,), dtype=torch.int64).to(torch.int32)
    x = bits.view(torch.float32)
    (y,) = run_elementwise("    %y0 = arith.truncf %x0 : f32 to bf16", [x], [torch.bfloat16])
    ref = x.to(torch.bfloat16)
    ok = ~ref.isnan()
    assert torch.equal(y.view(torch.int16)[ok], ref.view(torch.int16)[ok])
    assert torch.equal(y.isnan(), ref.isnan())


def test_i64_integer_ops() -> None:
    a = torch.randint(-1000, 1000, (2000,), dtype=torch.int64)
    b = torch.randint(1, 50, (2000,), dtype=torch.int64) * torch.where(
        torch.rand(2000) < 0.5, 1, -1)
    body = """
    %c3 = arith.constant 3 : i64
    %y0 = arith.floordivsi %x0, %x1 : i64
    %y1 = arith.remsi %x0, %x1 : i64
    %y2 = arith.ceildivsi %x0, %x1 : i64
    %y3 = arith.maxsi %x0, %x1 : i64
    %s = arith.shli %x0, %c3 : i64
    %y4 = arith.shrsi %s, %c3 : i64
    %m = arith.muli %x0, %x1 : i64
    %y5 = arith.subi %m, %x0 : i64
    %y6 = arith.xori %x0, %x1 : i64"""
    outs = run_elementwise(body, [a, b], [torch.int64] * 7)
    refs = [torch.div(a, b, rounding_mode="floor"), torch.fmod(a, b),
            -torch.div(-a, b, rounding_mode="floor"), torch.maximum(a, b), a,
            a * b - a, a ^ b]
    for got, ref in zip(outs, refs):
        assert torch.equal(got, ref)


def test_bool_and_compares() -> None:
    x = torch.randn(3000)
    y = torch.randn(3000)
    x[::7] = float("nan")
    y[::5] = x[::5]
    preds = {"oeq": torch.eq, "ogt": torch.gt, "oge": torch.ge, "olt": torch.lt,
             "ole": torch.le, "une": torch.ne}
    body = "\n".join(f"    %y{i} = arith.cmpf {p}, %x0, %x1 : f32" for i, p in enumerate(preds))
    outs = run_elementwise(body, [x, y], [torch.bool] * len(preds))
    for got, ref in zip(outs, preds.values()):
        assert torch.equal(got, ref(x, y))
    unordered = run_elementwise("""
    %y0 = arith.cmpf uno, %x0, %x1 : f32
    %y1 = arith.cmpf ord, %x0, %x1 : f32
    %y2 = arith.cmpf one, %x0, %x1 : f32
    %y3 = arith.cmpf ueq, %x0, %x1 : f32""", [x, y], [torch.bool] * 4)
    nan = x.isnan() | y.isnan()
    assert torch.equal(unordered[0], nan) and torch.equal(unordered[1], ~nan)
    assert torch.equal(unordered[2], (x != y) & ~nan)
    assert torch.equal(unordered[3], (x == y) | nan)


def test_bool_load_select_and_cmpi() -> None:
    m = torch.rand(500) < 0.5
    a = torch.randint(-5, 5, (500,), dtype=torch.int32)
    b = torch.randint(-5, 5, (500,), dtype=torch.int32)
    preds = {"eq": torch.eq, "ne": torch.ne, "slt": torch.lt, "sle": torch.le,
             "sgt": torch.gt, "sge": torch.ge}
    body = "    %y0 = arith.select %x0, %x1, %x2 : i32\n"
    body += "\n".join(f"    %y{i + 1} = arith.cmpi {p}, %x1, %x2 : i32"
                      for i, p in enumerate(preds))
    body += f"\n    %t = arith.constant true\n    %y{len(preds) + 1} = arith.xori %x0, %t : i1"
    outs = run_elementwise(body, [m, a, b], [torch.int32] + [torch.bool] * (len(preds) + 1))
    assert torch.equal(outs[0], torch.where(m, a, b))
    for got, ref in zip(outs[1:], preds.values()):
        assert torch.equal(got, ref(a, b))
    assert torch.equal(outs[-1], ~m)
    ult = run_elementwise("    %y0 = arith.cmpi ult, %x0, %x1 : i32", [a, b], [torch.bool])[0]
    assert torch.equal(ult, a.to(torch.int64) % 2**32 < b.to(torch.int64) % 2**32)


def test_casts() -> None:
    x = torch.randn(1000) * 1000
    body = """
    %y0 = arith.fptosi %x0 : f32 to i32
    %q = arith.fptosi %x0 : f32 to i64
    %y1 = arith.sitofp %q : i64 to f64
    %t = arith.trunci %q : i64 to i8
    %y2 = arith.extsi %t : i8 to i32
    %d = arith.extf %x0 : f32 to f64
    %y3 = arith.truncf %d : f64 to f16
    %ix = arith.index_cast %q : i64 to index
    %y4 = arith.index_cast %ix : index to i64"""
    outs = run_elementwise(body, [x], [torch.int32, torch.float64, torch.int32, torch.float16,
                                       torch.int64])
    assert torch.equal(outs[0], x.to(torch.int32))
    assert torch.equal(outs[1], x.to(torch.int64).double())
    assert torch.equal(outs[2], x.to(torch.int64).to(torch.int8).to(torch.int32))
    torch.testing.assert_close(outs[3], x.to(torch.float16))
    assert torch.equal(outs[4], x.to(torch.int64))


# -- math accuracy ----------------------------------------------------------
def ulp_error(got: torch.Tensor, x: torch.Tensor, fn) -> float:
    ref64 = fn(x.double())
    ref32 = ref64.float()
    ulp = (torch.nextafter(ref32.abs(), torch.tensor(float("inf"))) - ref32.abs()).double()
    fin = torch.isfinite(ref32) & torch.isfinite(got)
    return ((got.double() - ref64).abs() / ulp)[fin].max().item()


MATH = [  # op, torch fn, sample range, max ulp allowed (f32)
    ("math.exp", torch.exp, (-110, 90), 2.0),
    ("math.exp2", torch.exp2, (-155, 130), 2.0),
    ("math.log", torch.log, (0, 1e4), 2.0),
    ("math.log2", torch.log2, (0, 1e4), 2.0),
    ("math.tanh", torch.tanh, (-12, 12), 3.0),
    ("math.erf", torch.erf, (-5, 5), 4.0),
    ("math.expm1", torch.expm1, (-5, 5), 2.0),
    ("math.log1p", torch.log1p, (-0.99, 100), 2.0),
    ("math.sqrt", torch.sqrt, (0, 1e3), 1.0),
    ("math.rsqrt", torch.rsqrt, (0, 1e3), 2.0),
    ("math.sin", torch.sin, (-10, 10), 2.0),
    ("math.cos", torch.cos, (-10, 10), 2.0),
    ("math.tan", torch.tan, (-1.5, 1.5), 2.0),
    ("math.absf", torch.abs, (-10, 10), 0.0),
    ("math.floor", torch.floor, (-10, 10), 0.0),
    ("math.ceil", torch.ceil, (-10, 10), 0.0),
    ("math.roundeven", torch.round, (-10, 10), 0.0),
    ("math.trunc", torch.trunc, (-10, 10), 0.0),
]


def math_inputs(lo: float, hi: float, n: int = 1_000_000) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, generator=g, dtype=torch.float64) * (hi - lo) + lo
    ladder = torch.logspace(-45, 38, 20_000, dtype=torch.float64).float()
    return torch.cat([x.float(), ladder, -ladder, SPECIALS])


@pytest.mark.parametrize("op,fn,rng,max_ulp", MATH, ids=[m[0] for m in MATH])
def test_math_f32_accuracy(op: str, fn, rng: tuple[float, float], max_ulp: float) -> None:
    x = math_inputs(*rng)
    (got,) = run_elementwise(f"    %y0 = {op} %x0 : f32", [x], [torch.float32])
    ref = fn(x)
    assert torch.equal(got.isnan(), ref.isnan()), x[got.isnan() != ref.isnan()][:8]
    assert torch.equal(got.isinf(), ref.isinf()), x[got.isinf() != ref.isinf()][:8]
    assert torch.equal(got[ref.isinf()], ref[ref.isinf()])
    assert ulp_error(got, x, fn) <= max_ulp
    torch.testing.assert_close(got, ref, equal_nan=True, rtol=2e-6, atol=1e-30)


def test_sigmoid_from_exp() -> None:
    x = math_inputs(-100, 100, 100_000)
    body = """
    %one = arith.constant 1.0 : f32
    %n = arith.negf %x0 : f32
    %e = math.exp %n : f32
    %d = arith.addf %e, %one : f32
    %y0 = arith.divf %one, %d : f32"""
    (got,) = run_elementwise(body, [x], [torch.float32])
    torch.testing.assert_close(got, torch.sigmoid(x), equal_nan=True)


@pytest.mark.parametrize("op,fn", [("math.exp", torch.exp), ("math.log", torch.log),
                                   ("math.tanh", torch.tanh), ("math.erf", torch.erf),
                                   ("math.sqrt", torch.sqrt), ("math.log1p", torch.log1p)])
def test_math_f64(op: str, fn) -> None:
    x = torch.cat([torch.randn(10_000, dtype=torch.float64) * 5, SPECIALS.double()]).abs()
    (got,) = run_elementwise(f"    %y0 = {op} %x0 : f64", [x], [torch.float64])
    torch.testing.assert_close(got, fn(x), equal_nan=True)


def test_binary_math() -> None:
    x = torch.rand(5000) * 4
    y = torch.randn(5000) * 3
    body = """
    %y0 = math.powf %x0, %x1 : f32
    %y1 = math.atan2 %x1, %x0 : f32
    %y2 = math.copysign %x0, %x1 : f32
    %y3 = arith.minimumf %x0, %x1 : f32"""
    outs = run_elementwise(body, [x, y], [torch.float32] * 4)
    torch.testing.assert_close(outs[0], torch.pow(x, y))
    torch.testing.assert_close(outs[1], torch.atan2(y, x))
    assert torch.equal(outs[2], torch.copysign(x, y))
    assert torch.equal(outs[3], torch.minimum(x, y))


# -- control flow, scratch, calls -------------------------------------------
ROWMAX_SUM = """
func.func @k(%a: memref<{r}x{c}xf32>, %o: memref<{r}xf32>, %m: memref<{r}xf32>) {{
  %c0 = arith.constant 0 : index
  %cr = arith.constant {r} : index
  %cc = arith.constant {c} : index
  %c1 = arith.constant 1 : index
  %z = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  scf.for %i = %c0 to %cr step %c1 {{
    %s, %mx = scf.for %j = %c0 to %cc step %c1 iter_args(%acc = %z, %macc = %ninf) -> (f32, f32) {{
      %x = memref.load %a[%i, %j] : memref<{r}x{c}xf32>
      %n = arith.addf %acc, %x : f32
      %nm = arith.maximumf %macc, %x : f32
      scf.yield %n, %nm : f32, f32
    }}
    memref.store %s, %o[%i] : memref<{r}xf32>
    memref.store %mx, %m[%i] : memref<{r}xf32>
  }}{attr}
  func.return
}}
"""


def test_row_reduction_iter_args_vectorised() -> None:
    text = translate_module(parse(ROWMAX_SUM.format(r=64, c=1000, attr="")))
    assert "<8 x float>" in jit.optimized_ir(text) or "<16 x float>" in jit.optimized_ir(text)
    a = torch.randn(64, 1000)
    o, m = torch.empty(64), torch.empty(64)
    jit.compile_llvm_ir(text).function("k", 3)(a.data_ptr(), o.data_ptr(), m.data_ptr())
    torch.testing.assert_close(o, a.sum(1), rtol=1e-5, atol=1e-4)
    assert torch.equal(m, a.amax(1))


def test_parallel_matches_single_thread() -> None:
    r, c = 1000, 513
    text = ROWMAX_SUM.format(r=r, c=c, attr=" {irc.parallel}")
    sig = kernel_signatures(parse(text))["k"]
    assert sig.parallel and sig.trip_count == r
    fn = compile_text(text).function("k", 3, parallel=True)
    a = torch.randn(r, c)
    a[3, 5] = float("nan")
    o1, m1, o2, m2 = (torch.full((r,), -7.0) for _ in range(4))
    fn(a.data_ptr(), o1.data_ptr(), m1.data_ptr(), 0, r)
    threads.run_parallel(fn, [a.data_ptr(), o2.data_ptr(), m2.data_ptr()], r, min_work=1)
    torch.testing.assert_close(o2, o1, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(m2, m1, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(o2, a.sum(1), rtol=1e-5, atol=1e-3, equal_nan=True)
    torch.testing.assert_close(m2, a.amax(1), equal_nan=True)
    # a chunk runs exactly its iterations; out-of-range chunks are clamped
    o3 = torch.full((r,), -7.0)
    fn(a.data_ptr(), o3.data_ptr(), m1.data_ptr(), 10, 20)
    assert (o3[:10] == -7).all() and (o3[20:] == -7).all()
    torch.testing.assert_close(o3[10:20], a[10:20].sum(1), rtol=1e-5, atol=1e-4)
    fn(a.data_ptr(), o3.data_ptr(), m1.data_ptr(), r, r + 100)  # empty, no overrun
    assert (o3[20:] == -7).all()


STRIDED = """
func.func @k(%o: memref<100xi64>) {
  %c3 = arith.constant 3 : index
  %c100 = arith.constant 100 : index
  %c7 = arith.constant 7 : index
  scf.for %i = %c3 to %c100 step %c7 {
    %v = arith.index_cast %i : index to i64
    memref.store %v, %o[%i] : memref<100xi64>
  } {irc.parallel}
  func.return
}
"""


def test_parallel_chunks_of_a_strided_loop() -> None:
    sig = kernel_signatures(parse(STRIDED))["k"]
    assert sig.trip_count == 14  # 3, 10, ..., 94
    fn = compile_text(STRIDED).function("k", 1, parallel=True)
    o = torch.full((100,), -1, dtype=torch.int64)
    fn(o.data_ptr(), 2, 5)  # iterations 2, 3, 4 -> iv 17, 24, 31
    assert o.ne(-1).nonzero().flatten().tolist() == [17, 24, 31]
    fn(o.data_ptr(), 5, 2**62)  # hi far past the end is clamped
    ref = torch.full((100,), -1, dtype=torch.int64)
    ref[17:100:7] = torch.arange(17, 100, 7)
    assert torch.equal(o, ref)
    o2 = torch.full((100,), -1, dtype=torch.int64)
    threads.run_parallel(fn, [o2.data_ptr()], sig.trip_count)
    ref[3:100:7] = torch.arange(3, 100, 7)
    assert torch.equal(o2, ref)


def test_run_parallel_uses_threads_and_covers_range() -> None:
    seen: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def fake(p: int, lo: int, hi: int) -> None:
        with lock:
            seen.append((lo, hi, threading.current_thread().name))

    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        threads.run_parallel(fake, [0], 101, min_work=1)
        if threads.num_threads() >= 2:
            assert len(seen) == 2
        covered = sorted((lo, hi) for lo, hi, _ in seen)
        assert covered[0][0] == 0 and covered[-1][1] == 101
        assert all(a[1] == b[0] for a, b in zip(covered, covered[1:]))
        seen.clear()
        threads.run_parallel(fake, [0], 10, min_work=100)  # small: inline
        assert seen == [(0, 10, threading.current_thread().name)]
    finally:
        torch.set_num_threads(old)
    assert threads.split(10, 3) == [(0, 4), (4, 7), (7, 10)]


def test_scf_if_with_and_without_results() -> None:
    x = torch.randn(777)
    body = """
    %z = arith.constant 0.0 : f32
    %c = arith.cmpf ogt, %x0, %z : f32
    %y0 = scf.if %c -> (f32) {
      %l = math.log %x0 : f32
      scf.yield %l : f32
    } else {
      %e = math.exp %x0 : f32
      scf.yield %e : f32
    }
    %y1 = arith.constant 5.0 : f32
    scf.if %c {
      memref.store %x0, %o1[%i] : memref<777xf32>
    }"""
    text = elementwise(body, [torch.float32], [torch.float32, torch.float32], 777)
    # %y1 store happens after the if: swap so the if's store wins where x > 0
    text = text.replace("    memref.store %y1, %o1[%i] : memref<777xf32>\n", "")
    text = text.replace("    %y1 = arith.constant 5.0 : f32\n",
                        "    %y1 = arith.constant 5.0 : f32\n"
                        "    memref.store %y1, %o1[%i] : memref<777xf32>\n")
    o0, o1 = torch.empty(777), torch.empty(777)
    compile_text(text).function("k", 3)(x.data_ptr(), o0.data_ptr(), o1.data_ptr())
    torch.testing.assert_close(o0, torch.where(x > 0, x.log(), x.exp()))
    assert torch.equal(o1, torch.where(x > 0, x, torch.tensor(5.0)))


SCRATCH = """
func.func @k(%a: memref<32x16xf32>, %o: memref<32x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %c32 = arith.constant 32 : index
  %c15 = arith.constant 15 : index
  %s = memref.alloca() : memref<16xf32>
  %h = memref.alloc() : memref<16xf32>
  scf.for %i = %c0 to %c32 step %c1 {
    scf.for %j = %c0 to %c16 step %c1 {
      %x = memref.load %a[%i, %j] : memref<32x16xf32>
      %r = arith.subi %c15, %j : index
      memref.store %x, %s[%r] : memref<16xf32>
      %d = func.call @twice(%x) : (f32) -> f32
      memref.store %d, %h[%j] : memref<16xf32>
    }
    scf.for %j = %c0 to %c16 step %c1 {
      %x = memref.load %s[%j] : memref<16xf32>
      %y = memref.load %h[%j] : memref<16xf32>
      %z = arith.addf %x, %y : f32
      memref.store %z, %o[%i, %j] : memref<32x16xf32>
    }
  }
  memref.dealloc %h : memref<16xf32>
  func.return
}
func.func @twice(%x: f32) -> f32 {
  %y = arith.addf %x, %x : f32
  func.return %y : f32
}
"""


def test_alloca_alloc_and_call() -> None:
    a = torch.randn(32, 16)
    o = torch.empty(32, 16)
    compile_text(SCRATCH).function("k", 2)(a.data_ptr(), o.data_ptr())
    torch.testing.assert_close(o, a.flip(1) + 2 * a)


# -- object code and cache keys ---------------------------------------------
def test_object_roundtrip_and_fingerprint() -> None:
    text = translate_module(parse(elementwise(
        "    %t = math.tanh %x0 : f32\n    %y0 = math.expm1 %t : f32",
        [torch.float32], [torch.float32], 4096)))
    obj = jit.emit_object(text)
    assert isinstance(obj, bytes) and len(obj) > 100
    fn = jit.load_object(obj).function("k", 2)
    x = torch.randn(4096) * 4
    o = torch.empty(4096)
    fn(x.data_ptr(), o.data_ptr())
    torch.testing.assert_close(o, torch.expm1(torch.tanh(x)))
    fp = jit.host_cpu_fingerprint()
    assert "llvm" in fp and fp == jit.host_cpu_fingerprint()


def test_missing_function_is_backend_error() -> None:
    from irc.errors import BackendError
    jm = compile_text(elementwise("    %y0 = arith.negf %x0 : f32",
                                  [torch.float32], [torch.float32], 8))
    with pytest.raises(BackendError):
        jm.function("nope", 2)


SOFTMAX = """
func.func @softmax(%a: memref<128x300xf32>, %o: memref<128x300xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cr = arith.constant 128 : index
  %cc = arith.constant 300 : index
  %z = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  scf.for %i = %c0 to %cr step %c1 {
    %mx = scf.for %j = %c0 to %cc step %c1 iter_args(%m = %ninf) -> (f32) {
      %x = memref.load %a[%i, %j] : memref<128x300xf32>
      %nm = arith.maximumf %m, %x : f32
      scf.yield %nm : f32
    }
    %s = scf.for %j = %c0 to %cc step %c1 iter_args(%acc = %z) -> (f32) {
      %x = memref.load %a[%i, %j] : memref<128x300xf32>
      %d = arith.subf %x, %mx : f32
      %e = math.exp %d : f32
      memref.store %e, %o[%i, %j] : memref<128x300xf32>
      %n = arith.addf %acc, %e : f32
      scf.yield %n : f32
    }
    scf.for %j = %c0 to %cc step %c1 {
      %e = memref.load %o[%i, %j] : memref<128x300xf32>
      %q = arith.divf %e, %s : f32
      memref.store %q, %o[%i, %j] : memref<128x300xf32>
    }
  } {irc.parallel}
  func.return
}
"""


def test_softmax_kernel_vectorised_and_correct() -> None:
    text = translate_module(parse(SOFTMAX))
    opt = jit.optimized_ir(text)
    assert "llvm.vector.reduce.fmaximum" in opt and "llvm.vector.reduce.fadd" in opt
    assert "llvm.roundeven.v8f32" in opt or "llvm.roundeven.v16f32" in opt  # vector exp
    a = torch.randn(128, 300) * 10
    a[5] = float("-inf")
    a[5, 7] = 0.0
    a[9, 3] = float("nan")
    o = torch.empty_like(a)
    fn = jit.compile_llvm_ir(text).function("softmax", 2, parallel=True)
    threads.run_parallel(fn, [a.data_ptr(), o.data_ptr()], 128)
    torch.testing.assert_close(o, torch.softmax(a, 1), equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_math_on_half_operands_computed_in_f32(dtype: torch.dtype) -> None:
    x = (torch.randn(5000) * 3).to(dtype)
    t = TYPES[dtype]
    (got,) = run_elementwise(f"    %y0 = math.tanh %x0 : {t}", [x], [dtype])
    torch.testing.assert_close(got, torch.tanh(x.float()).to(dtype))


def test_erf_polynomial_range_is_accurate_and_bounded() -> None:
    # the [1, 3.92] polynomial (no exp) and saturation above it
    x = torch.cat([torch.linspace(1.0, 4.5, 400_001), -torch.linspace(1.0, 4.5, 400_001)])
    (got,) = run_elementwise("    %y0 = math.erf %x0 : f32", [x], [torch.float32])
    assert got.abs().max().item() <= 1.0
    assert ulp_error(got, x, torch.erf) <= 2.0
    assert torch.equal(got[x.abs() >= 3.92], torch.sign(x[x.abs() >= 3.92]))
