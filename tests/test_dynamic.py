"""Dynamic shapes: symbolic sizes in the graph dialect, dynamo's SymInts through
the frontend, ``irc.compile(dynamic=...)``, the runtime's checks of the size
relations, and compiled == eager at many sizes (0 and 1 included) with the
number of compiles counted."""

from __future__ import annotations

import re

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import irc
from irc.errors import InputMismatchError, VerificationError
from irc.ir.interpreter import interpret
from irc.ir.specialize import specialize
from irc.ir.symbols import bind, format_dim, parse_dim, symbol
from irc.ir.text import parse_module, print_module, verify_module
from irc.ir.types import dims_of, tensor_type

S0, S1 = symbol("s0"), symbol("s1")

SYMBOLIC = """
func.func @main(%x: tensor<?x4xf32, ["s0"]>, %y: tensor<?x4xf32, ["s0"]>) -> tensor<?xf32, ["4*s0"]> {
  %s = graph.add %x, %y : (tensor<?x4xf32, ["s0"]>, tensor<?x4xf32, ["s0"]>) -> tensor<?x4xf32, ["s0"]>
  %e = graph.exp %s : tensor<?x4xf32, ["s0"]> -> tensor<?x4xf32, ["s0"]>
  %r = graph.reshape %e : tensor<?x4xf32, ["s0"]> -> tensor<?xf32, ["4*s0"]>
  func.return %r : tensor<?xf32, ["4*s0"]>
}
"""


# ----------------------------------------------------------------------------
# the dialect


def test_symbolic_type_prints_parses_and_keeps_its_symbols() -> None:
    t = tensor_type([S0, 128, 2 * S1], torch.float32)
    module, _ = parse_module(SYMBOLIC)
    verify_module(module)
    text = print_module(module)
    assert 'tensor<?x4xf32, ["s0"]>' in text and 'tensor<?xf32, ["4*s0"]>' in text
    again, _ = parse_module(text)
    assert print_module(again) == text
    assert dims_of(t) == (S0, 128, 2 * S1)
    assert parse_dim(format_dim(2 * S1 + S0)) == 2 * S1 + S0


@pytest.mark.parametrize("body, message", [
    ('%r = graph.add %x, %z : (tensor<?x4xf32, ["s0"]>, tensor<?x4xf32, ["s1"]>) '
     '-> tensor<?x4xf32, ["s0"]>', "do not broadcast"),
    ('%r = graph.neg %x : tensor<?x4xf32, ["s0"]> -> tensor<?x4xf32, ["s1"]>',
     "result shape s1x4 differs from input shape s0x4"),
    ('%r = graph.reshape %x : tensor<?x4xf32, ["s0"]> -> tensor<?xf32, ["2*s0"]>',
     "cannot reshape s0x4 (4*s0 elements) to 2*s0"),
])
def test_verifier_checks_sizes_symbolically(body: str, message: str) -> None:
    text = ('func.func @main(%x: tensor<?x4xf32, ["s0"]>, %z: tensor<?x4xf32, ["s1"]>) {\n'
            f"  {body}\n  func.return\n}}\n")
    module, source = parse_module(text)
    with pytest.raises(VerificationError, match=re.escape(message)):
        verify_module(module, source)


def test_bind_checks_every_relation_and_names_the_dimension() -> None:
    module, _ = parse_module(SYMBOLIC)
    types = [a.type for a in module.body.block.first_op.body.block.args]  # type: ignore[union-attr]
    assert bind(types, [(5, 4), (5, 4)]) == {"s0": 5}
    with pytest.raises(InputMismatchError, match=r"input 1: dimension 0 has size 6, compiled for 5 "
                                                 r"\(s0 = 5"):
        bind(types, [(5, 4), (6, 4)])
    with pytest.raises(InputMismatchError, match="input 0: dimension 1 has size 3, compiled for 4"):
        bind(types, [(5, 3), (5, 4)])
    divisible = [tensor_type([4 * S0], torch.float32)]
    assert bind(divisible, [(12,)]) == {"s0": 3}
    with pytest.raises(InputMismatchError, match=r"dimension 0 has size 10, compiled for a "
                                                 r"multiple of 4 \(4\*s0\)"):
        bind(divisible, [(10,)])
    derived = [tensor_type([S0 + S1], torch.float32)]
    with pytest.raises(InputMismatchError, match="dimension 0 is s0\\+s1, which no input gives alone"):
        bind(derived, [(10,)])


