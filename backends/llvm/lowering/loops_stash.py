"""Stash row-reduction operands in the output buffer (softmax: one exp per element).

``softmax = exp(x - max) / sum(exp(x - max))`` lowered naively evaluates its
elementwise prologue (``x / sqrt(d) + mask`` in attention) three times per
element and ``exp`` twice: in the max loop, in the sum loop and in the final
(store) loop.  A *stash* lets a reduction's loop also *store* the value it
reduces into the kernel's output buffer, and later loops *load* it back:

* the max loop stores ``p[row, k]`` (the prologue) into ``out``;
* the sum loop loads ``p``, computes ``e = exp(p - max)`` and stores ``e``
  over it at the same index;
* the final loop loads ``e`` and overwrites it with the result.

One prologue and one ``exp`` per element; the buffer of a row is hot in L1.
The stashes form a *chain* ``[(p, r1), (e, r2), ...]``, first to last.

:func:`find_stash` decides whether that is safe.  Let ``o`` be the kernel's
single output with trailing ``reshape``/``squeeze``/``unsqueeze`` ops peeled off
(index-identical on flat buffers) as long as they keep the last dim, and
``shape`` its shape. It is, when

* ``o`` is float32/float64 (the buffer holds the compute type), each stashed
  value has ``o``'s shape and dtype and is computed by an elementwise op;
* each ``r`` reduces its stashed value over the last dim only (size > 1),
  with ``keepdim``, to the same dtype;
* every op depending on the first stashed value is elementwise with
  ``shape`` or the row shape (so it reads at index ``i`` or at ``i``'s row), a
  reduction over the last dim of a ``shape``-d value, or a peeled reshape:
  every read happens in a loop of ``i``'s row;
* a non-last stashed value is read only on the way to the next one (inside
  the next reduction's loop, before that loop overwrites the element), and the
  next one depends on its reduction (so it is computed after the stash loop);
* the last stashed value ``e`` is read only by elementwise values of
  ``shape`` or row shape and by other row reductions that depend on its ``r``
  (their loops run after ``r``'s), and ``o`` depends on ``r`` (so ``r``'s loop
  runs, before the final loop).
"""

from __future__ import annotations

from xdsl.dialects import func
from xdsl.ir import Operation, SSAValue

import torch

from irc.ir import graph as g
from irc.ir.symbols import maybe_more_than_one
from irc.ir.types import dims_of, dtype_of

ELEMENTWISE = (g.ElementwiseUnaryOp, g.ElementwiseBinaryOp, g.WhereOp, g.CastOp)
RESHAPES = (g.ReshapeOp, g.SqueezeOp, g.UnsqueezeOp)

Chain = list[tuple[SSAValue, g.ReduceOp]]


def _elementwise(op: object) -> bool:
    return isinstance(op, ELEMENTWISE)


def _descendants(value: SSAValue, stop: Operation | None = None) -> set[SSAValue]:
    """Values depending on ``value`` (itself excluded), not looking through ``stop``."""
    seen: set[SSAValue] = set()
    work = [value]
    while work:
        v = work.pop()
        for use in v.uses:
            op = use.operation
            if op is stop:
                continue
            for res in op.results:
                if res not in seen:
                    seen.add(res)
                    work.append(res)
    return seen


def _ancestors(value: SSAValue) -> set[SSAValue]:
    """Values ``value`` depends on (itself excluded)."""
    seen: set[SSAValue] = set()
    work = [value]
    while work:
        v = work.pop()
        op = v.owner
        if not isinstance(op, Operation):
            continue
        for operand in op.operands:
            if operand not in seen:
                seen.add(operand)
                work.append(operand)
    return seen


def peel_reshapes(fn: func.FuncOp) -> tuple[SSAValue, list[Operation]] | None:
    """The single output without its trailing reshapes that keep the last dim,
    and those reshape ops; None unless the kernel has exactly one output."""
    ret = fn.body.block.last_op
    if ret is None or len(ret.operands) != 1:
        return None
    out = ret.operands[0]
    peeled: list[Operation] = []
    last = dims_of(out.type)[-1:] if dims_of(out.type) else ()
    while isinstance(out.owner, RESHAPES) and out.has_one_use():
        src = out.owner.operands[0]
        if not dims_of(src.type) or dims_of(src.type)[-1:] != last:
            break
        peeled.append(out.owner)
        out = src
    return out, peeled


