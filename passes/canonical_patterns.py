"""The rewrite patterns of the ``canonicalize`` pass (see its docstring for the
list of identities applied and those deliberately not applied).

Every pattern replaces a value by one that is bit-for-bit equal on every input,
NaN, infinities and signed zeros included.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import ClassVar, cast

import torch
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from irc.ir import graph as g
from irc.ir.types import dims_of, dtype_of


# ----------------------------------------------------------------------------
# helpers


def splat_value(value: SSAValue) -> float | int | None:
    """The single value of a ``graph.constant`` whose elements are all equal."""
    op = value.owner
    if not isinstance(op, g.ConstantOp):
        return None
    attr = op.value
    # real values: xDSL also types complex elements, which no graph tensor has
    values = cast(Sequence[float | int], attr.get_values())
    if not values:
        return None  # empty: no value (and xDSL's is_splat raises on it)
    if attr.is_splat():
        return values[0]
    first = values[0]
    if all(_same_bits(first, v) for v in values[1:]):
        return first
    return None


def _same_bits(a: float | int, b: float | int) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return struct.pack("<d", float(a)) == struct.pack("<d", float(b))
    return a == b


def _is_neg_zero(v: float | int) -> bool:
    return isinstance(v, float) and v == 0.0 and math.copysign(1.0, v) < 0


def _is_pos_zero(v: float | int) -> bool:
    return v == 0 and not _is_neg_zero(v)


def _replace(rewriter: PatternRewriter, op: Operation, value: SSAValue) -> None:
    rewriter.replace_op(op, [], [value])


def _with_loc(new: Operation, old: Operation) -> Operation:
    new.location = old.location
    return new


def _operand_and_splat(op: g.ElementwiseBinaryOp, commutative: bool
                       ) -> list[tuple[SSAValue, float | int]]:
    """(other operand, splat constant) pairs: rhs is the constant, or either
    side for commutative ops."""
    pairs = []
    if (c := splat_value(op.rhs)) is not None:
        pairs.append((op.lhs, c))
    if commutative and (c := splat_value(op.lhs)) is not None:
        pairs.append((op.rhs, c))
    return pairs


# ----------------------------------------------------------------------------
# arithmetic identities


class MulByOne(RewritePattern):
    """``x * 1 -> x`` when the result type is x's type (no broadcast/promotion)."""

    ROOTS: ClassVar[tuple[type[Operation], ...]] = (g.MulOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: g.MulOp, rewriter: PatternRewriter) -> None:  # pyright: ignore[reportInvalidTypeForm]
        for x, c in _operand_and_splat(op, commutative=True):
            if c == 1 and x.type == op.result.type:
                _replace(rewriter, op, x)
                return


class AddZero(RewritePattern):
    """``x + 0 -> x``: integers with 0; floats only with -0.0 (``-0.0 + 0.0`` is
    ``+0.0``, so adding +0.0 is not the identity)."""

    ROOTS: ClassVar[tuple[type[Operation], ...]] = (g.AddOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: g.AddOp, rewriter: PatternRewriter) -> None:  # pyright: ignore[reportInvalidTypeForm]
        for x, c in _operand_and_splat(op, commutative=True):
            if x.type != op.result.type or c != 0:
                continue
            if dtype_of(op.result.type).is_floating_point and not _is_neg_zero(c):
                continue
            _replace(rewriter, op, x)
            return


class SubZero(RewritePattern):
    """``x - 0 -> x`` with +0 (``x - (+0.0)`` is exact, also for ``-0.0``)."""

    ROOTS: ClassVar[tuple[type[Operation], ...]] = (g.SubOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: g.SubOp, rewriter: PatternRewriter) -> None:  # pyright: ignore[reportInvalidTypeForm]
        c = splat_value(op.rhs)
        if c is not None and _is_pos_zero(c) and op.lhs.type == op.result.type:
            _replace(rewriter, op, op.lhs)


