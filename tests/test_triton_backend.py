"""The ``cuda`` (Triton) backend against the reference interpreter and eager torch.

Runs everywhere: without a CUDA device the kernels run on CPU tensors under
Triton's interpreter (TRITON_INTERPRET=1, set here before triton is imported).
Shapes are small because the interpreter is slow.
"""

from __future__ import annotations

import os

if "triton" not in __import__("sys").modules:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Sequence  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from xdsl.dialects import func  # noqa: E402
from xdsl.dialects.builtin import FunctionType, ModuleOp  # noqa: E402

import irc  # noqa: E402
from irc.backends.base import Level  # noqa: E402
from irc.backends.registry import get_backend  # noqa: E402
from irc.backends.triton.backend import NO_DEVICE, TritonBackend, TritonOptions  # noqa: E402
from irc.backends.triton.runtime import TritonExecutable  # noqa: E402
from irc.ir.interpreter import interpret  # noqa: E402
from irc.ir.text import parse_module, print_module  # noqa: E402
from irc.passes.pipeline import run_pipeline  # noqa: E402

ON_GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda") if ON_GPU else torch.device("cpu")
TOL = {torch.float32: (1e-5, 1e-5), torch.float64: (1e-7, 1e-7), torch.float16: (1e-2, 1e-2),
       torch.bfloat16: (2e-2, 2e-2)}


def assert_same(got: Sequence[torch.Tensor], want: Sequence[torch.Tensor]) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        g = g.cpu()
        assert g.dtype == w.dtype and g.shape == w.shape, (i, g.dtype, w.dtype, g.shape, w.shape)
        if w.dtype.is_floating_point:
            rtol, atol = TOL[w.dtype]
            torch.testing.assert_close(g, w, rtol=rtol, atol=atol, equal_nan=True,
                                       msg=lambda m, i=i: f"output {i}: {m}")
        else:
            assert torch.equal(g, w), f"output {i}: {g} != {w}"


def compile_triton(module: ModuleOp, weights: dict[str, torch.Tensor] | None = None,
                   **options: bool) -> TritonExecutable:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TritonExecutable(module, weights or {}, interpret=not ON_GPU, **options)


def check(text_or_module: str | ModuleOp, inputs: Sequence[torch.Tensor],
          weights: dict[str, torch.Tensor] | None = None, fuse: bool = True) -> TritonExecutable:
    """Compile (after ``fuse``) and compare with the reference interpreter."""
    module = parse_module(text_or_module)[0] if isinstance(text_or_module, str) else text_or_module
    want = interpret(module, inputs, weights)
    if fuse:
        run_pipeline(module, "fuse")
    try:
        exe = compile_triton(module, weights)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns about masked-off lanes (interpreter)
            got = exe(*[x.to(DEVICE) for x in inputs])
        assert_same(got, want)
    except Exception as err:
        err.add_note(f"module:\n{print_module(module)}")
        raise
    return exe


def main(signature: str, body: str, results: str) -> str:
    return f"builtin.module {{\nfunc.func @main({signature}) -> ({results}) {{\n{body}\n}}\n}}"


# ----------------------------------------------------------------------------
# hand-written programs

SOFTMAX = main("%x: tensor<6x10xf32>", """
  %m = graph.amax %x {dims = array<i64: 1>, keepdim = true} : tensor<6x10xf32> -> tensor<6x1xf32>
  %d = graph.sub %x, %m : (tensor<6x10xf32>, tensor<6x1xf32>) -> tensor<6x10xf32>
  %e = graph.exp %d : tensor<6x10xf32> -> tensor<6x10xf32>
  %s = graph.sum %e {dims = array<i64: 1>, keepdim = true} : tensor<6x10xf32> -> tensor<6x1xf32>
  %y = graph.div %e, %s : (tensor<6x10xf32>, tensor<6x1xf32>) -> tensor<6x10xf32>
  func.return %y : tensor<6x10xf32>""", "tensor<6x10xf32>")


def test_softmax_is_one_kernel_and_matches() -> None:
    exe = check(SOFTMAX, [torch.randn(6, 10) * 5])
    assert [k.name for p in exe.plan.kernels.values() for k in p.kernels] == ["kernel_0"]


