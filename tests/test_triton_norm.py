"""Row kernels whose reduction result is used again per element of the same row
(layer norm, RMS norm, a chain of dependent reductions) on ``target="cuda"``
(the Triton interpreter without a GPU, see ``tests/conftest.py``): each compiles
with ``strict=True``, no kernel falls back to eager torch, and the output
matches eager. Row lengths cover ragged sizes (not a power of two) in one
persistent block and long rows that loop over the reduced dim in chunks."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import irc

# persistent rows (ragged and not) and rows long enough to loop (see autotune.Tiling)
SHORT = st.integers(1, 70)
LONG = st.sampled_from([4099, 5000])


def layer_norm(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:])


def layer_norm_affine(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], w, b)


def rms_norm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Llama's RMSNorm: mean of squares, then x * rsqrt."""
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + 1e-6))


def chained(x: torch.Tensor) -> torch.Tensor:
    """Two dependent reductions: the row max of |x - mean| normalises x - mean."""
    m = x.mean(-1, keepdim=True)
    s = (x - m).abs().amax(-1, keepdim=True)
    return (x - m) / (s + 1.0)


def residual_layer_norm(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A residual add feeding a layer norm; both the sum and the norm are outputs."""
    h = x + y
    return F.layer_norm(h, h.shape[-1:]), h


def check(fn: Callable[..., object], *args: torch.Tensor) -> None:
    compiled = irc.compile(fn, target="cuda", strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = compiled(*args)
    want = fn(*args)
    stats = compiled.irc_stats
    assert stats.kernels >= 1 and not stats.eager_ops, stats.summary()
    got_t = got if isinstance(got, tuple) else (got,)
    want_t = want if isinstance(want, tuple) else (want,)
    assert len(got_t) == len(want_t)
    for g, w in zip(got_t, want_t):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)


def inputs(rows: int, d: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.randn(rows, 3, d) * 3 + 1, torch.randn(d), torch.randn(d)


@settings(max_examples=6, deadline=None)
@given(rows=st.integers(1, 4), d=SHORT)
def test_layer_norm_persistent_rows(rows: int, d: int) -> None:
    x, w, b = inputs(rows, d)
    check(layer_norm, x)
    check(layer_norm_affine, x, w, b)


@settings(max_examples=6, deadline=None)
@given(rows=st.integers(1, 4), d=SHORT)
def test_rms_norm_and_chained_reductions_persistent_rows(rows: int, d: int) -> None:
    x, w, _ = inputs(rows, d)
    check(rms_norm, x, w)
    check(chained, x)


@settings(max_examples=2, deadline=None)
@given(rows=st.integers(1, 2), d=LONG)
def test_norms_on_long_rows_loop(rows: int, d: int) -> None:
    x, w, b = inputs(rows, d)
    check(layer_norm, x)
    check(layer_norm_affine, x, w, b)
    check(rms_norm, x, w)
    check(chained, x)


@settings(max_examples=4, deadline=None)
@given(rows=st.integers(1, 3), d=st.one_of(SHORT, LONG))
def test_residual_layer_norm_with_both_outputs(rows: int, d: int) -> None:
    x, _, _ = inputs(rows, d)
    check(residual_layer_norm, x, torch.randn_like(x))


def split_heads(x: torch.Tensor) -> torch.Tensor:
    """Layer norm, then heads split off and transposed (attention's q/k/v layout):
    each output element needs the statistics of a row other than its flat index's."""
    b, t, d = x.shape
    return layer_norm(x).reshape(b, t, 2, d // 2).permute(0, 2, 1, 3)


def split_heads_scaled(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Elementwise work after the transpose, and the plain norm as a second output."""
    b, t, d = x.shape
    y = rms_norm(x, w)
    return y, y.reshape(b, t, 2, d // 2).transpose(1, 2) * 0.5 + 1.0


def norm_transposed(x: torch.Tensor) -> torch.Tensor:
    return layer_norm(x).permute(2, 0, 1)


@settings(max_examples=6, deadline=None)
@given(rows=st.integers(1, 3), half=st.one_of(st.integers(1, 35), st.just(2500)))
def test_norm_stored_through_a_permute(rows: int, half: int) -> None:
    x, w, _ = inputs(rows, 2 * half)
    check(split_heads, x)
    check(split_heads_scaled, x, w)
    check(norm_transposed, x)


def test_the_check_can_fail() -> None:
    """A wrong result and an eager kernel are caught (the check is not vacuous)."""
    x, _, _ = inputs(2, 33)
    compiled = irc.compile(layer_norm, target="cuda", strict=True)
    assert not torch.allclose(compiled(x), layer_norm(x) + 1e-3, rtol=1e-4, atol=1e-4)
