"""The ``fuse`` pass: graph level -> kernel level.

Guarantees (the kernel-level contract): afterwards the module holds
``func.func @main`` (the host schedule) and one
``func.func private @kernel_N(tensor...) -> (tensor...)`` per fusion group,
carrying the unit attribute ``irc.kernel`` and a string ``irc.iteration``
summarising its iteration space. Kernel bodies are graph ops + ``func.return``.
``@main`` keeps its block arguments, ``graph.weight``/``graph.constant`` ops
(passed to kernels as arguments; small splat constants used only by kernels
are cloned into them instead), ``func.call @kernel_N`` and the extern ops of
:func:`is_extern` (matmul, attention, conv, pooling, gather-like ops, wide
concats); kernels are
named in schedule order. Interpreting the module before and after gives the
same results. Running it again on kernel-level IR changes nothing.

Which ops fuse is decided in :mod:`irc.passes.fusion_groups` (its docstring
states the rules) and emitted by :mod:`irc.passes.outline`.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from irc.errors import PassError
from irc.passes.fusion_groups import (
    EXTERN_OP_NAMES,
    EXTERN_OPS,
    FusionPlan,
    decide_fusion,
    is_extern,
)
from irc.ir.kernel import ITERATION_ATTR, KERNEL_ATTR, find_main, kernel_functions
from irc.passes.outline import outline

__all__ = ["EXTERN_OPS", "EXTERN_OP_NAMES", "ITERATION_ATTR", "KERNEL_ATTR", "Fuse",
           "find_main", "is_extern", "kernel_functions"]


@dataclass(frozen=True)
class Fuse(ModulePass):
    """Partition ``@main`` into kernels and outline them (see module docstring)."""

    name = "fuse"

    max_ops: int = 64
    """Most graph ops in one kernel; 1 gives one kernel per op."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.max_ops < 1:
            raise PassError(f"fuse: max-ops must be at least 1, got {self.max_ops}")
        main = find_main(op, "fuse", PassError)
        if not main.body.blocks:
            return
        plan: FusionPlan = decide_fusion(main, self.max_ops)
        if not plan.kernels and not plan.dead:
            return
        outline(op, main, plan)
