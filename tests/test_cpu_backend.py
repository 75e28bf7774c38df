"""The ``cpu`` backend end to end: graph-level programs through
``irc.driver.compile_program(..., "cpu")`` agree with the reference
interpreter / torch eager; inputs and weights are checked; externs, NaN/Inf,
in-place weight updates, threads and the compile cache behave."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from irc.driver import compile_program
from irc.errors import InputMismatchError
from irc.frontends.program import Program
from irc.ir import graph as g
from irc.ir.interpreter import interpret
from irc.ir.text import parse_module, print_module, verify_module

sys.path.insert(0, str(Path(__file__).parent))
from fuse_programs import build  # noqa: E402
from graph_strategies import graph_programs  # noqa: E402

NO_CACHE = {"cache.enabled": False}


def program(text: str, weights: dict[str, torch.Tensor] | None = None) -> Program:
    module, source_map = parse_module(text, "program.mlir")
    verify_module(module, source_map)
    return Program(module, weights or {})


def compile_cpu(prog: Program, **options):
    return compile_program(prog, "cpu", {**NO_CACHE, **{f"backend.cpu.{k}": v for k, v in options.items()}})


def assert_matches(ref: list[torch.Tensor], out: list[torch.Tensor], tol: float = 1e-5) -> None:
    assert len(ref) == len(out)
    for r, o in zip(ref, out):
        assert o.dtype == r.dtype and o.shape == r.shape, (o.dtype, r.dtype, o.shape, r.shape)
        if r.dtype.is_floating_point:
            t = max(tol, {torch.float16: 1e-2, torch.bfloat16: 2e-2}.get(r.dtype, 0.0))
            assert torch.allclose(o.double(), r.double(), rtol=t, atol=t, equal_nan=True), (r, o)
        else:
            assert torch.equal(o, r), (r, o)


def check_random(prog_and_inputs) -> None:
    module, inputs = prog_and_inputs
    text = print_module(module)
    ref = interpret(module, inputs)
    loose = "f16" in text or "bf16" in text
    exe = compile_cpu(program(text))
    assert_matches(ref, exe(*inputs), 1e-2 if loose else 1e-5)


# ----------------------------------------------------------------------------
# random programs per dtype family


@settings(max_examples=15, deadline=None)
@given(graph_programs(max_ops=8, dtypes=(torch.float16, torch.bfloat16, torch.float32)))
def test_random_half_precision_programs(prog) -> None:
    check_random(prog)


@settings(max_examples=15, deadline=None)
@given(graph_programs(max_ops=8, dtypes=(torch.int32, torch.int64, torch.bool)))
def test_random_integer_and_bool_programs(prog) -> None:
    check_random(prog)


@settings(max_examples=20, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), data=st.data(),
       kind=st.sampled_from(["sum", "mean", "amax", "amin", "prod", "argmax", "argmin", "any"]),
       keepdim=st.booleans(), dtype=st.sampled_from([torch.float32, torch.int64, torch.float16]))
def test_reductions_over_random_dims(shape, data, kind, keepdim, dtype) -> None:
    rank = len(shape)
    if kind in ("argmax", "argmin"):
        dims = [data.draw(st.integers(0, rank - 1))]
    else:
        dims = sorted(data.draw(st.sets(st.integers(0, rank - 1), min_size=1)))
    if kind == "mean" and not dtype.is_floating_point:
        dtype = torch.float32
    x = torch.randn(shape) * 3
    x = x.to(dtype) if dtype.is_floating_point else x.round().to(dtype)
    op_cls = {"sum": g.SumOp, "mean": g.MeanOp, "amax": g.AmaxOp, "amin": g.AminOp,
              "prod": g.ProdOp, "argmax": g.ArgmaxOp, "argmin": g.ArgminOp, "any": g.AnyOp}[kind]

    def body(emit, a):
        y = emit(op_cls(a, dims, keepdim=keepdim))
        return [y]
    module = build([shape], body, dtype)
    ref = interpret(module, [x])
    exe = compile_cpu(Program(module, {}))
    assert_matches(ref, exe(x), 1e-4)


def test_views_permutes_and_slices() -> None:
    prog = program("""
