"""Golden checks on the Triton source the ``cuda`` backend generates.

No kernel runs here: these tests read the text (program ids, masks, block
reductions, one kernel per fused softmax/layernorm, loops for long rows, the
eager marker for kernels codegen cannot express) and check that it is valid
Python.
"""

from __future__ import annotations

import ast
import re

import pytest

from irc.backends.triton.autotune import (
    Tiling,
    candidates,
    choose_pointwise,
    choose_reduction,
)
from irc.backends.triton.codegen import generate_source, plan_module
from irc.ir.text import parse_module
from irc.passes.pipeline import run_pipeline

SOFTMAX = """builtin.module {
func.func @main(%x: tensor<6x10xf32>) -> tensor<6x10xf32> {
  %m = graph.amax %x {dims = array<i64: 1>, keepdim = true} : tensor<6x10xf32> -> tensor<6x1xf32>
  %d = graph.sub %x, %m : (tensor<6x10xf32>, tensor<6x1xf32>) -> tensor<6x10xf32>
  %e = graph.exp %d : tensor<6x10xf32> -> tensor<6x10xf32>
  %s = graph.sum %e {dims = array<i64: 1>, keepdim = true} : tensor<6x10xf32> -> tensor<6x1xf32>
  %y = graph.div %e, %s : (tensor<6x10xf32>, tensor<6x1xf32>) -> tensor<6x10xf32>
  func.return %y : tensor<6x10xf32>
}
}"""

LAYERNORM = """builtin.module {
func.func @main(%x: tensor<4x3x32xf16>, %w: tensor<32xf16>) -> tensor<4x3x32xf16> {
  %mu = graph.mean %x {dims = array<i64: 2>, keepdim = true} : tensor<4x3x32xf16> -> tensor<4x3x1xf16>
  %xc = graph.sub %x, %mu : (tensor<4x3x32xf16>, tensor<4x3x1xf16>) -> tensor<4x3x32xf16>
  %sq = graph.mul %xc, %xc : (tensor<4x3x32xf16>, tensor<4x3x32xf16>) -> tensor<4x3x32xf16>
  %var = graph.mean %sq {dims = array<i64: 2>, keepdim = true} : tensor<4x3x32xf16> -> tensor<4x3x1xf16>
  %eps = graph.constant dense<1.0e-05> : tensor<f16>
  %ve = graph.add %var, %eps : (tensor<4x3x1xf16>, tensor<f16>) -> tensor<4x3x1xf16>
  %rs = graph.rsqrt %ve : tensor<4x3x1xf16> -> tensor<4x3x1xf16>
  %n = graph.mul %xc, %rs : (tensor<4x3x32xf16>, tensor<4x3x1xf16>) -> tensor<4x3x32xf16>
  %y = graph.mul %n, %w : (tensor<4x3x32xf16>, tensor<32xf16>) -> tensor<4x3x32xf16>
  func.return %y : tensor<4x3x32xf16>
}
}"""

ELEMENTWISE = """builtin.module {
func.func @main(%x: tensor<5x7xf32>, %b: tensor<7xf32>) -> tensor<7x5xf32> {
  %a = graph.add %x, %b : (tensor<5x7xf32>, tensor<7xf32>) -> tensor<5x7xf32>
  %t = graph.tanh %a : tensor<5x7xf32> -> tensor<5x7xf32>
  %p = graph.permute %t {dims = array<i64: 1, 0>} : tensor<5x7xf32> -> tensor<7x5xf32>
  func.return %p : tensor<7x5xf32>
}
}"""

LONG_ROWS = """builtin.module {
func.func @main(%x: tensor<2x40000xf32>) -> (tensor<2xf32>, tensor<2xi64>) {
  %s = graph.sum %x {dims = array<i64: 1>} : tensor<2x40000xf32> -> tensor<2xf32>
  %i = graph.argmax %x {dims = array<i64: 1>} : tensor<2x40000xf32> -> tensor<2xi64>
  func.return %s, %i : tensor<2xf32>, tensor<2xi64>
}
}"""

# A hand-written kernel-level module whose one kernel reduces over two layouts.
TWO_LAYOUTS = """builtin.module {
func.func @main(%x: tensor<4x6xf32>) -> (tensor<4xf32>, tensor<6xf32>) {
  %a, %b = func.call @kernel_0(%x) : (tensor<4x6xf32>) -> (tensor<4xf32>, tensor<6xf32>)
  func.return %a, %b : tensor<4xf32>, tensor<6xf32>
}
func.func private @kernel_0(%x: tensor<4x6xf32>) -> (tensor<4xf32>, tensor<6xf32>) attributes {irc.kernel} {
  %a = graph.sum %x {dims = array<i64: 1>} : tensor<4x6xf32> -> tensor<4xf32>
  %b = graph.sum %x {dims = array<i64: 0>} : tensor<4x6xf32> -> tensor<6xf32>
  func.return %a, %b : tensor<4xf32>, tensor<6xf32>
}
}"""


