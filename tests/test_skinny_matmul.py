"""The ``swap-skinny-matmul`` pass: small-batch linear layers multiply transposed.

Meaning is kept on random linear chains (reference interpreter and the CPU
backend against eager), the weight becomes the left operand exactly where the
pass says (few rows, a transposed right operand), chains stay transposed with
no permute between layers, and ``max-rows`` is honoured.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from irc.driver import compile_program
from irc.frontends.capture import export_program
from irc.ir import graph as g
from irc.ir.interpreter import interpret
from irc.ir.types import shape_of
from irc.passes.pipeline import run_pipeline

NO_CACHE = {"cache.enabled": False}


def matmuls(module) -> list[g.MatmulOp]:
    return [op for op in module.walk() if isinstance(op, g.MatmulOp)]


def mlp(rows: int, widths: list[int], bias: bool = True) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(rows + sum(widths))
    layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b, bias=bias), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).eval(), torch.randn(rows, widths[0])


def test_linear_layers_take_the_weight_on_the_left() -> None:
    model, x = mlp(8, [16, 64, 64, 32])
    program = export_program(model, (x,))
    expected = interpret(program.module, [x], program.weights)
    run_pipeline(program.module, "swap-skinny-matmul", verify_each=True)
    ops = matmuls(program.module)
    assert len(ops) == 3
    for op in ops:
        assert isinstance(op.lhs.owner, g.WeightOp)  # the [N, K] weight as it is
        assert shape_of(op.result.type)[1] == 8  # [N, M]
    torch.testing.assert_close(interpret(program.module, [x], program.weights)[0], expected[0],
                               rtol=1e-5, atol=1e-5)
    # layer -> layer: after fusion the bias/relu kernel reads and writes the
    # transposed [N, M] activations that the next matmul takes as they are
    run_pipeline(program.module, "fuse", verify_each=True)
    from xdsl.dialects import func
    for op in matmuls(program.module)[1:]:
        assert isinstance(op.rhs.owner, func.CallOp)
        assert shape_of(op.rhs.type) == (shape_of(op.lhs.type)[1], 8)


@pytest.mark.parametrize("rows,max_rows,swapped", [(8, 256, True), (300, 256, False),
                                                    (8, 4, False), (64, 64, True)])
def test_max_rows_is_honoured(rows: int, max_rows: int, swapped: bool) -> None:
    model, x = mlp(rows, [16, 128])
    program = export_program(model, (x,))
    run_pipeline(program.module, f"swap-skinny-matmul{{max-rows={max_rows}}}", verify_each=True)
    (op,) = matmuls(program.module)
    assert isinstance(op.lhs.owner, g.WeightOp) == swapped


def test_wide_outputs_only() -> None:
    """Fewer output columns than rows: nothing to gain, left alone."""
    model, x = mlp(64, [128, 16])
    program = export_program(model, (x,))
    run_pipeline(program.module, "swap-skinny-matmul", verify_each=True)
    (op,) = matmuls(program.module)
    assert not isinstance(op.lhs.owner, g.WeightOp)


@settings(max_examples=15, deadline=None)
@given(rows=st.integers(1, 40), widths=st.lists(st.integers(1, 48), min_size=2, max_size=4),
       bias=st.booleans())
def test_random_linear_chains_match_eager_on_cpu(rows: int, widths: list[int], bias: bool) -> None:
    model, x = mlp(rows, widths, bias)
    with torch.no_grad():
        expected = model(x)
    program = export_program(model, (x,))
    run = compile_program(program, "cpu", NO_CACHE)
    torch.testing.assert_close(run(x)[0], expected, rtol=1e-4, atol=1e-4)


class _Attention(nn.Module):
    """Self-attention as Hugging Face writes it: bias-free q/k/v projections of
    [batch * seq, dim] rows, split into heads, SDPA with an additive mask."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = (nn.Linear(dim, dim, bias=False) for _ in range(3))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, seq, dim = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, seq, self.heads, dim // self.heads).transpose(1, 2)
        rows = x.reshape(batch * seq, dim)
        q, k, v = split(self.q(rows)), split(self.k(rows)), split(self.v(rows))
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
        return out.transpose(1, 2).reshape(batch, seq, dim)


@settings(max_examples=6, deadline=None)
@given(batch=st.integers(1, 4), seq=st.integers(2, 24), heads=st.sampled_from([1, 2, 4]),
       head_dim=st.sampled_from([8, 16, 32]))
def test_attention_on_transposed_projections_matches_eager(batch: int, seq: int, heads: int,
                                                           head_dim: int) -> None:
    """The swapped projections are [dim, rows] buffers, so q/k/v reach attention
    as views whose last dim is strided; torch's fused CPU attention kernel
    silently reads such a view as if it were contiguous (T5 and Whisper of the
    zoo were off by up to 100%, and NaN with only ``dce`` before the kernel
    pipeline)."""
    import irc
    torch.manual_seed(batch * 100 + seq)
    model = _Attention(heads * head_dim, heads).eval()
    x = torch.randn(batch, seq, heads * head_dim)
    mask = torch.randn(1, heads, seq, seq)
    with torch.no_grad():
        expected = model(x, mask)
        for graph_pipeline in ("dce,cse,canonicalize,constant-fold,cse,dce", "dce"):
            compiled = irc.compile(model, target="cpu", strict=True,
                                   options={**NO_CACHE, "pipeline.graph": graph_pipeline})
            torch.testing.assert_close(compiled(x, mask), expected, rtol=1e-4, atol=1e-4)


def test_reference_attention_reads_strided_views() -> None:
    """The interpreter's attention (also the CPU runtime's extern) on a query
    whose last dim is not contiguous equals it on a contiguous copy."""
    from irc.ir.interpreter import HANDLERS
    from irc.frontends.capture import export_program as export

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)
    q, k, v = (torch.randn(2, 3, 8, 16) for _ in range(3))
    program = export(attend, (q, k, v))
    (op,) = [o for o in program.module.walk() if isinstance(o, g.AttentionOp)]
    strided = torch.randn(2, 3, 16, 8).transpose(-1, -2)
    assert strided.stride(-1) != 1
    torch.testing.assert_close(HANDLERS[g.AttentionOp](op, [strided, k, v]),
                               attend(strided.contiguous(), k, v), rtol=1e-5, atol=1e-5)