func.func @main(%x: tensor<2x6x4xf32>) -> (tensor<4x12xf32>, tensor<2x3x4xf32>) {
  %p = graph.permute %x {dims = array<i64: 2, 0, 1>} : tensor<2x6x4xf32> -> tensor<4x2x6xf32>
  %r = graph.reshape %p : tensor<4x2x6xf32> -> tensor<4x12xf32>
  %t = graph.tanh %r : tensor<4x12xf32> -> tensor<4x12xf32>
  %s = graph.slice %x {dim = 1, start = 1, end = 6, step = 2} : tensor<2x6x4xf32> -> tensor<2x3x4xf32>
  %n = graph.neg %s : tensor<2x3x4xf32> -> tensor<2x3x4xf32>
  func.return %t, %n : tensor<4x12xf32>, tensor<2x3x4xf32>
}""")
    x = torch.randn(2, 6, 4)
    out = compile_cpu(prog)(x)
    assert torch.allclose(out[0], x.permute(2, 0, 1).reshape(4, 12).tanh(), atol=1e-6)
    assert torch.equal(out[1], -x[:, 1:6:2])


EXTERNS = """
func.func @main(%img: tensor<2x3x8x8xf32>, %idx: tensor<5xi64>, %tok: tensor<2x3xi64>) -> (tensor<2x4x2x2xf32>, tensor<2x4x3x3xf32>, tensor<5x6xf32>, tensor<2x3x6xf32>, tensor<2x8x3x3xf32>, tensor<2x4x3x3xf32>) {
  %w = graph.weight "conv.weight" : tensor<4x3x3x3xf32>
  %b = graph.weight "conv.bias" : tensor<4xf32>
  %e = graph.weight "emb" : tensor<10x6xf32>
  %c = graph.conv %img, %w, %b {stride = array<i64: 1, 1>, padding = array<i64: 0, 0>, dilation = array<i64: 1, 1>, groups = 1} : (tensor<2x3x8x8xf32>, tensor<4x3x3x3xf32>, tensor<4xf32>) -> tensor<2x4x6x6xf32>
  %r = graph.relu %c : tensor<2x4x6x6xf32> -> tensor<2x4x6x6xf32>
  %m = graph.max_pool %r {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>, padding = array<i64: 0, 0>, dilation = array<i64: 1, 1>} : tensor<2x4x6x6xf32> -> tensor<2x4x3x3xf32>
  %a = graph.adaptive_avg_pool %m : tensor<2x4x3x3xf32> -> tensor<2x4x2x2xf32>
  %s = graph.index_select %e, %idx {dim = 0} : (tensor<10x6xf32>, tensor<5xi64>) -> tensor<5x6xf32>
  %t = graph.embedding %e, %tok : (tensor<10x6xf32>, tensor<2x3xi64>) -> tensor<2x3x6xf32>
  %k = graph.concat %m, %m {dim = 1} : (tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32>) -> tensor<2x8x3x3xf32>
  %av = graph.avg_pool %r {kernel = array<i64: 2, 2>, stride = array<i64: 2, 2>, padding = array<i64: 0, 0>} : tensor<2x4x6x6xf32> -> tensor<2x4x3x3xf32>
  func.return %a, %m, %s, %t, %k, %av : tensor<2x4x2x2xf32>, tensor<2x4x3x3xf32>, tensor<5x6xf32>, tensor<2x3x6xf32>, tensor<2x8x3x3xf32>, tensor<2x4x3x3xf32>
}"""


def test_extern_ops_run_with_torch_kernels() -> None:
    weights = {"conv.weight": torch.randn(4, 3, 3, 3), "conv.bias": torch.randn(4),
               "emb": torch.randn(10, 6)}
    inputs = [torch.randn(2, 3, 8, 8), torch.randint(0, 10, (5,)), torch.randint(0, 10, (2, 3))]
    prog = program(EXTERNS, weights)
    ref = interpret(program(EXTERNS).module, inputs, weights)
    exe = compile_cpu(prog)
    assert_matches(ref, exe(*inputs), 1e-5)
    assert exe.kernel_count >= 1


def test_matmul_chain_with_planned_buffers() -> None:
    prog = program("""
