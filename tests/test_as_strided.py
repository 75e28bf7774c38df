"""``aten.as_strided`` on a contiguous input: an index map on its flat elements
(and ``linalg.vector_norm``, the other op the zoo's wav2vec2 needed).

Random sizes, strides and offsets (hypothesis) through the importer and the
reference interpreter, and through ``irc.compile`` on the CPU with
``strict=True``, against eager; nested strided blocks become view ops (no
gather), overlapping windows a gather of the flat input.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import irc
from irc.frontends.capture import export_program
from irc.ir import graph as g
from irc.ir.interpreter import interpret


@st.composite
def strided_views(draw: st.DrawFn) -> tuple[list[int], list[int], list[int], int]:
    """(input shape, size, stride, storage offset) that stay inside the input."""
    shape = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    numel = math.prod(shape)
    rank = draw(st.integers(0, 4))
    size = draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank))
    stride = draw(st.lists(st.integers(0, 12), min_size=rank, max_size=rank))
    reach = sum((n - 1) * s for n, s in zip(size, stride))
    if reach >= numel:  # shrink the strides until the view fits
        stride = [s * (numel - 1) // max(reach, 1) for s in stride]
        reach = sum((n - 1) * s for n, s in zip(size, stride))
    offset = draw(st.integers(0, numel - 1 - reach))
    return shape, size, stride, offset


def _fn(size: list[int], stride: list[int], offset: int):
    def view(x: torch.Tensor) -> torch.Tensor:
        return torch.as_strided(x * 2.0, size, stride, offset) + 1.0
    return view


@settings(max_examples=60, deadline=None)
@given(case=strided_views())
def test_random_as_strided_matches_eager_in_the_interpreter(case) -> None:
    shape, size, stride, offset = case
    x = torch.randn(shape)
    fn = _fn(size, stride, offset)
    program = export_program(fn, (x,))
    got = interpret(program.module, [x], program.weights)[0]
    torch.testing.assert_close(got, fn(x), rtol=0, atol=0)


@settings(max_examples=8, deadline=None)
@given(case=strided_views())
def test_random_as_strided_matches_eager_on_cpu(case) -> None:
    shape, size, stride, offset = case
    x = torch.randn(shape)
    fn = _fn(size, stride, offset)
    compiled = irc.compile(fn, target="cpu", strict=True, options={"cache.enabled": False})
    torch.testing.assert_close(compiled(x), fn(x), rtol=0, atol=0)
    assert compiled.irc_stats.programs == 1 and not compiled.irc_stats.eager_ops


def _ops(fn, x: torch.Tensor) -> set[type]:
    return {type(op) for op in export_program(fn, (x,)).module.walk()}


@pytest.mark.parametrize("size,stride,offset", [
    ([4, 6], [1, 4], 0),               # a transpose
    ([2, 3, 2], [12, 2, 1], 1),        # windows of a [2, 12] tensor
    ([2, 32, 1, 1], [32, 1, 32, 32], 0),  # size-1 dims with any stride (wav2vec2, swin)
    ([3, 4], [0, 1], 2),               # broadcast rows
])
def test_nested_blocks_are_views(size, stride, offset) -> None:
    x = torch.randn(64)
    fn = _fn(size, stride, offset)
    ops = _ops(fn, x)
    assert g.IndexSelectOp not in ops
    program = export_program(fn, (x,))
    torch.testing.assert_close(interpret(program.module, [x], program.weights)[0], fn(x))


def test_overlapping_windows_gather() -> None:
    x = torch.randn(10)
    fn = _fn([4, 3], [2, 1], 0)  # unfold-like: windows of 3, step 2
    assert g.IndexSelectOp in _ops(fn, x)
    compiled = irc.compile(fn, target="cpu", strict=True)
    torch.testing.assert_close(compiled(x), fn(x))


def test_non_contiguous_input_is_unsupported() -> None:
    def fn(x: torch.Tensor) -> torch.Tensor:
        return torch.as_strided(x.t(), (2, 2), (1, 2))
    x = torch.randn(3, 3)
    with pytest.raises(irc.UnsupportedOpError, match="as_strided"):
        irc.compile(fn, target="cpu", strict=True)(x)


@pytest.mark.parametrize("ord", [2, 1, 3, float("inf"), float("-inf"), 0])
def test_vector_norm_matches_eager(ord: float) -> None:
    """``linalg.vector_norm`` (weight norm of wav2vec2's positional conv) through
    torch's decomposition, strict on the CPU."""
    def norm(x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(x, ord, dim=(0, 2), keepdim=True)
    x = torch.randn(3, 5, 4)
    x[0, 1, 2] = 0.0
    compiled = irc.compile(norm, target="cpu", strict=True)
    torch.testing.assert_close(compiled(x), norm(x), rtol=1e-5, atol=1e-5)
