"""``swap-skinny-matmul``: run ``x @ W^T`` with few rows of ``x`` as ``(W @ x^T)^T``.

A linear layer is ``matmul(x, permute(W, [1, 0]))`` with ``W`` the ``[N, K]``
row-major weight. When ``x`` has few rows (a small batch), BLAS libraries
(MKL's sgemm on AVX2, measured on the 2-core dev machine) multiply the
transposed problem ``W @ x^T`` -- the big row-major weight on the left, the
skinny activation on the right -- markedly faster: 64x4096 @ 4096x4096 takes
17.5 ms as ``x @ W^T`` and 14.3 ms as ``W @ x^T``; the gain shrinks with more
rows and is gone by 512 (``bench/README.md``). This pass rewrites::

    %y = graph.matmul %x, %wt          // %wt = graph.permute %w {dims = [1, 0]}
  ->
    %xt = graph.permute %x {dims = [1, 0]}
    %yt = graph.matmul %w, %xt         // [N, M]
    %y  = graph.permute %yt {dims = [1, 0]}

then composes permutes, so a chain of linear layers stays in the transposed
layout: the elementwise ops between them (bias, activation) read and write
``[N, M]`` buffers inside their fused kernel, and the weights are used as
they are (no transposed copy).

Applies to 2-d matmuls whose right operand is a ``[1, 0]`` permute, with at
most ``max-rows`` rows on the left and at least as many output columns as
rows. Guarantees: the module computes the same values (the same products and
sums; only which operand a library sees as the left one changes).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from irc.ir import graph as g
from irc.ir.types import dims_of
from irc.passes.canonical_patterns import compose_permutes

_TRANSPOSE = [1, 0]


def _swappable(op: g.MatmulOp, max_rows: int) -> bool:
    x, wt = dims_of(op.lhs.type), dims_of(op.rhs.type)
    if len(x) != 2 or len(wt) != 2 or not all(isinstance(d, int) for d in (*x, *wt)):
        return False  # a symbolic row count may be large: kept as it is
    owner = op.rhs.owner
    if not isinstance(owner, g.PermuteOp) or list(g.ints(owner.dims)) != _TRANSPOSE:
        return False
    rows, columns = x[0], wt[1]
    return rows <= max_rows and columns >= rows


def _swap(op: g.MatmulOp) -> None:
    assert isinstance(op.rhs.owner, g.PermuteOp)
    weight = op.rhs.owner.input
    xt = g.PermuteOp(op.lhs, _TRANSPOSE)
    yt = g.MatmulOp(weight, xt.result)
    y = g.PermuteOp(yt.result, _TRANSPOSE)
    for created in (xt, yt, y):
        created.location = op.location
    if op.result.name_hint:
        yt.result.name_hint = f"{op.result.name_hint}_t"
    block = op.parent_block()
    assert block is not None
    # (not Rewriter.replace_op: it would hand op's name to the last new op)
    block.insert_ops_before([xt, yt, y], op)
    op.result.replace_all_uses_with(y.result)
    block.erase_op(op)


@dataclass(frozen=True)
class SwapSkinnyMatmul(ModulePass):
    """Multiply skinny linear layers transposed (see the module docs)."""

    name = "swap-skinny-matmul"

    max_rows: int = 256
    """The most rows of the left operand for which the swap is made."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        targets = [o for o in op.walk() if isinstance(o, g.MatmulOp)
                   and _swappable(o, self.max_rows)]
        for target in targets:
            _swap(target)
        if targets:
            compose_permutes(op)