@pytest.mark.parametrize("target", ["cpu", "reference"])
def test_a_divisibility_guard_becomes_a_checked_multiple(target: str) -> None:
    def f(x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], -1, 4).sum(-1)

    compiled = irc.compile(f, target=target, dynamic=True, strict=True)
    for n in (8, 12, 20):
        x = torch.randn(3, n)
        torch.testing.assert_close(compiled(x), f(x))
    assert compiled.irc_stats.graphs == 1


def test_interpreter_runs_a_symbolic_module_at_any_size() -> None:
    module, _ = parse_module(SYMBOLIC)
    for n in (1, 3, 17):
        x, y = torch.randn(n, 4), torch.randn(n, 4)
        (out,) = interpret(module, [x, y])
        torch.testing.assert_close(out, (x + y).exp().reshape(-1))
    static = specialize(module, {"s0": 3})
    assert "?" not in print_module(static)
    verify_module(static)


# ----------------------------------------------------------------------------
# the frontend and irc.compile(dynamic=...)


def block(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, int]:
    h = F.layer_norm(x, x.shape[-1:])
    scores = (h @ w).softmax(-1)
    flat = scores.reshape(-1).reshape(x.shape[0], w.shape[1])
    return torch.cat([flat, flat * 2], dim=0).sum(-1), x.shape[0] * 3


@pytest.mark.parametrize("target", ["cpu", "reference", "cuda"])
def test_dynamic_true_compiles_once_for_all_sizes(target: str) -> None:
    """(``cuda``: the Triton backend, under ``TRITON_INTERPRET=1`` without a GPU.)"""
    compiled = irc.compile(block, target=target, dynamic=True, strict=True)
    w = torch.randn(16, 8)
    for n in (5, 2, 9, 33, 7):
        x = torch.randn(n, 16)
        got, want = compiled(x, w), block(x, w)
        torch.testing.assert_close(got[0], want[0], rtol=1e-4, atol=1e-4)
        assert got[1] == want[1]
    assert compiled.irc_stats.graphs == 1
    # sizes 0 and 1: dynamo specialises them (one static graph each), never wrong
    for n in (1, 0, 1):
        x = torch.randn(n, 16)
        got, want = compiled(x, w), block(x, w)
        torch.testing.assert_close(got[0], want[0], rtol=1e-4, atol=1e-4)
        assert got[1] == want[1]
    assert compiled.irc_stats.graphs == 3
    stats = compiled.irc_stats
    if target == "cpu":  # one native compile per graph serves every size
        assert stats.backend_compiles == 3 and stats.specializations == 0
        assert not stats.symbolic_fallbacks
    elif target != "reference":  # the interpreter takes symbolic modules itself
        assert stats.specializations == 7  # one per distinct size


def test_dynamic_none_recompiles_once_with_the_changed_dim_symbolic() -> None:
    def f(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) * y + x.mean(-1, keepdim=True)

    compiled = irc.compile(f, target="cpu", strict=True)  # dynamic=None: torch.compile's default
    y = torch.randn(12)
    for i, n in enumerate((4, 6, 10, 23, 5)):
        x = torch.randn(n, 12)
        torch.testing.assert_close(compiled(x, y), f(x, y))
        assert compiled.irc_stats.graphs == (1 if i == 0 else 2)
    static = irc.compile(f, target="cpu", strict=True, dynamic=False)
    for n in (4, 6, 10):
        x = torch.randn(n, 12)
        torch.testing.assert_close(static(x, y), f(x, y))
    assert static.irc_stats.graphs == 3


