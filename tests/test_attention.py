"""``graph.attention``: inference attention is one library call.

The importer turns ``F.scaled_dot_product_attention`` into ``graph.attention``
when no backward needs its logsumexp, and spells it out (scores, softmax,
matmul) when one does; every backend matches eager on random shapes, masks and
scales; training through attention still gets eager's gradients.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import irc
from irc.driver import compile_program
from irc.errors import VerificationError
from irc.frontends.capture import export_program
from irc.ir import graph as g
from irc.ir.text import parse_module, verify_module

NO_CACHE = {"cache.enabled": False}


def attention_ops(program) -> list[g.AttentionOp]:
    return [op for op in program.module.walk() if isinstance(op, g.AttentionOp)]


def attention_case(batch: tuple[int, int], length: int, keys: int, embed: int, value_embed: int,
                   kind: str, scale: float | None):
    """(fn, (q, k, v)): torch's fused attention takes [batch, heads, L, E]."""
    if kind == "causal":
        keys = length  # torch's causal mask is the top-left triangle of [L, S]
    torch.manual_seed(length * 31 + keys)
    q = torch.randn(*batch, length, embed)
    k = torch.randn(*batch, keys, embed)
    v = torch.randn(*batch, keys, value_embed)
    mask = torch.randn(length, keys) if kind == "float-mask" else None

    def fn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=kind == "causal",
                                              scale=scale)
    return fn, (q, k, v)


@settings(max_examples=10, deadline=None)
@given(batch=st.tuples(st.integers(1, 3), st.integers(1, 3)), length=st.integers(1, 9),
       keys=st.integers(1, 9), embed=st.integers(1, 8),
       kind=st.sampled_from(["none", "causal", "float-mask"]), scale=st.none() | st.floats(0.1, 2))
def test_random_attention_matches_eager(batch, length, keys, embed, kind, scale) -> None:
    # (torch's fused kernel, and so graph.attention, has one head size for q/k and v)
    fn, inputs = attention_case(batch, length, keys, embed, embed, kind, scale)
    program = export_program(fn, inputs)
    assert len(attention_ops(program)) == 1
    for target in ("cpu", "reference"):
        run = compile_program(program, target, NO_CACHE)
        torch.testing.assert_close(run(*inputs)[0], fn(*inputs), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["causal", "float-mask"])
def test_triton_backend_runs_attention(kind: str) -> None:
    pytest.importorskip("triton")
    fn, inputs = attention_case((2, 3), 6, 5, 4, 4, kind, None)
    program = export_program(fn, inputs)
    run = compile_program(program, "cuda", NO_CACHE)
    torch.testing.assert_close(run(*inputs)[0], fn(*inputs), rtol=1e-4, atol=1e-5)


def test_gpt_block_inference_uses_one_attention_call() -> None:
    from models import MODELS
    model, inputs = MODELS["GPTDecoderBlock"]()
    program = export_program(model, inputs)
    (op,) = attention_ops(program)
    assert op.is_causal is not None
    names = {o.name for o in program.module.walk()}
    assert "graph.exp" not in names  # no spelled-out softmax
    with torch.no_grad():
        expected = model(*inputs)
    torch.testing.assert_close(irc.compile(model, target="cpu")(*inputs), expected,
                               rtol=1e-4, atol=1e-4)


def test_training_through_attention_matches_eager_gradients() -> None:
    torch.manual_seed(0)
    proj = torch.nn.Linear(8, 24)

    def fn(x: torch.Tensor) -> torch.Tensor:
        q, k, v = proj(x).view(2, 5, 3, 8).unbind(2)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True).square().sum()

    x = torch.randn(2, 5, 8, requires_grad=True)
    irc.compile(fn, target="cpu")(x).backward()
    got = [x.grad.clone(), *(p.grad.clone() for p in proj.parameters())]
    x.grad = None
    proj.zero_grad()
    fn(x).backward()
    want = [x.grad, *(p.grad for p in proj.parameters())]
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("body,message", [
    ("%o = graph.attention %q, %k, %v {scale = 0.5 : f64} : (tensor<2x4x8xf32>, tensor<2x5x8xf32>, "
     "tensor<2x6x8xf32>) -> tensor<2x4x8xf32>", "sequence sizes disagree"),
    ("%o = graph.attention %q, %k, %k {scale = 0.5 : f64} : (tensor<2x4x8xf32>, tensor<2x5x8xf32>, "
     "tensor<2x5x8xf32>) -> tensor<2x4x5xf32>", "result shape"),
    ("%o = graph.attention %q, %k, %k, %m {scale = 0.5 : f64} : (tensor<2x4x8xf32>, "
     "tensor<2x5x8xf32>, tensor<2x5x8xf32>, tensor<3x5xf32>) -> tensor<2x4x8xf32>",
     "does not broadcast"),
])
def test_verifier_names_the_mismatch(body: str, message: str) -> None:
    text = ("func.func @main(%q: tensor<2x4x8xf32>, %k: tensor<2x5x8xf32>, %v: tensor<2x6x8xf32>, "
            "%m: tensor<3x5xf32>) {\n  " + body + "\n  func.return\n}\n")
    module, source_map = parse_module(text, "attention.mlir")
    with pytest.raises(VerificationError, match=message):
        verify_module(module, source_map)


@settings(max_examples=4, deadline=None)
@given(kv_heads=st.sampled_from([1, 2]), group=st.sampled_from([2, 3]), causal=st.booleans(),
       length=st.integers(1, 9))
def test_grouped_query_attention_trains_like_eager(kv_heads: int, group: int, causal: bool,
                                                   length: int) -> None:
    """Fewer key/value heads than query heads (``enable_gqa``, as Qwen2 and
    Llama 3 use): the forward and all three gradients match eager, strict."""
    torch.manual_seed(length)
    heads = kv_heads * group
    q = torch.randn(2, heads, length, 8, requires_grad=True)
    k = torch.randn(2, kv_heads, length, 8, requires_grad=True)
    v = torch.randn(2, kv_heads, length, 8, requires_grad=True)

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)

    fn = irc.compile(attend, strict=True)
    out = fn(q, k, v)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), grad)
    expect_out = attend(q, k, v)
    expect = torch.autograd.grad(expect_out, (q, k, v), grad)
    torch.testing.assert_close(out, expect_out, rtol=1e-5, atol=1e-5)
    for a, b in zip(got, expect):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert fn.irc_stats.graphs == 2  # a forward and a backward graph compiled