class DivByOne(RewritePattern):
    """``x / 1 -> x``: true division of a float x, or trunc/floor division of an integer x."""

    ROOTS: ClassVar[tuple[type[Operation], ...]] = (g.DivOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: g.DivOp, rewriter: PatternRewriter) -> None:
        c = splat_value(op.rhs)
        if c is None or c != 1 or op.lhs.type != op.result.type:
            return
        is_float = dtype_of(op.lhs.type).is_floating_point
        if (op.rounding_mode.data == "none") == is_float:
            _replace(rewriter, op, op.lhs)


class DoubleNeg(RewritePattern):
    """``-(-x) -> x`` (exact, also for integer wrap-around)."""

    ROOTS: ClassVar[tuple[type[Operation], ...]] = (g.NegOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: g.NegOp, rewriter: PatternRewriter) -> None:  # pyright: ignore[reportInvalidTypeForm]
        inner = op.input.owner
        if isinstance(inner, g.NegOp) and inner.input.type == op.result.type:
            _replace(rewriter, op, inner.input)


# ----------------------------------------------------------------------------
# movement


class ComposePermutes(RewritePattern):
    """``permute(permute(x, p), q) -> permute(x, p[q])``; identity permutes vanish."""

    ROOTS: ClassVar[tuple[type[Operation], ...]] = (g.PermuteOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: g.PermuteOp, rewriter: PatternRewriter) -> None:
        dims = g.ints(op.dims)
        if list(dims) == list(range(len(dims))):
            _replace(rewriter, op, op.input)
            return
        inner = op.input.owner
        if isinstance(inner, g.PermuteOp):
            inner_dims = g.ints(inner.dims)
            composed = [inner_dims[d] for d in dims]
            if composed == list(range(len(composed))):
                _replace(rewriter, op, inner.input)
            else:
                rewriter.replace_op(op, _with_loc(g.PermuteOp(inner.input, composed), op))


def compose_permutes(module: ModuleOp) -> None:
    """Compose all permute chains in ``module`` (:class:`ComposePermutes`) and
    drop the permutes that composing left unused; the layout passes
    (``channels-last``, ``swap-skinny-matmul``) wrap the ops they rewrite in
    permutes and rely on this to cancel the ones that meet."""
    PatternRewriteWalker(ComposePermutes(), apply_recursively=True).rewrite_module(module)
    for dead in [o for o in module.walk() if isinstance(o, g.PermuteOp) and not o.result.uses]:
        block = dead.parent_block()
        assert block is not None
        block.erase_op(dead)


_RESHAPE_LIKE = (g.ReshapeOp, g.SqueezeOp, g.UnsqueezeOp)


class FoldReshapes(RewritePattern):
    """A reshape, squeeze or unsqueeze of a reshape, squeeze or unsqueeze is
    one reshape of the original input (row-major order is kept by all
    three); a reshape-like op to the input's own shape is removed. This covers
    reshape∘reshape, squeeze∘unsqueeze and unsqueeze∘squeeze."""

    ROOTS: ClassVar[tuple[type[Operation], ...]] = _RESHAPE_LIKE

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, _RESHAPE_LIKE):
            return
        source = op.input
        if source.type == op.result.type:
            _replace(rewriter, op, source)
            return
        inner = source.owner
        if isinstance(inner, _RESHAPE_LIKE):
            if inner.input.type == op.result.type:
                _replace(rewriter, op, inner.input)
            else:
                rewriter.replace_op(op, _with_loc(g.ReshapeOp(inner.input, op.result.type), op))


class ExpandToSameShape(RewritePattern):
    """``expand(x)`` to x's own shape -> x."""

    ROOTS: ClassVar[tuple[type[Operation], ...]] = (g.ExpandOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: g.ExpandOp, rewriter: PatternRewriter) -> None:
        if op.input.type == op.result.type:
            _replace(rewriter, op, op.input)


class SliceEverything(RewritePattern):
    """``x[0:size:1]`` along a dim -> x."""

    ROOTS: ClassVar[tuple[type[Operation], ...]] = (g.SliceOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: g.SliceOp, rewriter: PatternRewriter) -> None:
        dim, start, end, step = op.symbolic_params()
        if start == 0 and step == 1 and end == dims_of(op.input.type)[dim] \
                and op.input.type == op.result.type:
            _replace(rewriter, op, op.input)


