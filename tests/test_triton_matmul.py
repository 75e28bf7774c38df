"""The Triton matmul template with fused epilogues (``matmul`` option of the ``cuda`` backend).

Runs under Triton's CPU interpreter (TRITON_INTERPRET=1, set before triton is
imported) on small, ragged shapes; the GPU checks live in test_triton_gpu.py.
Every result is compared with torch eager (or the reference interpreter).
"""

from __future__ import annotations

import os

if "triton" not in __import__("sys").modules:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import warnings  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import irc  # noqa: E402
from irc.backends.triton.autotune import Autotuner  # noqa: E402
from irc.backends.triton.codegen import generate_source, plan_module  # noqa: E402
from irc.backends.triton.codegen_matmul import (  # noqa: E402
    MatmulTiling,
    choose_matmul_tiling,
    matmul_candidates,
)
from irc.backends.triton.runtime import TritonExecutable  # noqa: E402
from irc.errors import IrcError  # noqa: E402
from irc.ir.interpreter import interpret  # noqa: E402
from irc.ir.text import parse_module  # noqa: E402
from irc.passes.pipeline import run_pipeline  # noqa: E402

ON_GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda") if ON_GPU else torch.device("cpu")
TOL = {torch.float32: (1e-4, 1e-4), torch.float16: (1e-2, 1e-2), torch.bfloat16: (5e-2, 5e-2)}
TYPES = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    rtol, atol = TOL[want.dtype]
    assert got.dtype == want.dtype and got.shape == want.shape
    torch.testing.assert_close(got.cpu(), want.cpu(), rtol=rtol, atol=atol)


def compile_fn(fn: Callable[..., torch.Tensor], matmul: str = "triton") -> Callable[..., object]:
    return irc.compile(fn, target="cuda", options={"matmul": matmul, "interpret": not ON_GPU})


def run_ir(text: str, inputs: Sequence[torch.Tensor], matmul: str = "triton"
           ) -> tuple[TritonExecutable, list[torch.Tensor]]:
    """Fuse ``text``, run it with the template, compare with the reference interpreter."""
    module = parse_module(text)[0]
    want = interpret(module, list(inputs))
    run_pipeline(module, "fuse,matmul-epilogues")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy warns about masked-off lanes (interpreter)
        exe = TritonExecutable(module, {}, interpret=not ON_GPU, matmul=matmul)
        got = exe(*[x.to(DEVICE) for x in inputs])
    for g_, w in zip(got, want):
        _close(g_, w)
    return exe, got


def linear_ir(m: int, k: int, n: int, dtype: str = "f32", epilogue: str = "bias_gelu",
              batch: Sequence[int] = ()) -> str:
    """``x[*batch, m, k] @ w[k, n]`` followed by an elementwise epilogue."""
    b = "".join(f"{d}x" for d in batch)
    x, w = f"tensor<{b}{m}x{k}x{dtype}>", f"tensor<{k}x{n}x{dtype}>"
    y = f"tensor<{b}{m}x{n}x{dtype}>"
    bias = f"tensor<{n}x{dtype}>"
    body = [f"%y = graph.matmul %x, %w : ({x}, {w}) -> {y}"]
    if epilogue == "none":
        out = "%y"
    elif epilogue == "bias_gelu":
        body += [f"%z = graph.add %y, %b : ({y}, {bias}) -> {y}",
                 f'%o = graph.gelu %z {{approximate = "tanh"}} : {y} -> {y}']
        out = "%o"
    else:  # residual: relu(y + r) * 0.5
        body += [f"%z = graph.add %y, %r : ({y}, {y}) -> {y}",
                 f"%q = graph.relu %z : {y} -> {y}"]
        out = "%q"
    extra = {"none": "", "bias_gelu": f", %b: {bias}", "residual": f", %r: {y}"}[epilogue]
    lines = "\n  ".join(body)
    return (f"builtin.module {{\nfunc.func @main(%x: {x}, %w: {w}{extra}) -> {y} {{\n  {lines}\n"
            f"  func.return {out} : {y}\n}}\n}}")


