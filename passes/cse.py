"""Common-subexpression elimination.

Guarantee: two pure ops with the same name, operands, properties, attributes
and result types compute the same value, so the later one is replaced by the
earlier one (xDSL's ``cse`` driver, scoped per region; function bodies are
isolated from each other). Ops with side effects are never merged.

xDSL's driver compares operands positionally. For ops with the
``Commutative`` trait (add, mul, maximum, eq, logical/bitwise and/or/xor...)
this pass first puts the operands in a canonical order (by where each value
is defined, constants last), so that ``a + b`` and ``b + a`` merge. Constants with equal
``dense<...>`` values and ``graph.weight`` ops naming the same weight are
ordinary pure ops with equal properties and merge as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.traits import Commutative, ConstantLike
from xdsl.transforms.common_subexpression_elimination import cse


def _is_constant(value: SSAValue) -> bool:
    owner = value.owner
    return isinstance(owner, Operation) and owner.has_trait(ConstantLike)


def canonical_operand_order(module: Operation) -> int:
    """Sort the operands of commutative ops by definition order; returns how
    many ops changed. Values are numbered block arguments first, then op
    results, in the order the IR lists them, so the order is deterministic."""
    order: dict[SSAValue, int] = {}
    changed = 0

    def number_block(block: Block) -> None:
        for arg in block.args:
            order[arg] = len(order)

    for op in module.walk():
        for region in op.regions:
            for block in region.blocks:
                number_block(block)
        if op.has_trait(Commutative) and len(op.operands) > 1:
            operands = list(op.operands)
            # Constants go last (as in MLIR: ``x + 1``, not ``1 + x``).
            ranked = sorted(operands, key=lambda v: (_is_constant(v), order.get(v, -1)))
            if ranked != operands:
                op.operands = ranked
                changed += 1
        for result in op.results:
            order[result] = len(order)
    return changed


@dataclass(frozen=True)
class CommonSubexpressionElimination(ModulePass):
    """Merge identical pure ops (commutative operands normalised first)."""

    name = "cse"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        canonical_operand_order(op)
        cse(op)
