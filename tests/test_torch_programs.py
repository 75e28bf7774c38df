"""Random torch programs (hypothesis): drawn op sequences over broadcasting
inputs, dtypes, reductions over random dims, views and permutes; compiled ==
eager. Most examples trace with make_fx (fast); a few go through irc.compile
(dynamo), the path users take."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.fx.experimental.proxy_tensor import make_fx

import irc
from irc.frontends.capture import compile_graph
from irc.frontends.decompositions import decomposition_table

TARGETS = ["reference", "cpu"]
DTYPES = [torch.float32, torch.float32, torch.int64, torch.int32]

Step = tuple[str, tuple[Any, ...]]


@st.composite
def shapes(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two shapes that broadcast together."""
    base = draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
    other = [1 if draw(st.booleans()) else d for d in base]
    drop = draw(st.integers(0, len(other) - 1))
    return tuple(base), tuple(other[drop:])


@st.composite
def programs(draw: st.DrawFn) -> tuple[list[Step], tuple[torch.Tensor, torch.Tensor]]:
    (sa, sb), dtype = draw(shapes()), draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    if dtype.is_floating_point:
        a, b = torch.randn(sa, generator=gen), torch.randn(sb, generator=gen)
    else:
        a = torch.randint(-6, 7, sa, generator=gen, dtype=dtype)
        b = torch.randint(-6, 7, sb, generator=gen, dtype=dtype)
    steps: list[Step] = []
    rank, is_float = len(sa), dtype.is_floating_point
    for _ in range(draw(st.integers(1, 6))):
        choices = ["binary_b", "binary_scalar", "where", "cast"]
        if is_float:
            choices += ["unary", "softmax"]
        if rank >= 1:
            choices += ["reduce", "slice", "cat", "unsqueeze", "flatten"]
        if rank >= 2:
            choices += ["permute", "transpose"]
        kind = draw(st.sampled_from(choices))
        if kind == "unary":
            steps.append((kind, (draw(st.sampled_from(["tanh", "sigmoid", "relu", "neg", "abs", "sin",
                                                       "exp", "sqrt_abs", "gelu", "silu"])),)))
        elif kind in ("binary_b", "binary_scalar"):
            op = draw(st.sampled_from(["add", "sub", "mul", "maximum", "minimum"]
                                      + (["div"] if is_float else [])))
            scalar = draw(st.sampled_from([2, -1, 0.5, 3.0])) if kind == "binary_scalar" else None
            if scalar is not None and isinstance(scalar, float):
                is_float = True  # an int tensor with a float scalar becomes float
            if kind == "binary_b" and rank < len(sb):
                continue
            steps.append((kind, (op, scalar)))
        elif kind == "where":
            steps.append((kind, (draw(st.sampled_from([0, 1.5])),)))
            if not is_float and steps[-1][1][0] == 1.5:
                is_float = True
        elif kind == "cast":
            target = draw(st.sampled_from([torch.float32, torch.int64, torch.int32]))
            steps.append((kind, (target,)))
            is_float = target.is_floating_point
        elif kind == "softmax":
            steps.append((kind, (draw(st.integers(-max(rank, 1), max(rank, 1) - 1)),)))
        elif kind == "reduce":
            op = draw(st.sampled_from(["sum", "amax", "amin"] + (["mean"] if is_float else [])))
            dim = draw(st.integers(-rank, rank - 1))
            keep = draw(st.booleans())
            steps.append((kind, (op, dim, keep)))
            if not keep:
                rank -= 1
        elif kind == "slice":
            dim = draw(st.integers(-rank, rank - 1))
            start = draw(st.integers(-6, 6))
            end = draw(st.one_of(st.none(), st.integers(-6, 8)))
            steps.append((kind, (dim, start, end, draw(st.integers(1, 3)))))
        elif kind == "cat":
            steps.append((kind, (draw(st.integers(-rank, rank - 1)),)))
        elif kind == "unsqueeze":
            steps.append((kind, (draw(st.integers(-rank - 1, rank)),)))
            rank += 1
        elif kind == "flatten":
            steps.append((kind, ()))
            rank = 1
        elif kind == "permute":
            steps.append((kind, (tuple(draw(st.permutations(range(rank)))),)))
        elif kind == "transpose":
            steps.append((kind, (draw(st.integers(0, rank - 1)), draw(st.integers(-rank, rank - 1)))))
    return steps, (a, b)