func.func @main(%x: tensor<8x16xf32>) -> tensor<8x16xf32> {
  %w1 = graph.weight "w1" : tensor<16x32xf32>
  %w2 = graph.weight "w2" : tensor<32x16xf32>
  %h = graph.matmul %x, %w1 : (tensor<8x16xf32>, tensor<16x32xf32>) -> tensor<8x32xf32>
  %g = graph.gelu %h : tensor<8x32xf32> -> tensor<8x32xf32>
  %o = graph.matmul %g, %w2 : (tensor<8x32xf32>, tensor<32x16xf32>) -> tensor<8x16xf32>
  %r = graph.add %o, %x : (tensor<8x16xf32>, tensor<8x16xf32>) -> tensor<8x16xf32>
  func.return %r : tensor<8x16xf32>
}""", {"w1": torch.randn(16, 32), "w2": torch.randn(32, 16)})
    exe = compile_cpu(prog)
    x = torch.randn(8, 16)
    w = prog.weights
    want = F.gelu(x @ w["w1"]) @ w["w2"] + x
    for _ in range(2):  # planned buffers are reused across calls
        assert torch.allclose(exe(x)[0], want, atol=1e-4)
    assert exe.memory_plan is not None and exe.memory_plan.peak_bytes > 0


# ----------------------------------------------------------------------------
# input checks


SIMPLE = """
func.func @main(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %w = graph.weight "scale" : tensor<8xf32>
  %y = graph.mul %x, %w : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
  func.return %y : tensor<4x8xf32>
}"""


@pytest.fixture()
def simple():
    weights = {"scale": torch.randn(8)}
    return compile_cpu(program(SIMPLE, weights)), weights


@pytest.mark.parametrize("bad,expect", [
    (lambda: torch.randn(4, 8, dtype=torch.float64), "dtype torch.float64"),
    (lambda: torch.randn(4, 9), r"shape \[4, 9\]"),
    (lambda: torch.randn(8, 4).t(), r"non-contiguous strides \[1, 4\]"),
    (lambda: torch.empty(4, 8, device="meta"), "device meta"),
    (lambda: [[1.0] * 8] * 4, "got list"),
])
def test_wrong_inputs_raise_input_mismatch(simple, bad, expect) -> None:
    exe, _ = simple
    with pytest.raises(InputMismatchError, match=expect) as info:
        exe(bad())
    assert "expected a contiguous torch.float32 tensor of shape [4, 8] on cpu" in str(info.value)


def test_wrong_input_count_and_bad_weight(simple) -> None:
    exe, weights = simple
    with pytest.raises(InputMismatchError, match="expected 1 inputs, got 2"):
        exe(torch.randn(4, 8), torch.randn(4, 8))
    weights["scale"] = torch.randn(8).half()
    with pytest.raises(InputMismatchError, match="weight \"scale\".*dtype torch.float16"):
        exe(torch.randn(4, 8))
    del weights["scale"]
    with pytest.raises(InputMismatchError, match="weight \"scale\" is missing"):
        exe(torch.randn(4, 8))


def test_in_place_weight_updates_are_seen(simple) -> None:
    exe, weights = simple
    x = torch.randn(4, 8)
    assert torch.allclose(exe(x)[0], x * weights["scale"])
    with torch.no_grad():
        weights["scale"].mul_(2.0)
    assert torch.allclose(exe(x)[0], x * weights["scale"])


def test_nan_and_inf_propagate_like_eager() -> None:
    prog = program("""
func.func @main(%x: tensor<3x4xf32>) -> (tensor<3x4xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3x4xf32>) {
  %s = graph.sigmoid %x : tensor<3x4xf32> -> tensor<3x4xf32>
  %m = graph.amax %x {dims = array<i64: 1>} : tensor<3x4xf32> -> tensor<3xf32>
  %t = graph.sum %x {dims = array<i64: 1>} : tensor<3x4xf32> -> tensor<3xf32>
  %e = graph.exp %x : tensor<3x4xf32> -> tensor<3x4xf32>
  func.return %s, %m, %t, %e : tensor<3x4xf32>, tensor<3xf32>, tensor<3xf32>, tensor<3x4xf32>
}""")
    x = torch.randn(3, 4)
    x[0, 1], x[1, 2], x[2, 3] = float("nan"), float("inf"), float("-inf")
    out = compile_cpu(prog)(x)
    want = [torch.sigmoid(x), x.amax(1), x.sum(1), x.exp()]
    for o, w in zip(out, want):
        assert torch.allclose(o, w, equal_nan=True, atol=1e-6), (o, w)


# ----------------------------------------------------------------------------
# threads, parallel kernels, cache, models


def test_parallel_kernel_and_serial_option_agree() -> None:
    module_text = """
