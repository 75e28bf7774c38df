"""lower-to-loops on the transformer kernels: splat constants are scalars, the
softmax/layer-norm stash chain (prologue and exp once per element, also through
a trailing reshape), and equivalence with torch eager on random shapes."""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import irc
from irc.backends.llvm.backend import LLVMBackend, LLVMOptions
from irc.ir.text import parse_module, print_module, verify_module
from irc.passes.pipeline import run_pipeline

OPTIONS = LLVMOptions(cache=False)


def attention_softmax(b: int, h: int, s: int, t: int, scale: float, mask: str) -> str:
    """``softmax(scores / scale + bias)`` on ``[b*h, s, t]`` scores, as the frontend
    writes it for BERT: the scores are viewed as ``[b, h, s, t]``, the padding mask
    ``[b, t]`` selects -inf or a splat 0.0 bias of shape ``[b, 1, 1, t]``."""
    f = "xf32"
    four, row, bias = f"tensor<{b}x{h}x{s}x{t}{f}>", f"tensor<{b}x{h}x{s}x1{f}>", \
        f"tensor<{b}x1x1x{t}{f}>"
    flat = f"tensor<{b * h}x{s}x{t}{f}>"
    if mask == "padding":
        args = f"%scores: {flat}, %mask: tensor<{b}x{t}xi1>"
        masked = f"""
  %ninf = graph.constant dense<0xFF800000> : tensor<f32>
  %zero = graph.constant dense<0.0> : {bias}
  %m4 = graph.reshape %mask : tensor<{b}x{t}xi1> -> tensor<{b}x1x1x{t}xi1>
  %bias = graph.where %m4, %ninf, %zero : (tensor<{b}x1x1x{t}xi1>, tensor<f32>, {bias}) -> {bias}
  %p = graph.add %div, %bias : ({four}, {bias}) -> {four}"""
    else:
        args = f"%scores: {flat}"
        masked = f"""
  %p = graph.add %div, %div : ({four}, {four}) -> {four}"""
    return f"""
func.func @main({args}) -> {flat} {{
  %c = graph.constant dense<{scale!r}> : tensor<f32>
  %view = graph.reshape %scores : {flat} -> {four}
  %div = graph.div %view, %c : ({four}, tensor<f32>) -> {four}{masked}
  %mx = graph.amax %p {{dims = array<i64: 3>, keepdim = true}} : {four} -> {row}
  %sub = graph.sub %p, %mx : ({four}, {row}) -> {four}
  %e = graph.exp %sub : {four} -> {four}
  %sum = graph.sum %e {{dims = array<i64: 3>, keepdim = true}} : {four} -> {row}
  %o = graph.div %e, %sum : ({four}, {row}) -> {four}
  %out = graph.reshape %o : {four} -> {flat}
  func.return %out : {flat}
}}
"""


def lower(text: str) -> tuple[object, str]:
    module, source_map = parse_module(text, "attention.mlir")
    verify_module(module, source_map)
    run_pipeline(module, "fuse,lower-to-loops", verify_each=True)
    return module, print_module(module)


def kernels(text: str) -> list[str]:
    starts = [m.start() for m in re.finditer(r"func.func @kernel_", text)]
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)])]