def kernel_module(text: str, fuse: bool = True):  # type: ignore[no-untyped-def]
    module, _ = parse_module(text)
    if fuse:
        run_pipeline(module, "fuse")
    return module


def jit_kernels(source: str) -> list[str]:
    return re.findall(r"@triton\.jit\ndef (\w+)\(", source)


def kernel_body(source: str, name: str) -> str:
    match = re.search(rf"def {name}\(.*?(?=\n@triton\.jit|\n# Launch)", source, re.S)
    assert match, f"kernel {name} not in source"
    return match.group(0)


def test_softmax_is_one_persistent_kernel() -> None:
    source = generate_source(kernel_module(SOFTMAX))
    kernels = [k for k in jit_kernels(source) if not k.startswith("_")]
    assert kernels == ["kernel_0"]
    body = kernel_body(source, "kernel_0")
    assert "tl.program_id(0)" in body
    assert "persistent reduction" in body
    assert body.count("tl.load(") == 1  # the row is loaded once
    assert "tl.sum(" in body and "tl.reduce(" in body  # sum and NaN-propagating max
    assert "mask_o" in body and re.search(r"mask_r\d+ = r\d+ < 10", body)
    assert "for " not in body
    assert body.count("tl.store(") == 1


def test_layernorm_is_one_kernel_computing_in_f32() -> None:
    source = generate_source(kernel_module(LAYERNORM))
    assert [k for k in jit_kernels(source) if not k.startswith("_")] == ["kernel_0"]
    body = kernel_body(source, "kernel_0")
    assert body.count("tl.sum(") == 2
    assert ".to(tl.float32)" in body  # f16 loads widen
    assert ".to(tl.float16)" in body  # ... and the store narrows
    assert "tl.rsqrt(" in body
    assert "32 rows" not in body and "12 rows x 32 reduced" in body


def test_pointwise_kernel_has_masked_block_and_index_math() -> None:
    source = generate_source(kernel_module(ELEMENTWISE))
    body = kernel_body(source, "kernel_0")
    assert "offs = pid * XBLOCK + tl.arange(0, XBLOCK)" in body
    assert "mask = offs < 35" in body
    assert re.search(r"tl\.store\(out0 \+ offs, \w+, mask=mask\)", body)
    # the permute decomposes the flat index: x[offs % 5, offs // 5] of the 5x7 input is
    # at 7 * (offs % 5) + offs // 5, which the index algebra writes without the modulo
    assert re.search(r"(\w+) = offs // 5\n\s+(\w+) = offs \* 7 - \1 \* 34\n"
                     r"\s+\w+ = tl\.load\(in0 \+ \2, mask=mask\)", body), body
    assert "_tanh(" in body and "def _tanh(" in source  # helper emitted because used
    assert "def _atan(" not in source  # ... and only then


def test_long_rows_loop_over_the_reduced_dim() -> None:
    module = kernel_module(LONG_ROWS)
    plan = plan_module(module, interpret=False)
    tilings = [k.tiling for p in plan.kernels.values() for k in p.kernels]
    assert tilings and all(not t.persistent for t in tilings)
    source = generate_source(module)
    assert re.search(r"for r_start\d+ in range\(0, 40000, RBLOCK\):", source)
    assert "looped reduction" in source
    assert "acc_idx" in source  # argmax keeps running (value, index) accumulators


def test_kernel_with_two_reduction_layouts_runs_eagerly_and_says_so() -> None:
    module = kernel_module(TWO_LAYOUTS, fuse=False)
    plan = plan_module(module)
    assert plan.kernels["kernel_0"].eager_reason is not None
    source = generate_source(module)
    assert "runs in eager torch" in source
    assert "EAGER['kernel_0']" in source


def test_unfused_graph_level_module_gets_one_kernel_per_op() -> None:
    source = generate_source(kernel_module(SOFTMAX, fuse=False))
    assert len([k for k in jit_kernels(source) if not k.startswith("_")]) == 5


def test_generated_source_is_valid_python_with_host_wrapper() -> None:
    source = generate_source(kernel_module(LAYERNORM))
    tree = ast.parse(source)
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"main", "_launch", "kernel_0"} <= names
    assert "torch.empty((4, 3, 32), dtype=torch.float16, device=_device)" in source
    assert "TILINGS = {" in source