def _inputs(text: str, dtype: torch.dtype) -> list[torch.Tensor]:
    main = next(op for op in parse_module(text)[0].ops)
    from irc.ir.types import shape_of
    return [torch.randn(*shape_of(a.type)).to(dtype) for a in main.body.block.args]


def _launches(source: str) -> list[str]:
    main = source[source.index("def main("):]
    return [ln.strip() for ln in main.splitlines()
            if ln.strip().startswith(("_launch(", "_launch_matmul("))]


def _kernel_module(text: str):  # type: ignore[no-untyped-def]
    module = parse_module(text)[0]
    run_pipeline(module, "fuse,matmul-epilogues")
    return module


# ----------------------------------------------------------------------------
# through irc.compile (the frontend's linear/bmm), against torch eager


CASES: dict[str, Callable[..., torch.Tensor]] = {
    "linear_bias": lambda x, w, b, r: F.linear(x, w, b),
    "linear_bias_gelu_erf": lambda x, w, b, r: F.gelu(F.linear(x, w, b)),
    "linear_bias_gelu_tanh": lambda x, w, b, r: F.gelu(F.linear(x, w, b), approximate="tanh"),
    "linear_residual": lambda x, w, b, r: F.linear(x, w) + r,
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("case", sorted(CASES))
def test_linear_epilogues_match_eager(case: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    m, k, n = 7, 33, 20  # ragged: no multiple of any block
    x, w = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
    b = torch.randn(n, dtype=dtype)
    r = torch.randn(m, n, dtype=dtype)
    fn = CASES[case]
    got = compile_fn(fn)(*(t.to(DEVICE) for t in (x, w, b, r)))
    _close(got, fn(x, w, b, r))


def test_linear_3d_input_and_bmm_match_eager() -> None:
    torch.manual_seed(1)
    x, w, b = torch.randn(2, 5, 24), torch.randn(17, 24), torch.randn(17)
    got = compile_fn(lambda x, w, b: torch.relu(F.linear(x, w, b)))(x, w, b)
    _close(got, torch.relu(F.linear(x, w, b)))
    p, q, s = torch.randn(3, 7, 33), torch.randn(3, 33, 9), torch.randn(3, 7, 9)
    fn = lambda p, q, s: torch.bmm(p, q) * 0.5 + s  # noqa: E731
    _close(compile_fn(fn)(p, q, s), fn(p, q, s))


@pytest.mark.skipif(not hasattr(torch, "bfloat16"), reason="no bfloat16")
def test_bf16_linear_matches_eager() -> None:
    torch.manual_seed(2)
    x, w, b = (torch.randn(9, 40).bfloat16(), torch.randn(18, 40).bfloat16(),
               torch.randn(18).bfloat16())
    fn = lambda x, w, b: F.silu(F.linear(x, w, b))  # noqa: E731
    _close(compile_fn(fn)(x, w, b), fn(x, w, b))


def test_cublas_mode_gives_the_library_schedule_and_same_results() -> None:
    torch.manual_seed(3)
    x, w, b = torch.randn(7, 33), torch.randn(20, 33), torch.randn(20)
    fn = lambda x, w, b: F.gelu(F.linear(x, w, b))  # noqa: E731
    _close(compile_fn(fn, "cublas")(x, w, b), fn(x, w, b))
    module = _kernel_module(linear_ir(7, 33, 20))
    source = generate_source(module, matmul="cublas")
    assert "tl.dot" not in source and "torch.matmul(arg0, arg1)" in source
    assert _launches(source) == ["_launch(kernel_0, 'kernel_0', t1, arg2, t2)  # pointwise, grid 1"]


# ----------------------------------------------------------------------------
# the IR path: ragged, batched, broadcast batch dims, dtypes


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (1, 7, 33), (33, 1, 7), (7, 33, 1), (40, 70, 36)])
def test_ragged_shapes(m: int, k: int, n: int) -> None:
    text = linear_ir(m, k, n)
    run_ir(text, _inputs(text, torch.float32))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("epilogue", ["none", "bias_gelu", "residual"])
