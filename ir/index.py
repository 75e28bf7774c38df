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

Sizes are :data:`Size` values: an ``int``, or a sympy expression over size
symbols (:data:`irc.ir.symbols.Dim`) for a kernel compiled once for every
binding of the sizes. Constants and coefficients of a :class:`Lin`, loop
extents, divisors and clamp bounds may all be symbolic; the emitters compute
them from the kernel's size arguments. Every simplification below needs a
*proof* (:func:`irc.ir.symbols.known_le` and friends: true for every positive
value of the symbols); an unknown range or sign means no simplification, so
symbolic code may keep a division that a static compile folds, never the
reverse.

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sympy

from irc.ir.symbols import Dim, known_lt, known_negative, known_nonnegative, known_positive

Size = Dim
"""A dimension's size or a stride: an ``int``, or a sympy expression over size symbols."""


def norm(x: Any) -> Size:
    """``x`` as a python int when it is a number (sympy's Integer included)."""
    if isinstance(x, int):
        return x
    if isinstance(x, sympy.Integer):
        return int(x)
    return x


_norm = norm


def static(x: Size) -> int:
    """``x`` where code needs a static size (a symbolic one is a SymbolicShapeError)."""
    if not isinstance(x, int):
        from irc.ir.symbols import SymbolicShapeError
        raise SymbolicShapeError(f"a static size is needed here, got {x}")
    return x


def _skey(x: Size) -> tuple:
    """A sort key for a size that orders ints and expressions alike."""
    return (0, x, "") if isinstance(x, int) else (1, 0, sympy.srepr(x))


def is_symbolic(x: Size) -> bool:
    return not isinstance(x, int)


def exact_div(k: Size, m: Size) -> Size | None:
    """``k / m`` when it is an integer for every binding (proven), else None."""
    if isinstance(k, int) and isinstance(m, int):
        return k // m if k % m == 0 else None
    q = sympy.cancel(sympy.sympify(k) / m)
    if q.is_Integer:
        return int(q)
    if sympy.fraction(q)[1] != 1:
        return None
    try:
        poly = sympy.Poly(q, *sorted(q.free_symbols, key=str))
    except sympy.PolynomialError:
        return None
    return _norm(q) if all(c.is_Integer for c in poly.coeffs()) else None


def _floor_div(a: Size, m: Size) -> Size:
    """``floor(a / m)`` of two sizes (``m > 0``)."""
    if isinstance(a, int) and isinstance(m, int):
        return a // m
    q = exact_div(a, m)
    return q if q is not None else _norm(sympy.floor(sympy.sympify(a) / m))

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
    m: Size

    def key(self) -> tuple:
        return (1, self.lin.key(), _skey(self.m))


@dataclass(frozen=True)
class Clamp:
    """``min(max(lin, lo), hi)``."""

    lin: "Lin"
    lo: Size
    hi: Size

    def key(self) -> tuple:
        return (2, self.lin.key(), _skey(self.lo), _skey(self.hi))


@dataclass(frozen=True)
class Data:
    """An index loaded from memory (``node``: an integer scalar node), wrapped
    like torch's negative indices (``i < 0`` means ``i + size``) and clamped to
    ``[0, size)``."""

    node: Any
    size: Size

    def key(self) -> tuple:
        return (3, self.node.serial, _skey(self.size))


Atom = Var | Div | Clamp | Data


@dataclass(frozen=True)
class Lin:
    """``const + sum(coeff * atom)``; terms sorted by atom key, no zero coefficients."""

    const: Size
    terms: tuple[tuple[Atom, Size], ...] = ()

    def key(self) -> tuple:
        return (_skey(self.const), tuple((a.key(), _skey(c)) for a, c in self.terms))

    @property
    def is_const(self) -> bool:
        return not self.terms


Index = tuple[Lin, ...]
"""A point of a shape: one :class:`Lin` per dim."""

ZERO = Lin(0)


def const(c: Size) -> Lin:
    return Lin(_norm(c) if isinstance(c, sympy.Basic) else int(c))


def atom(a: Atom) -> Lin:
    return Lin(0, ((a, 1),))


def var(v: Var) -> Lin:
    return Lin(0, ((v, 1),)) if is_symbolic(v.size) or v.size > 1 else Lin(0)


