"""Index expressions, shared by every backend: integer linear forms over index variables.

Every index a kernel computes (an element's position in a buffer) is a
:class:`Lin`: ``const + sum(coeff * atom)``. Atoms are index variables
(:class:`Var`, range ``[0, size)``: a CPU loop variable, or a Triton program's
row / lane / reduced-lane block index), floor divisions that did not simplify
(:class:`Div`), clamps (:class:`Clamp`, used by concat) and data-dependent
indices (:class:`Data`, gather/embedding; clamped into range so generated code
never reads outside a buffer).

This module is the algebra only. Each backend keeps its own emitter: the CPU
lowering builds ``arith`` ops from a :class:`Lin`
(``backends/llvm/lowering/loops_emit.py``), the Triton code generator prints it
as Python source (``backends/triton/codegen_index.py``). The index maps of the
movement ops (:func:`broadcast_index`, :func:`permute_index`,
:func:`reshape_index`, :func:`slice_index`, :func:`concat_pieces`) are defined
here once, so both backends read a view's input at the same element.

Sizes are :data:`Size` values (today plain ``int``): every function that takes
a shape or a size takes it through that alias, so symbolic sizes can replace
it without touching the callers' algebra.

Why hand-written rather than sympy: we need only linear forms with
floor-division/modulo by positive constants and ranges of index variables, and
the simplifications are those that make reshapes free (inductor's
``FloorDiv``/``ModularIndexing`` rules): ``(a*m + r) // m == a`` when
``0 <= r < m``, ``(a*k*g + r) // (m*g) == (a*k) // m`` when ``0 <= r < g``,
``(x // a) // m == x // (a*m)``, and ``x % m == x - m*(x // m)``. With them, the row-major re-linearisation of a
reshape's unravelled index collapses back to the plain linear index, so the
innermost loop has no div/mod.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Size = int
"""A dimension's size or a stride (an ``int`` today; the one place symbolic sizes enter)."""

Shape = tuple[Size, ...]


@dataclass(frozen=True)
class Var:
    """A loop variable ranging over ``[0, size)``."""

    id: int
    size: Size

    def key(self) -> tuple:
        return (0, self.id)


@dataclass(frozen=True)
class Div:
    """``floor(lin / m)`` (m > 0, lin >= 0) that did not simplify."""

    lin: "Lin"
    m: int

    def key(self) -> tuple:
        return (1, self.lin.key(), self.m)


@dataclass(frozen=True)
class Clamp:
    """``min(max(lin, lo), hi)``."""

    lin: "Lin"
    lo: int
    hi: int

    def key(self) -> tuple:
        return (2, self.lin.key(), self.lo, self.hi)


@dataclass(frozen=True)
class Data:
    """An index loaded from memory (``node``: an integer scalar node), wrapped
    like torch's negative indices (``i < 0`` means ``i + size``) and clamped to
    ``[0, size)``."""

    node: Any
    size: int

    def key(self) -> tuple:
        return (3, self.node.serial, self.size)


Atom = Var | Div | Clamp | Data


@dataclass(frozen=True)
class Lin:
    """``const + sum(coeff * atom)``; terms sorted by atom key, no zero coefficients."""

    const: int
    terms: tuple[tuple[Atom, int], ...] = ()

    def key(self) -> tuple:
        return (self.const, tuple((a.key(), c) for a, c in self.terms))

    @property
    def is_const(self) -> bool:
        return not self.terms


Index = tuple[Lin, ...]
"""A point of a shape: one :class:`Lin` per dim."""

ZERO = Lin(0)


def const(c: int) -> Lin:
    return Lin(int(c))


def atom(a: Atom) -> Lin:
    return Lin(0, ((a, 1),))


def var(v: Var) -> Lin:
    return Lin(0, ((v, 1),)) if v.size > 1 else Lin(0)


def _make(c: int, coeffs: dict[Atom, int]) -> Lin:
    terms = tuple(sorted(((a, k) for a, k in coeffs.items() if k), key=lambda t: t[0].key()))
    return Lin(c, terms)


def add(*xs: Lin) -> Lin:
    coeffs: dict[Atom, int] = {}
    c = 0
    for x in xs:
        c += x.const
        for a, k in x.terms:
            coeffs[a] = coeffs.get(a, 0) + k
    return _make(c, coeffs)


def scale(x: Lin, k: int) -> Lin:
    if k == 0:
        return Lin(0)
    return Lin(x.const * k, tuple((a, c * k) for a, c in x.terms))


def sub(x: Lin, y: Lin) -> Lin:
    return add(x, scale(y, -1))


def atom_range(a: Atom) -> tuple[int, int]:
    if isinstance(a, Var):
        return 0, a.size - 1
    if isinstance(a, Div):
        lo, hi = lin_range(a.lin)
        return lo // a.m, hi // a.m
    if isinstance(a, Clamp):
        return a.lo, a.hi
    return 0, a.size - 1


def lin_range(x: Lin) -> tuple[int, int]:
    lo = hi = x.const
    for a, k in x.terms:
        alo, ahi = atom_range(a)
        if k > 0:
            lo, hi = lo + k * alo, hi + k * ahi
        else:
            lo, hi = lo + k * ahi, hi + k * alo
    return lo, hi


