"""Index arithmetic for generated Triton kernels.

A kernel evaluates each SSA value *at coordinates*: one index expression per
dim of the value's (static, row-major) shape. Movement ops only rewrite
coordinates (permute swaps them, expand/broadcast zero them, slice scales and
shifts, reshape goes through the flattened index), so they cost index math and
never memory traffic. An index expression knows which block axes it varies
along (axis 0: the program's rows / lanes, axis 1: the reduced lanes), which
decides the mask a load needs and whether a reduction can consume it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

AXES_NONE: frozenset[int] = frozenset()


def strides_of(shape: Sequence[int]) -> list[int]:
    """Row-major (contiguous) strides."""
    out, acc = [], 1
    for s in reversed(shape):
        out.append(acc)
        acc *= s
    return out[::-1]


def _product(values: Sequence[int]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


@dataclass(frozen=True)
class Ix:
    """An integer index expression (a local name, or a literal when ``const`` is set)."""

    text: str
    axes: frozenset[int] = AXES_NONE
    const: int | None = None
    split: tuple["Ix", int, "Ix"] | None = None
    """``(hi, n, lo)`` when the index is ``hi * n + lo`` with ``0 <= lo < n``:
    delinearizing then keeps hi's and lo's block axes apart."""

    @staticmethod
    def of(value: int) -> "Ix":
        return Ix(str(value), AXES_NONE, value)

    def paren(self) -> str:
        return self.text if self.text.isidentifier() or self.const is not None else f"({self.text})"


ZERO = Ix.of(0)
Bind = Callable[[str, frozenset[int]], Ix]  # expression -> bound local name


def affine(terms: Sequence[tuple[Ix, int]],
           offset: int = 0) -> tuple[str, frozenset[int], int | None]:
    """``sum(ix * k) + offset`` as text, folding constants."""
    const = offset
    parts: list[str] = []
    axes: set[int] = set()
    for ix, k in terms:
        if k == 0:
            continue
        if ix.const is not None:
            const += ix.const * k
            continue
        parts.append(ix.paren() if k == 1 else f"{ix.paren()} * {k}")
        axes |= ix.axes
    if not parts:
        return str(const), AXES_NONE, const
    if const:
        parts.append(str(const))
    return " + ".join(parts), frozenset(axes), None


def linearize(dims: Sequence[Ix], shape: Sequence[int], bind: Bind) -> Ix:
    """The row-major flat index of ``dims`` in ``shape``."""
    text, axes, const = affine(list(zip(dims, strides_of(shape))))
    if const is not None:
        return Ix.of(const)
    if len([d for d in dims if d.const is None]) == 1 and " " not in text:
        return Ix(text, axes)
    return bind(text, axes)


def delinearize(flat: Ix, shape: Sequence[int], bind: Bind, bounded: bool = True) -> list[Ix]:
    """Coordinates of the flat index ``flat`` in ``shape``; ``bounded`` says
    ``flat < numel(shape)`` (then the leading dim needs no ``%``)."""
    if flat.split is not None:
        hi, n, lo = flat.split
        for k in range(len(shape) + 1):
            if _product(shape[k:]) == n:
                return (delinearize(hi, shape[:k], bind, bounded)
                        + delinearize(lo, shape[k:], bind, True))
    out: list[Ix] = []
    for i, (size, stride) in enumerate(zip(shape, strides_of(shape))):
        if size == 1:
            out.append(ZERO)
            continue
        if flat.const is not None:
            out.append(Ix.of(flat.const // stride % size))
            continue
        text = flat.paren() if stride == 1 else f"{flat.paren()} // {stride}"
        leading = all(s == 1 for s in shape[:i])
        if not (leading and bounded):
            text = f"{text if stride == 1 else '(' + text + ')'} % {size}"
        out.append(bind(text, flat.axes) if text != flat.text else flat)
    return out


class Coords:
    """A point of a shape: per-dim index expressions and/or the flat index.

    Either form is computed from the other on demand (through ``bind``, so the
    arithmetic is emitted once, where first needed).
    """

    def __init__(self, shape: Sequence[int], dims: Sequence[Ix] | None = None,
                 flat: Ix | None = None) -> None:
        assert dims is not None or flat is not None
        self.shape = tuple(shape)
        self._dims = list(dims) if dims is not None else None
        self._flat = flat
        if dims is not None:
            assert len(dims) == len(self.shape), (dims, shape)

    def dims(self, bind: Bind) -> list[Ix]:
        if self._dims is None:
            assert self._flat is not None
            self._dims = delinearize(self._flat, self.shape, bind)
        return self._dims

    def flat(self, bind: Bind) -> Ix:
        if self._flat is None:
            assert self._dims is not None
            self._flat = linearize(self._dims, self.shape, bind)
        return self._flat

    def has_flat(self) -> bool:
        return self._flat is not None

    def axes(self, bind: Bind) -> frozenset[int]:
        if self._flat is not None:
            return self._flat.axes
        return frozenset().union(*(d.axes for d in self.dims(bind)))

    def keys(self) -> list[tuple[object, ...]]:
        """Memo keys of this point: one per form already known."""
        out: list[tuple[object, ...]] = []
        if self._dims is not None:
            out.append(("dims", tuple(d.text for d in self._dims)))
        if self._flat is not None:
            out.append(("flat", self.shape, self._flat.text))
        return out


def broadcast_coords(c: Coords, operand_shape: Sequence[int], bind: Bind) -> Coords:
    """Coordinates of an operand broadcast (numpy rules) to ``c.shape``."""
    shape = tuple(operand_shape)
    if shape == c.shape:
        return c
    dims = c.dims(bind)
    lead = len(c.shape) - len(shape)
    out = [ZERO if s == 1 and c.shape[lead + j] != 1 else dims[lead + j]
           for j, s in enumerate(shape)]
    return Coords(shape, out)


def reshape_coords(c: Coords, input_shape: Sequence[int], bind: Bind) -> Coords:
    """Coordinates in ``input_shape`` of the same flat element."""
    return Coords(input_shape, flat=c.flat(bind))


def permute_coords(c: Coords, perm: Sequence[int], input_shape: Sequence[int],
                   bind: Bind) -> Coords:
    dims = c.dims(bind)
    out: list[Ix] = [ZERO] * len(perm)
    for i, p in enumerate(perm):
        out[p] = dims[i]
    return Coords(input_shape, out)


def slice_coords(c: Coords, dim: int, start: int, step: int, input_shape: Sequence[int],
                 bind: Bind) -> Coords:
    dims = list(c.dims(bind))
    text, axes, const = affine([(dims[dim], step)], start)
    dims[dim] = Ix.of(const) if const is not None else bind(text, axes)
    return Coords(input_shape, dims)


def squeeze_coords(c: Coords, squeezed: Sequence[int], input_shape: Sequence[int],
                   bind: Bind) -> Coords:
    """Input of a squeeze: zeros inserted at the squeezed dims (flat index unchanged)."""
    if c.has_flat():
        return Coords(input_shape, flat=c.flat(bind))
    it = iter(c.dims(bind))
    return Coords(input_shape,
                  [ZERO if i in squeezed else next(it) for i in range(len(input_shape))])


def unsqueeze_coords(c: Coords, dim: int, input_shape: Sequence[int], bind: Bind) -> Coords:
    if c.has_flat():
        return Coords(input_shape, flat=c.flat(bind))
    dims = c.dims(bind)
    return Coords(input_shape, dims[:dim] + dims[dim + 1:])
