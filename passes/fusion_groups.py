"""Deciding fusion: which graph ops of ``@main`` form one kernel, and in what
order the host runs kernels and extern ops. Nothing here changes the IR; the
``fuse`` pass (:mod:`irc.passes.fuse`) hands the decision to
:mod:`irc.passes.outline`, which emits it.

Classes of ops in ``@main``:

* host values: ``graph.weight`` / ``graph.constant`` (no operands) stay in
  ``@main``; kernels receive them as arguments, except small splat constants
  used by kernels only: those are cloned into each kernel that uses them.
* extern ops (:func:`is_extern`): matmul, attention, conv, pooling,
  gather-like ops, and concat of more than :data:`MAX_FUSED_CONCAT_INPUTS`
  operands stay in ``@main`` as library calls. A smaller concat is fusible:
  in a kernel it selects between its operands by index (each element reads
  every operand once at a clamped index), so RoPE's ``rotate_half`` and a
  KV-cache append fuse with their producers and consumers.
* everything else of the graph dialect is *fusible* and lands in exactly one
  kernel (no op is ever duplicated, so no work is repeated).

Fusion rules (greedy, producer into consumer, visiting consumers in program
order):

1. Elementwise ops, ``where``, ``cast``, broadcasts (``expand``) and view ops
   (reshape/permute/slice/squeeze/unsqueeze) fuse with their fusible producers
   and consumers, giving chains and trees in one kernel; a group may have
   several outputs.
2. A concat of at most MAX_FUSED_CONCAT_INPUTS operands fuses like a view
   (it reads each operand at a remapped index).
3. A reduction fuses with its producers and with consumers over the same
   iteration space, so softmax, log_softmax, layer norm, RMSNorm, GELU- or
   SiLU-gated activations and attention's scale-mask-softmax each become one
   kernel. The *domain* of a group is the largest element count it touches;
   two groups merge when their domains are equal, or when the group with the
   smaller domain has no reduction (a cheap prologue/epilogue such as
   ``var + eps -> rsqrt`` on reduced rows, or a broadcast operand). Two
   reductions over different domains (``sum`` of rows, then ``sum`` of those
   sums) stay apart.
4. Legality: contracting two groups must keep the quotient graph (groups and
   extern ops, edges = data dependences) a DAG; a merge that would close a
   cycle (e.g. ``a -> matmul -> b`` and ``a -> b``) is refused. A group never
   exceeds ``max_ops`` ops (cloned constants not counted); ``max_ops=1`` gives
   one kernel per fusible op.

The schedule is a topological order of the quotient DAG, ties broken by the
program position of each node's first op, so it stays close to the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
from xdsl.dialects import func
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr
from xdsl.ir import Operation, SSAValue

from irc.ir import graph as g
from irc.ir.kernel import EXTERN_OP_NAMES, EXTERN_OPS, MAX_FUSED_CONCAT_INPUTS, is_extern
import sympy

from irc.ir.symbols import Dim, known_le, known_lt
from irc.ir.types import dims_of, numel, shape_of

__all__ = ["EXTERN_OP_NAMES", "EXTERN_OPS", "MAX_FUSED_CONCAT_INPUTS", "FusionPlan", "KernelGroup",
           "decide_fusion", "is_extern", "is_fusible", "is_host_value", "is_small_splat"]

# Splat constants up to this many elements may be cloned into their one kernel.
SMALL_SPLAT_NUMEL = 1024


def is_host_value(op: Operation) -> bool:
    """Weights and constants: they stay in ``@main`` and feed kernels as arguments."""
    return isinstance(op, (g.WeightOp, g.ConstantOp))


def is_fusible(op: Operation) -> bool:
    """Graph ops that go into kernels (everything but host values and externs)."""
    return op.name.startswith("graph.") and not is_extern(op) and not is_host_value(op)


def is_small_splat(op: Operation) -> bool:
    """A ``graph.constant`` with one repeated value and at most SMALL_SPLAT_NUMEL elements."""
    if not isinstance(op, g.ConstantOp):
        return False
    value = op.value
    if not isinstance(value, DenseIntOrFPElementsAttr):
        return False
    size = numel(shape_of(op.result.type))
    if size == 0 or size > SMALL_SPLAT_NUMEL:
        return False  # an empty constant has no value to repeat (xDSL's is_splat raises on it)
    return value.is_splat()


@dataclass
class KernelGroup:
    """Fusible ops forming one kernel, in program order."""

    ops: list[Operation]
    clones: list[Operation] = field(default_factory=list)  # small splat constants cloned in
    inputs: list[SSAValue] = field(default_factory=list)  # arguments, in first-use order
    outputs: list[SSAValue] = field(default_factory=list)  # results used outside the group


@dataclass
class FusionPlan:
    """The decision: the host schedule (externs, opaque ops and kernel groups in
    execution order) plus the host values that stay at the top of ``@main``."""

    host_values: list[Operation]
    schedule: list[Operation | KernelGroup]
    dead: list[Operation]  # fusible ops whose results nobody uses (dropped)

    @property
    def kernels(self) -> list[KernelGroup]:
        return [item for item in self.schedule if isinstance(item, KernelGroup)]


@dataclass
class _Group:
    members: list[Operation]
    has_reduction: bool
    domain: Dim


def _op_domain(op: Operation) -> Dim:
    """The largest iteration space among the op's operands and results (for
    symbolic sizes, one proven at least as large as the others; their sympy
    ``Max`` when none is)."""
    out: Dim = 1
    for v in (*op.operands, *op.results):
        if not hasattr(v.type, "get_shape"):
            continue
        out = _larger(out, numel(dims_of(v.type)))
    return out


def _larger(a: Dim, b: Dim) -> Dim:
    """``max(a, b)``: the one proven larger, else their sympy ``Max``."""
    if known_le(a, b):
        return b
    if known_le(b, a):
        return a
    return sympy.Max(a, b)


def _creates_cycle(graph: nx.DiGraph, a: int, b: int, hi: dict[int, int], limit: int) -> bool:
    """Would contracting nodes ``a`` and ``b`` close a cycle? It does iff one
    reaches the other through a third node.

    The search only walks nodes whose ops all lie at or before program index
    ``limit`` (``hi[n] <= limit``): :func:`decide_fusion` visits consumers in
    program order, so every node past ``limit`` is still a single op, and a
    single op only reaches later ops; it cannot lead back to ``a`` or ``b``,
    whose ops are all at or before ``limit``. This keeps the check local
    instead of a search of the whole graph per candidate.
    """
    for src, dst in ((a, b), (b, a)):
        stack = [s for s in graph.successors(src) if s != dst and hi[s] <= limit]
        seen = set(stack)
        while stack:
            node = stack.pop()
            for succ in graph.successors(node):
                if succ == dst:
                    return True
                if succ not in seen and hi[succ] <= limit:
                    seen.add(succ)
                    stack.append(succ)
    return False


def _contract(graph: nx.DiGraph, keep: int, gone: int) -> None:
    # Hand-written rather than nx.contracted_nodes: that one records every
    # contraction in node data, which grows quadratically on long chains.
    for pred in graph.predecessors(gone):
        if pred != keep:
            graph.add_edge(pred, keep)
    for succ in graph.successors(gone):
        if succ != keep:
            graph.add_edge(keep, succ)
    graph.remove_node(gone)


def decide_fusion(main: func.FuncOp, max_ops: int = 64) -> FusionPlan:
    """Partition ``@main``'s fusible ops into kernel groups and schedule them."""
    block = main.body.block
    ops = list(block.ops)
    terminator = block.last_op
    host_values = [op for op in ops if is_host_value(op)]
    nodes = [op for op in ops if op is not terminator and not is_host_value(op)]
    partition = _Partition(ops, nodes, max_ops)
    partition.fuse_producers_into_consumers(nodes)
    schedule, dead = partition.schedule(ops, terminator)
    _assign_clones(schedule, host_values)
    return FusionPlan(host_values, schedule, dead)


