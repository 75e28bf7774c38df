"""The pieces of a split graph (DDPOptimizer) keep eager's output strides.

A piece's outputs feed eager code and the next piece, both traced with the
strides eager gives; irc's results are contiguous, so CompiledGraph
restrides outputs whose eager strides are dense but not contiguous.
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import irc


def _layout(t: torch.Tensor) -> tuple[int, ...]:
    """Strides of the dims that have more than one element (a size-1 dim's
    stride is arbitrary: fake tensors and eager kernels disagree on it)."""
    return tuple(st for st, n in zip(t.stride(), t.shape) if n > 1)


def _transposed(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.tanh(x @ w)
    return y.t(), y.permute(1, 0) * 2


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return (x.permute(0, 2, 3, 1) + 1).permute(0, 3, 1, 2)  # dense NHWC memory, NCHW shape


@settings(max_examples=6, deadline=None)
@given(m=st.integers(1, 9), n=st.integers(2, 9), grad=st.booleans())
def test_transposed_outputs_keep_eager_strides(m: int, n: int, grad: bool) -> None:
    x = torch.randn(m, 5, requires_grad=grad)
    w = torch.randn(5, n, requires_grad=grad)
    compiled = irc.compile(_transposed)
    for got, want in zip(compiled(x, w), _transposed(x, w)):
        assert _layout(got) == _layout(want)
        torch.testing.assert_close(got, want)


def test_channels_last_output_and_its_gradient() -> None:
    x = torch.randn(2, 3, 4, 5, requires_grad=True)
    want = _channels_last(x)
    got = irc.compile(_channels_last)(x)
    assert _layout(got) == _layout(want)
    torch.testing.assert_close(got, want)
    (g,) = torch.autograd.grad((got * got).sum(), x)
    (g_ref,) = torch.autograd.grad((want * want).sum(), x)
    torch.testing.assert_close(g, g_ref)