def padding_inputs(b: int, h: int, s: int, t: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(b * h, s, t, generator=gen) * 4
    mask = torch.rand(b, t, generator=gen) < 0.3
    mask[:, 0] = False  # at least one visible key per row (else eager gives NaN too)
    return [scores, mask]


def eager_padding(scores: torch.Tensor, mask: torch.Tensor, b: int, h: int, scale: float):
    s, t = scores.shape[1:]
    bias = torch.zeros(b, 1, 1, t).masked_fill(mask.view(b, 1, 1, t), float("-inf"))
    return torch.softmax(scores.view(b, h, s, t) / scale + bias, -1).view(b * h, s, t)


def test_splat_constant_is_a_scalar_not_an_alloca() -> None:
    module, text = lower(attention_softmax(4, 2, 8, 128, 5.656854152679443, "padding"))
    (kernel,) = kernels(text)
    assert "memref.alloca" not in kernel and "memref.alloc" not in kernel
    assert "arith.constant 0.000000e+00 : f32" in kernel
    # no stores outside the loop nest: the kernel is marked parallel
    body = kernel[:kernel.index("scf.for")]
    assert "memref.store" not in body
    assert "irc.parallel" in kernel


def test_non_uniform_constant_still_a_buffer() -> None:
    # a constant with two distinct values inside a kernel is not a splat: a small buffer
    t = "tensor<3x4xf32>"
    text = f"""
func.func @main(%x: {t}) -> {t} {{
  %r = func.call @kernel_0(%x) : ({t}) -> {t}
  func.return %r : {t}
}}
func.func private @kernel_0(%x: {t}) -> {t} attributes {{irc.kernel}} {{
  %c = graph.constant dense<[1.0, 1.0, 2.0, 1.0]> : tensor<4xf32>
  %z = graph.constant dense<[0.5, 0.5, 0.5, 0.5]> : tensor<4xf32>
  %y = graph.add %x, %c : ({t}, tensor<4xf32>) -> {t}
  %w = graph.mul %y, %z : ({t}, tensor<4xf32>) -> {t}
  func.return %w : {t}
}}
"""
    module, source_map = parse_module(text, "k.mlir")
    verify_module(module, source_map)
    run_pipeline(module, "lower-to-loops", verify_each=True)
    loops = print_module(module)
    assert loops.count("memref.alloca") == 1  # the splat 0.5 is a scalar
    assert "arith.constant 5.000000e-01 : f32" in loops
    x = torch.randn(3, 4)
    out = LLVMBackend().compile(module, {}, OPTIONS)(x)[0]
    assert torch.equal(out, (x + torch.tensor([1.0, 1.0, 2.0, 1.0])) * 0.5)


def test_stash_chain_through_trailing_reshape() -> None:
    b, h, s, t, scale = 2, 2, 8, 64, 5.656854152679443
    module, text = lower(attention_softmax(b, h, s, t, scale, "padding"))
    (kernel,) = kernels(text)
    # the prologue (x / scale + bias) and exp run once per element
    assert kernel.count("math.exp") == 1
    assert kernel.count("arith.divf") == 2  # x / scale, and 1 / sum once per row
    # the max loop stores the prologue, the sum loop its exp, the final loop the result
    assert kernel.count("memref.store") == 3
    inputs = padding_inputs(b, h, s, t, 0)
    out = LLVMBackend().compile(module, {}, OPTIONS)(*inputs)[0]
    ref = eager_padding(*inputs, b, h, scale)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_reshape_changing_last_dim_is_not_looked_through() -> None:
    # the output is flattened: a row of the softmax is not a row of the output loop
    text = """
func.func @main(%x: tensor<6x16xf32>) -> tensor<96xf32> {
  %mx = graph.amax %x {dims = array<i64: 1>, keepdim = true} : tensor<6x16xf32> -> tensor<6x1xf32>
  %sub = graph.sub %x, %mx : (tensor<6x16xf32>, tensor<6x1xf32>) -> tensor<6x16xf32>
  %e = graph.exp %sub : tensor<6x16xf32> -> tensor<6x16xf32>
  %sum = graph.sum %e {dims = array<i64: 1>, keepdim = true} : tensor<6x16xf32> -> tensor<6x1xf32>
  %o = graph.div %e, %sum : (tensor<6x16xf32>, tensor<6x1xf32>) -> tensor<6x16xf32>
  %flat = graph.reshape %o : tensor<6x16xf32> -> tensor<96xf32>
  func.return %flat : tensor<96xf32>
}
"""
    module, loops = lower(text)
    x = torch.randn(6, 16)
    out = LLVMBackend().compile(module, {}, OPTIONS)(x)[0]
    torch.testing.assert_close(out, torch.softmax(x, -1).reshape(-1), rtol=1e-5, atol=1e-6)


def test_prologue_read_by_the_final_loop_is_not_stashed() -> None:
    # o = softmax(p) + p reads p in the final loop, after exp(p - max) overwrote it
    text = """
func.func @main(%x: tensor<8x32xf32>) -> tensor<8x32xf32> {
  %p = graph.mul %x, %x : (tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<8x32xf32>
  %mx = graph.amax %p {dims = array<i64: 1>, keepdim = true} : tensor<8x32xf32> -> tensor<8x1xf32>
  %sub = graph.sub %p, %mx : (tensor<8x32xf32>, tensor<8x1xf32>) -> tensor<8x32xf32>
  %e = graph.exp %sub : tensor<8x32xf32> -> tensor<8x32xf32>
  %sum = graph.sum %e {dims = array<i64: 1>, keepdim = true} : tensor<8x32xf32> -> tensor<8x1xf32>
  %o = graph.div %e, %sum : (tensor<8x32xf32>, tensor<8x1xf32>) -> tensor<8x32xf32>
  %r = graph.add %o, %p : (tensor<8x32xf32>, tensor<8x32xf32>) -> tensor<8x32xf32>
  func.return %r : tensor<8x32xf32>
}
"""
    module, loops = lower(text)
    (kernel,) = kernels(loops)
    assert kernel.count("math.exp") == 1  # e is still stashed; p is not
    assert kernel.count("memref.store") == 2
    x = torch.randn(8, 32)
    out = LLVMBackend().compile(module, {}, OPTIONS)(x)[0]
    p = x * x
    torch.testing.assert_close(out, torch.softmax(p, -1) + p, rtol=1e-5, atol=1e-5)


def test_layer_norm_stashes_its_input_sum() -> None:
    text = """
func.func @main(%x: tensor<16x64xf32>, %y: tensor<16x64xf32>, %w: tensor<64xf32>) -> tensor<16x64xf32> {
  %n = graph.constant dense<64.0> : tensor<f32>
  %eps = graph.constant dense<1.0e-05> : tensor<f32>
  %a = graph.add %x, %y : (tensor<16x64xf32>, tensor<16x64xf32>) -> tensor<16x64xf32>
  %mean = graph.mean %a {dims = array<i64: 1>, keepdim = true} : tensor<16x64xf32> -> tensor<16x1xf32>
  %d = graph.sub %a, %mean : (tensor<16x64xf32>, tensor<16x1xf32>) -> tensor<16x64xf32>
  %sq = graph.mul %d, %d : (tensor<16x64xf32>, tensor<16x64xf32>) -> tensor<16x64xf32>
  %ss = graph.sum %sq {dims = array<i64: 1>, keepdim = true} : tensor<16x64xf32> -> tensor<16x1xf32>
  %var = graph.div %ss, %n : (tensor<16x1xf32>, tensor<f32>) -> tensor<16x1xf32>
  %ve = graph.add %var, %eps : (tensor<16x1xf32>, tensor<f32>) -> tensor<16x1xf32>
  %rs = graph.rsqrt %ve : tensor<16x1xf32> -> tensor<16x1xf32>
  %nrm = graph.mul %d, %rs : (tensor<16x64xf32>, tensor<16x1xf32>) -> tensor<16x64xf32>
  %o = graph.mul %nrm, %w : (tensor<16x64xf32>, tensor<64xf32>) -> tensor<16x64xf32>
  func.return %o : tensor<16x64xf32>
}
"""
    module, loops = lower(text)
    (kernel,) = kernels(loops)
    # x and y are read once (by the mean loop, which stores x + y into the output)
    assert len(re.findall(r"memref.load %0\[", kernel)) == 1
    assert len(re.findall(r"memref.load %1\[", kernel)) == 1
    x, y, w = torch.randn(16, 64), torch.randn(16, 64), torch.randn(64)
    out = LLVMBackend().compile(module, {}, OPTIONS)(x, y, w)[0]
    ref = torch.nn.functional.layer_norm(x + y, (64,), eps=1e-5) * w
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(b=st.integers(1, 3), h=st.integers(1, 3), s=st.integers(1, 9), t=st.integers(2, 70),
       scale=st.sampled_from([1.0, 2.0, math.sqrt(32.0), 0.37]), seed=st.integers(0, 2**16))
def test_masked_attention_softmax_matches_eager(b, h, s, t, scale, seed) -> None:
    module, text = lower(attention_softmax(b, h, s, t, scale, "padding"))
    assert "memref.alloca" not in text
    inputs = padding_inputs(b, h, s, t, seed)
    out = LLVMBackend().compile(module, {}, OPTIONS)(*inputs)[0]
    torch.testing.assert_close(out, eager_padding(*inputs, b, h, scale), rtol=1e-5, atol=1e-6)


class MaskedSoftmax(torch.nn.Module):
    """BERT's padding-masked and GPT's causal-masked attention probabilities."""

    def __init__(self, causal: bool) -> None:
        super().__init__()
        self.causal = causal

    def forward(self, q: torch.Tensor, k: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        b, h, s, d = q.shape
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        if self.causal:
            causal = torch.ones(s, s, dtype=torch.bool).triu(1)
            scores = scores.masked_fill(causal, float("-inf"))
        bias = torch.zeros(b, 1, 1, s).masked_fill(pad[:, None, None, :], float("-inf"))
        return torch.softmax(scores + bias, dim=-1).reshape(b * h, s, s)


@pytest.mark.parametrize("causal", [False, True], ids=["padding", "causal"])
@settings(max_examples=4, deadline=None)
@given(b=st.integers(1, 2), h=st.integers(1, 3), s=st.integers(2, 40), d=st.sampled_from([4, 8]),
       seed=st.integers(0, 2**16))
def test_compiled_attention_softmax_matches_eager(causal, b, h, s, d, seed) -> None:
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(b, h, s, d, generator=gen), torch.randn(b, h, s, d, generator=gen)
    pad = torch.rand(b, s, generator=gen) < 0.3
    pad[:, 0] = False
    model = MaskedSoftmax(causal)
    fast = irc.compile(model, target="cpu")
    with torch.no_grad():
        torch.testing.assert_close(fast(q, k, pad), model(q, k, pad), rtol=1e-5, atol=1e-6)


def transpose_kernel(b: int, s: int, h: int, d: int) -> str:
    """BERT's key projection epilogue: bias add, view as heads, transpose for q @ k^T."""
    t_in, four = f"tensor<{b * s}x{h * d}xf32>", f"tensor<{b}x{s}x{h}x{d}xf32>"
    perm, out = f"tensor<{b}x{h}x{d}x{s}xf32>", f"tensor<{b * h}x{d}x{s}xf32>"
    return f"""
func.func @main(%x: {t_in}, %bias: tensor<{h * d}xf32>) -> {out} {{
  %a = graph.add %x, %bias : ({t_in}, tensor<{h * d}xf32>) -> {t_in}
  %v = graph.reshape %a : {t_in} -> {four}
  %p = graph.permute %v {{dims = array<i64: 0, 2, 3, 1>}} : {four} -> {perm}
  %o = graph.reshape %p : {perm} -> {out}
  func.return %o : {out}
}}
"""


def test_transpose_is_tiled() -> None:
    b, s, h, d = 2, 64, 4, 32
    module, text = lower(transpose_kernel(b, s, h, d))
    (kernel,) = kernels(text)
    assert kernel.count("scf.for") == 4  # b*h, s // 16, d, s % 16
    assert "arith.constant 16 : index" in kernel
    x, bias = torch.randn(b * s, h * d), torch.randn(h * d)
    out = LLVMBackend().compile(module, {}, OPTIONS)(x, bias)[0]
    ref = (x + bias).view(b, s, h, d).permute(0, 2, 3, 1).reshape(b * h, d, s)
    assert torch.equal(out, ref)


@settings(max_examples=15, deadline=None)
@given(b=st.integers(1, 3), s=st.sampled_from([16, 32, 48, 64, 80, 33, 7]),
       h=st.integers(1, 4), d=st.sampled_from([16, 32, 5, 17]))
def test_transpose_matches_eager(b, s, h, d) -> None:
    module, _ = lower(transpose_kernel(b, s, h, d))
    x, bias = torch.randn(b * s, h * d), torch.randn(h * d)
    out = LLVMBackend().compile(module, {}, OPTIONS)(x, bias)[0]
    assert torch.equal(out, (x + bias).view(b, s, h, d).permute(0, 2, 3, 1).reshape(b * h, d, s))