def _make(c: Size, coeffs: dict[Atom, Size]) -> Lin:
    terms = tuple(sorted(((a, _norm(k)) for a, k in coeffs.items() if _norm(k) != 0),
                         key=lambda t: t[0].key()))
    return Lin(_norm(c), terms)


def add(*xs: Lin) -> Lin:
    coeffs: dict[Atom, Size] = {}
    c: Size = 0
    for x in xs:
        c += x.const
        for a, k in x.terms:
            coeffs[a] = coeffs.get(a, 0) + k
    return _make(c, coeffs)


def scale(x: Lin, k: Size) -> Lin:
    k = _norm(k)
    if k == 0:
        return Lin(0)
    if isinstance(k, int) and isinstance(x.const, int) and all(isinstance(c, int) for _, c in x.terms):
        return Lin(x.const * k, tuple((a, c * k) for a, c in x.terms))
    return Lin(_norm(sympy.expand(x.const * k)),
               tuple((a, _norm(sympy.expand(c * k))) for a, c in x.terms))


def sub(x: Lin, y: Lin) -> Lin:
    return add(x, scale(y, -1))


Range = tuple[Size, Size] | None
"""Proven bounds ``(lo, hi)`` of an index, or None when not known."""


def atom_range(a: Atom) -> Range:
    if isinstance(a, Var):
        return 0, _norm(a.size - 1)
    if isinstance(a, Div):
        r = lin_range(a.lin)
        return None if r is None else (_floor_div(r[0], a.m), _floor_div(r[1], a.m))
    if isinstance(a, Clamp):
        return a.lo, a.hi
    return 0, _norm(a.size - 1)


def lin_range(x: Lin) -> Range:
    lo: Size = x.const
    hi: Size = x.const
    for a, k in x.terms:
        r = atom_range(a)
        if r is None:
            return None
        alo, ahi = r
        if known_positive(k):
            lo, hi = lo + k * alo, hi + k * ahi
        elif known_negative(k):
            lo, hi = lo + k * ahi, hi + k * alo
        else:
            return None  # a coefficient of unknown sign: no bounds
    return _norm(sympy.expand(lo)) if is_symbolic(lo) else lo, \
        _norm(sympy.expand(hi)) if is_symbolic(hi) else hi


def _min_nonneg(x: Lin) -> bool:
    """Is ``x >= 0`` proven?"""
    r = lin_range(x)
    return r is not None and known_nonnegative(r[0])


def _is_int_lin(x: Lin) -> bool:
    return isinstance(x.const, int) and all(isinstance(k, int) for _, k in x.terms)