def test_softmax_with_infinities_and_nan_rows() -> None:
    x = torch.randn(6, 10)
    x[1, 3] = float("-inf")
    x[2, :] = float("-inf")
    x[4, 7] = float("nan")
    check(SOFTMAX, [x])


def test_layernorm_f16_with_weight_and_bias() -> None:
    text = main("%x: tensor<4x3x32xf16>", """
  %w = graph.weight "ln.weight" : tensor<32xf16>
  %b = graph.weight "ln.bias" : tensor<32xf16>
  %mu = graph.mean %x {dims = array<i64: 2>, keepdim = true} : tensor<4x3x32xf16> -> tensor<4x3x1xf16>
  %xc = graph.sub %x, %mu : (tensor<4x3x32xf16>, tensor<4x3x1xf16>) -> tensor<4x3x32xf16>
  %sq = graph.mul %xc, %xc : (tensor<4x3x32xf16>, tensor<4x3x32xf16>) -> tensor<4x3x32xf16>
  %var = graph.mean %sq {dims = array<i64: 2>, keepdim = true} : tensor<4x3x32xf16> -> tensor<4x3x1xf16>
  %eps = graph.constant dense<1.0e-05> : tensor<f16>
  %ve = graph.add %var, %eps : (tensor<4x3x1xf16>, tensor<f16>) -> tensor<4x3x1xf16>
  %rs = graph.rsqrt %ve : tensor<4x3x1xf16> -> tensor<4x3x1xf16>
  %n = graph.mul %xc, %rs : (tensor<4x3x32xf16>, tensor<4x3x1xf16>) -> tensor<4x3x32xf16>
  %y = graph.mul %n, %w : (tensor<4x3x32xf16>, tensor<32xf16>) -> tensor<4x3x32xf16>
  %z = graph.add %y, %b : (tensor<4x3x32xf16>, tensor<32xf16>) -> tensor<4x3x32xf16>
  func.return %z, %mu : tensor<4x3x32xf16>, tensor<4x3x1xf16>""",
                "tensor<4x3x32xf16>, tensor<4x3x1xf16>")
    weights = {"ln.weight": torch.randn(32).half(), "ln.bias": torch.randn(32).half()}
    check(text, [torch.randn(4, 3, 32).half()], weights)


def test_long_rows_loop_sum_argmax_and_normalise() -> None:
    n = 20000  # past the interpreter's persistent limit: the looped form
    text = main(f"%x: tensor<2x{n}xf32>", f"""
  %s = graph.sum %x {{dims = array<i64: 1>, keepdim = true}} : tensor<2x{n}xf32> -> tensor<2x1xf32>
  %y = graph.div %x, %s : (tensor<2x{n}xf32>, tensor<2x1xf32>) -> tensor<2x{n}xf32>
  %i = graph.argmax %x {{dims = array<i64: 1>}} : tensor<2x{n}xf32> -> tensor<2xi64>
  %m = graph.amin %x {{dims = array<i64: 1>}} : tensor<2x{n}xf32> -> tensor<2xf32>
  func.return %y, %i, %m : tensor<2x{n}xf32>, tensor<2xi64>, tensor<2xf32>""",
                f"tensor<2x{n}xf32>, tensor<2xi64>, tensor<2xf32>")
    x = torch.rand(2, n) + 0.5
    x[0, 17] = 9.0
    x[0, 19000] = 9.0  # a tie: the first index wins
    x[1, 12345] = float("nan")  # NaN wins argmax and amin
    exe = check(text, [x])
    assert not any(k.tiling.persistent for p in exe.plan.kernels.values() for k in p.kernels)


