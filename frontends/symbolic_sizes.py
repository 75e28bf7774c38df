"""Dynamo's symbolic sizes as graph-dialect size expressions.

Dynamo traces with ``SymInt`` sizes and records what it assumed about them as
guards on its ``ShapeEnv`` (checked on every call before the compiled code
runs). The expressions on the traced values are as they were built, not as
the guards simplify them: after ``x.view(n, -1, 4)`` and ``@ w`` a value may
have size ``s27//(s27//4)`` while a guard says it is 4, and ``w``'s ``s15``
equals ``s27//4`` only by a guard. :class:`SizeNormalizer` turns the guards
into substitutions so that sizes that are equal are spelled the same, which
is what lets the verifiers check shapes by equality of expressions:

* ``Eq(s, e)`` (a symbol equal to an expression of other symbols): ``s`` is
  replaced by ``e`` everywhere (the input check then verifies ``e`` at run
  time, :func:`irc.ir.symbols.bind`);
* ``Eq(e, c)`` (an expression equal to a constant): ``e`` becomes ``c``;
* ``Eq(s, c*(s//c))`` or ``Eq(Mod(s, c), 0)`` (``s`` divisible by ``c``):
  ``s`` becomes ``c*s_c`` with a new symbol ``s_c``, so the divisibility is in
  the type (``tensor<?xf32, ["4*s27_4"]>``) and checked on every call.

A guard it does not understand is left to dynamo (which checks all of them);
a shape that then cannot be verified is a clear error naming the op and
dimension, never a silent guess.
"""

from __future__ import annotations

from typing import Any

import sympy
import torch

from irc.ir.symbols import Dim, canonical, symbol, to_sympy

_ROUNDS = 6


class SizeNormalizer:
    """Canonical size expressions under one ``ShapeEnv``'s guards."""

    def __init__(self, shape_env: Any) -> None:
        self.subs: dict[sympy.Expr, sympy.Expr] = {}
        facts = []
        for guard in getattr(shape_env, "guards", ()):
            try:
                facts.append(to_sympy(guard.expr))
            except Exception:  # noqa: BLE001 - a guard irc does not model stays dynamo's
                continue
        for _ in range(_ROUNDS):
            if not self._learn(facts):
                break

    def _learn(self, facts: list[Any]) -> bool:
        changed = False
        for fact in facts:
            fact = self._apply(fact)
            if not isinstance(fact, sympy.Eq):
                continue
            lhs, rhs = fact.lhs, fact.rhs
            rule = _divisibility(lhs, rhs) or _divisibility(rhs, lhs) or _equality(lhs, rhs)
            if rule is not None and rule[0] not in self.subs:
                self.subs = {k: _simplify(v.xreplace({rule[0]: rule[1]}))
                             for k, v in self.subs.items()}
                self.subs[rule[0]] = rule[1]
                changed = True
        return changed

    def _apply(self, expr: Any) -> Any:
        for _ in range(_ROUNDS):
            new = _simplify(expr.xreplace(self.subs)) if self.subs else expr
            if new == expr:
                break
            expr = new
        return expr

    def __call__(self, size: Any) -> Dim:
        """A torch size (int or ``SymInt``) as a canonical :data:`Dim`."""
        if isinstance(size, int):
            return size
        expr = getattr(getattr(size, "node", None), "expr", None)
        if expr is None:
            return int(size)
        return canonical(self._apply(to_sympy(expr)))


def _simplify(expr: Any) -> Any:
    if isinstance(expr, sympy.Basic) and not isinstance(expr, sympy.Symbol):
        return sympy.simplify(expr) if expr.has(sympy.floor, sympy.Mod) else expr
    return expr


def _divisibility(a: Any, b: Any) -> tuple[sympy.Expr, sympy.Expr] | None:
    """``a == c*(a//c)`` or ``Mod(a, c) == 0`` with ``a`` a symbol: ``a -> c*a_c``."""
    if isinstance(a, sympy.Mod) and b == 0:
        a, c = a.args
    elif isinstance(a, sympy.Symbol) and isinstance(b, sympy.Mul) and len(b.args) == 2:
        c, q = b.args
        if not (isinstance(q, sympy.floor) and q.args[0] == a / c):
            return None
    else:
        return None
    if not (isinstance(a, sympy.Symbol) and isinstance(c, sympy.Integer) and int(c) > 1):
        return None
    return a, int(c) * symbol(f"{a}_{int(c)}")


def _equality(a: Any, b: Any) -> tuple[sympy.Expr, sympy.Expr] | None:
    """``s == e`` (``e`` free of ``s``) -> ``s -> e``; ``e == c`` -> ``e -> c``."""
    for x, y in ((a, b), (b, a)):
        if isinstance(x, sympy.Symbol) and isinstance(y, sympy.Expr) and x not in y.free_symbols:
            if isinstance(y, sympy.Symbol) and str(y) > str(x):
                continue  # two symbols: keep the smaller name
            return x, y
    for x, y in ((a, b), (b, a)):
        if isinstance(y, sympy.Integer) and isinstance(x, sympy.Expr) and x.free_symbols \
                and not isinstance(x, sympy.Symbol):
            return x, y
    return None


def normalizer_for(values: Any) -> SizeNormalizer | None:
    """The normaliser of the ShapeEnv behind the first ``SymInt`` among ``values``."""
    for v in values:
        sizes = list(v.shape) if isinstance(v, torch.Tensor) else [v]
        for s in sizes:
            if isinstance(s, torch.SymInt):
                env = getattr(s.node, "shape_env", None)
                if env is not None:
                    return SizeNormalizer(env)
    return None


__all__ = ["SizeNormalizer", "normalizer_for"]