class _Partition:
    """The dependence graph of ``@main``'s ops while groups are merged.

    Node id of an op = its program index; a group is named by one member's id.
    """

    def __init__(self, ops: list[Operation], nodes: list[Operation], max_ops: int) -> None:
        self.max_ops = max_ops
        self.index = {op: i for i, op in enumerate(ops)}
        self.node_of: dict[Operation, int] = {op: self.index[op] for op in nodes}
        self.groups: dict[int, _Group] = {
            self.index[op]: _Group([op], isinstance(op, g.ReduceOp), _op_domain(op))
            for op in nodes if is_fusible(op)}
        self.graph = nx.DiGraph()
        self.graph.add_nodes_from(self.node_of.values())
        for op in nodes:
            for operand in op.operands:
                producer = operand.owner
                if isinstance(producer, Operation) and producer in self.node_of:
                    self.graph.add_edge(self.node_of[producer], self.node_of[op])
        self.hi = {nid: nid for nid in self.graph.nodes}  # last program index of a node's ops

    def can_merge(self, a: int, b: int, limit: int) -> bool:
        ga, gb = self.groups[a], self.groups[b]
        if len(ga.members) + len(gb.members) > self.max_ops:
            return False
        if ga.domain != gb.domain:
            if known_lt(ga.domain, gb.domain):
                smaller = ga.has_reduction
            elif known_lt(gb.domain, ga.domain):
                smaller = gb.has_reduction
            else:  # sizes not comparable for every binding: as if the reduction were smaller
                smaller = ga.has_reduction or gb.has_reduction
            if smaller:
                return False
        if self.graph.out_degree(a) == 1 or self.graph.in_degree(b) == 1:
            return True  # the edge a -> b is a's only way out or b's only way in
        return not _creates_cycle(self.graph, a, b, self.hi, limit)

    def merge(self, a: int, b: int) -> None:
        """Group ``a`` joins group ``b``."""
        gone, keep = self.groups.pop(a), self.groups[b]
        keep.members.extend(gone.members)
        keep.has_reduction |= gone.has_reduction
        keep.domain = _larger(keep.domain, gone.domain)
        for member in gone.members:
            self.node_of[member] = b
        self.hi[b] = max(self.hi[a], self.hi[b])
        _contract(self.graph, b, a)

    def fuse_producers_into_consumers(self, nodes: list[Operation]) -> None:
        """In program order, merge each fusible op's fusible producers into its group."""
        for op in nodes:
            if not is_fusible(op):
                continue
            for operand in op.operands:
                producer = operand.owner
                if not isinstance(producer, Operation) or producer not in self.node_of \
                        or not is_fusible(producer):
                    continue
                a, b = self.node_of[producer], self.node_of[op]
                if a != b and self.can_merge(a, b, self.index[op]):
                    self.merge(a, b)

    def schedule(self, ops: list[Operation], terminator: Operation | None
                 ) -> tuple[list[Operation | KernelGroup], list[Operation]]:
        """Host ops and kernels in a topological order that keeps program order
        where it can; groups whose results nobody uses are dead."""
        index = self.index
        first = {nid: min(index[m] for m in grp.members) for nid, grp in self.groups.items()}
        order = nx.lexicographical_topological_sort(self.graph, key=lambda n: first.get(n, n))
        schedule: list[Operation | KernelGroup] = []
        dead: list[Operation] = []
        for nid in order:
            if nid not in self.groups:
                schedule.append(ops[nid])
                continue
            members = sorted(self.groups[nid].members, key=index.__getitem__)
            kernel = _interface(members, terminator)
            if kernel.outputs:
                schedule.append(kernel)
            else:
                dead.extend(members)
        return schedule, dead