def test_splat_constant_argument_is_inlined_as_a_literal() -> None:
    text = """builtin.module {
func.func @main(%x: tensor<8xf32>) -> tensor<8xf32> {
  %c = graph.constant dense<3.0> : tensor<f32>
  %y = graph.pow %x, %c : (tensor<8xf32>, tensor<f32>) -> tensor<8xf32>
  func.return %y : tensor<8xf32>
}
}"""
    body = kernel_body(generate_source(kernel_module(text)), "kernel_0")
    assert "_pow(" not in body  # x ** 3 with a known exponent is two multiplications
    assert re.search(r"\((\w+) \* \1 \* \1\)", body)


def test_tiling_choices_are_powers_of_two() -> None:
    p = choose_pointwise(1000, interpret=False)
    assert (p.xblock, p.grid) == (1024, 1)
    r = choose_reduction(rows=4096, reduced=768, interpret=False)
    assert r.rblock == 1024 and r.persistent and r.xblock == 1
    small = choose_reduction(rows=4096, reduced=16, interpret=False)
    assert small.xblock > 1 and small.rblock == 16
    looped = choose_reduction(rows=8, reduced=100_000, interpret=False)
    assert not looped.persistent and looped.rblock == 1024
    for t in (p, r, small, looped):
        assert all(c.persistent == t.persistent for c in candidates(t))
        assert all(isinstance(c, Tiling) and c.xblock & (c.xblock - 1) == 0 for c in candidates(t))


@pytest.mark.parametrize("text", [SOFTMAX, LAYERNORM, ELEMENTWISE, LONG_ROWS])
def test_translate_cli_prints_triton(text: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from irc.cli_translate import translate
    path = tmp_path / "m.mlir"
    path.write_text(text)
    out = translate(str(path), "triton")
    assert "@triton.jit" in out and "def main(" in out


def test_weight_transpose_feeding_matmul_is_a_view_not_a_kernel() -> None:
    text = """builtin.module {
func.func @main(%x: tensor<4x8xf32>) -> tensor<4x3xf32> {
  %w = graph.weight "fc.weight" : tensor<3x8xf32>
  %t = graph.permute %w {dims = array<i64: 1, 0>} : tensor<3x8xf32> -> tensor<8x3xf32>
  %y = graph.matmul %x, %t : (tensor<4x8xf32>, tensor<8x3xf32>) -> tensor<4x3xf32>
  %r = graph.relu %y : tensor<4x3xf32> -> tensor<4x3xf32>
  func.return %r : tensor<4x3xf32>
}
}"""
    source = generate_source(kernel_module(text))
    assert ".permute(1, 0)  # kernel_0: a view" in source
    assert "torch.matmul(arg0, " in source
    assert [k for k in jit_kernels(source) if not k.startswith("_")] == ["kernel_1"]


def test_autotuner_picks_the_fastest_skips_failures_and_remembers(monkeypatch, tmp_path) -> None:
    """tune/pick with do_bench replaced by a table of times (no GPU needed)."""
    import triton.testing

    from irc.backends.triton.autotune import Autotuner

    monkeypatch.setenv("IRC_CACHE_DIR", str(tmp_path))  # a fresh disk cache
    t = choose_pointwise(1 << 20, interpret=False)
    cands = candidates(t)
    assert len(cands) >= 3
    times = {c: 5.0 - i for i, c in enumerate(cands)}  # the last candidate is fastest
    failing = cands[-1]
    launched: list[Tiling] = []

    def fake_bench(fn, warmup: int = 0, rep: int = 0) -> float:
        fn()
        if launched[-1] == failing:
            raise RuntimeError("out of shared memory")
        return times[launched[-1]]

    monkeypatch.setattr(triton.testing, "do_bench", fake_bench)
    tuner = Autotuner()
    best = tuner.tune("k" * 64, t, launched.append)
    assert best == cands[-2]  # the fastest that ran
    launched.clear()
    assert tuner.tune("k" * 64, t, launched.append) == best and not launched  # remembered

    ran: list[str] = []
    options = {name: (lambda name=name: ran.append(name)) for name in ("cublas", "triton")}
    monkeypatch.setattr(triton.testing, "do_bench",
                        lambda fn, warmup=0, rep=0: (fn(), {"cublas": 2.0, "triton": 1.0}[ran[-1]])[1])
    assert tuner.pick("p" * 64, options) == "triton"
    ran.clear()
    assert tuner.pick("p" * 64, options) == "triton" and not ran
