"""The text layer: non-finite constants survive print -> parse."""

from __future__ import annotations

import math

import pytest
import torch
from xdsl.dialects import builtin, func
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr

from irc.ir import graph as g
from irc.ir.interpreter import interpret
from irc.ir.text import parse_module, print_module
from irc.ir.types import tensor_type


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("values", [[-math.inf] * 3, [-math.inf, math.nan, 2.5], [math.inf, 0.0, -0.0]])
def test_non_finite_dense_constants_round_trip(dtype: torch.dtype, values: list[float]) -> None:
    const = g.ConstantOp(DenseIntOrFPElementsAttr.from_list(tensor_type([3], dtype), values))
    fn = func.FuncOp("main", ((), (tensor_type([3], dtype),)))
    fn.body.block.add_ops([const, func.ReturnOp(const.result)])
    text = print_module(builtin.ModuleOp([fn]))
    again, _ = parse_module(text)
    assert print_module(again) == text
    got = interpret(again, [])[0]
    want = torch.tensor(values, dtype=dtype)
    torch.testing.assert_close(got, want, equal_nan=True, rtol=0, atol=0)
    assert torch.equal(torch.signbit(got), torch.signbit(want))


def test_hex_literal_in_integer_dense_is_a_number() -> None:
    text = """func.func @main() -> tensor<2xi32> {
  %c = graph.constant dense<[0x10, 3]> : tensor<2xi32>
  func.return %c : tensor<2xi32>
}"""
    module, _ = parse_module(text)
    assert interpret(module, [])[0].tolist() == [16, 3]