class _Analysis:
    def __init__(self, out: SSAValue, peeled: list[Operation]) -> None:
        self.out = out
        self.peeled = set(peeled)
        self.shape = dims_of(out.type)
        self.row_shape = (*self.shape[:-1], 1)
        self.dtype = dtype_of(out.type)

    def row_reduction(self, op: object) -> bool:
        return isinstance(op, g.ReduceOp) and op.keeps_dims and \
            dims_of(op.input.type) == self.shape and \
            list(op.reduced_dims) == [len(self.shape) - 1]

    def candidate(self, op: Operation) -> bool:
        """Is ``op`` a reduction whose operand could be stashed?"""
        if not self.row_reduction(op):
            return False
        assert isinstance(op, g.ReduceOp)
        e = op.input
        return dtype_of(e.type) == self.dtype and dtype_of(op.result.type) == self.dtype and \
            _elementwise(e.owner)

    def rowwise(self, v: SSAValue) -> bool:
        """Is ``v`` read (and computed) only at its users' index or their row?"""
        op = v.owner
        if op in self.peeled:
            return True
        if _elementwise(op):
            return dims_of(v.type) in (self.shape, self.row_shape)
        return self.row_reduction(op)

    def last_ok(self, e: SSAValue, r: g.ReduceOp) -> bool:
        direct = _descendants(e, stop=r)
        through_r = _descendants(r.result) | {r.result}
        if self.out not in direct or self.out not in through_r:
            return False
        for v in direct:
            op = v.owner
            if op in self.peeled:
                continue
            if self.row_reduction(op):
                if v not in through_r:  # its loop could run before r's
                    return False
            elif not _elementwise(op) or dims_of(v.type) not in (self.shape, self.row_shape):
                return False
        for v in through_r - direct:
            op = v.owner
            if v is not r.result and (not _elementwise(op) or dims_of(v.type) != self.row_shape):
                return False
        allowed = direct | through_r
        for v in {e} | allowed:
            for use in v.uses:
                user = use.operation
                if user is r or isinstance(user, func.ReturnOp) or user in self.peeled:
                    continue
                if not all(res in allowed for res in user.results):
                    return False
        return True

    def before_ok(self, p: SSAValue, r: g.ReduceOp, e: SSAValue) -> bool:
        """May ``p`` be stashed by ``r`` when ``e`` is the next stashed value?"""
        direct = _descendants(p, stop=r)
        if e not in direct or e not in _descendants(r.result):
            return False
        between = (direct & _ancestors(e)) | {e}
        for v in between:
            if not _elementwise(v.owner) or dims_of(v.type) != self.shape:
                return False
        for v in {p} | (between - {e}):
            for use in v.uses:
                if use.operation is r:
                    continue
                if not all(res in between for res in use.operation.results):
                    return False
        return True


def find_stash(fn: func.FuncOp) -> Chain | None:
    """The stash chain ``[(value, reduction), ...]``, first to last, where the
    values may be stashed in the single output (see module docs)."""
    peeled = peel_reshapes(fn)
    if peeled is None:
        return None
    out, peeled_ops = peeled
    a = _Analysis(out, peeled_ops)
    if a.dtype not in (torch.float32, torch.float64) or not a.shape or not maybe_more_than_one(a.shape[-1]):
        return None
    candidates = [op for op in fn.body.block.ops if isinstance(op, g.ReduceOp) and a.candidate(op)]
    best: Chain | None = None
    for r in candidates:
        if not a.last_ok(r.input, r):
            continue
        chain: Chain = [(r.input, r)]
        while True:
            nxt = chain[0][0]
            earlier = [c for c in candidates if c.input in _ancestors(nxt)
                       and a.before_ok(c.input, c, nxt)]
            if not earlier:
                break
            chain.insert(0, (earlier[0].input, earlier[0]))
        # the longest sound suffix of the chain (each read happens in its row's loops)
        while chain and not all(a.rowwise(v) for v in _descendants(chain[0][0])):
            chain.pop(0)
        if chain and (best is None or len(chain) >= len(best)):
            best = chain  # later reductions win ties: more of the work is stashed
    return best
