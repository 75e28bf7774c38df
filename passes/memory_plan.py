"""Memory planning for the host schedule of a kernel-level module.

:func:`plan_memory` is an analysis over ``@main``: every intermediate tensor
(the results of kernel calls and extern ops that ``@main`` does not return)
gets a buffer slot. Walking the schedule in order, the results of an op take
the smallest free slot that is large enough (greedy best-fit by byte size);
when no free slot is large enough the largest free one grows, and only when
none is free is a new slot made. A slot's size is the largest tensor it ever
holds; a tensor's slot becomes free after its last use. Guarantees:

* two tensors share a slot only if their live ranges do not overlap;
* an op's results never share a slot with its operands (slots of tensors
  whose last use is that op are freed only after its results are placed), so
  kernels and extern calls may assume their outputs do not alias their inputs;
* block arguments, weights, constants and ``@main``'s results get no slot.

The :class:`MemoryPlanPass` (``memory-plan``) records the plan's one-line
summary as the string attribute ``irc.memory`` on ``@main``; it does not
change the computation. Backends call :func:`plan_memory` to reuse buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from irc.errors import PassError
from irc.ir import graph as g
from irc.ir.types import dtype_of, numel, shape_of

MEMORY_ATTR = "irc.memory"


def nbytes(value: SSAValue) -> int:
    """Bytes of a tensor value of static shape (bool counts one byte)."""
    return numel(shape_of(value.type)) * dtype_of(value.type).itemsize


def format_bytes(n: float) -> str:
    """``1.2 MiB``-style size."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@dataclass
class MemoryPlan:
    """Buffer slots for ``@main``'s intermediates."""

    slots: list[int] = field(default_factory=list)
    """Size in bytes of each slot (index = slot id)."""
    assignment: dict[SSAValue, int] = field(default_factory=dict)
    """Intermediate value -> slot id."""
    peak_bytes: int = 0
    """Largest sum of the sizes of the slots in use at one point of the schedule."""
    naive_bytes: int = 0
    """Sum of the sizes of all intermediates (one buffer each, no reuse)."""

    @property
    def total_bytes(self) -> int:
        """Bytes of all slots together (what a runtime allocating every slot holds)."""
        return sum(self.slots)

    def summary(self) -> str:
        return (f"peak {format_bytes(self.peak_bytes)} in {len(self.slots)} buffers "
                f"(naive {format_bytes(self.naive_bytes)})")


def _main(module: ModuleOp) -> func.FuncOp:
    for op in module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == "main":
            return op
    raise PassError("memory-plan: the module has no func.func @main")


def _is_planned(op: Operation) -> bool:
    return not isinstance(op, (g.WeightOp, g.ConstantOp, func.ReturnOp))


def _take_slot(slots: list[int], free: list[int], need: int) -> int:
    """Best fit: the smallest free slot holding ``need`` bytes; else grow the
    largest free slot (fewer, larger buffers); else a new slot."""
    if free:
        fitting = [s for s in free if slots[s] >= need]
        slot = (min(fitting, key=lambda s: (slots[s], s)) if fitting
                else max(free, key=lambda s: (slots[s], -s)))
        free.remove(slot)
        slots[slot] = max(slots[slot], need)
        return slot
    slots.append(need)
    return len(slots) - 1


def plan_memory(module: ModuleOp) -> MemoryPlan:
    """Liveness-based best-fit slot assignment over ``@main``'s schedule."""
    main = _main(module)
    plan = MemoryPlan()
    if not main.body.blocks:
        return plan
    ops = list(main.body.block.ops)
    position = {op: i for i, op in enumerate(ops)}
    returned = {v for op in ops if isinstance(op, func.ReturnOp) for v in op.operands}

    last_use: dict[SSAValue, int] = {}
    for i, op in enumerate(ops):
        if not _is_planned(op):
            continue
        for res in op.results:
            if res in returned or not hasattr(res.type, "get_shape"):
                continue
            uses = [position[u.operation] for u in res.uses if u.operation in position]
            last_use[res] = max(uses, default=i)
    plan.naive_bytes = sum(nbytes(v) for v in last_use)

    free: list[int] = []  # free slot ids
    in_use: set[int] = set()
    busy_at: list[set[int]] = []  # slots in use while each op runs
    dying: dict[int, list[SSAValue]] = {}
    for value, last in last_use.items():
        dying.setdefault(last, []).append(value)
    for i, op in enumerate(ops):
        for res in op.results:
            if res in last_use:
                slot = _take_slot(plan.slots, free, nbytes(res))
                plan.assignment[res] = slot
                in_use.add(slot)
        busy_at.append(set(in_use))
        for value in dying.get(i, []):  # freed only after the op's results are placed
            slot = plan.assignment[value]
            in_use.discard(slot)
            free.append(slot)
    plan.peak_bytes = max((sum(plan.slots[s] for s in busy) for busy in busy_at), default=0)
    return plan


@dataclass(frozen=True)
class MemoryPlanPass(ModulePass):
    """Annotate ``@main`` with ``irc.memory = "peak .. in N buffers (naive ..)"``."""

    name = "memory-plan"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        plan = plan_memory(op)
        _main(op).attributes[MEMORY_ATTR] = StringAttr(plan.summary())
