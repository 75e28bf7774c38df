"""A concat of a few operands fuses into its kernel (RoPE's rotate_half), on the
CPU (lower-to-loops + LLVM) and in Triton (under TRITON_INTERPRET=1); a wide
concat stays a library call. Both agree with the reference interpreter."""

from __future__ import annotations

import os

if not os.environ.get("TRITON_INTERPRET"):
    os.environ.setdefault("TRITON_INTERPRET", "1")

import warnings  # noqa: E402

import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import irc  # noqa: E402
from irc.backends.llvm.backend import LLVMBackend, LLVMOptions  # noqa: E402
from irc.ir import graph as g  # noqa: E402
from irc.ir.interpreter import interpret  # noqa: E402
from irc.ir.text import parse_module  # noqa: E402
from irc.passes.fuse import find_main, is_extern, kernel_functions  # noqa: E402
from irc.passes.fusion_groups import MAX_FUSED_CONCAT_INPUTS  # noqa: E402
from irc.passes.pipeline import run_pipeline  # noqa: E402


def rope_text(b: int, s: int, d: int) -> str:
    """``x * cos + cat(-x[..., d/2:], x[..., :d/2]) * sin`` on ``[b, s, d]``."""
    h = d // 2
    t, half = f"tensor<{b}x{s}x{d}xf32>", f"tensor<{b}x{s}x{h}xf32>"
    return f"""
func.func @main(%x: {t}, %cos: tensor<{s}x{d}xf32>, %sin: tensor<{s}x{d}xf32>) -> {t} {{
  %hi = graph.slice %x {{dim = 2, start = {h}, end = {d}, step = 1}} : {t} -> {half}
  %lo = graph.slice %x {{dim = 2, start = 0, end = {h}, step = 1}} : {t} -> {half}
  %neg = graph.neg %hi : {half} -> {half}
  %rot = graph.concat %neg, %lo {{dim = 2 : i64}} : ({half}, {half}) -> {t}
  %a = graph.mul %x, %cos : ({t}, tensor<{s}x{d}xf32>) -> {t}
  %r = graph.mul %rot, %sin : ({t}, tensor<{s}x{d}xf32>) -> {t}
  %o = graph.add %a, %r : ({t}, {t}) -> {t}
  func.return %o : {t}
}}
"""


def rope_inputs(b: int, s: int, d: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(b, s, d, generator=gen), torch.randn(s, d, generator=gen),
            torch.randn(s, d, generator=gen)]


def fused(text: str):
    module, _ = parse_module(text, "concat.mlir")
    reference = module.clone()
    run_pipeline(module, "fuse", verify_each=True)
    return module, reference


def run_cpu(module, inputs: list[torch.Tensor]) -> torch.Tensor:
    lowered = module.clone()
    run_pipeline(lowered, "lower-to-loops", verify_each=True)
    return LLVMBackend().compile(lowered, {}, LLVMOptions(cache=False))(*inputs)[0]


def test_rope_is_one_kernel_without_a_library_concat() -> None:
    module, _ = fused(rope_text(2, 8, 16))
    assert len(kernel_functions(module)) == 1
    assert not any(isinstance(op, g.ConcatOp) for op in find_main(module).body.block.ops)
    (kernel,) = kernel_functions(module)
    assert any(isinstance(op, g.ConcatOp) for op in kernel.body.block.ops)


def test_wide_concat_stays_a_library_call() -> None:
    n = MAX_FUSED_CONCAT_INPUTS + 1
    t = "tensor<3x4xf32>"
    args = ", ".join(f"%x{i}: {t}" for i in range(n))
    ops = ", ".join(f"%e{i}" for i in range(n))
    exps = "\n".join(f"  %e{i} = graph.exp %x{i} : {t} -> {t}" for i in range(n))
    text = f"""
func.func @main({args}) -> tensor<{3 * n}x4xf32> {{
{exps}
  %c = graph.concat {ops} {{dim = 0 : i64}} : ({", ".join([t] * n)}) -> tensor<{3 * n}x4xf32>
  %y = graph.tanh %c : tensor<{3 * n}x4xf32> -> tensor<{3 * n}x4xf32>
  func.return %y : tensor<{3 * n}x4xf32>
}}
"""
    module, reference = fused(text)
    concats = [op for op in find_main(module).body.block.ops if isinstance(op, g.ConcatOp)]
    assert len(concats) == 1 and is_extern(concats[0])
    inputs = [torch.randn(3, 4) for _ in range(n)]
    out = run_cpu(module, inputs)
    torch.testing.assert_close(out, interpret(reference, inputs)[0])


@settings(max_examples=15, deadline=None)
@given(b=st.integers(1, 3), s=st.integers(1, 9), half=st.integers(1, 20),
       seed=st.integers(0, 2**16))
def test_fused_rope_on_the_cpu_matches_the_reference(b, s, half, seed) -> None:
    module, reference = fused(rope_text(b, s, 2 * half))
    inputs = rope_inputs(b, s, 2 * half, seed)
    out = run_cpu(module, inputs)
    torch.testing.assert_close(out, interpret(reference, inputs)[0], rtol=1e-6, atol=1e-6)


@settings(max_examples=6, deadline=None)
@given(b=st.integers(1, 2), s=st.integers(1, 5), half=st.integers(1, 9),
       seed=st.integers(0, 2**16))
def test_fused_rope_in_triton_matches_the_reference(b, s, half, seed) -> None:
    from irc.backends.triton.runtime import TritonExecutable
    module, reference = fused(rope_text(b, s, 2 * half))
    inputs = rope_inputs(b, s, 2 * half, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exe = TritonExecutable(module, {}, interpret=True)
        out = exe(*inputs)[0]
    assert "tl.where" in exe.source and "torch.cat" not in exe.source
    torch.testing.assert_close(out, interpret(reference, inputs)[0], rtol=1e-6, atol=1e-6)


def test_concat_with_an_empty_operand_and_of_three() -> None:
    text = """
func.func @main(%x: tensor<4x0xf32>, %y: tensor<4x3xf32>, %z: tensor<4x2xf32>) -> tensor<4x5xf32> {
  %c = graph.concat %x, %y, %z {dim = 1 : i64} : (tensor<4x0xf32>, tensor<4x3xf32>, tensor<4x2xf32>) -> tensor<4x5xf32>
  %o = graph.sigmoid %c : tensor<4x5xf32> -> tensor<4x5xf32>
  func.return %o : tensor<4x5xf32>
}
"""
    module, reference = fused(text)
    inputs = [torch.randn(4, 0), torch.randn(4, 3), torch.randn(4, 2)]
    want = interpret(reference, inputs)[0]
    out = run_cpu(module, inputs)
    torch.testing.assert_close(out, want)
    from irc.backends.triton.runtime import TritonExecutable
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(TritonExecutable(module, {}, interpret=True)(*inputs)[0], want)


def test_gpt_block_rope_fuses_and_matches_eager() -> None:
    from models import MODELS
    model, inputs = MODELS["GPTDecoderBlock"]()
    fast = irc.compile(model, target="cpu")
    with torch.no_grad():
        torch.testing.assert_close(fast(*inputs), model(*inputs), rtol=1e-4, atol=1e-4)
