"""The CPU runtime's per-shape attention form (backends/llvm/attention.py):
the matmul form agrees with torch's fused kernel, only eligible attentions
take part, the measured choice is kept in the compile cache and reused, and a
model run with either form matches eager."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from irc.backends.llvm import attention as A
from irc.cache import CacheConfig
from irc.driver import compile_program
from irc.frontends.capture import export_program
from irc.ir import graph as g


def attention_op(fn, *inputs) -> g.AttentionOp:
    program = export_program(fn, inputs)
    (op,) = [o for o in program.module.walk() if isinstance(o, g.AttentionOp)]
    return op


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(1, 3), heads=st.integers(1, 4), length=st.integers(1, 40),
       keys=st.integers(1, 40), embed=st.sampled_from([4, 16, 32]), scale=st.floats(0.05, 2.0))
def test_matmul_form_agrees_with_the_fused_kernel(batch, heads, length, keys, embed, scale):
    torch.manual_seed(0)
    q = torch.randn(batch, heads, length, embed)
    k, v = torch.randn(batch, heads, keys, embed), torch.randn(batch, heads, keys, embed)
    torch.testing.assert_close(A._matmuls(q, k, v, scale), A._fused4(q, k, v, scale),
                               rtol=1e-5, atol=1e-5)
    # strided inputs (the runtime hands over permuted views)
    qt = q.transpose(1, 2).contiguous().transpose(1, 2)
    torch.testing.assert_close(A._matmuls(qt, k, v, scale), A._fused4(qt, k, v, scale),
                               rtol=1e-5, atol=1e-5)


def test_only_unmasked_non_causal_same_head_float32_attention_is_eligible():
    q, k = torch.randn(2, 4, 8, 16), torch.randn(2, 4, 8, 16)
    assert A.eligible(attention_op(lambda q, k: F.scaled_dot_product_attention(q, k, k), q, k))
    assert not A.eligible(attention_op(
        lambda q, k: F.scaled_dot_product_attention(q, k, k, is_causal=True), q, k))
    mask = torch.randn(8, 8)
    assert not A.eligible(attention_op(
        lambda q, k: F.scaled_dot_product_attention(q, k, k, attn_mask=mask), q, k))
    kv = torch.randn(2, 2, 8, 16)  # grouped-query attention
    assert not A.eligible(attention_op(
        lambda q, k: F.scaled_dot_product_attention(q, k, k, enable_gqa=True), q, kv))


def test_choice_is_measured_once_and_kept_in_the_cache(tmp_path, monkeypatch):
    q = torch.randn(2, 4, 8, 16)
    op = attention_op(lambda q: F.scaled_dot_product_attention(q, q, q), q)
    calls = []

    def fake_measure(*args):
        calls.append(args)
        return {"fused": 2.0, "matmuls": 1.0}
    monkeypatch.setattr(A, "measure", fake_measure)
    cache = CacheConfig(dir=str(tmp_path))
    assert A.choose(op, cache) == "matmuls" and len(calls) == 1
    assert A.choose(op, cache) == "matmuls" and len(calls) == 1  # from the cache
    assert A.choose(op, CacheConfig(enabled=False)) == "matmuls" and len(calls) == 2
    monkeypatch.setattr(A, "measure", lambda *a: {"fused": 1.0, "matmuls": 0.95})
    assert A.choose(op, CacheConfig(enabled=False)) == "fused"  # within the margin: fused


def test_measurement_is_not_skewed_by_torch_dispatch_modes():
    """Under a Python dispatch mode (as during dynamo's compile) both forms are
    still timed as plain torch calls: the mode sees none of their ops."""
    from torch.utils._python_dispatch import TorchDispatchMode
    seen = []

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))
    with Count():
        times = A.measure((1, 2, 8, 16), (1, 2, 8, 16), (1, 2, 8, 16), 0.25)
    assert set(times) == {"fused", "matmuls"} and all(t > 0 for t in times.values())
    assert not seen


@pytest.mark.parametrize("form", ["matmuls", "fused"])
def test_compiled_attention_matches_eager_with_either_form(form, monkeypatch):
    monkeypatch.setattr(A, "choose", lambda op, cache: form)
    w = torch.randn(32, 32)

    def fn(x):
        q, k, v = (x @ w).view(2, 10, 4, 8).transpose(1, 2), x.view(2, 10, 4, 8).transpose(1, 2), \
            (x * 2).view(2, 10, 4, 8).transpose(1, 2)
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 10, 32) + 1

    x = torch.randn(2, 10, 32)
    run = compile_program(export_program(fn, (x,)), "cpu", {"cache.enabled": False})
    torch.testing.assert_close(run(x)[0], fn(x), rtol=1e-4, atol=1e-4)
