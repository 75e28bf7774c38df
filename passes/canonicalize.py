"""Canonicalisation: exact algebraic and movement simplifications.

Guarantee: every rewrite is bit-exact on all inputs (NaN, +-inf and -0.0
included), so outputs are unchanged. Applied (see ``canonical_patterns``):

* ``x * 1``, ``x / 1`` -> x when the result type is x's type (no broadcast or
  promotion); ``x - (+0)`` -> x; ``x + 0`` -> x for integers, and for floats only
  ``x + (-0.0)``; ``-(-x)`` -> x;
* permute∘permute composed, identity permutes removed; reshape/squeeze/unsqueeze
  chains become one reshape; reshape/expand/cast/slice that change nothing removed;
* cast chains through an exactly-widening dtype (e.g. f16 -> f32 -> f16 is x).

Not applied, on purpose:

* ``x * 0 -> 0``: wrong for NaN and inf (NaN) and for negative x (-0.0);
* ``x - x -> 0``: wrong for NaN and inf;
* ``x + 0.0 -> x`` for floats: ``-0.0 + 0.0`` is ``+0.0``;
* ``x / x -> 1``: wrong for 0, NaN and inf;
* reassociation ``(a + b) + c -> a + (b + c)``: float rounding differs;
* any cast chain through a narrowing or float<->int conversion.

Dead pure ops left behind are removed after each sweep (like MLIR's greedy driver).
``max-iterations`` bounds the number of sweeps over the module (0: none). The
patterns only look at producers and a sweep visits ops in order, so chains
collapse in one sweep; the second sweep normally just confirms the fixed point.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriteWalker

from irc.passes.canonical_patterns import PATTERNS
from irc.passes.dce import erase_dead_ops


@dataclass(frozen=True)
class Canonicalize(ModulePass):
    """Exact simplifications (x*1, -(-x), permute/reshape/cast chains...)."""

    name = "canonicalize"
    max_iterations: int = 10

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        applier = GreedyRewritePatternApplier([p() for p in PATTERNS])
        for _ in range(self.max_iterations):
            # One sweep per iteration (apply_recursively=False), so the option
            # bounds the work; stop as soon as a sweep changes nothing.
            walker = PatternRewriteWalker(applier, apply_recursively=False)
            changed = walker.rewrite_module(op)
            erase_dead_ops(op.body)
            if not changed:
                break