def test_batched_epilogues_by_dtype(dtype: torch.dtype, epilogue: str) -> None:
    text = linear_ir(9, 17, 12, TYPES[dtype], epilogue, batch=(2, 3))
    run_ir(text, _inputs(text, dtype))


def test_bmm_with_broadcast_batch_dims() -> None:
    text = """builtin.module {
func.func @main(%a: tensor<2x1x5x8xf32>, %b: tensor<3x8x6xf32>) -> tensor<2x3x5x6xf32> {
  %y = graph.matmul %a, %b : (tensor<2x1x5x8xf32>, tensor<3x8x6xf32>) -> tensor<2x3x5x6xf32>
  %z = graph.exp %y : tensor<2x3x5x6xf32> -> tensor<2x3x5x6xf32>
  func.return %z : tensor<2x3x5x6xf32>
}
}"""
    exe, _ = run_ir(text, [torch.randn(2, 1, 5, 8) * 0.3, torch.randn(3, 8, 6) * 0.3])
    assert [s.has_epilogue for s in exe.plan.matmuls] == [True]


@settings(max_examples=12, deadline=None)
@given(m=st.integers(1, 40), k=st.integers(1, 40), n=st.integers(1, 40),
       batch=st.sampled_from([(), (2,), (2, 2)]),
       epilogue=st.sampled_from(["none", "bias_gelu", "residual"]),
       dtype=st.sampled_from([torch.float32, torch.float16]))
def test_hypothesis_shapes(m: int, k: int, n: int, batch: tuple[int, ...], epilogue: str,
                           dtype: torch.dtype) -> None:
    text = linear_ir(m, k, n, TYPES[dtype], epilogue, batch)
    run_ir(text, _inputs(text, dtype))


# ----------------------------------------------------------------------------
# what gets fused (read from the generated source)


def test_epilogue_is_fused_one_launch_fewer() -> None:
    module = _kernel_module(linear_ir(7, 33, 20))
    fused, library = generate_source(module, matmul="triton"), generate_source(module)
    assert "tl.dot(a_blk, b_blk, acc, input_precision=\"ieee\")" in fused
    # library: torch.matmul + the consumer kernel; fused: one template launch
    assert library.split("def main(")[1].count("torch.matmul(") == 1
    assert "torch.matmul" not in fused.split("def main(")[1]
    assert len(_launches(fused)) == len(_launches(library)) == 1
    assert _launches(fused)[0].startswith("_launch_matmul(matmul_0,")
    assert "def kernel_0(" not in fused  # the consumer is the template's epilogue now
    body = fused[fused.index("def matmul_0("):fused.index("def main(")]
    assert "_tanh(" in body and "tl.store(out0" in body and "tl.load(in1 + rn" in body


def test_half_product_is_rounded_before_the_epilogue() -> None:
    fused = generate_source(_kernel_module(linear_ir(8, 16, 8, "f16")), matmul="triton")
    assert "mm = acc.to(tl.float16).to(tl.float32)" in fused
    assert 'input_precision' not in fused  # only float32 operands need ieee precision


def test_transposed_and_reshaped_consumers_fuse() -> None:
    """swap-skinny-matmul's transposed product and a head split (permute+reshape) still fuse."""
    text = """builtin.module {
func.func @main(%w: tensor<12x8xf32>, %x: tensor<8x6xf32>, %b: tensor<12xf32>)
    -> tensor<2x2x3x6xf32> {
  %y = graph.matmul %w, %x : (tensor<12x8xf32>, tensor<8x6xf32>) -> tensor<12x6xf32>
  %t = graph.permute %y {dims = array<i64: 1, 0>} : tensor<12x6xf32> -> tensor<6x12xf32>
  %z = graph.add %t, %b : (tensor<6x12xf32>, tensor<12xf32>) -> tensor<6x12xf32>
  %v = graph.reshape %z : tensor<6x12xf32> -> tensor<2x3x2x6xf32>
  %p = graph.permute %v {dims = array<i64: 0, 2, 1, 3>} : tensor<2x3x2x6xf32> -> tensor<2x2x3x6xf32>
  func.return %p : tensor<2x2x3x6xf32>
}
}"""
    exe, _ = run_ir(text, [torch.randn(12, 8), torch.randn(8, 6), torch.randn(12)])
    assert [s.has_epilogue for s in exe.plan.matmuls] == [True]
    assert not exe.plan.kernels


