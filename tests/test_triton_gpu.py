"""The ``cuda`` backend on a real GPU: compiled kernels (not the interpreter),
autotuning, CUDA graphs, device checks. Skipped without a CUDA device."""

from __future__ import annotations

import os
import warnings

import pytest
import torch

pytestmark = pytest.mark.gpu

if not torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1":
    pytest.skip("needs a CUDA device (and TRITON_INTERPRET unset)", allow_module_level=True)

import irc  # noqa: E402
from irc.backends.triton.runtime import TritonExecutable  # noqa: E402
from irc.ir.text import parse_module  # noqa: E402
from irc.passes.pipeline import run_pipeline  # noqa: E402

SOFTMAX = """builtin.module {
func.func @main(%x: tensor<512x1000xf16>) -> tensor<512x1000xf16> {
  %m = graph.amax %x {dims = array<i64: 1>, keepdim = true} : tensor<512x1000xf16> -> tensor<512x1xf16>
  %d = graph.sub %x, %m : (tensor<512x1000xf16>, tensor<512x1xf16>) -> tensor<512x1000xf16>
  %e = graph.exp %d : tensor<512x1000xf16> -> tensor<512x1000xf16>
  %s = graph.sum %e {dims = array<i64: 1>, keepdim = true} : tensor<512x1000xf16> -> tensor<512x1xf16>
  %y = graph.div %e, %s : (tensor<512x1000xf16>, tensor<512x1xf16>) -> tensor<512x1000xf16>
  func.return %y : tensor<512x1000xf16>
}
}"""


def _exe(text: str, **options: object) -> TritonExecutable:
    module = parse_module(text)[0]
    run_pipeline(module, "fuse,matmul-epilogues")
    return TritonExecutable(module, {}, **options)


def test_softmax_f16_compiled_kernel_matches_torch() -> None:
    exe = _exe(SOFTMAX, autotune=False)
    assert not exe.interpret
    x = torch.randn(512, 1000, device="cuda", dtype=torch.float16) * 4
    torch.testing.assert_close(exe(x)[0], torch.softmax(x.float(), -1).half(), rtol=2e-3, atol=2e-3)


def test_autotune_keeps_a_valid_choice_and_results() -> None:
    text = SOFTMAX.replace("512x", "8192x").replace("512x1", "8192x1")
    exe = _exe(text, autotune=True)
    x = torch.randn(8192, 1000, device="cuda", dtype=torch.float16)
    want = torch.softmax(x.float(), -1).half()
    torch.testing.assert_close(exe(x)[0], want, rtol=2e-3, atol=2e-3)
    assert exe._tuned  # the large kernel was tuned on its first launch
    torch.testing.assert_close(exe(x)[0], want, rtol=2e-3, atol=2e-3)


def test_long_row_looped_reduction_on_gpu() -> None:
    text = """builtin.module {
func.func @main(%x: tensor<16x300000xf32>) -> (tensor<16xf32>, tensor<16xi64>) {
  %s = graph.sum %x {dims = array<i64: 1>} : tensor<16x300000xf32> -> tensor<16xf32>
  %i = graph.argmax %x {dims = array<i64: 1>} : tensor<16x300000xf32> -> tensor<16xi64>
  func.return %s, %i : tensor<16xf32>, tensor<16xi64>
}
}"""
    exe = _exe(text)
    x = torch.rand(16, 300000, device="cuda")
    s, i = exe(x)
    torch.testing.assert_close(s, x.sum(1), rtol=1e-4, atol=1e-2)
    assert torch.equal(i, x.argmax(1))


def test_cuda_graphs_replay_gives_fresh_results() -> None:
    exe = _exe(SOFTMAX, cuda_graphs=True, autotune=False)
    for _ in range(3):
        x = torch.randn(512, 1000, device="cuda", dtype=torch.float16)
        torch.testing.assert_close(exe(x)[0], torch.softmax(x.float(), -1).half(),
                                   rtol=2e-3, atol=2e-3)


def test_cpu_tensor_is_rejected_on_gpu() -> None:
    exe = _exe(SOFTMAX, autotune=False)
    with pytest.raises(irc.InputMismatchError, match="cuda"):
        exe(torch.randn(512, 1000, dtype=torch.float16))


def test_models_on_gpu() -> None:
    from models import MODELS
    for name, factory in MODELS.items():
        model, inputs = factory()
        model = model.cuda()
        inputs = tuple(x.cuda() for x in inputs)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = model(*inputs)
            got = irc.compile(model, target="cuda")(*inputs)
        # TF32 matmuls may differ slightly from eager's
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3, msg=lambda m, n=name: f"{n}: {m}")