def test_full_reduction_to_scalar_and_non_trailing_dims() -> None:
    text = main("%x: tensor<3x4x5xf32>, %n: tensor<6x5xi32>", """
  %s = graph.sum %x {dims = array<i64: 0, 1, 2>} : tensor<3x4x5xf32> -> tensor<f32>
  %a = graph.amin %x {dims = array<i64: 0, 2>, keepdim = true} : tensor<3x4x5xf32> -> tensor<1x4x1xf32>
  %c = graph.sum %n {dims = array<i64: 0>} : tensor<6x5xi32> -> tensor<5xi64>
  %p = graph.prod %n {dims = array<i64: 1>} : tensor<6x5xi32> -> tensor<6xi64>
  %m = graph.mean %n {dims = array<i64: 1>} : tensor<6x5xi32> -> tensor<6xf32>
  %i = graph.argmin %n {dims = array<i64: 0>} : tensor<6x5xi32> -> tensor<5xi64>
  func.return %s, %a, %c, %p, %m, %i : tensor<f32>, tensor<1x4x1xf32>, tensor<5xi64>, tensor<6xi64>, tensor<6xf32>, tensor<5xi64>""",
                "tensor<f32>, tensor<1x4x1xf32>, tensor<5xi64>, tensor<6xi64>, tensor<6xf32>, "
                "tensor<5xi64>")
    check(text, [torch.randn(3, 4, 5), torch.randint(-3, 4, (6, 5), dtype=torch.int32)])


def test_any_all_and_bool_logic() -> None:
    text = main("%b: tensor<4x6xi1>, %x: tensor<4x6xi64>", """
  %any = graph.any %b {dims = array<i64: 1>} : tensor<4x6xi1> -> tensor<4xi1>
  %all = graph.all %x {dims = array<i64: 1>} : tensor<4x6xi64> -> tensor<4xi1>
  %nb = graph.logical_not %b : tensor<4x6xi1> -> tensor<4x6xi1>
  %xor = graph.bitwise_xor %b, %nb : (tensor<4x6xi1>, tensor<4x6xi1>) -> tensor<4x6xi1>
  %sum = graph.sum %b {dims = array<i64: 0>} : tensor<4x6xi1> -> tensor<6xi64>
  func.return %any, %all, %xor, %sum : tensor<4xi1>, tensor<4xi1>, tensor<4x6xi1>, tensor<6xi64>""",
                "tensor<4xi1>, tensor<4xi1>, tensor<4x6xi1>, tensor<6xi64>")
    b = torch.rand(4, 6) < 0.3
    b[0] = False
    x = torch.randint(0, 3, (4, 6))
    x[1] = 1
    check(text, [b, x])


def test_integer_division_and_remainder_follow_torch() -> None:
    text = main("%a: tensor<12xi32>, %b: tensor<12xi32>", """
  %f = graph.div %a, %b {rounding_mode = "floor"} : (tensor<12xi32>, tensor<12xi32>) -> tensor<12xi32>
  %t = graph.div %a, %b {rounding_mode = "trunc"} : (tensor<12xi32>, tensor<12xi32>) -> tensor<12xi32>
  %r = graph.remainder %a, %b : (tensor<12xi32>, tensor<12xi32>) -> tensor<12xi32>
  %d = graph.div %a, %b : (tensor<12xi32>, tensor<12xi32>) -> tensor<12xf32>
  func.return %f, %t, %r, %d : tensor<12xi32>, tensor<12xi32>, tensor<12xi32>, tensor<12xf32>""",
                "tensor<12xi32>, tensor<12xi32>, tensor<12xi32>, tensor<12xf32>")
    a = torch.tensor([7, -7, 7, -7, 0, 5, 3, -2, 9, -9, 1, 100], dtype=torch.int32)
    b = torch.tensor([2, 2, -2, -2, 3, 1, 7, 5, -4, 4, -1, 7], dtype=torch.int32)
    check(text, [a, b])