@pytest.mark.parametrize("consumer", ["softmax", "neighbour", "two_uses"])
def test_unfusible_consumers_stay_separate_and_correct(consumer: str) -> None:
    y = "tensor<6x10xf32>"
    body = {
        "softmax": f"""%m = graph.amax %y {{dims = array<i64: 1>, keepdim = true}}
      : {y} -> tensor<6x1xf32>
  %d = graph.sub %y, %m : ({y}, tensor<6x1xf32>) -> {y}
  %o = graph.exp %d : {y} -> {y}""",
        "neighbour": f"""%f = graph.permute %y {{dims = array<i64: 1, 0>}} : {y} -> tensor<10x6xf32>
  %g = graph.reshape %f : tensor<10x6xf32> -> {y}
  %o = graph.add %g, %y : ({y}, {y}) -> {y}""",
        "two_uses": f"""%e = graph.exp %y : {y} -> {y}
  %s = graph.sum %y {{dims = array<i64: 1>, keepdim = true}} : {y} -> tensor<6x1xf32>
  %o = graph.mul %e, %s : ({y}, tensor<6x1xf32>) -> {y}""",
    }[consumer]
    text = f"""builtin.module {{
func.func @main(%a: tensor<6x9xf32>, %b: tensor<9x10xf32>) -> {y} {{
  %y = graph.matmul %a, %b : (tensor<6x9xf32>, tensor<9x10xf32>) -> {y}
  {body}
  func.return %o : {y}
}}
}}"""
    exe, _ = run_ir(text, [torch.randn(6, 9) * 0.3, torch.randn(9, 10) * 0.3])
    assert [s.has_epilogue for s in exe.plan.matmuls] == [False]  # plain template
    assert exe.plan.kernels  # the consumer is still its own kernel


def test_integer_and_double_matmuls_stay_library_calls() -> None:
    for ty in ("f64", "i32"):
        text = linear_ir(4, 5, 3, ty, "none")
        source = generate_source(_kernel_module(text), matmul="triton")
        assert "tl.dot" not in source and "torch.matmul(arg0, arg1)" in source


def test_auto_source_has_both_schedules_and_interpreter_auto_is_cublas() -> None:
    module = _kernel_module(linear_ir(7, 33, 20))
    auto = generate_source(module, matmul="auto")
    assert "def _matmul_0_cublas():" in auto and "def _matmul_0_triton():" in auto
    assert "= _matmul('matmul_0', _matmul_0_cublas, _matmul_0_triton)" in auto
    assert "def kernel_0(" in auto and "def matmul_0(" in auto
    assert not plan_module(module, interpret=True, matmul="auto").matmuls
    if not ON_GPU:
        exe, _ = run_ir(linear_ir(7, 33, 20), _inputs(linear_ir(7, 33, 20), torch.float32),
                        matmul="auto")
        assert "tl.dot" not in exe.source