# ----------------------------------------------------------------------------
# the matmul template (codegen_matmul): realistic shapes against cuBLAS


def _linear_gelu(m: int, k: int, n: int, ty: str) -> str:
    x, w, y, b = (f"tensor<{m}x{k}x{ty}>", f"tensor<{k}x{n}x{ty}>", f"tensor<{m}x{n}x{ty}>",
                  f"tensor<{n}x{ty}>")
    return f"""builtin.module {{
func.func @main(%x: {x}, %w: {w}, %b: {b}, %r: {y}) -> {y} {{
  %y = graph.matmul %x, %w : ({x}, {w}) -> {y}
  %z = graph.add %y, %b : ({y}, {b}) -> {y}
  %g = graph.gelu %z {{approximate = "tanh"}} : {y} -> {y}
  %o = graph.add %g, %r : ({y}, {y}) -> {y}
  func.return %o : {y}
}}
}}"""


MATMUL_TOL = {torch.float32: (1e-4, 1e-4), torch.float16: (1e-2, 1e-2),
              torch.bfloat16: (3e-2, 3e-2)}
MATMUL_TYPES = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}


def _linear_inputs(m: int, k: int, n: int, dtype: torch.dtype) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randn(m, k, device="cuda", dtype=dtype),
            (torch.randn(k, n, device="cuda") / k ** 0.5).to(dtype),
            torch.randn(n, device="cuda", dtype=dtype),
            torch.randn(m, n, device="cuda", dtype=dtype)]


def _linear_want(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
                 r: torch.Tensor) -> torch.Tensor:
    """Eager torch; float32 in float64 (independent of any TF32 setting)."""
    if x.dtype == torch.float32:
        return _linear_want(x.double(), w.double(), b.double(), r.double()).float()
    return torch.nn.functional.gelu(torch.matmul(x, w) + b, approximate="tanh") + r


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("m,k,n", [(512, 768, 3072), (512, 3072, 768), (77, 300, 129)])
def test_matmul_template_matches_torch(m: int, k: int, n: int, dtype: torch.dtype) -> None:
    exe = _exe(_linear_gelu(m, k, n, MATMUL_TYPES[dtype]), matmul="triton", autotune=False)
    assert [s.has_epilogue for s in exe.plan.matmuls] == [True]
    assert "tl.dot" in exe.source and not exe.plan.kernels  # one fused launch
    inputs = _linear_inputs(m, k, n, dtype)
    rtol, atol = MATMUL_TOL[dtype]
    torch.testing.assert_close(exe(*inputs)[0], _linear_want(*inputs), rtol=rtol, atol=atol)


def test_matmul_template_autotuned_tiling_agrees() -> None:
    exe = _exe(_linear_gelu(512, 768, 3072, "f16"), matmul="triton", autotune=True)
    inputs = _linear_inputs(512, 768, 3072, torch.float16)
    want = _linear_want(*inputs)
    for _ in range(2):
        torch.testing.assert_close(exe(*inputs)[0], want, rtol=1e-2, atol=1e-2)
    assert "matmul_0" in exe._tuned


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_matmul_auto_picks_a_schedule_and_agrees(dtype: torch.dtype) -> None:
    exe = _exe(_linear_gelu(512, 768, 3072, MATMUL_TYPES[dtype]), matmul="auto")
    inputs = _linear_inputs(512, 768, 3072, dtype)
    want = _linear_want(*inputs)
    rtol, atol = MATMUL_TOL[dtype]
    torch.testing.assert_close(exe(*inputs)[0], want, rtol=rtol, atol=atol)
    assert exe.matmul_choice["matmul_0"] in ("cublas", "triton")
    torch.testing.assert_close(exe(*inputs)[0], want, rtol=rtol, atol=atol)


def test_models_with_matmul_template_on_gpu() -> None:
    from models import MODELS
    for name in ("MLP", "GPTDecoderBlock", "BERTEncoderBlock"):
        model, inputs = MODELS[name]()
        model = model.cuda()
        inputs = tuple(x.cuda() for x in inputs)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = model(*inputs)
            for mode in ("triton", "auto"):
                got = irc.compile(model, target="cuda", options={"matmul": mode})(*inputs)
                torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3,
                                           msg=lambda m, n=name, k=mode: f"{n} {k}: {m}")
