"""The ``split-full-reductions`` pass: a large full reduction becomes a
parallel partial kernel and a small final one (kernel level -> kernel level).

Guarantees: every not yet lowered kernel whose single output reduces all of
a large f32/f64 input (``sum``/``mean``/``amax``/``amin`` of at least
``SPLIT_MIN_ELEMENTS`` elements, a multiple of ``BLOCK``) is replaced by
``@k_partial`` + ``@k`` and ``@main``'s call by the two calls
(:mod:`irc.backends.llvm.lowering.loops_split` says how); other kernels are untouched. The
result is deterministic (fixed blocks), and interpreting the module before and
after agrees within the rounding of a two-level summation. It is a CPU
scheduling choice (one sequential loop would use one thread), so it is part
of the CPU pipeline, just before ``lower-to-loops``; running it twice changes
nothing more (a split kernel's partials are below the threshold).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from irc.ir.kernel import kernel_functions
from irc.backends.llvm.lowering.loops_split import split_full_reductions
from irc.backends.llvm.lowering.lower_to_loops import is_lowered


@dataclass(frozen=True)
class SplitFullReductions(ModulePass):
    """Split large full-reduction kernels (see the module docstring)."""

    name = "split-full-reductions"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        kernels = [f for f in kernel_functions(op) if f.body.blocks and not is_lowered(f)]
        split_full_reductions(op, kernels)
