"""The graph dialect: every op round-trips through text (custom and generic),
the reference interpreter runs every op, and the verifier names bad shapes and
dtypes with positions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Region

from graph_strategies import all_ops_module, all_ops_weights, dense
from irc.errors import VerificationError
from irc.ir import graph as g
from irc.ir.interpreter import interpret
from irc.ir.text import parse_module, print_module, verify_module
from irc.ir.types import tensor_type


def test_every_op_is_in_the_sample_module() -> None:
    names = {op.name for op in all_ops_module().walk()}
    # the ops that read symbolic sizes (graph.size, graph.iota) are in the
    # symbolic sample (all_ops_module is static: every pass takes it)
    symbolic = (Path(__file__).parent / "filecheck" / "graph" / "symbolic.mlir").read_text()
    names |= {op.name for op in parse_module(symbolic)[0].walk()}
    assert {cls.name for cls in g.GRAPH_OPS} <= names
    assert len(g.GRAPH_OPS) >= 70


@pytest.mark.parametrize("generic", [False, True])
def test_every_op_round_trips(generic: bool) -> None:
    module = all_ops_module(locations=True)
    text = print_module(module, generic=generic)
    parsed, source_map = parse_module(text, "ops.mlir")
    verify_module(parsed, source_map)
    assert print_module(parsed, generic=generic) == text
    assert print_module(parsed) == print_module(module)     # generic parses to the same IR
    assert 'loc("model.py":10:5)' in text


def test_interpreter_runs_every_op() -> None:
    module = all_ops_module()
    inputs = [torch.randn(2, 3), torch.randint(1, 5, (2, 3)), torch.rand(2, 3) < 0.5,
              torch.randn(1, 2, 5, 5), torch.tensor([0, 1, 1]), torch.zeros(4, 3)]
    weights = all_ops_weights()
    (out,) = interpret(module, inputs, weights)
    torch.testing.assert_close(out, torch.nn.functional.gelu(inputs[0], approximate="tanh"))
    cache = torch.zeros(4, 3)
    cache[:2] = inputs[0]  # graph.cache_update wrote rows 0 and 1 in place (2 and 3 untouched)
    torch.testing.assert_close(inputs[5], cache)


def _module(arg_types: list, make_ops) -> ModuleOp:
    block = Block(arg_types=arg_types)
    ops = make_ops(*block.args)
    for op in ops:
        block.add_op(op)
    block.add_op(func.ReturnOp())
    return ModuleOp([func.FuncOp("main", (arg_types, []), Region(block))])


F23 = tensor_type([2, 3], torch.float32)
I3 = tensor_type([3], torch.int64)


@pytest.mark.parametrize("make_ops, message", [
    (lambda x, n: [g.NegOp(x, tensor_type([3, 2], torch.float32))],
     "'graph.neg' op result shape 3x2 differs from input shape 2x3"),
    (lambda x, n: [g.ExpOp(n, I3)], "result dtype torch.int64 should be torch.float32"),
    (lambda x, n: [g.AddOp(x, x, tensor_type([3], torch.float32))],
     "result shape 3 should be the broadcast shape 2x3"),
    (lambda x, n: [g.AddOp(x, x, tensor_type([2, 3], torch.float16))],
     "result dtype torch.float16 should be torch.float32"),
    (lambda x, n: [g.WhereOp(x, x, x, F23)], "condition must be bool (i1)"),
    (lambda x, n: [g.CastOp(x, tensor_type([6], torch.float32))], "cannot change shape 2x3 to 6"),
    (lambda x, n: [g.SumOp(x, [1], result_type=F23)], "result shape 2x3 should be 2"),
    (lambda x, n: [g.ReshapeOp(x, tensor_type([7], torch.float32))],
     "cannot reshape 2x3 (6 elements) to 7 (7 elements)"),
    (lambda x, n: [g.PermuteOp.create(operands=[x], result_types=[F23],
                                      properties={"dims": g.i64_array([0, 0])})],
     "is not a permutation"),
    (lambda x, n: [g.ExpandOp(x, tensor_type([4, 3], torch.float32))], "cannot expand 2x3 to 4x3"),
    (lambda x, n: [g.MatmulOp.create(operands=[x, x], result_types=[F23])],
     "contraction sizes differ"),
    (lambda x, n: [g.ConstantOp.create(properties={"value": dense([2], torch.float32, [1.0])},
                                       result_types=[tensor_type([3], torch.float32)])],
     "expected from variable 'T'"),
])
def test_verifier_names_the_problem(make_ops, message: str) -> None:
    module = _module([F23, I3], make_ops)
    with pytest.raises(VerificationError) as info:
        verify_module(module)
    assert message in str(info.value)


def test_verifier_error_points_into_the_text() -> None:
    text = ("func.func @main(%x: tensor<2x3xf32>) {\n"
            "  %ok = graph.neg %x : tensor<2x3xf32> -> tensor<2x3xf32>\n"
            "  %bad = graph.sum %x {dims = array<i64: 1, 0>} : tensor<2x3xf32> -> tensor<f32>\n"
            "  func.return\n}\n")
    module, source_map = parse_module(text, "model.mlir")
    with pytest.raises(VerificationError) as info:
        verify_module(module, source_map)
    err = info.value
    assert (err.filename, err.line, err.col) == ("model.mlir", 3, 3)
    assert "must be sorted, distinct" in err.message
    assert str(err).splitlines()[1].strip().startswith("%bad = graph.sum")


def test_builders_infer_types() -> None:
    module = _module([F23, I3], lambda x, n: [
        g.AddOp(x, x),
        g.DivOp(n, n),
        g.EqOp(x, x),
        g.SumOp(x, [1], keepdim=True),
        g.MeanOp(n, [0]),
        g.PermuteOp(x, [1, 0]),
        g.SliceOp(x, 1, 0, 3, 2),
        g.ConcatOp([x, x], 1),
    ])
    verify_module(module)
    types = [str(op.results[0].type) for op in module.walk() if op.name.startswith("graph.")]
    assert types == ["tensor<2x3xf32>", "tensor<3xf32>", "tensor<2x3xi1>", "tensor<2x1xf32>",
                     "tensor<f32>", "tensor<3x2xf32>", "tensor<2x2xf32>", "tensor<2x6xf32>"]