func.func @main(%x: tensor<300x200xf32>) -> tensor<300x200xf32> {
  %m = graph.amax %x {dims = array<i64: 1>, keepdim = true} : tensor<300x200xf32> -> tensor<300x1xf32>
  %s = graph.sub %x, %m : (tensor<300x200xf32>, tensor<300x1xf32>) -> tensor<300x200xf32>
  %e = graph.exp %s : tensor<300x200xf32> -> tensor<300x200xf32>
  %t = graph.sum %e {dims = array<i64: 1>, keepdim = true} : tensor<300x200xf32> -> tensor<300x1xf32>
  %p = graph.div %e, %t : (tensor<300x200xf32>, tensor<300x1xf32>) -> tensor<300x200xf32>
  func.return %p : tensor<300x200xf32>
}"""
    x = torch.randn(300, 200)
    parallel = compile_cpu(program(module_text), min_parallel_work=1000)
    serial = compile_cpu(program(module_text), threads=1)
    assert "irc.parallel" in parallel.loops_ir
    assert torch.allclose(parallel(x)[0], torch.softmax(x, -1), atol=1e-6)
    assert torch.equal(parallel(x)[0], serial(x)[0])


def test_compile_cache_stores_and_reuses_object_code(tmp_path, monkeypatch) -> None:
    from irc.backends.llvm import jit
    cache = {"cache.enabled": True, "cache.dir": str(tmp_path)}
    x = torch.randn(4, 8)
    first = compile_program(program(SIMPLE, {"scale": torch.ones(8)}), "cpu", cache)
    entries = list(tmp_path.rglob("*.bin"))
    assert len(entries) == 1

    def no_codegen(text: str) -> bytes:
        raise AssertionError("object code should come from the cache")
    monkeypatch.setattr(jit, "emit_object", no_codegen)
    second = compile_program(program(SIMPLE, {"scale": torch.ones(8)}), "cpu", cache)
    assert torch.equal(first(x)[0], second(x)[0])


def test_model_end_to_end_through_irc_compile() -> None:
    import irc
    from models import make_gpt_decoder_block
    model, inputs = make_gpt_decoder_block()
    model.eval()
    with torch.no_grad():
        fast = irc.compile(model, target="cpu", strict=True)
        got, want = fast(*inputs), model(*inputs)
    got = got if isinstance(got, torch.Tensor) else got[0]
    want = want if isinstance(want, torch.Tensor) else want[0]
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)


def test_weight_transpose_feeding_matmul_runs_as_a_view() -> None:
    prog = program("""