def floordiv(x: Lin, m: int) -> Lin:
    """``floor(x / m)`` for ``m > 0`` and ``x >= 0``, simplified."""
    if m == 1:
        return x
    lo, hi = lin_range(x)
    if lo // m == hi // m:
        return Lin(lo // m)
    # floor(floor(y / a) / m) == floor(y / (a*m))
    if x.const == 0 and len(x.terms) == 1 and x.terms[0][1] == 1 \
            and isinstance(x.terms[0][0], Div):
        inner = x.terms[0][0]
        return floordiv(inner.lin, inner.m * m)
    # pull out exact multiples of m: floor((m*A + r) / m) == A + floor(r / m)
    big = {a: k // m for a, k in x.terms if k % m == 0}
    rest = Lin(x.const % m, tuple((a, k) for a, k in x.terms if k % m != 0))
    whole = Lin(x.const // m, tuple((a, k) for a, k in big.items()))
    # (only while the rest stays >= 0: a Div of a negative value would be
    # emitted as a truncating division, wrong for floor semantics)
    if (big or x.const >= m) and lin_range(rest)[0] >= 0:
        return add(whole, floordiv(rest, m))
    # floor((g*A + r) / (g*n)) == floor(A / n) when 0 <= r < g
    terms = sorted(x.terms, key=lambda t: -abs(t[1]))
    for n in range(len(terms) - 1, 0, -1):
        head, tail = terms[:n], Lin(x.const, tuple(terms[n:]))
        g = math.gcd(m, *(k for _, k in head))
        tlo, thi = lin_range(tail)
        if g > 1 and 0 <= tlo and thi < g:
            reduced = _make(0, {a: k // g for a, k in head})
            if lin_range(reduced)[0] >= 0:
                return floordiv(reduced, m // g)
    return atom(Div(x, m))


def mod(x: Lin, m: int) -> Lin:
    """``x mod m`` for ``m > 0`` and ``x >= 0`` (as ``x - m * (x // m)``)."""
    if m == 1:
        return Lin(0)
    lo, hi = lin_range(x)
    if 0 <= lo and hi < m:
        return x
    return sub(x, scale(floordiv(x, m), m))


def row_major_strides(shape: Shape) -> list[Size]:
    strides, s = [], 1
    for d in reversed(shape):
        strides.append(s)
        s *= d
    return strides[::-1]


def linearise(index: Index, shape: Shape) -> Lin:
    """Row-major element offset of ``index`` in a buffer of ``shape``."""
    return add(*(scale(i, s) for i, s, d in zip(index, row_major_strides(shape), shape) if d != 1))


def unravel(offset: Lin, shape: Shape) -> Index:
    """The row-major index of ``offset`` in ``shape`` (inverse of :func:`linearise`)."""
    out = []
    for i, (s, d) in enumerate(zip(row_major_strides(shape), shape)):
        if d == 1:
            out.append(Lin(0))
            continue
        q = floordiv(offset, s)
        out.append(q if i == 0 else mod(q, d))
    return tuple(out)


def deps(x: Lin) -> frozenset[int]:
    """Ids of the loop variables (and data nodes' variables) ``x`` depends on."""
    out: set[int] = set()
    for a, _ in x.terms:
        out |= atom_deps(a)
    return frozenset(out)


def atom_deps(a: Atom) -> frozenset[int]:
    if isinstance(a, Var):
        return frozenset((a.id,))
    if isinstance(a, (Div, Clamp)):
        return deps(a.lin)
    return a.node.deps



# -- index maps of the movement ops: the input element a view's result element reads --


def broadcast_index(index: Index, shape: Shape) -> Index:
    """Index into an operand of ``shape`` broadcast (numpy rules) to ``index``'s rank."""
    skip = len(index) - len(shape)
    return tuple(ZERO if d == 1 else index[skip + i] for i, d in enumerate(shape))


def permute_index(index: Index, perm: tuple[int, ...] | list[int]) -> Index:
    """Index into a permute's input (``result dim i`` is ``input dim perm[i]``)."""
    src = [ZERO] * len(perm)
    for out_pos, in_dim in enumerate(perm):
        src[in_dim] = index[out_pos]
    return tuple(src)


def permute_forward(index: Index, perm: tuple[int, ...] | list[int]) -> Index:
    """Index into a permute's result of the input element at ``index``."""
    return tuple(index[p] for p in perm)


def reshape_index(index: Index, shape: Shape, input_shape: Shape) -> Index:
    """Index into a reshape's (squeeze's, unsqueeze's) input: the same flat element."""
    return unravel(linearise(index, shape), input_shape)


def slice_index(index: Index, dim: int, start: int, step: int) -> Index:
    """Index into a slice's input (``start + step * i`` along ``dim``)."""
    src = list(index)
    src[dim] = add(const(start), scale(index[dim], step))
    return tuple(src)


def concat_pieces(index: Index, dim: int, sizes: list[Size]) -> list[tuple[int, int, Index]]:
    """``(operand, offset, index)`` for each non-empty operand of a concat along
    ``dim``: the operand is read at the position clamped into its own range, so
    every read is in bounds whichever operand the position selects (the result
    then selects by ``index[dim] < next offset``)."""
    out: list[tuple[int, int, Index]] = []
    offset = 0
    for k, size in enumerate(sizes):
        if size == 0:
            continue  # never selected, and nothing to read
        src = list(index)
        src[dim] = atom(Clamp(sub(index[dim], const(offset)), 0, size - 1))
        out.append((k, offset, tuple(src)))
        offset += size
    return out


def concat_operand_at(position: int, index: Index, dim: int,
                      sizes: list[Size]) -> tuple[int, Index] | None:
    """The one operand (and its index) holding a concat's element at a constant
    ``position`` along ``dim``; None when no operand does (an empty result)."""
    offset = 0
    for k, size in enumerate(sizes):
        if offset <= position < offset + size:
            src = list(index)
            src[dim] = const(position - offset)
            return k, tuple(src)
        offset += size
    return None
