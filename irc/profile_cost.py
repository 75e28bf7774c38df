"""What one step of a host schedule costs on paper: bytes moved, FLOPs, source line.

All from the IR the CPU backend runs (its loops-level module), never from a
measurement:

* bytes: every tensor the step reads or writes, once (operands + results,
  ``numel * itemsize``) -- the least traffic the step can have; a lookup
  (gather, index_select, embedding) counts the rows it reads, not its table;
* FLOPs of a kernel: each floating-point ``arith``/``math`` op in its loops,
  times the trip counts of the ``scf.for`` loops around it (constant bounds;
  a loop whose bounds are not constants counts once);
* FLOPs of a library call: ``2*M*N*K`` for a matmul (batch dims included),
  ``2 * out elements * C/groups * kernel size`` for a convolution, the two
  products of an attention, one per result element for the others;
* source: the op's MLIR location (the user's line), with the text of that line.
"""

from __future__ import annotations

import linecache
import math
from dataclasses import dataclass

from xdsl.dialects import arith, scf
from xdsl.dialects.builtin import (BFloat16Type, FileLineColLoc, Float16Type, Float32Type,
                                   Float64Type, IntegerAttr)
from xdsl.dialects.func import FuncOp
from xdsl.ir import Block, Operation, SSAValue

from irc.ir import graph as g
from irc.ir.types import dtype_of, shape_of


@dataclass(frozen=True)
class StepCost:
    """Static cost and origin of one step."""

    kind: str
    """``kernel`` (irc's native code) or ``library`` (a torch call)."""
    name: str
    """The kernel's name, or the op's name (``graph.conv``)."""
    bytes: int
    flops: int
    source: str
    """``file:line`` of the user's code, or empty when the op has no location."""
    source_text: str
    """That line of code, stripped (empty when unknown)."""


def tensor_bytes(value: SSAValue) -> int:
    t = value.type
    try:
        return math.prod(shape_of(t)) * dtype_of(t).itemsize
    except Exception:  # noqa: BLE001 - not a ranked tensor: moves nothing we can count
        return 0


def _constant(value: SSAValue) -> int | None:
    op = value.owner
    if isinstance(op, arith.ConstantOp) and isinstance(op.value, IntegerAttr):
        return op.value.value.data
    return None


def _trip_count(loop: scf.ForOp) -> int:
    lb, ub, step = _constant(loop.lb), _constant(loop.ub), _constant(loop.step)
    if lb is None or ub is None or not step:
        return 1
    return max(-(-(ub - lb) // step), 0)


_FLOATS = (BFloat16Type, Float16Type, Float32Type, Float64Type)


def _is_float_op(op: Operation) -> bool:
    if op.dialect_name() not in ("arith", "math") or isinstance(op, arith.ConstantOp):
        return False
    return any(isinstance(r.type, _FLOATS) for r in op.results)


def _block_flops(block: Block, times: int) -> int:
    total = 0
    for op in block.ops:
        if isinstance(op, scf.ForOp):
            total += _block_flops(op.body.block, times * _trip_count(op))
            continue
        if _is_float_op(op):
            total += times
        for region in op.regions:
            for inner in region.blocks:
                total += _block_flops(inner, times)
    return total


def kernel_flops(fn: FuncOp) -> int:
    """Floating-point operations one run of a loops-level kernel does."""
    return sum(_block_flops(b, 1) for b in fn.body.blocks)


def library_flops(op: Operation) -> int:
    """Floating-point operations of a library call (see the module docstring)."""
    out = shape_of(op.results[0].type) if op.results else ()
    if isinstance(op, g.MatmulOp):
        k = shape_of(op.lhs.type)[-1]
        return 2 * math.prod(out) * k
    if isinstance(op, (g.ConvOp, g.ConvEpilogueOp)):
        w = shape_of(op.weight.type)
        return 2 * math.prod(out) * math.prod(w[1:])
    if isinstance(op, g.AttentionOp):  # q @ k^T and p @ v
        q, k = shape_of(op.query.type), shape_of(op.key.type)
        return 2 * math.prod(q) * k[-2] + 2 * math.prod(out) * k[-2]
    return math.prod(out)


def library_bytes(op: Operation) -> int:
    """Bytes a library call must move: a lookup reads the rows it gathers, not
    its whole table (indices + result, read and written); others all operands."""
    if isinstance(op, (g.GatherOp, g.IndexSelectOp, g.EmbeddingOp)):
        index = op.indices if isinstance(op, g.EmbeddingOp) else op.index
        return tensor_bytes(index) + 2 * tensor_bytes(op.results[0])
    return sum(tensor_bytes(v) for v in (*op.operands, *op.results))


def source_of(op: Operation) -> tuple[str, str]:
    """(``file:line``, the line's text) of the op's location, or ("", "")."""
    loc = getattr(op, "location", None)
    if not isinstance(loc, FileLineColLoc):
        return "", ""
    file, line = loc.filename.data, loc.line.data
    return f"{file}:{line}", linecache.getline(file, line).strip()


def step_cost(op: Operation, kernels: dict[str, FuncOp]) -> StepCost:
    """The cost of the step running ``op`` (a ``host.launch`` or a library op)."""
    nbytes = sum(tensor_bytes(v) for v in (*op.operands, *op.results))
    source, text = source_of(op)
    callee = op.properties.get("callee") if op.name == "host.launch" else None
    if callee is not None:
        name = callee.string_value()  # type: ignore[attr-defined]
        fn = kernels.get(name)
        return StepCost("kernel", name, nbytes, kernel_flops(fn) if fn is not None else 0,
                        source, text)
    return StepCost("library", op.name, library_bytes(op), library_flops(op), source, text)