def test_movement_chain_slice_permute_expand_reshape() -> None:
    text = main("%x: tensor<4x6x5xf32>, %v: tensor<5xf32>", """
  %s = graph.slice %x {dim = 1, start = 1, end = 6, step = 2} : tensor<4x6x5xf32> -> tensor<4x3x5xf32>
  %p = graph.permute %s {dims = array<i64: 2, 0, 1>} : tensor<4x3x5xf32> -> tensor<5x4x3xf32>
  %r = graph.reshape %p : tensor<5x4x3xf32> -> tensor<5x12xf32>
  %u = graph.unsqueeze %v {dim = 1} : tensor<5xf32> -> tensor<5x1xf32>
  %e = graph.expand %u : tensor<5x1xf32> -> tensor<5x12xf32>
  %y = graph.mul %r, %e : (tensor<5x12xf32>, tensor<5x12xf32>) -> tensor<5x12xf32>
  %q = graph.squeeze %u {dims = array<i64: 1>} : tensor<5x1xf32> -> tensor<5xf32>
  func.return %y, %q : tensor<5x12xf32>, tensor<5xf32>""", "tensor<5x12xf32>, tensor<5xf32>")
    check(text, [torch.randn(4, 6, 5), torch.randn(5)])


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_half_precision_elementwise_and_casts(dtype: str) -> None:
    text = main(f"%x: tensor<8x16x{dtype}>, %y: tensor<16x{dtype}>", f"""
  %a = graph.mul %x, %y : (tensor<8x16x{dtype}>, tensor<16x{dtype}>) -> tensor<8x16x{dtype}>
  %g = graph.gelu %a {{approximate = "tanh"}} : tensor<8x16x{dtype}> -> tensor<8x16x{dtype}>
  %f = graph.cast %g : tensor<8x16x{dtype}> -> tensor<8x16xf32>
  %i = graph.cast %a : tensor<8x16x{dtype}> -> tensor<8x16xi32>
  %s = graph.sigmoid %x : tensor<8x16x{dtype}> -> tensor<8x16x{dtype}>
  func.return %g, %f, %i, %s : tensor<8x16x{dtype}>, tensor<8x16xf32>, tensor<8x16xi32>, tensor<8x16x{dtype}>""",
                f"tensor<8x16x{dtype}>, tensor<8x16xf32>, tensor<8x16xi32>, tensor<8x16x{dtype}>")
    td = torch.float16 if dtype == "f16" else torch.bfloat16
    x, y = torch.randn(8, 16).to(td) * 3, torch.randn(16).to(td)
    module = parse_module(text)[0]
    want = interpret(module, [x, y])
    run_pipeline(module, "fuse")
    got = compile_triton(module)(x.to(DEVICE), y.to(DEVICE))
    # f32 casts of values computed in f32 inside the kernel differ from torch's
    # per-op rounding by up to one half ulp
    assert_same(got[:1] + got[3:], want[:1] + want[3:])
    torch.testing.assert_close(got[1].cpu(), want[1], rtol=1e-2, atol=1e-2)
    assert (got[2].cpu() - want[2]).abs().max() <= 1


def test_extern_ops_matmul_conv_pool_embedding_concat() -> None:
    text = main("%x: tensor<2x3x8x8xf32>, %idx: tensor<5xi64>, %a: tensor<4x16xf32>", """
  %w = graph.weight "conv.weight" : tensor<6x3x3x3xf32>
  %cb = graph.weight "conv.bias" : tensor<6xf32>
  %c = graph.conv %x, %w, %cb {stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilation = array<i64: 1, 1>, groups = 1} : (tensor<2x3x8x8xf32>, tensor<6x3x3x3xf32>, tensor<6xf32>) -> tensor<2x6x8x8xf32>
  %r = graph.relu %c : tensor<2x6x8x8xf32> -> tensor<2x6x8x8xf32>
  %p = graph.max_pool %r {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilation = array<i64: 1, 1>} : tensor<2x6x8x8xf32> -> tensor<2x6x4x4xf32>
  %ap = graph.adaptive_avg_pool %p : tensor<2x6x4x4xf32> -> tensor<2x6x1x1xf32>
  %t = graph.weight "table" : tensor<10x16xf32>
  %e = graph.embedding %t, %idx : (tensor<10x16xf32>, tensor<5xi64>) -> tensor<5x16xf32>
  %cat = graph.concat %e, %a {dim = 0} : (tensor<5x16xf32>, tensor<4x16xf32>) -> tensor<9x16xf32>
  %fc = graph.weight "fc" : tensor<16x7xf32>
  %mm = graph.matmul %cat, %fc : (tensor<9x16xf32>, tensor<16x7xf32>) -> tensor<9x7xf32>
  %g = graph.gelu %mm : tensor<9x7xf32> -> tensor<9x7xf32>
  func.return %ap, %g : tensor<2x6x1x1xf32>, tensor<9x7xf32>""",
                "tensor<2x6x1x1xf32>, tensor<9x7xf32>")
    weights = {"conv.weight": torch.randn(6, 3, 3, 3), "conv.bias": torch.randn(6),
               "table": torch.randn(10, 16), "fc": torch.randn(16, 7)}
    check(text, [torch.randn(2, 3, 8, 8), torch.tensor([0, 3, 9, 3, 1]), torch.randn(4, 16)],
          weights)