# ----------------------------------------------------------------------------
# casts

# dtype -> the dtypes that hold every one of its values exactly.
_EXACT_WIDENINGS: dict[torch.dtype, set[torch.dtype]] = {
    torch.bool: {torch.int8, torch.int32, torch.int64, torch.float16, torch.bfloat16,
                 torch.float32, torch.float64},
    torch.int8: {torch.int32, torch.int64, torch.float16, torch.bfloat16, torch.float32,
                 torch.float64},
    torch.int32: {torch.int64, torch.float64},
    torch.float16: {torch.float32, torch.float64},
    torch.bfloat16: {torch.float32, torch.float64},
    torch.float32: {torch.float64},
}


def _kind(dtype: torch.dtype) -> str:
    return "float" if dtype.is_floating_point else "int"


class CastToSameType(RewritePattern):
    """``cast(x)`` to x's own type -> x."""

    ROOTS: ClassVar[tuple[type[Operation], ...]] = (g.CastOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: g.CastOp, rewriter: PatternRewriter) -> None:
        if op.input.type == op.result.type:
            _replace(rewriter, op, op.input)


class CastChain(RewritePattern):
    """``cast(cast(x: A -> B) -> C)`` when B holds every value of A exactly:
    the inner cast changes no value, so -> ``cast(x: A -> C)`` (or x when C is
    A), provided A and C are both integer-like or both float (conversions
    between these depend only on the value; float->int of out-of-range values
    is left alone)."""

    ROOTS: ClassVar[tuple[type[Operation], ...]] = (g.CastOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: g.CastOp, rewriter: PatternRewriter) -> None:
        inner = op.input.owner
        if not isinstance(inner, g.CastOp):
            return
        a, b, c = dtype_of(inner.input.type), dtype_of(inner.result.type), dtype_of(op.result.type)
        if b not in _EXACT_WIDENINGS.get(a, ()):
            return
        if inner.input.type == op.result.type:
            _replace(rewriter, op, inner.input)
        elif _kind(a) == _kind(c):
            rewriter.replace_op(op, _with_loc(g.CastOp(inner.input, op.result.type), op))


# ----------------------------------------------------------------------------
# attention


class AttentionNeutralMask(RewritePattern):
    """``attention(q, k, v, mask)`` -> ``attention(q, k, v)`` when the mask is a
    float constant of zeros (either sign), which changes no score. Exact: a float mask is added to the scores before the
    softmax, and ``s + 0.0`` differs from ``s`` only in the sign of a zero
    score, which the softmax's ``exp(s - max)`` erases (``exp(+-0) = 1`` and
    ``s - (+-0)`` is ``s`` up to a zero's sign). torch's fused CPU kernel takes
    a slower path with a mask (HF wav2vec2 passes an all-zero one)."""

    ROOTS: ClassVar[tuple[type[Operation], ...]] = (g.AttentionOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: g.AttentionOp, rewriter: PatternRewriter) -> None:  # pyright: ignore[reportInvalidTypeForm]
        if op.mask is None:
            return
        c = splat_value(op.mask)
        if c is None or c != 0 or not dtype_of(op.mask.type).is_floating_point:
            return
        new = g.AttentionOp(operands=[op.query, op.key, op.value, []],
                            properties=dict(op.properties), attributes=dict(op.attributes),
                            result_types=[op.result.type])
        rewriter.replace_op(op, _with_loc(new, op))


# Each pattern names the op classes it can rewrite (ROOTS), so the pass can
# hand an op only the patterns that may apply to it.
PATTERNS: tuple[type[RewritePattern], ...] = (
    MulByOne, AddZero, SubZero, DivByOne, DoubleNeg, ComposePermutes, FoldReshapes,
    ExpandToSameShape, SliceEverything, CastToSameType, CastChain, AttentionNeutralMask,
)
