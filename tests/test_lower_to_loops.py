"""lower-to-loops: structure of the loops IR, round trips, and equivalence with
the reference interpreter when the loops run through the CPU backend."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.dialects import func

from irc.backends.llvm.backend import LLVMBackend, LLVMOptions
from irc.errors import BackendError
from irc.ir import graph as g
from irc.ir.interpreter import interpret
from irc.ir.text import parse_module, print_module, verify_module
from irc.ir import index as ix
from irc.passes.pipeline import run_pipeline

sys.path.insert(0, str(Path(__file__).parent))
from fuse_programs import build, layer_norm, rms_norm, softmax  # noqa: E402
from graph_strategies import graph_programs  # noqa: E402

OPTIONS = LLVMOptions(cache=False)


def close(ref: torch.Tensor, out: torch.Tensor, loose: bool = False) -> None:
    assert out.dtype == ref.dtype and out.shape == ref.shape, (out.dtype, ref.dtype, out.shape)
    if not ref.dtype.is_floating_point:
        assert torch.equal(out, ref), (ref, out)
        return
    tol = {torch.float16: 1e-2, torch.bfloat16: 2e-2}.get(ref.dtype, 1e-2 if loose else 1e-5)
    assert torch.allclose(out.double(), ref.double(), rtol=tol, atol=tol, equal_nan=True), \
        (ref, out)


def lower_and_run(module, inputs, weights=None, loose=False):
    """Interpret, lower (kernel level -> loops), run on the CPU; compare. Returns the loops text."""
    ref = interpret(module, inputs, weights)
    run_pipeline(module, "lower-to-loops", verify_each=True)
    text = print_module(module)
    exe = LLVMBackend().compile(module, weights or {}, OPTIONS)
    out = exe(*inputs)
    for r, o in zip(ref, out, strict=True):
        close(r, o, loose)
    return text


def kernel_level(args: list[tuple[str, str]], body: str, results: list[tuple[str, str]]):
    """A kernel-level module: @main calls one @kernel_0 holding ``body``."""
    params = ", ".join(f"%{n}: {t}" for n, t in args)
    names = ", ".join(f"%{n}" for n, _ in args)
    in_types = ", ".join(t for _, t in args)
    out_types = ", ".join(t for _, t in results)
    outs = ", ".join(f"%{n}" for n, _ in results)
    rnames = ", ".join(f"%r{i}" for i in range(len(results)))
    text = f"""