def test_translate_cli_shows_the_template(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from irc.cli_translate import translate
    path = tmp_path / "m.mlir"
    path.write_text(linear_ir(7, 33, 20))
    assert "tl.dot" in translate(str(path), "triton", matmul="triton")
    assert "tl.dot" not in translate(str(path), "triton", matmul="cublas")


def test_bad_matmul_option_is_a_config_error() -> None:
    with pytest.raises(IrcError, match="matmul"):
        irc.compile(lambda x: x @ x, target="cuda", options={"matmul": "fast"})(torch.randn(3, 3))


# ----------------------------------------------------------------------------
# decisions


def test_tilings_are_legal_for_tl_dot() -> None:
    for interp in (True, False):
        for m, n, k in [(1, 1, 1), (7, 33, 20), (512, 3072, 768), (4096, 4096, 4096)]:
            t = choose_matmul_tiling(m, n, k, 1, torch.float16, interp)
            for c in matmul_candidates(t):
                assert min(c.block_m, c.block_n, c.block_k) >= 16
                assert c.grid[0] >= 1 and c.grid[1] == 1


def test_autotuner_remembers_json_choices() -> None:
    tuner = Autotuner()
    t = MatmulTiling(8, 8, 8, 1, 16, 16, 16)
    tuner.remember("k" * 64, {"choice": "triton", "tiling": vars(t)})
    assert MatmulTiling(**tuner.recall("k" * 64)["tiling"]) == t
    assert tuner.recall("0" * 64) is None


# ----------------------------------------------------------------------------
# models


@pytest.mark.parametrize("name", ["MLP", "GPTDecoderBlock"])
def test_models_with_the_template_match_eager(name: str) -> None:
    from models import MODELS
    model, inputs = MODELS[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = compile_fn(model)
        got = fast(*(x.to(DEVICE) for x in inputs))
    with torch.no_grad():
        want = model(*inputs)
    torch.testing.assert_close(got.cpu(), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("choice", ["cublas", "triton"])
def test_auto_schedules_both_run_and_agree(choice: str) -> None:
    """The GPU's "auto" source (both closures), run under the interpreter with
    the choice forced: each schedule gives eager's result."""
    from irc.backends.triton.codegen import emit_module
    from irc.backends.triton.runtime import load_source
    text = linear_ir(7, 33, 20, epilogue="residual", batch=(2,))
    inputs = _inputs(text, torch.float32)
    module = _kernel_module(text)
    plan = plan_module(module, interpret=False, matmul="auto")
    generated = load_source(emit_module(plan), interpret=True)
    generated.__dict__.update(_device=torch.device("cpu"), WEIGHTS={}, CONSTANTS=[],
                              HIDDEN={s.name: [] for s in plan.matmuls},
                              MATMUL_CHOICE={"matmul_0": choice})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = generated.main(*inputs)
    want = torch.relu(torch.matmul(inputs[0], inputs[1]) + inputs[2])
    _close(got[0], want)


def test_runtime_auto_choice_without_gpu_is_the_library() -> None:
    module = _kernel_module(linear_ir(7, 33, 20))
    exe = TritonExecutable(module, {}, interpret=True, matmul="triton")
    exe.record_matmul_runs = True
    calls: list[str] = []
    out = exe._matmul("site", lambda: calls.append("cublas") or [1],
                      lambda: calls.append("triton") or [2])
    assert out == [1] and calls == ["cublas"] and exe.matmul_choice["site"] == "cublas"
    assert "site" in exe.matmul_runs


def test_two_outputs_constant_cast_and_transposed_store() -> None:
    text = """builtin.module {
func.func @main(%x: tensor<5x3xf32>, %w: tensor<3x4xf32>) -> (tensor<5x4xf32>, tensor<4x5xf16>) {
  %c = graph.constant dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %y = graph.matmul %x, %w : (tensor<5x3xf32>, tensor<3x4xf32>) -> tensor<5x4xf32>
  %z = graph.mul %y, %c : (tensor<5x4xf32>, tensor<4xf32>) -> tensor<5x4xf32>
  %t = graph.permute %z {dims = array<i64: 1, 0>} : tensor<5x4xf32> -> tensor<4x5xf32>
  %h = graph.cast %t : tensor<4x5xf32> -> tensor<4x5xf16>
  func.return %z, %h : tensor<5x4xf32>, tensor<4x5xf16>
}
}"""
    exe, got = run_ir(text, [torch.randn(5, 3), torch.randn(3, 4)])
    assert [s.has_epilogue for s in exe.plan.matmuls] == [True] and not exe.plan.kernels
    assert [g_.dtype for g_ in got] == [torch.float32, torch.float16]