def floordiv(x: Lin, m: Size) -> Lin:
    """``floor(x / m)`` for ``m > 0`` and ``x >= 0``, simplified."""
    m = _norm(m)
    if m == 1:
        return x
    r = lin_range(x)
    if is_symbolic(m) or not _is_int_lin(x) or r is None or is_symbolic(r[0]) \
            or is_symbolic(r[1]):
        return _floordiv_symbolic(x, m)
    lo, hi = r
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
    if (big or x.const >= m) and _min_nonneg(rest):
        return add(whole, floordiv(rest, m))
    # floor((g*A + r) / (g*n)) == floor(A / n) when 0 <= r < g
    terms = sorted(x.terms, key=lambda t: -abs(t[1]))  # type: ignore[arg-type]
    for n in range(len(terms) - 1, 0, -1):
        head, tail = terms[:n], Lin(x.const, tuple(terms[n:]))
        g = math.gcd(m, *(k for _, k in head))  # type: ignore[arg-type]
        tr = lin_range(tail)
        assert tr is not None
        tlo, thi = tr
        if g > 1 and 0 <= tlo and thi < g:
            reduced = _make(0, {a: k // g for a, k in head})  # type: ignore[operator]
            if _min_nonneg(reduced):
                return floordiv(reduced, m // g)
    return atom(Div(x, m))


def _floordiv_symbolic(x: Lin, m: Size) -> Lin:
    """:func:`floordiv` where the divisor or a coefficient is symbolic: the
    same rules, each applied only where it is proven."""
    r = lin_range(x)
    if r is not None and known_nonnegative(r[0]) and known_lt(r[1], m):
        return Lin(0)
    if x.const == 0 and len(x.terms) == 1 and x.terms[0][1] == 1 \
            and isinstance(x.terms[0][0], Div):
        inner = x.terms[0][0]
        return floordiv(inner.lin, _norm(sympy.expand(inner.m * m)))
    # pull out exact multiples of m: floor((m*A + r) / m) == A + floor(r / m)
    whole: dict[Atom, Size] = {}
    rest: dict[Atom, Size] = {}
    for a, k in x.terms:
        q = exact_div(k, m)
        if q is not None:
            whole[a] = q
        else:
            rest[a] = k
    qc = exact_div(x.const, m)
    whole_c, rest_c = (qc, 0) if qc is not None else (0, x.const)
    remainder = _make(rest_c, rest)
    if (whole or whole_c != 0) and _min_nonneg(remainder):
        return add(_make(whole_c, whole), floordiv(remainder, m))
    # floor((g*A + r) / (g*n)) == floor(A / n) when 0 <= r < g, g a common
    # factor of the divisor and the leading coefficients
    for n in range(len(x.terms) - 1, 0, -1):
        for split in (x.terms[:n], x.terms[-n:]):
            head = dict(split)
            tail = Lin(x.const, tuple(t for t in x.terms if t[0] not in head))
            g = _norm(sympy.gcd(sympy.sympify(m), *[sympy.sympify(k) for k in head.values()]))
            if g == 1 or not known_positive(g):
                continue
            tr = lin_range(tail)
            if tr is None or not known_nonnegative(tr[0]) or not known_lt(tr[1], g):
                continue
            reduced = _make(0, {a: exact_div(k, g) for a, k in head.items()})  # type: ignore[misc]
            mg = exact_div(m, g)
            if mg is not None and _min_nonneg(reduced):
                return floordiv(reduced, mg)
    return atom(Div(x, m))


def mod(x: Lin, m: Size) -> Lin:
    """``x mod m`` for ``m > 0`` and ``x >= 0`` (as ``x - m * (x // m)``)."""
    m = _norm(m)
    if m == 1:
        return Lin(0)
    r = lin_range(x)
    if r is not None and known_nonnegative(r[0]) and known_lt(r[1], m):
        return x
    return sub(x, scale(floordiv(x, m), m))


def row_major_strides(shape: Shape) -> list[Size]:
    strides: list[Size] = []
    s: Size = 1
    for d in reversed(shape):
        strides.append(s)
        s = _norm(s * d)
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


def slice_index(index: Index, dim: int, start: Size, step: int) -> Index:
    """Index into a slice's input (``start + step * i`` along ``dim``)."""
    src = list(index)
    src[dim] = add(const(start), scale(index[dim], step))
    return tuple(src)


def concat_pieces(index: Index, dim: int, sizes: Sequence[Size]) -> list[tuple[int, Size, Index]]:
    """``(operand, offset, index)`` for each non-empty operand of a concat along
    ``dim``: the operand is read at the position clamped into its own range, so
    every read is in bounds whichever operand the position selects (the result
    then selects by ``index[dim] < next offset``)."""
    out: list[tuple[int, Size, Index]] = []
    offset: Size = 0
    for k, size in enumerate(sizes):
        if size == 0:
            continue  # never selected, and nothing to read
        src = list(index)
        src[dim] = atom(Clamp(sub(index[dim], const(offset)), 0, _norm(size - 1)))
        out.append((k, offset, tuple(src)))
        offset = _norm(offset + size)
    return out


def concat_operand_at(position: Size, index: Index, dim: int,
                      sizes: Sequence[Size]) -> tuple[int, Index] | None:
    """The one operand (and its index) holding a concat's element at a constant
    ``position`` along ``dim``; None when no operand does (an empty result)."""
    offset: Size = 0
    for k, size in enumerate(sizes):
        if is_symbolic(offset) or is_symbolic(size):
            from irc.ir.symbols import SymbolicShapeError
            raise SymbolicShapeError("a concat read at a constant position needs static operand sizes")
        if offset <= position < offset + size:
            src = list(index)
            src[dim] = const(position - offset)
            return k, tuple(src)
        offset += size
    return None