func.func @main(%x: tensor<8x16xf32>, %y: tensor<8x16xf32>) -> (tensor<8x32xf32>, tensor<8x8xf32>) {
  %w = graph.weight "w" : tensor<32x16xf32>
  %t = graph.permute %w {dims = array<i64: 1, 0>} : tensor<32x16xf32> -> tensor<16x32xf32>
  %m = graph.matmul %x, %t : (tensor<8x16xf32>, tensor<16x32xf32>) -> tensor<8x32xf32>
  %e = graph.exp %y : tensor<8x16xf32> -> tensor<8x16xf32>
  %p = graph.permute %e {dims = array<i64: 1, 0>} : tensor<8x16xf32> -> tensor<16x8xf32>
  %n = graph.matmul %x, %p : (tensor<8x16xf32>, tensor<16x8xf32>) -> tensor<8x8xf32>
  func.return %m, %n : tensor<8x32xf32>, tensor<8x8xf32>
}""", {"w": torch.randn(32, 16)})
    exe = compile_cpu(prog)
    assert "irc.view" in exe.loops_ir
    x, y = torch.randn(8, 16), torch.randn(8, 16)
    for _ in range(2):
        m, n = exe(x, y)
        assert torch.allclose(m, x @ prog.weights["w"].t(), atol=1e-5)
        assert torch.allclose(n, x @ y.exp().t(), atol=1e-4)


WEIGHT_DERIVED = """
func.func @main(%x: tensor<8x16xf32>) -> tensor<8x32xf32> {
  %w = graph.weight "w" : tensor<32x16xf32>
  %t = graph.permute %w {dims = array<i64: 1, 0>} : tensor<32x16xf32> -> tensor<16x32xf32>
  %s = graph.mul %t, %t : (tensor<16x32xf32>, tensor<16x32xf32>) -> tensor<16x32xf32>
  %m = graph.matmul %x, %s : (tensor<8x16xf32>, tensor<16x32xf32>) -> tensor<8x32xf32>
  %r = graph.relu %m : tensor<8x32xf32> -> tensor<8x32xf32>
  func.return %r : tensor<8x32xf32>
}"""


def test_weight_derived_kernels_run_once_per_weight_version() -> None:
    weights = {"w": torch.randn(32, 16)}
    exe = compile_cpu(program(WEIGHT_DERIVED, weights))
    plan = exe.memory_plan
    assert plan is not None and plan.weights_derived_bytes == 16 * 32 * 4
    x = torch.randn(8, 16)

    def want() -> torch.Tensor:
        return torch.relu(x @ (weights["w"].t() * weights["w"].t()))
    for _ in range(3):
        assert torch.allclose(exe(x)[0], want(), atol=1e-5)
    assert exe.program.derived_runs == 1  # not recomputed while the weight is unchanged
    with torch.no_grad():
        weights["w"].mul_(2.0)  # in place: a new version
    assert torch.allclose(exe(x)[0], want(), atol=1e-4)
    assert exe.program.derived_runs == 2
    weights["w"] = torch.randn(32, 16)  # a different tensor
    assert torch.allclose(exe(x)[0], want(), atol=1e-4)
    exe(x)
    assert exe.program.derived_runs == 3
    weights["w"] = torch.randn(32, 16).half()  # still checked when it changes
    with pytest.raises(InputMismatchError, match="weight \"w\""):
        exe(x)


def test_in_place_weight_update_through_irc_compile() -> None:
    import irc

    class MLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = torch.nn.Linear(16, 32)
            self.fc2 = torch.nn.Linear(32, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(torch.relu(self.fc1(x)))

    model = MLP().eval()
    x = torch.randn(4, 16)
    with torch.no_grad():
        fast = irc.compile(model, target="cpu")
        for _ in range(2):
            assert torch.allclose(fast(x), model(x), atol=1e-5)
        model.fc1.weight.mul_(2)
        model.fc2.bias.add_(1)
        assert torch.allclose(fast(x), model(x), atol=1e-5)


LIBRARY_OUT = """
func.func @main(%x: tensor<4x6xf32>, %idx: tensor<5xi64>, %tok: tensor<2x3xi32>, %gi: tensor<4x2xi64>) -> (tensor<8x6xf32>, tensor<5x6xf32>, tensor<2x3x6xf32>, tensor<4x2xf32>) {
  %e = graph.weight "emb" : tensor<10x6xf32>
  %a = graph.exp %x : tensor<4x6xf32> -> tensor<4x6xf32>
  %k = graph.concat %a, %x {dim = 0} : (tensor<4x6xf32>, tensor<4x6xf32>) -> tensor<8x6xf32>
  %k2 = graph.neg %k : tensor<8x6xf32> -> tensor<8x6xf32>
  %s = graph.index_select %e, %idx {dim = 0} : (tensor<10x6xf32>, tensor<5xi64>) -> tensor<5x6xf32>
  %s2 = graph.tanh %s : tensor<5x6xf32> -> tensor<5x6xf32>
  %t = graph.embedding %e, %tok : (tensor<10x6xf32>, tensor<2x3xi32>) -> tensor<2x3x6xf32>
  %t2 = graph.neg %t : tensor<2x3x6xf32> -> tensor<2x3x6xf32>
  %g = graph.gather %a, %gi {dim = 1} : (tensor<4x6xf32>, tensor<4x2xi64>) -> tensor<4x2xf32>
  %g2 = graph.neg %g : tensor<4x2xf32> -> tensor<4x2xf32>
  func.return %k2, %s2, %t2, %g2 : tensor<8x6xf32>, tensor<5x6xf32>, tensor<2x3x6xf32>, tensor<4x2xf32>
}"""


def test_library_calls_write_into_planned_buffers() -> None:
    weights = {"emb": torch.randn(10, 6)}
    prog = program(LIBRARY_OUT, weights)
    ref_prog = program(LIBRARY_OUT)
    exe = compile_cpu(prog)
    plan = exe.memory_plan
    assert plan is not None and not plan.library  # all four write out= into the arena
    assert len(plan.assignment) >= 4
    for _ in range(2):
        inputs = [torch.randn(4, 6), torch.randint(0, 10, (5,)),
                  torch.randint(0, 10, (2, 3), dtype=torch.int32), torch.randint(0, 6, (4, 2))]
        assert_matches(interpret(ref_prog.module, inputs, weights), exe(*inputs), 1e-5)