def test_mark_dynamic_is_honoured_from_the_first_call() -> None:
    def f(x: torch.Tensor) -> torch.Tensor:
        return (x * 2).softmax(-1)

    compiled = irc.compile(f, target="cpu", strict=True)
    for n in (8, 13, 40):
        x = torch.randn(3, n)
        torch._dynamo.mark_dynamic(x, 1, min=2, max=64)
        torch.testing.assert_close(compiled(x), f(x))
    assert compiled.irc_stats.graphs == 1


def test_a_size_relation_broken_at_run_time_is_an_input_mismatch() -> None:
    from irc.driver import compile_program
    from irc.frontends.program import Program
    module, _ = parse_module(SYMBOLIC)
    run = compile_program(Program(module), "cpu")
    x = torch.randn(6, 4)
    torch.testing.assert_close(run(x, x)[0], (x + x).exp().reshape(-1))
    with pytest.raises(InputMismatchError, match="input 1: dimension 0 has size 5, compiled for 6"):
        run(x, torch.randn(5, 4))
    assert run.backend_compiles == 1 and run.bindings == 1  # one compile, one host schedule


# ----------------------------------------------------------------------------
# random programs over a symbolic batch dimension (hypothesis)

Step = tuple[str, Any]


@st.composite
def dynamic_programs(draw: st.DrawFn) -> tuple[list[Step], int, list[int]]:
    steps: list[Step] = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["unary", "binary_row", "scalar", "softmax", "reduce",
                                     "matmul", "flatten", "cat", "transpose_back"]))
        arg: Any = None
        if kind == "unary":
            arg = draw(st.sampled_from(["tanh", "sigmoid", "relu", "exp", "neg", "silu"]))
        elif kind == "reduce":
            arg = draw(st.sampled_from([("sum", 0), ("sum", 1), ("amax", 1), ("mean", 1)]))
        elif kind == "scalar":
            arg = draw(st.floats(-2, 2, allow_nan=False))
        steps.append((kind, arg))
    cols = draw(st.sampled_from([3, 8]))
    # (a size equal to the column count would be duck-shaped with it: one symbol
    # for both, and a recompile when they differ, which is dynamo's choice)
    sizes = draw(st.lists(st.integers(0, 40).filter(lambda n: n not in (3, 8)), min_size=3,
                          max_size=5))
    return steps, cols, sizes


def run_steps(steps: list[Step], x: torch.Tensor, w: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    for kind, arg in steps:
        if kind == "unary":
            x = getattr(torch, arg)(x) if arg != "silu" else F.silu(x)
        elif kind == "binary_row":
            x = x * row - row
        elif kind == "scalar":
            x = x + arg
        elif kind == "softmax":
            x = x.softmax(-1)
        elif kind == "reduce":
            op, dim = arg
            x = getattr(x, op)(dim, keepdim=True).expand_as(x) - x
        elif kind == "matmul":
            x = x @ w
        elif kind == "flatten":
            x = x.reshape(-1).reshape(x.shape)
        elif kind == "cat":
            x = torch.cat([x, x.neg()], 1)[:, :w.shape[0]]
        elif kind == "transpose_back":
            x = x.t().contiguous().t() + 1
    return x


@pytest.mark.parametrize("target", ["cpu", "reference"])
@settings(max_examples=6, deadline=None)
@given(program=dynamic_programs())
def test_random_programs_compile_once_for_all_sizes(target: str,
                                                    program: tuple[list[Step], int, list[int]]) -> None:
    steps, cols, sizes = program
    w = torch.randn(cols, cols)
    row = torch.randn(cols)

    def f(x: torch.Tensor) -> torch.Tensor:
        return run_steps(steps, x, w, row)

    compiled = irc.compile(f, target=target, dynamic=True, strict=True)
    for n in sizes:
        x = torch.randn(n, cols)
        torch.testing.assert_close(compiled(x), f(x), rtol=1e-4, atol=1e-4)
    # one symbolic graph for sizes >= 2, one static graph each for 0 and 1
    want = int(any(n >= 2 for n in sizes)) + int(0 in sizes) + int(1 in sizes)
    assert compiled.irc_stats.graphs == want

