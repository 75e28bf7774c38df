"""Zero-element tensors on the CPU backend: a reduction over an empty dim
gives the identity (sum 0, prod 1, mean NaN) and no kernel reads or writes
outside its buffers (this used to read through a null pointer)."""

from __future__ import annotations

import pytest
import torch

from irc.driver import compile_program
from irc.frontends.program import Program
from irc.ir.interpreter import interpret
from irc.ir.text import parse_module

CASES = [
    ("0x3xf32", "sum", [0], False, "3xf32"),
    ("3x0xf32", "sum", [1], False, "3xf32"),
    ("3x0xf32", "sum", [1], True, "3x1xf32"),
    ("0x4xi64", "sum", [0], False, "4xi64"),
    ("0xf32", "mean", [0], False, "f32"),
    ("0xf32", "prod", [0], False, "f32"),
    ("2x0x3xf32", "sum", [1], False, "2x3xf32"),
    ("2x0x3xf32", "sum", [0, 1], False, "3xf32"),
    ("2x3x0xf32", "sum", [0], False, "3x0xf32"),
]


@pytest.mark.parametrize("src, reduce, dims, keepdim, dst", CASES)
def test_reductions_over_empty_dims(src: str, reduce: str, dims: list[int], keepdim: bool,
                                    dst: str) -> None:
    ti, to = f"tensor<{src}>", f"tensor<{dst}>"
    pointwise = "graph.neg" if "i64" in src else "graph.exp"
    text = f"""func.func @main(%x: {ti}) -> {to} {{
  %e = {pointwise} %x : {ti} -> {ti}
  %r = graph.{reduce} %e {{dims = array<i64: {', '.join(map(str, dims))}>, keepdim = {str(keepdim).lower()}}} : {ti} -> {to}
  %o = graph.add %r, %r : ({to}, {to}) -> {to}
  func.return %o : {to}
}}"""
    shape = [int(d) for d in src.split("x")[:-1]]
    x = torch.zeros(shape, dtype=torch.int64 if "i64" in src else torch.float32)
    want = interpret(parse_module(text)[0], [x])[0]
    got = compile_program(Program(parse_module(text)[0]), "cpu")(x)[0]
    assert got.shape == want.shape and got.dtype == want.dtype
    torch.testing.assert_close(got, want, equal_nan=True, rtol=0, atol=0)


def test_empty_slice_then_sum_through_irc_compile() -> None:
    import irc

    def f(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x = (a + b)[4:]  # empty: the dim has size 3
        return (x + b).reshape(-1).sum(-1)

    a, b = torch.randint(0, 5, (3, 2, 2)), torch.randint(0, 5, (1, 2, 2))
    assert torch.equal(irc.compile(f, target="cpu")(a, b), f(a, b))