func.func @main({params}) -> ({out_types}) {{
  {rnames} = func.call @kernel_0({names}) : ({in_types}) -> ({out_types})
  func.return {rnames} : {out_types}
}}
func.func private @kernel_0({params}) -> ({out_types}) attributes {{irc.kernel}} {{
{body}
  func.return {outs} : {out_types}
}}
"""
    module, source_map = parse_module(text, "kernel.mlir")
    verify_module(module, source_map)
    return module


# ----------------------------------------------------------------------------
# index expressions


def test_reshape_index_collapses_to_linear_offset() -> None:
    r, c = ix.Var(1, 6), ix.Var(2, 8)  # (B*T, C) = (6, 8) from (B, T, C) = (2, 3, 8)
    linear = ix.linearise((ix.var(r), ix.var(c)), (6, 8))
    back = ix.unravel(linear, (2, 3, 8))
    assert ix.linearise(back, (2, 3, 8)) == linear
    assert back[2] == ix.var(c)  # a broadcast bias over C reads at c: no div/mod


def evaluate(lin: ix.Lin, env: dict[int, int]) -> int:
    """The value of an index expression for loop variable values ``env``."""
    total = lin.const
    for a, k in lin.terms:
        if isinstance(a, ix.Var):
            v = env[a.id]
        elif isinstance(a, ix.Div):
            v = evaluate(a.lin, env) // a.m
        else:
            assert isinstance(a, ix.Clamp)
            v = min(max(evaluate(a.lin, env), a.lo), a.hi)
        total += k * v
    return total


def test_floordiv_of_unsplittable_expression_stays_an_atom() -> None:
    k = ix.Var(1, 100)
    q = ix.floordiv(ix.var(k), 7)
    assert len(q.terms) == 1 and isinstance(q.terms[0][0], ix.Div)
    r = ix.mod(ix.var(k), 7)
    assert all(evaluate(r, {1: i}) == i % 7 for i in range(100))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.data())
def test_reshape_index_arithmetic_is_exact(out_shape, data) -> None:
    n = 1
    for d in out_shape:
        n *= d
    in_shape = tuple(data.draw(st.permutations(_factor(n, data))))
    variables = [ix.Var(i + 1, d) for i, d in enumerate(out_shape)]
    index = tuple(ix.var(v) for v in variables)
    src = ix.unravel(ix.linearise(index, tuple(out_shape)), in_shape)
    for flat in range(n):
        env, rest = {}, flat
        for v in reversed(variables):
            env[v.id], rest = rest % v.size, rest // v.size
        got = [evaluate(s, env) for s in src]
        want, rest = [], flat
        for d in reversed(in_shape):
            want.append(rest % d)
            rest //= d
        assert got == want[::-1]


def _factor(n: int, data) -> list[int]:
    parts = []
    for p in (2, 3, 5):
        while n % p == 0:
            parts.append(p)
            n //= p
    if n > 1:
        parts.append(n)
    merged: list[int] = []
    for p in parts:
        if merged and data.draw(st.booleans()):
            merged[-1] *= p
        else:
            merged.append(p)
    return merged or [1]


# ----------------------------------------------------------------------------
# structure (goldens on the IR text)


def fused(module):
    run_pipeline(module, "fuse", verify_each=True)
    return module


def test_softmax_is_one_row_loop_with_three_inner_loops() -> None:
    module = fused(build([[64, 128]], lambda emit, x: [softmax(emit, x)]))
    text = lower_and_run(module, [torch.randn(64, 128)])
    kernel = text[text.index("func.func @kernel_0"):]
    assert kernel.count("scf.for") == 4
    assert kernel.count("iter_args") == 2
    assert "memref.alloc" not in kernel
    outer = kernel.index("scf.for")
    assert kernel.rindex("} {irc.parallel}") > outer
    assert "arith.maximumf" in kernel and "math.exp" in kernel
    # no div/mod in index computations; the row base is computed outside the inner loops
    assert "divsi" not in kernel and "remsi" not in kernel
    assert re.search(r"arith.muli %\w+, %\w+ : index\n\s+%\w+ = scf.for", kernel)
    # exp(x - max) is computed once per element: stored by the sum loop, reloaded
    assert kernel.count("math.exp") == 1
    assert kernel.count("memref.store") == 2 and "arith.divf" in kernel  # one 1/sum per row


def test_softmax_with_nan_and_inf_rows_after_stash() -> None:
    module = fused(build([[6, 40]], lambda emit, x: [softmax(emit, x)]))
    x = torch.randn(6, 40) * 30
    x[1, 3] = float("nan")
    x[2, 5] = float("inf")
    x[3, :] = float("-inf")
    ref = torch.softmax(x, -1)
    lower_and_run(module, [x])
    exe_out = LLVMBackend().compile(module, {}, OPTIONS)(x)[0]
    assert torch.allclose(exe_out, ref, atol=1e-6, rtol=1e-5, equal_nan=True)


def test_reduction_operand_read_at_another_index_is_not_stashed() -> None:
    # o[i, j] = e[j, i] / sum_j e[i, j]: a stash would be read before it is written
    def body(emit, x):
        e = emit(g.ExpOp(x))
        s = emit(g.SumOp(e, [-1], keepdim=True))
        return [emit(g.DivOp(emit(g.PermuteOp(e, [1, 0])), s))]
    module = fused(build([[16, 16]], body))
    text = lower_and_run(module, [torch.randn(16, 16)])
    kernel = text[text.index("func.func @kernel_0"):]
    assert kernel.count("math.exp") == 2


def test_stash_skipped_when_operand_is_also_reduced_elsewhere() -> None:
    # the max of e reads e in its own loop; e is not stashed (two exps remain)
    def body(emit, x):
        e = emit(g.ExpOp(x))
        s = emit(g.SumOp(e, [-1], keepdim=True))
        m = emit(g.AmaxOp(e, [-1], keepdim=True))
        return [emit(g.DivOp(emit(g.SubOp(e, m)), s))]
    module = fused(build([[8, 16]], body))
    text = lower_and_run(module, [torch.randn(8, 16)])
    kernel = text[text.index("func.func @kernel_0"):]
    assert "math.exp" in kernel and kernel.count("memref.store") == 1


@pytest.mark.parametrize("norm", ["layer", "rms"])
def test_row_norms_fuse_into_one_nest(norm: str) -> None:
    if norm == "layer":
        module = fused(build([[4, 5, 32], [32], [32]],
                             lambda emit, x, w, b: [layer_norm(emit, x, w, b)]))
        inputs = [torch.randn(4, 5, 32), torch.randn(32), torch.randn(32)]
    else:
        module = fused(build([[4, 5, 32], [32]], lambda emit, x, w: [rms_norm(emit, x, w)]))
        inputs = [torch.randn(4, 5, 32), torch.randn(32)]
    text = lower_and_run(module, inputs)
    assert "memref.alloc" not in text and "iter_args" in text


def test_column_sum_output_accumulates_in_row_order() -> None:
    module = kernel_level(
        [("x", "tensor<16x8xf32>")],
        "  %s = graph.sum %x {dims = array<i64: 0>} : tensor<16x8xf32> -> tensor<8xf32>",
        [("s", "tensor<8xf32>")])
    text = lower_and_run(module, [torch.randn(16, 8)])
    kernel = text[text.index("func.func @kernel_0"):]
    # the accumulating nest: rows outer, columns inner (contiguous), no iter_args
    assert "iter_args" not in kernel and "memref.alloca() : memref<8xf32>" in kernel


def test_column_reduction_used_by_every_row_is_materialised() -> None:
    module = kernel_level(
        [("x", "tensor<16x8xf32>")],
        """  %s = graph.sum %x {dims = array<i64: 0>, keepdim = true} : tensor<16x8xf32> -> tensor<1x8xf32>
  %y = graph.div %x, %s : (tensor<16x8xf32>, tensor<1x8xf32>) -> tensor<16x8xf32>""",
        [("y", "tensor<16x8xf32>")])
    text = lower_and_run(module, [torch.rand(16, 8) + 0.5])
    assert "memref.alloca" in text
    assert "irc.parallel" not in text  # two top-level nests: not split over threads


def test_loops_module_round_trips() -> None:
    module = fused(build([[8, 16]], lambda emit, x: [softmax(emit, x)]))
    run_pipeline(module, "lower-to-loops", verify_each=True)
    text = print_module(module)
    again, source_map = parse_module(text, "loops.mlir")
    verify_module(again, source_map)
    assert print_module(again) == text
    assert "host.launch @kernel_0" in text


def test_unloweable_op_in_kernel_names_it() -> None:
    module = kernel_level(
        [("a", "tensor<2x3xf32>"), ("b", "tensor<3x4xf32>")],
        "  %m = graph.matmul %a, %b : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>",
        [("m", "tensor<2x4xf32>")])
    with pytest.raises(BackendError, match="graph.matmul"):
        run_pipeline(module, "lower-to-loops")


# ----------------------------------------------------------------------------
# semantics of individual ops inside kernels


MOVEMENT = [
    ("permute", "%y = graph.permute %x {dims = array<i64: 2, 0, 1>} : tensor<2x3x4xf32> -> tensor<4x2x3xf32>",
     "tensor<4x2x3xf32>"),
    ("reshape", "%y = graph.reshape %x : tensor<2x3x4xf32> -> tensor<6x4xf32>", "tensor<6x4xf32>"),
    ("reshape-odd", "%y = graph.reshape %x : tensor<2x3x4xf32> -> tensor<4x6xf32>", "tensor<4x6xf32>"),
    ("slice", "%y = graph.slice %x {dim = 2, start = 1, end = 4, step = 2} : tensor<2x3x4xf32> -> tensor<2x3x2xf32>",
     "tensor<2x3x2xf32>"),
    ("expand", "%u = graph.unsqueeze %x {dim = 0} : tensor<2x3x4xf32> -> tensor<1x2x3x4xf32>\n"
               "  %y = graph.expand %u : tensor<1x2x3x4xf32> -> tensor<5x2x3x4xf32>", "tensor<5x2x3x4xf32>"),
    ("squeeze", "%s = graph.slice %x {dim = 1, start = 1, end = 2, step = 1} : tensor<2x3x4xf32> -> tensor<2x1x4xf32>\n"
                "  %y = graph.squeeze %s {dims = array<i64: 1>} : tensor<2x1x4xf32> -> tensor<2x4xf32>",
     "tensor<2x4xf32>"),
    ("concat", "%e = graph.exp %x : tensor<2x3x4xf32> -> tensor<2x3x4xf32>\n"
               "  %y = graph.concat %x, %e, %x {dim = 1} : (tensor<2x3x4xf32>, tensor<2x3x4xf32>, tensor<2x3x4xf32>) -> tensor<2x9x4xf32>",
     "tensor<2x9x4xf32>"),
    ("permute-reshape-reduce",
     "%p = graph.permute %x {dims = array<i64: 1, 0, 2>} : tensor<2x3x4xf32> -> tensor<3x2x4xf32>\n"
     "  %r = graph.reshape %p : tensor<3x2x4xf32> -> tensor<3x8xf32>\n"
     "  %y = graph.amax %r {dims = array<i64: 0>} : tensor<3x8xf32> -> tensor<8xf32>", "tensor<8xf32>"),
]


@pytest.mark.parametrize("name,body,out", MOVEMENT, ids=[m[0] for m in MOVEMENT])
def test_movement_ops_are_index_rewrites(name: str, body: str, out: str) -> None:
    module = kernel_level([("x", "tensor<2x3x4xf32>")], "  " + body, [("y", out)])
    text = lower_and_run(module, [torch.randn(2, 3, 4)])
    kernel = text[text.index("func.func @kernel_0"):]
    if name in ("permute", "reshape", "slice", "expand", "squeeze"):
        assert "divsi" not in kernel  # pure index arithmetic, no div/mod
        assert "memref.alloc" not in kernel


def test_gather_index_select_embedding_inside_a_kernel() -> None:
    module = kernel_level(
        [("x", "tensor<5x4xf32>"), ("i", "tensor<5x3xi64>"), ("j", "tensor<6xi32>")],
        """  %g = graph.gather %x, %i {dim = 1} : (tensor<5x4xf32>, tensor<5x3xi64>) -> tensor<5x3xf32>
  %s = graph.index_select %x, %j {dim = 0} : (tensor<5x4xf32>, tensor<6xi32>) -> tensor<6x4xf32>
  %e = graph.embedding %x, %i : (tensor<5x4xf32>, tensor<5x3xi64>) -> tensor<5x3x4xf32>""",
        [("g", "tensor<5x3xf32>"), ("s", "tensor<6x4xf32>"), ("e", "tensor<5x3x4xf32>")])
    lower_and_run(module, [torch.randn(5, 4), torch.randint(0, 4, (5, 3)),
                           torch.randint(0, 5, (6,), dtype=torch.int32)])


INT_CASES = [
    ("div-floor", "%y = graph.div %a, %b {rounding_mode = \"floor\"} : (tensor<64xi32>, tensor<64xi32>) -> tensor<64xi32>"),
    ("div-trunc", "%y = graph.div %a, %b {rounding_mode = \"trunc\"} : (tensor<64xi32>, tensor<64xi32>) -> tensor<64xi32>"),
    ("remainder", "%y = graph.remainder %a, %b : (tensor<64xi32>, tensor<64xi32>) -> tensor<64xi32>"),
    ("pow", "%y = graph.pow %a, %b : (tensor<64xi32>, tensor<64xi32>) -> tensor<64xi32>"),
    ("max", "%y = graph.maximum %a, %b : (tensor<64xi32>, tensor<64xi32>) -> tensor<64xi32>"),
    ("xor", "%y = graph.bitwise_xor %a, %b : (tensor<64xi32>, tensor<64xi32>) -> tensor<64xi32>"),
]


@pytest.mark.parametrize("name,body", INT_CASES, ids=[c[0] for c in INT_CASES])
def test_integer_ops_exact(name: str, body: str) -> None:
    module = kernel_level([("a", "tensor<64xi32>"), ("b", "tensor<64xi32>")], "  " + body,
                          [("y", "tensor<64xi32>")])
    a = torch.randint(-20, 20, (64,), dtype=torch.int32)
    b = torch.randint(-6, 7, (64,), dtype=torch.int32)
    if name == "pow":
        b = b.abs()
    else:
        b[b == 0] = 3
    lower_and_run(module, [a, b])


def test_integer_division_by_zero_does_not_trap() -> None:
    module = kernel_level([("a", "tensor<4xi64>"), ("b", "tensor<4xi64>")],
                          "  %y = graph.div %a, %b {rounding_mode = \"trunc\"} : (tensor<4xi64>, tensor<4xi64>) -> tensor<4xi64>",
                          [("y", "tensor<4xi64>")])
    run_pipeline(module, "lower-to-loops")
    exe = LLVMBackend().compile(module, {}, OPTIONS)
    a = torch.tensor([1, -(2 ** 63), 5, 7])
    out = exe(a, torch.tensor([0, -1, 0, 2]))[0]
    assert out[1].item() == -(2 ** 63) and out[3].item() == 3  # wraps like torch; no SIGFPE


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_half_types_compute_in_f32_and_round_on_store(dtype: str) -> None:
    t = f"tensor<8x32x{dtype}>"
    module = kernel_level(
        [("x", t)],
        f"""  %m = graph.amax %x {{dims = array<i64: 1>, keepdim = true}} : {t} -> tensor<8x1x{dtype}>
  %s = graph.sub %x, %m : ({t}, tensor<8x1x{dtype}>) -> {t}
  %e = graph.exp %s : {t} -> {t}
  %y = graph.sum %e {{dims = array<i64: 1>}} : {t} -> tensor<8x{dtype}>
  %c = graph.cast %y : tensor<8x{dtype}> -> tensor<8xf32>""",
        [("y", f"tensor<8x{dtype}>"), ("c", "tensor<8xf32>")])
    torch_dtype = torch.float16 if dtype == "f16" else torch.bfloat16
    text = lower_and_run(module, [torch.randn(8, 32).to(torch_dtype)], loose=True)
    assert "arith.extf" in text and "arith.truncf" in text


def test_nan_handling_of_max_argmax_and_casts() -> None:
    module = kernel_level(
        [("x", "tensor<4x6xf32>")],
        """  %m = graph.amax %x {dims = array<i64: 1>} : tensor<4x6xf32> -> tensor<4xf32>
  %a = graph.argmax %x {dims = array<i64: 1>} : tensor<4x6xf32> -> tensor<4xi64>
  %b = graph.argmin %x {dims = array<i64: 1>} : tensor<4x6xf32> -> tensor<4xi64>
  %n = graph.isnan %x : tensor<4x6xf32> -> tensor<4x6xi1>
  %c = graph.cast %x : tensor<4x6xf32> -> tensor<4x6xi1>
  %s = graph.sign %x : tensor<4x6xf32> -> tensor<4x6xf32>""",
        [("m", "tensor<4xf32>"), ("a", "tensor<4xi64>"), ("b", "tensor<4xi64>"),
         ("n", "tensor<4x6xi1>"), ("c", "tensor<4x6xi1>"), ("s", "tensor<4x6xf32>")])
    x = torch.randn(4, 6)
    x[0, 2] = float("nan")
    x[1, 1] = float("inf")
    x[2, :] = 1.0  # ties: first index
    x[3, 4] = float("-inf")
    x[3, 5] = 0.0
    lower_and_run(module, [x])


def test_bool_and_mixed_dtype_ops() -> None:
    module = kernel_level(
        [("p", "tensor<3x5xi1>"), ("q", "tensor<5xi1>"), ("i", "tensor<3x5xi64>")],
        """  %a = graph.logical_and %p, %q : (tensor<3x5xi1>, tensor<5xi1>) -> tensor<3x5xi1>
  %o = graph.bitwise_or %p, %q : (tensor<3x5xi1>, tensor<5xi1>) -> tensor<3x5xi1>
  %l = graph.lt %p, %q : (tensor<3x5xi1>, tensor<5xi1>) -> tensor<3x5xi1>
  %s = graph.sum %a {dims = array<i64: 0, 1>} : tensor<3x5xi1> -> tensor<i64>
  %w = graph.where %l, %i, %s : (tensor<3x5xi1>, tensor<3x5xi64>, tensor<i64>) -> tensor<3x5xi64>
  %y = graph.any %o {dims = array<i64: 1>} : tensor<3x5xi1> -> tensor<3xi1>
  %z = graph.all %o {dims = array<i64: 1>} : tensor<3x5xi1> -> tensor<3xi1>""",
        [("w", "tensor<3x5xi64>"), ("y", "tensor<3xi1>"), ("z", "tensor<3xi1>"),
         ("s", "tensor<i64>")])
    lower_and_run(module, [torch.rand(3, 5) < 0.5, torch.rand(5) < 0.5,
                           torch.randint(-9, 9, (3, 5))])


def test_full_reduction_and_broadcast_back() -> None:
    module = kernel_level(
        [("x", "tensor<50x40xf32>")],
        """  %m = graph.mean %x {dims = array<i64: 0, 1>, keepdim = true} : tensor<50x40xf32> -> tensor<1x1xf32>
  %y = graph.sub %x, %m : (tensor<50x40xf32>, tensor<1x1xf32>) -> tensor<50x40xf32>
  %p = graph.prod %x {dims = array<i64: 0>} : tensor<50x40xf32> -> tensor<40xf32>""",
        [("y", "tensor<50x40xf32>"), ("p", "tensor<40xf32>")])
    lower_and_run(module, [torch.rand(50, 40) + 0.5], loose=True)


# ----------------------------------------------------------------------------
# random programs: graph -> fuse -> loops -> native == reference interpreter


@settings(max_examples=25, deadline=None)
@given(graph_programs(max_ops=8))
def test_random_programs_match_reference(program) -> None:
    module, inputs = program
    loose = any(t in print_module(module) for t in ("f16", "bf16"))
    run_pipeline(module, "fuse", verify_each=True)
    text = lower_and_run(module, inputs, loose=loose)
    again, _ = parse_module(text, "loops.mlir")
    assert print_module(again) == text
    assert all(not isinstance(op, func.CallOp) for op in again.walk())


# ----------------------------------------------------------------------------
# every elementwise op of the dialect, per dtype family, inside one kernel

ELEMENTWISE = sorted((op for op in __import__("irc.ir.graph", fromlist=["GRAPH_OPS"]).GRAPH_OPS
                      if issubclass(op, (g.ElementwiseUnaryOp, g.ElementwiseBinaryOp))),
                     key=lambda op: op.name)


def _inputs(dtype: torch.dtype, n: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    if dtype == torch.bool:
        return [torch.rand(3, 7, generator=gen) < 0.5 for _ in range(n)]
    if dtype.is_floating_point:
        return [(torch.rand(3, 7, generator=gen) * 6 - 3).to(dtype) for _ in range(n)]
    return [torch.randint(1, 6, (3, 7), generator=gen).to(dtype) *
            (1 - 2 * (torch.rand(3, 7, generator=gen) < 0.3).to(dtype)) for _ in range(n)]


def _defined(op_cls, dtype: torch.dtype, inputs: list[torch.Tensor]) -> bool:
    args = inputs[:2] if issubclass(op_cls, g.ElementwiseBinaryOp) else inputs[:1]
    try:
        module = build([[3, 7]] * len(args), lambda emit, *xs: [emit(op_cls(*xs))], dtype)
        interpret(module, args)
    except Exception:  # torch has no such op for this dtype: nothing to compare with
        return False
    return True


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.int32,
                                   torch.int8, torch.bool], ids=str)
def test_every_elementwise_op_lowers(dtype: torch.dtype) -> None:
    inputs = _inputs(dtype, 2)
    ops = [op for op in ELEMENTWISE if _defined(op, dtype, inputs)]
    assert len(ops) >= 10

    def body(emit, x, y):
        return [emit(op(x, y) if issubclass(op, g.ElementwiseBinaryOp) else op(x)) for op in ops]
    module = build([[3, 7], [3, 7]], body, dtype)
    ref = interpret(module, inputs)
    run_pipeline(module, "fuse")
    run_pipeline(module, "lower-to-loops", verify_each=True)
    out = LLVMBackend().compile(module, {}, OPTIONS)(*inputs)
    for op, r, o in zip(ops, ref, out, strict=True):
        loose = op in (g.PowOp, g.Atan2Op, g.TanOp) or dtype == torch.bfloat16
        try:
            close(r, o, loose)
        except AssertionError as err:
            raise AssertionError(f"{op.name} on {dtype}: {err}") from None


@pytest.mark.parametrize("op", ["sum", "mean", "amax"])
def test_large_full_reduction_splits_into_parallel_partials(op: str) -> None:
    cls = {"sum": g.SumOp, "mean": g.MeanOp, "amax": g.AmaxOp}[op]
    shape = [1024, 1280]  # 1.25M elements: above the split threshold
    module = fused(build([shape], lambda emit, x: [emit(cls(emit(g.MulOp(x, x)), [0, 1]))]))
    x = torch.randn(*shape)
    ref = getattr(torch, op)(x.double() * x.double()).float()
    run_pipeline(module, "split-full-reductions,lower-to-loops", verify_each=True)
    text = print_module(module)
    assert "host.launch @kernel_0_partial" in text and "host.launch @kernel_0(" in text
    partial = text[text.index("func.func @kernel_0_partial"):]
    partial = partial[:partial.index("func.return")]
    assert "irc.parallel" in partial and "tensor<5120xf32>" in text
    outs = [LLVMBackend().compile(module, {}, LLVMOptions(cache=False, threads=t,
                                                          min_parallel_work=64))(x)[0]
            for t in (1, 2)]
    assert torch.equal(outs[0], outs[1])  # deterministic for any thread count
    assert torch.allclose(outs[0], ref, rtol=1e-5, atol=0)


def test_small_full_reduction_is_not_split() -> None:
    module = fused(build([[64, 64]], lambda emit, x: [emit(g.SumOp(x, [0, 1]))]))
    run_pipeline(module, "split-full-reductions", verify_each=True)
    text = lower_and_run(module, [torch.randn(64, 64)])
    assert "_partial" not in text


def test_lower_to_loops_alone_does_not_split() -> None:
    # splitting is its own pass (the CPU pipeline runs it before lower-to-loops)
    module = fused(build([[1024, 1280]], lambda emit, x: [emit(g.SumOp(x, [0, 1]))]))
    run_pipeline(module, "lower-to-loops", verify_each=True)
    assert "_partial" not in print_module(module)