def build(steps: list[Step]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def program(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x = a
        for kind, params in steps:
            if kind == "unary":
                name = params[0]
                if name == "sqrt_abs":
                    x = torch.sqrt(torch.abs(x))
                elif name == "exp":
                    x = torch.exp(torch.clamp(x, -10, 10))
                elif name in ("gelu", "silu"):
                    x = getattr(torch.nn.functional, name)(x)
                else:
                    x = getattr(torch, name)(x)
            elif kind in ("binary_b", "binary_scalar"):
                op, scalar = params
                other: Any = b if kind == "binary_b" else scalar
                if op == "div":
                    other = (torch.abs(b) + 0.5) if kind == "binary_b" else scalar
                if op in ("maximum", "minimum") and kind == "binary_scalar":
                    other = torch.tensor(scalar, dtype=x.dtype)
                x = getattr(torch, op)(x, other)
            elif kind == "where":
                x = torch.where(x > 0, x, params[0])
            elif kind == "cast":
                x = x.to(params[0])
            elif kind == "softmax":
                x = torch.softmax(x, params[0]) if x.dim() else x
            elif kind == "reduce":
                op, dim, keep = params
                x = getattr(torch, op)(x, dim, keepdim=keep) if x.dim() else x
                if isinstance(x, tuple):
                    x = x[0]
            elif kind == "slice":
                dim, start, end, step = params
                if x.dim():
                    index = [slice(None)] * x.dim()
                    index[dim % x.dim()] = slice(start, end, step)
                    x = x[tuple(index)]
            elif kind == "cat":
                x = torch.cat([x, x * 2], params[0]) if x.dim() else x
            elif kind == "unsqueeze":
                x = x.unsqueeze(max(min(params[0], x.dim()), -x.dim() - 1))
            elif kind == "flatten":
                x = x.reshape(-1)
            elif kind == "permute":
                if len(params[0]) == x.dim():
                    x = x.permute(params[0])
            elif kind == "transpose":
                if x.dim() >= 2:
                    x = x.transpose(params[0] % x.dim(), params[1] % x.dim())
        return x
    return program


def trace(fn: Callable[..., Any], *args: torch.Tensor) -> torch.fx.GraphModule:
    aten_gm = make_fx(fn, decomposition_table=decomposition_table(), tracing_mode="fake")(*args)
    functional = torch.func.functionalize(aten_gm, remove="mutations_and_views")
    return make_fx(functional, tracing_mode="fake")(*args)


def _same(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    if want.is_floating_point():
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4, equal_nan=True)
    else:
        assert torch.equal(got, want)


@pytest.mark.parametrize("target", TARGETS)
@settings(max_examples=30, deadline=None)
@given(program=programs())
def test_random_programs_match_eager(program: tuple[list[Step], tuple[torch.Tensor, torch.Tensor]],
                                     target: str) -> None:
    steps, (a, b) = program
    fn = build(steps)
    try:
        want = fn(a, b)
    except (RuntimeError, IndexError):
        return  # not a valid torch program (e.g. shapes stopped broadcasting): nothing to compare
    run = compile_graph(trace(fn, a, b), target, strict=True)
    _same(run(a, b)[0], want)


@settings(max_examples=5, deadline=None)
@given(program=programs())
def test_random_programs_through_irc_compile(
        program: tuple[list[Step], tuple[torch.Tensor, torch.Tensor]]) -> None:
    steps, (a, b) = program
    fn = build(steps)
    try:
        want = fn(a, b)
    except (RuntimeError, IndexError):
        return  # not a valid torch program
    torch._dynamo.reset()
    _same(irc.compile(fn, target="reference", strict=True)(a, b), want)