def test_kernel_with_two_reduction_layouts_falls_back_to_eager_correctly() -> None:
    from test_triton_codegen import TWO_LAYOUTS
    exe = check(TWO_LAYOUTS, [torch.randn(4, 6)], fuse=False)
    assert exe.plan.kernels["kernel_0"].eager_reason


def test_reduction_broadcast_to_another_shape_is_reduced_per_element() -> None:
    # hand-written kernel level: one kernel whose outputs are a row result and a broadcast of one
    text = """builtin.module {
func.func @main(%x: tensor<3x7xf32>) -> (tensor<2x4x3xf32>, tensor<3xi64>) {
  %y, %m = func.call @kernel_0(%x) : (tensor<3x7xf32>) -> (tensor<2x4x3xf32>, tensor<3xi64>)
  func.return %y, %m : tensor<2x4x3xf32>, tensor<3xi64>
}
func.func private @kernel_0(%x: tensor<3x7xf32>) -> (tensor<2x4x3xf32>, tensor<3xi64>) attributes {irc.kernel} {
  %s = graph.sum %x {dims = array<i64: 1>} : tensor<3x7xf32> -> tensor<3xf32>
  %e = graph.expand %s : tensor<3xf32> -> tensor<2x4x3xf32>
  %y = graph.mul %e, %e : (tensor<2x4x3xf32>, tensor<2x4x3xf32>) -> tensor<2x4x3xf32>
  %m = graph.argmax %x {dims = array<i64: 1>} : tensor<3x7xf32> -> tensor<3xi64>
  func.return %y, %m : tensor<2x4x3xf32>, tensor<3xi64>
}
}"""
    exe = check(text, [torch.randn(3, 7)], fuse=False)
    assert all(p.eager_reason is None for p in exe.plan.kernels.values())
    assert "reduction per output element" in exe.source


def test_unfused_graph_level_module_runs() -> None:
    check(SOFTMAX, [torch.randn(6, 10)], fuse=False)


# ----------------------------------------------------------------------------
# every op of the dialect, and random programs


def _return_everything(module: ModuleOp) -> None:
    fn = next(op for op in module.ops if isinstance(op, func.FuncOp))
    block = fn.body.block
    ret = block.last_op
    assert isinstance(ret, func.ReturnOp)
    values = [r for op in block.ops if op is not ret for r in op.results]
    block.erase_op(ret)
    block.add_op(func.ReturnOp(*values))
    fn.function_type = FunctionType.from_lists([a.type for a in block.args],
                                                [v.type for v in values])


@pytest.mark.parametrize("fuse", [False, True])
def test_every_graph_op(fuse: bool) -> None:
    import graph_strategies as strategies
    from irc.ir.types import dtype_of, shape_of
    module = strategies.all_ops_module()
    _return_everything(module)
    gen = torch.Generator().manual_seed(0)
    args = next(op for op in module.ops if isinstance(op, func.FuncOp)).body.block.args
    inputs = [strategies.random_input(shape_of(a.type), dtype_of(a.type), gen) for a in args]
    inputs[4] = torch.tensor([0, 1, 1])  # index_select / embedding indices in range
    exe = check(module, inputs, strategies.all_ops_weights(), fuse=fuse)
    assert all(p.eager_reason is None for p in exe.plan.kernels.values())


def _random_programs():  # type: ignore[no-untyped-def]
    try:
        from graph_strategies import graph_programs
    except ImportError:
        return None
    return graph_programs(max_ops=8)


_PROGRAMS = _random_programs()


