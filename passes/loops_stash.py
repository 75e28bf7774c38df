"""Stash a row reduction's operand in the output buffer (softmax: one exp per element).

``softmax = exp(x - max) / sum(exp(x - max))`` lowered naively evaluates
``exp`` twice per element: once inside the sum loop and once in the final
(store) loop.  When the kernel's single output has the same shape and dtype as
the summed operand ``e``, the sum loop can also *store* ``e[row, k]`` into the
output buffer and the final loop *load* it back (then overwrite it with the
result at the same index): one transcendental per element instead of two.

:func:`find_stash` decides whether that is safe.  It is, when

* the kernel has one output ``o`` (float32/float64, so the buffer holds the
  compute type) and ``e`` has ``o``'s shape and dtype, and ``e`` is computed
  (an elementwise op, not a kernel argument);
* ``e`` is summed over its last dim only (size > 1) by ``r`` with ``keepdim``;
* every value on a path from ``e`` to ``o`` is elementwise with ``o``'s shape
  (so ``o[i]`` reads ``e`` only at ``i``, before its own store to ``i``), or is
  ``r`` followed by elementwise ops of ``r``'s shape (read at ``i``'s row: the
  sum loop of that row, which writes the row before the final loop reads it);
* no other op of the kernel reads ``e`` or a value derived from it.
"""

from __future__ import annotations

from xdsl.dialects import func
from xdsl.ir import Operation, SSAValue

import torch

from irc.ir import graph as g
from irc.ir.types import dtype_of, shape_of

ELEMENTWISE = (g.ElementwiseUnaryOp, g.ElementwiseBinaryOp, g.WhereOp, g.CastOp)


def _elementwise(op: Operation) -> bool:
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


def find_stash(fn: func.FuncOp) -> tuple[SSAValue, g.ReduceOp] | None:
    """``(e, r)`` when ``e`` may be stashed in the single output (see module docs)."""
    ret = fn.body.block.last_op
    if ret is None or len(ret.operands) != 1:
        return None
    out = ret.operands[0]
    if dtype_of(out.type) not in (torch.float32, torch.float64):
        return None
    shape = shape_of(out.type)
    if len(shape) == 0 or shape[-1] <= 1:
        return None
    for op in fn.body.block.ops:
        if not isinstance(op, g.SumOp) or not op.keeps_dims:
            continue
        e = op.input
        if shape_of(e.type) != shape or dtype_of(e.type) != dtype_of(out.type):
            continue
        if not isinstance(e.owner, Operation) or not _elementwise(e.owner):
            continue
        if list(op.reduced_dims) != [len(shape) - 1] or dtype_of(op.result.type) != dtype_of(e.type):
            continue
        if _safe(e, op, out, shape):
            return e, op
    return None


def _safe(e: SSAValue, r: g.ReduceOp, out: SSAValue, shape: tuple[int, ...]) -> bool:
    direct = _descendants(e, stop=r)  # reached from e without passing through r
    through_r = _descendants(r.result) | {r.result}
    if out not in direct:
        return False
    for v in direct:
        op = v.owner
        if not isinstance(op, Operation) or not _elementwise(op) or shape_of(v.type) != shape:
            return False
    row_shape = shape_of(r.result.type)
    for v in through_r - direct:
        op = v.owner
        if v is not r.result and (not isinstance(op, Operation) or not _elementwise(op)
                                  or shape_of(v.type) != row_shape):
            return False
    # every user of e other than r, and of the derived values, stays within those sets
    allowed = direct | through_r
    for v in {e} | allowed:
        for use in v.uses:
            user = use.operation
            if user is r or isinstance(user, func.ReturnOp):
                continue
            if not all(res in allowed for res in user.results):
                return False
    return True