def _interface(members: list[Operation], terminator: Operation | None) -> KernelGroup:
    """Arguments (values from outside, first-use order) and results (values
    used outside the group or returned) of a group."""
    inside = set(members)
    inputs: list[SSAValue] = []
    seen: set[SSAValue] = set()
    for op in members:
        for operand in op.operands:
            if operand.owner not in inside and operand not in seen:
                seen.add(operand)
                inputs.append(operand)
    outputs: list[SSAValue] = [res for op in members for res in op.results
                               if any(use.operation not in inside for use in res.uses)]
    return KernelGroup(members, [], inputs, outputs)


def _assign_clones(schedule: list[Operation | KernelGroup], host_values: list[Operation]) -> None:
    """A small splat constant whose every use is inside kernels is cloned into
    each of those kernels (a splat costs nothing to repeat, and a kernel that
    sees the value, e.g. ``pow(x, 2.0)``, generates better code than one
    reading it from an argument). Constants also used by extern ops or
    returned stay in ``@main``."""
    owner: dict[Operation, KernelGroup] = {}
    for item in schedule:
        if isinstance(item, KernelGroup):
            for op in item.ops:
                owner[op] = item
    for const in list(host_values):
        users = {use.operation for use in const.results[0].uses}
        if not users or any(u not in owner for u in users) or not is_small_splat(const):
            continue
        kernels = {id(owner[u]): owner[u] for u in users}
        for kernel in kernels.values():
            kernel.clones.append(const)
            kernel.inputs.remove(const.results[0])
        host_values.remove(const)