@pytest.mark.skipif(_PROGRAMS is None, reason="tests/graph_strategies.py is missing")
@settings(max_examples=20, deadline=None)
@given(program=_PROGRAMS if _PROGRAMS is not None else __import__("hypothesis").strategies.none())
def test_random_programs_match_the_reference(program) -> None:  # type: ignore[no-untyped-def]
    module, inputs = program
    check(module, inputs)


# ----------------------------------------------------------------------------
# elementwise ops, OpInfo-style: edge values and dtypes

EDGE = torch.tensor([0.0, -0.0, 1e-7, -1e-6, 0.5, -0.5, 1.5, 2.5, -2.5, 3.0, -7.25, 20.0, -30.0,
                     88.0, 1e4, float("inf"), float("-inf"), float("nan")])
UNARY = ["neg", "abs", "exp", "exp2", "log", "log2", "log1p", "expm1", "sqrt", "rsqrt", "sin",
         "cos", "tan", "tanh", "sigmoid", "erf", "reciprocal", "relu", "floor", "ceil", "round",
         "trunc", "sign", "isnan", "isinf", "silu"]
BOOL_RESULT = {"isnan", "isinf"}


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_unary_ops_on_edge_values(dtype: str) -> None:
    td = torch.float32 if dtype == "f32" else torch.float16
    n = EDGE.numel()
    lines, outs = [], []
    for k, name in enumerate(UNARY):
        rt = f"tensor<{n}xi1>" if name in BOOL_RESULT else f"tensor<{n}x{dtype}>"
        lines.append(f"  %u{k} = graph.{name} %x : tensor<{n}x{dtype}> -> {rt}")
        outs.append((f"%u{k}", rt))
    body = "\n".join(lines) + "\n  func.return " + ", ".join(o for o, _ in outs) + " : " + \
        ", ".join(t for _, t in outs)
    text = main(f"%x: tensor<{n}x{dtype}>", body, ", ".join(t for _, t in outs))
    module = parse_module(text)[0]
    x = EDGE.to(td)
    want = interpret(module, [x])
    run_pipeline(module, "fuse")
    got = compile_triton(module)(x.to(DEVICE))
    for name, g, w in zip(UNARY, got, want):
        g = g.cpu()
        if w.dtype == torch.bool:
            assert torch.equal(g, w), name
            continue
        rtol = 1e-5 if td == torch.float32 else 1e-3
        atol = 1e-6 if td == torch.float32 else 1e-3
        if name in ("tan",):  # large arguments: range reduction differs
            g, w = g[:12], w[:12]
        torch.testing.assert_close(g, w, rtol=rtol, atol=atol, equal_nan=True,
                                   msg=lambda m, name=name: f"{name}: {m}")


BINARY = ["add", "sub", "mul", "maximum", "minimum", "remainder", "atan2", "pow", "eq", "ne",
          "lt", "le", "gt", "ge", "logical_and", "logical_or"]


@pytest.mark.parametrize("dtype", ["f32", "i64"])
def test_binary_ops_broadcast(dtype: str) -> None:
    ops = [o for o in BINARY if not (dtype == "i64" and o in ("atan2", "pow"))]
    lines, outs = [], []
    for k, name in enumerate(ops):
        cmp = name in ("eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or")
        float_rule = name == "atan2"
        rdt = "i1" if cmp else ("f32" if float_rule else dtype)
        rt = f"tensor<3x5x{rdt}>"
        lines.append(f"  %b{k} = graph.{name} %x, %y : (tensor<3x5x{dtype}>, tensor<5x{dtype}>) "
                     f"-> {rt}")
        outs.append((f"%b{k}", rt))
    body = "\n".join(lines) + "\n  func.return " + ", ".join(o for o, _ in outs) + " : " + \
        ", ".join(t for _, t in outs)
    text = main(f"%x: tensor<3x5x{dtype}>, %y: tensor<5x{dtype}>", body,
                ", ".join(t for _, t in outs))
    if dtype == "f32":
        x = torch.tensor([[1.5, -2.0, 0.0, 3.0, -0.5], [2.0, 2.0, -3.0, 0.25, 7.0],
                          [float("nan"), 1.0, -1.0, 4.0, 0.0]])
        y = torch.tensor([2.0, 3.0, -2.0, -1.5, 0.5])
    else:
        x = torch.tensor([[7, -7, 0, 3, -5], [2, 2, -3, 9, 7], [-1, 1, -1, 4, 0]])
        y = torch.tensor([2, -3, 5, -2, 4])
    check(text, [x, y])


