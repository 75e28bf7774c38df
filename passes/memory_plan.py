"""Memory planning for the host schedule of a kernel- or loops-level module.

:func:`plan_memory` is an analysis over ``@main`` that says what a runtime
allocates, per call and once, and when. Values of ``@main`` fall in classes:

* *inputs, weights, constants* and ``@main``'s *results*: no planned memory
  (results are fresh per call; :attr:`MemoryPlan.output_bytes` counts them);
* *weight-derived* (:func:`weight_derived_values`): results of kernels and
  extern ops whose operands are only weights, constants or other
  weight-derived values (a transposed+scaled weight, rotary tables, masks).
  Runtimes compute them once and recompute only when a source weight changes;
  they are persistent (:attr:`MemoryPlan.weights_derived_bytes`), not per call;
* *in-place updates* (``graph.cache_update``): the result is the cache
  argument itself, written at the new positions only; no memory of its own;
* *views* (:func:`view_only_kernel`): a kernel that only permutes / reshapes /
  expands / slices its one input and feeds only library calls runs as a torch
  view: no buffer; its source stays live until the view's last use;
* *library results* of extern ops other than matmul (conv, pooling, gather,
  concat): torch allocates them per call (no ``out=``); they count in the
  peak for their live range but take no arena space;
* every other intermediate (kernel outputs, ``out=`` library calls) gets a byte
  range in one arena. Its live range runs from its op to its last use (or
  its views' last use). Largest tensors first, each takes the best-fitting
  gap among the ranges of tensors live at the same time (greedy by size).

Guarantees:

* two planned tensors overlap in memory only if their live ranges do not;
* an op's results never overlap its operands (both are live at that op), so
  kernels and extern calls may assume their outputs do not alias their inputs;
* offsets are multiples of :data:`ALIGN` bytes;
* :attr:`MemoryPlan.peak_bytes` is the arena plus the most bytes of library
  results live at one point: the intermediate memory a runtime following the
  plan holds per call.

The :class:`MemoryPlanPass` (``memory-plan``) records the plan's one-line
summary as the string attribute ``irc.memory`` on ``@main``; it does not
change the computation. On a module with symbolic sizes it records that the
plan is made per binding (the CPU runtime plans each binding's specialised
``@main`` once, ``backends/llvm/symbolic.py``). Backends call :func:`plan_memory` to reuse buffers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from irc.errors import PassError
from irc.ir import graph as g
from irc.ir.host import LaunchOp
from irc.ir.types import dtype_of, numel, shape_of
from irc.ir.kernel import find_main, is_extern
from irc.backends.llvm.lowering.lower_to_loops import VIEW_ATTR, is_lowered, movement_chain

MEMORY_ATTR = "irc.memory"

MOVEMENT_OPS: tuple[type[Operation], ...] = (
    g.PermuteOp, g.ReshapeOp, g.ExpandOp, g.SqueezeOp, g.UnsqueezeOp, g.SliceOp)
"""Ops that only move data: a chain of them over one tensor is a torch view."""


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


def feeds_only_library_calls(value: SSAValue) -> bool:
    """``value`` has uses and all are extern ops (torch library calls accept any strides)."""
    return bool(value.uses) and all(is_extern(u.operation) for u in value.uses)


def view_only_kernel(call: Operation, callee: func.FuncOp | None = None) -> bool:
    """Whether ``call`` runs as a torch view of its one operand instead of a copy.

    ``call`` is a ``func.call`` / ``host.launch`` of ``callee`` (kernel or loops
    level), or, with ``callee`` None, a single graph op left in ``@main``. True
    when it only permutes / reshapes / expands / slices its one input (kernel
    level: its body is such a chain; loops level: the lowering marked it
    ``irc.view``) and its one result feeds only library calls. The one criterion
    the CPU runtime, the Triton host code and :func:`plan_memory` share.
    """
    if len(call.operands) != 1 or len(call.results) != 1:
        return False
    if not feeds_only_library_calls(call.results[0]):
        return False
    if callee is None:
        return isinstance(call, MOVEMENT_OPS)
    if VIEW_ATTR in callee.attributes:
        return True
    return bool(callee.body.blocks) and not is_lowered(callee) \
        and movement_chain(callee) is not None


def callee_name(op: Operation) -> str | None:
    """The kernel a ``func.call`` / ``host.launch`` of ``@main`` runs, else None."""
    if isinstance(op, (func.CallOp, LaunchOp)):
        return op.callee.string_value()
    return None


def functions_of(module: ModuleOp) -> dict[str, func.FuncOp]:
    return {op.sym_name.data: op for op in module.ops if isinstance(op, func.FuncOp)}


def view_ops(ops: Iterable[Operation], functions: Mapping[str, func.FuncOp]) -> set[Operation]:
    """The ops of ``@main`` that run as torch views (:func:`view_only_kernel`)."""
    views = set()
    for op in ops:
        name = callee_name(op)
        if name is not None and name in functions and view_only_kernel(op, functions[name]):
            views.add(op)
    return views


def weight_derived_values(ops: Iterable[Operation]) -> set[SSAValue]:
    """Results of ``@main``'s ops computed from weights and constants only.

    An op (kernel call or extern) is weight-derived when every operand is a
    ``graph.weight`` / ``graph.constant`` result or weight-derived, and none of
    its results is returned by ``@main`` (a returned tensor must be fresh per
    call). A runtime may compute these once per version of the weights.
    """
    ops = list(ops)
    returned = {v for op in ops if isinstance(op, func.ReturnOp) for v in op.operands}
    sources: set[SSAValue] = set()
    derived: set[SSAValue] = set()
    for op in ops:
        if isinstance(op, (g.WeightOp, g.ConstantOp)):
            sources.update(op.results)
        elif isinstance(op, func.ReturnOp):
            continue
        elif (op.results and all(v in sources or v in derived for v in op.operands)
              and not any(r in returned for r in op.results)
              and "seeded" not in op.properties):  # a random draw runs on every call
            derived.update(op.results)
    return derived


def writes_into_buffer(op: Operation) -> bool:
    """Whether a runtime hands ``op`` its output buffer: kernels, and the extern
    ops torch runs with ``out=`` (matmul, gather, index_select, embedding, and
    concat of operands of the result's dtype). Other extern ops (conv,
    pooling) return tensors torch allocates."""
    if isinstance(op, (func.CallOp, LaunchOp, g.MatmulOp, g.GatherOp, g.IndexSelectOp,
                       g.EmbeddingOp)):
        return True
    if isinstance(op, g.ConcatOp):
        return all(v.type.element_type == op.results[0].type.element_type  # type: ignore[attr-defined]
                   for v in op.operands)
    return False


@dataclass
class MemoryPlan:
    """What ``@main`` allocates: the arena, per-call library results, persistent values."""

    assignment: dict[SSAValue, int] = field(default_factory=dict)
    """Planned intermediate -> its byte offset in the arena."""
    arena_bytes: int = 0
    """Size of the one buffer all planned intermediates live in."""
    peak_bytes: int = 0
    """The arena plus the most bytes of library results live at one point of
    the schedule: the per-call intermediate memory (outputs not counted)."""
    peak_with_outputs_bytes: int = 0
    """Like ``peak_bytes``, plus the results of ``@main`` made so far (what an
    eager call's allocation peak counts)."""
    naive_bytes: int = 0
    """Sum of the sizes of all per-call intermediates (one buffer each, no reuse)."""
    output_bytes: int = 0
    """Bytes of ``@main``'s results (fresh per call)."""
    views: dict[SSAValue, SSAValue] = field(default_factory=dict)
    """View value -> the value whose storage it shares (no memory of its own)."""
    derived: set[SSAValue] = field(default_factory=set)
    """Weight-derived values: computed once per weight version, held persistently."""
    weights_derived_bytes: int = 0
    """Bytes of the weight-derived values that own storage (views excluded)."""
    library: set[SSAValue] = field(default_factory=set)
    """Per-call intermediates torch allocates (extern results other than matmul)."""

    def summary(self) -> str:
        text = (f"peak {format_bytes(self.peak_bytes)} in {len(self.assignment)} buffers "
                f"(naive {format_bytes(self.naive_bytes)})")
        if self.weights_derived_bytes:
            text += f", weight-derived {format_bytes(self.weights_derived_bytes)}"
        return text


def _main(module: ModuleOp) -> func.FuncOp:
    return find_main(module, "memory-plan", PassError)


ALIGN = 64
"""Byte alignment of every planned buffer (a cache line; vector loads)."""


def _aligned(n: int) -> int:
    return -(-max(n, 1) // ALIGN) * ALIGN


def _place(need: int, taken: list[tuple[int, int]]) -> int:
    """Lowest-waste offset for ``need`` bytes among the byte ranges ``taken`` by
    tensors live at the same time: the smallest gap that fits, else the end."""
    best: tuple[int, int] | None = None  # (gap size, offset)
    end = 0
    for lo, hi in sorted(taken):
        if lo - end >= need and (best is None or lo - end < best[0]):
            best = (lo - end, end)
        end = max(end, hi)
    return best[1] if best is not None else end


def plan_memory(module: ModuleOp) -> MemoryPlan:
    """Liveness-based offsets in one arena for ``@main``'s intermediates (see module doc)."""
    main = _main(module)
    plan = MemoryPlan()
    if not main.body.blocks:
        return plan
    ops = list(main.body.block.ops)
    position = {op: i for i, op in enumerate(ops)}
    returned = {v for op in ops if isinstance(op, func.ReturnOp) for v in op.operands}
    plan.output_bytes = sum(nbytes(v) for v in set(returned) if hasattr(v.type, "get_shape")
                            and not isinstance(v.owner, (g.WeightOp, g.ConstantOp)))
    plan.derived = weight_derived_values(ops)
    for op in view_ops(ops, functions_of(module)):
        plan.views[op.results[0]] = op.operands[0]
    for op in ops:  # written in place: the updated cache is the caller's buffer
        if isinstance(op, g.CacheUpdateOp):
            plan.views[op.result] = op.cache
    plan.weights_derived_bytes = sum(nbytes(v) for v in plan.derived
                                     if v not in plan.views and hasattr(v.type, "get_shape"))
    last_use = _last_uses(plan, ops, position, returned)
    plan.naive_bytes = sum(nbytes(v) for v in last_use)
    start = {v: position[v.owner] for v in last_use}  # type: ignore[index]
    _assign_offsets(plan, start, last_use)
    _peaks(plan, ops, returned, start, last_use)
    return plan


def _last_uses(plan: MemoryPlan, ops: list[Operation], position: dict[Operation, int],
               returned: set[SSAValue]) -> dict[SSAValue, int]:
    """The per-call values that own memory, each with the position of its last
    use (a view's uses count for the value it views); library results are
    noted in ``plan.library``."""
    last_use: dict[SSAValue, int] = {}
    for i, op in enumerate(ops):
        if isinstance(op, (g.WeightOp, g.ConstantOp, func.ReturnOp)):
            continue
        for res in op.results:
            if (res in returned or res in plan.derived or res in plan.views
                    or not hasattr(res.type, "get_shape")):
                continue
            last_use[res] = i
            if not writes_into_buffer(op):
                plan.library.add(res)

    def root(value: SSAValue) -> SSAValue:
        while value in plan.views:
            value = plan.views[value]
        return value

    for value in list(plan.views) + list(last_use):
        owner = root(value)
        if owner in last_use:
            uses = [position[u.operation] for u in value.uses if u.operation in position]
            last_use[owner] = max([last_use[owner], *uses])
    return last_use


def _assign_offsets(plan: MemoryPlan, start: dict[SSAValue, int],
                    last_use: dict[SSAValue, int]) -> None:
    """Offsets in one arena, greedy by size (largest tensors first, each at the
    best-fitting gap among the tensors live at the same time). Written here
    rather than taken from a library: none in the environment plans buffers;
    the method is TFLite's "greedy by size" offset planner."""
    placed: list[tuple[SSAValue, int, int]] = []  # value, offset, end offset
    for value in sorted((v for v in last_use if v not in plan.library),
                        key=lambda v: (-nbytes(v), start[v])):
        need = _aligned(nbytes(value))
        taken = [(off, end) for other, off, end in placed
                 if start[other] <= last_use[value] and start[value] <= last_use[other]]
        offset = _place(need, taken)
        plan.assignment[value] = offset
        plan.arena_bytes = max(plan.arena_bytes, offset + need)
        placed.append((value, offset, offset + need))


def _peaks(plan: MemoryPlan, ops: list[Operation], returned: set[SSAValue],
           start: dict[SSAValue, int], last_use: dict[SSAValue, int]) -> None:
    """Peak bytes: the arena plus, at the worst point of the schedule, the live
    library results (and the outputs made so far)."""
    outputs_made, extra, extra_with_outputs = 0, 0, 0
    for i, op in enumerate(ops):
        for res in op.results:
            if res in returned and hasattr(res.type, "get_shape") \
                    and not isinstance(op, (g.WeightOp, g.ConstantOp)):
                outputs_made += nbytes(res)
        library = sum(nbytes(v) for v in plan.library if start[v] <= i <= last_use[v])
        extra = max(extra, library)
        extra_with_outputs = max(extra_with_outputs, library + outputs_made)
    plan.peak_bytes = plan.arena_bytes + extra
    plan.peak_with_outputs_bytes = plan.arena_bytes + extra_with_outputs


@dataclass(frozen=True)
class MemoryPlanPass(ModulePass):
    """Annotate ``@main`` with ``irc.memory = "peak .. in N buffers (naive ..)"``."""

    name = "memory-plan"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from irc.ir.symbols import module_is_symbolic
        if module_is_symbolic(op):  # sizes known per call: the runtime plans per binding
            _main(op).attributes[MEMORY_ATTR] = StringAttr("planned per binding of the sizes")
            return
        plan = plan_memory(op)
        _main(op).attributes[MEMORY_ATTR] = StringAttr(plan.summary())
