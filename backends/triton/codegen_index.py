"""Index expressions of generated Triton kernels: the shared algebra, printed as source.

A kernel evaluates each SSA value *at coordinates* (:class:`Coords`): one
:class:`~irc.ir.index.Lin` per dim of the value's (static, row-major) shape, or
its flat index, over the kernel's block indices (``offs``, ``o``, ``r``; a
matmul tile's ``rm``, ``rn``, ``pid_b``), which are the algebra's index
variables. Movement ops only rewrite coordinates, through the same index maps
as the CPU lowering (:mod:`irc.ir.index`), so they cost index math and never
memory traffic, and reshapes of reshapes simplify away.

:class:`IndexPrinter` is this backend's emitter: it prints a ``Lin`` as Python
source for ``@triton.jit`` code (floor divisions and clamps bound to locals
once, ``x - m * (x // m)`` printed as ``x % m``) and knows which block axes an
expression varies along (axis 0: the program's rows / lanes, axis 1: the
reduced lanes), which decides the mask a load needs and whether a reduction
can consume it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from irc.ir import index as ix

AXES_NONE: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Ix:
    """A printed index expression: a local name or an expression's text, the
    block axes it varies along, and its value when it is a literal."""

    text: str
    axes: frozenset[int] = AXES_NONE
    const: int | None = None

    @staticmethod
    def of(value: int) -> "Ix":
        return Ix(str(value), AXES_NONE, value)

    def paren(self) -> str:
        return self.text if self.text.isidentifier() or self.const is not None else f"({self.text})"


Bind = Callable[[str, frozenset[int]], Ix]  # expression -> bound local name


class IndexPrinter:
    """Prints index expressions of one kernel as Triton source.

    ``bind`` emits ``name = expr`` once per scope and returns the name, so the
    same subexpression printed twice is computed once."""

    def __init__(self, bind: Bind) -> None:
        self.bind = bind
        self.names: dict[int, Ix] = {}

    def var(self, name: str, size: ix.Size, axes: frozenset[int]) -> ix.Lin:
        """A block index ``name`` (already defined in the source) ranging over
        ``[0, size)`` where its mask holds."""
        v = ix.Var(len(self.names), size)
        self.names[v.id] = Ix(name, axes)
        return ix.var(v)

    def axes(self, lin: ix.Lin) -> frozenset[int]:
        out: set[int] = set()
        for i in ix.deps(lin):
            out |= self.names[i].axes
        return frozenset(out)

    def print(self, lin: ix.Lin) -> Ix:
        """``lin`` as an expression (a literal, a block index, or a bound local)."""
        if lin.is_const:
            return Ix.of(ix.static(lin.const))
        if lin.const == 0 and len(lin.terms) == 1 and lin.terms[0][1] == 1:
            return self.atom(lin.terms[0][0])
        return self.bind(self._sum(lin), self.axes(lin))

    def atom(self, a: ix.Atom) -> Ix:
        if isinstance(a, ix.Var):
            return self.names[a.id]
        if isinstance(a, ix.Div):
            return self.bind(f"{self.print(a.lin).paren()} // {a.m}", self.axes(a.lin))
        if isinstance(a, ix.Clamp):
            inner = self.print(a.lin)
            return self.bind(f"tl.minimum(tl.maximum({inner.text}, {a.lo}), {a.hi})",
                             inner.axes)
        raise ValueError("a data-dependent index has no Triton lowering")

    def _sum(self, lin: ix.Lin) -> str:
        parts: list[tuple[str, int]] = []  # (printed atom, coefficient)
        while True:
            found = _modulo(lin)
            if found is None:
                break
            x, m, k, lin = found
            parts.append((self.bind(f"{self.print(x).paren()} % {m}", self.axes(x)).text, k))
        parts += [(self.atom(a).paren(), ix.static(k)) for a, k in lin.terms]
        text = ""
        for name, k in parts:
            sign = "-" if k < 0 else "+"
            term = name if abs(k) == 1 else f"{name} * {abs(k)}"
            text = (f"-{term}" if sign == "-" else term) if not text else f"{text} {sign} {term}"
        if lin.const:
            text += f" {'-' if lin.const < 0 else '+'} {abs(lin.const)}"
        return text


def _modulo(lin: ix.Lin) -> tuple[ix.Lin, int, int, ix.Lin] | None:
    """``(x, m, k, rest)`` with ``lin == k * (x % m) + rest``, or None.

    The algebra writes ``x % m`` as ``x - m * (x // m)``, and ``(y // a) % m``
    as ``y // a - m * (y // (a*m))``; this finds either form again."""
    coeffs = {a: ix.static(c) for a, c in lin.terms}
    for a, c in coeffs.items():
        if not isinstance(a, ix.Div):
            continue
        for x, k, m in _dividends(a, coeffs):
            if k * m != -c:
                continue
            rest = ix.sub(ix.sub(lin, ix.scale(x, k)), ix.scale(ix.atom(a), c))
            inside = {b for b, _ in x.terms}
            if not any(b in inside for b, _ in rest.terms):
                return x, m, k, rest
    return None


def _dividends(a: ix.Div, coeffs: dict[ix.Atom, int]) -> list[tuple[ix.Lin, int, int]]:
    """Candidates ``(x, k, m)`` for ``k * x - k*m * a`` in the sum: ``a``'s own
    dividend (``a == x // m``), and each ``y // d`` in the sum with
    ``a == y // (d*m)``."""
    out: list[tuple[ix.Lin, int, int]] = []
    if a.lin.terms:
        first, k0 = a.lin.terms[0]
        k0 = ix.static(k0)
        if first in coeffs and coeffs[first] % k0 == 0:
            out.append((a.lin, coeffs[first] // k0, ix.static(a.m)))
    for b, k in coeffs.items():
        if isinstance(b, ix.Div) and b.lin == a.lin and ix.static(b.m) < ix.static(a.m) \
                and ix.static(a.m) % ix.static(b.m) == 0:
            out.append((ix.atom(b), k, ix.static(a.m) // ix.static(b.m)))
    return out


class Coords:
    """A point of a shape: per-dim index expressions and/or the flat index.

    Either form is computed from the other on demand, by the algebra (nothing
    is printed until a load or store needs an address)."""

    def __init__(self, shape: Sequence[ix.Size], dims: Sequence[ix.Lin] | None = None,
                 flat: ix.Lin | None = None) -> None:
        assert dims is not None or flat is not None
        self.shape: ix.Shape = tuple(shape)
        self._dims = tuple(dims) if dims is not None else None
        self._flat = flat
        if dims is not None:
            assert len(dims) == len(self.shape), (dims, shape)

    def dims(self) -> ix.Index:
        if self._dims is None:
            assert self._flat is not None
            self._dims = ix.unravel(self._flat, self.shape)
        return self._dims

    def flat(self) -> ix.Lin:
        if self._flat is None:
            assert self._dims is not None
            self._flat = ix.linearise(self._dims, self.shape)
        return self._flat

    def keys(self) -> list[tuple[object, ...]]:
        """Memo keys of this point: one per form (the same element in either
        form is the same value)."""
        return [("dims", tuple(d.key() for d in self.dims())),
                ("flat", self.shape, self.flat().key())]


def broadcast_coords(c: Coords, operand_shape: Sequence[int]) -> Coords:
    """Coordinates of an operand broadcast (numpy rules) to ``c.shape``."""
    shape = tuple(operand_shape)
    if shape == c.shape:
        return c
    return Coords(shape, ix.broadcast_index(c.dims(), shape))


def reshape_coords(c: Coords, input_shape: Sequence[int]) -> Coords:
    """Coordinates in ``input_shape`` of the same flat element (reshape,
    squeeze, unsqueeze)."""
    return Coords(input_shape, flat=c.flat())


def permute_coords(c: Coords, perm: Sequence[int], input_shape: Sequence[int]) -> Coords:
    return Coords(input_shape, ix.permute_index(c.dims(), list(perm)))


def slice_coords(c: Coords, dim: int, start: int, step: int,
                 input_shape: Sequence[int]) -> Coords:
    return Coords(input_shape, ix.slice_index(c.dims(), dim, start, step))