# ----------------------------------------------------------------------------
# the public API, inputs, options, availability


def test_backend_registration_and_options() -> None:
    backend = get_backend("triton")
    assert isinstance(backend, TritonBackend) and backend.name == "cuda"
    assert backend.level == Level.KERNEL
    opts = TritonOptions()
    assert (opts.cuda_graphs, opts.autotune, opts.interpret) == (False, True, False)
    assert backend.available() is None  # CUDA, or the interpreter in this process


def test_input_checks_raise_input_mismatch() -> None:
    module = parse_module(SOFTMAX)[0]
    run_pipeline(module, "fuse")
    exe = compile_triton(module)
    good = torch.randn(6, 10, device=DEVICE)
    with pytest.raises(irc.InputMismatchError, match="shape"):
        exe(torch.randn(6, 11, device=DEVICE))
    with pytest.raises(irc.InputMismatchError, match="dtype"):
        exe(good.double())
    with pytest.raises(irc.InputMismatchError, match="expected 1 input"):
        exe(good, good)
    with pytest.raises(irc.InputMismatchError, match="expected a tensor"):
        exe([1.0])  # type: ignore[arg-type]
    # a transposed (non-contiguous) input is copied to row-major, not misread
    t = torch.randn(10, 6, device=DEVICE).t()
    assert_same(exe(t), [torch.softmax(t.cpu(), dim=1)])


def test_no_gpu_message_without_interpreter() -> None:
    if ON_GPU:
        pytest.skip("a CUDA device is present")
    code = ("import irc, torch\n"
            "from irc.backends.registry import get_backend\n"
            "from irc.backends.triton.backend import TritonOptions\n"
            "print(get_backend('cuda').available())\n"
            "print(get_backend('cuda').available(TritonOptions(interpret=True)))\n"
            "try:\n"
            "    irc.compile(lambda x: x.exp() + 1, target='cuda')(torch.randn(3))\n"
            "except irc.BackendError as e:\n"
            "    print('ERR', e)\n"
            "x = torch.randn(3)\n"  # the option alone runs the interpreter
            "y = irc.compile(lambda x: x.exp() + 1, target='cuda', options={'interpret': True})(x)\n"
            "print('OK', bool(torch.allclose(y, x.exp() + 1)))\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == NO_DEVICE
    assert out.stdout.splitlines()[1] == "None"
    assert out.stdout.splitlines()[-1] == "OK True"
    assert f"ERR {NO_DEVICE}" in out.stdout
    assert "TRITON_INTERPRET=1" in NO_DEVICE and 'target="cpu"' in NO_DEVICE


def test_models_through_irc_compile() -> None:
    import models
    for name, factory in models.MODELS.items():
        model, inputs = factory()
        model = model.to(DEVICE)
        inputs = tuple(x.to(DEVICE) for x in inputs)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = model(*inputs)
            got = irc.compile(model, target="cuda")(*inputs)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4,
                                   msg=lambda m, name=name: f"{name}: {m}")


def test_weights_are_live() -> None:
    text = main("%x: tensor<4xf32>", """
  %w = graph.weight "w" : tensor<4xf32>
  %y = graph.mul %x, %w : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  func.return %y : tensor<4xf32>""", "tensor<4xf32>")
    module = parse_module(text)[0]
    run_pipeline(module, "fuse")
    w = torch.ones(4, device=DEVICE)
    exe = compile_triton(module, {"w": w})
    x = torch.arange(4.0, device=DEVICE)
    assert exe(x)[0].cpu().tolist() == [0.0, 1.0, 2.0, 3.0]
    if not ON_GPU or w.is_cuda:
        w.mul_(2)  # an in-place weight update is seen by the next call
        assert exe(x)[0].cpu().tolist() == [0.0, 2.0, 4.0, 6.0]
    assert math.isfinite(float(exe(x)[0].sum()))
