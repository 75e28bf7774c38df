"""The shared index algebra (``irc.ir.index``) and the Triton printer of it.

Every simplification must keep the value of the expression at every point of
the variables' ranges; the printed Triton text, evaluated as Python, must give
the same integers (Python's ``//`` and ``%`` are Triton's on non-negative
values)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from irc.backends.triton.codegen_index import Coords, IndexPrinter, Ix
from irc.ir import index as ix
from irc.ir.types import numel


def evaluate(x: ix.Lin, env: dict[int, int]) -> int:
    total = x.const
    for a, k in x.terms:
        total += k * evaluate_atom(a, env)
    return total


def evaluate_atom(a: ix.Atom, env: dict[int, int]) -> int:
    if isinstance(a, ix.Var):
        return env[a.id]
    if isinstance(a, ix.Div):
        return evaluate(a.lin, env) // a.m
    if isinstance(a, ix.Clamp):
        return min(max(evaluate(a.lin, env), a.lo), a.hi)
    raise AssertionError(a)


def points(variables: list[ix.Var]) -> list[dict[int, int]]:
    return [dict(zip((v.id for v in variables), p))
            for p in itertools.product(*(range(v.size) for v in variables))]


shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, out=shapes, m=st.integers(1, 12))
def test_reshape_index_and_division_keep_values(shape: tuple[int, ...], out: tuple[int, ...],
                                                m: int) -> None:
    n = numel(shape)
    flat = ix.Var(0, n)
    index = ix.unravel(ix.var(flat), shape)
    for env in points([flat]):
        f = env[0]
        assert [evaluate(d, env) for d in index] == list(_unravel_int(f, shape))
        assert evaluate(ix.linearise(index, shape), env) == f
        assert evaluate(ix.floordiv(ix.var(flat), m), env) == f // m
        assert evaluate(ix.mod(ix.var(flat), m), env) == f % m
    if numel(out) == n:  # a reshape's input index, read from the result's index
        o = ix.Var(1, n)
        res = ix.unravel(ix.var(o), out)
        src = ix.reshape_index(res, out, shape)
        for env in points([o]):
            assert [evaluate(d, env) for d in src] == list(_unravel_int(env[1], shape))


def test_unravel_then_linearise_collapses() -> None:
    o = ix.Var(0, 6 * 4)
    assert ix.linearise(ix.unravel(ix.var(o), (6, 4)), (6, 4)) == ix.var(o)
    # (x // a) // b is x // (a*b): no nested division left
    d = ix.floordiv(ix.floordiv(ix.var(ix.Var(1, 1000)), 4), 5)
    assert d.terms[0][0] == ix.Div(ix.var(ix.Var(1, 1000)), 20)


def _unravel_int(f: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    out = []
    for s in reversed(shape):
        out.append(f % s)
        f //= s
    return tuple(reversed(out))


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple), data=st.data())
def test_permute_and_slice_maps(shape: tuple[int, ...], data: st.DataObject) -> None:
    perm = data.draw(st.permutations(range(len(shape))))
    variables = [ix.Var(i, s) for i, s in enumerate(shape)]
    index = tuple(ix.var(v) for v in variables)
    src = ix.permute_index(index, perm)
    assert ix.permute_forward(src, perm) == index
    start, step = data.draw(st.integers(0, 3)), data.draw(st.integers(1, 3))
    sliced = ix.slice_index(index, 0, start, step)
    for env in points(variables):
        assert evaluate(sliced[0], env) == start + step * env[0]


def test_concat_pieces_clamp_into_each_operand() -> None:
    v = ix.Var(0, 9)
    pieces = ix.concat_pieces((ix.var(v),), 0, [3, 0, 6])
    assert [(k, off) for k, off, _ in pieces] == [(0, 0), (2, 3)]
    for env in points([v]):
        assert 0 <= evaluate(pieces[0][2][0], env) <= 2
        assert 0 <= evaluate(pieces[1][2][0], env) <= 5
    assert ix.concat_operand_at(4, (ix.const(4),), 0, [3, 0, 6]) == (2, (ix.const(1),))
    assert ix.concat_operand_at(9, (ix.const(9),), 0, [3, 6]) is None


def _printer() -> tuple[IndexPrinter, dict[str, str]]:
    bound: dict[str, str] = {}

    def bind(expr: str, axes: frozenset[int]) -> Ix:
        for name, text in bound.items():
            if text == expr:
                return Ix(name, axes)
        name = f"i{len(bound)}"
        bound[name] = expr
        return Ix(name, axes)

    return IndexPrinter(bind), bound


@settings(max_examples=80, deadline=None)
@given(shape=shapes, data=st.data())
def test_printed_triton_index_evaluates_to_the_algebra(shape: tuple[int, ...],
                                                       data: st.DataObject) -> None:
    """Permute a flat point's coordinates and re-linearise (what a transpose
    kernel does); the printed text (with its ``%`` found again) must agree."""
    printer, bound = _printer()
    n = numel(shape)
    offs = printer.var("offs", n, frozenset({0}))
    perm = data.draw(st.permutations(range(len(shape))))
    c = Coords(shape, flat=offs)
    src_shape = tuple(shape[perm.index(i)] for i in range(len(shape)))
    src = Coords(src_shape, ix.permute_index(c.dims(), perm))
    printed = printer.print(src.flat())
    for f in range(n):
        scope: dict[str, int] = {"offs": f}
        for name, text in bound.items():
            scope[name] = eval(text, {}, scope)  # noqa: S307 - our own generated text
        expected = evaluate(src.flat(), {0: f})
        assert (scope[printed.text] if printed.const is None else printed.const) == expected
