"""Graph programs built with graph ops directly, for the fusion and memory-plan tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from xdsl.dialects import func
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, ModuleOp
from xdsl.ir import Attribute, Block, Region, SSAValue

from irc.ir import graph as g
from irc.ir.types import tensor_type

Emit = Callable[[object], SSAValue]


def build(arg_shapes: Sequence[Sequence[int]],
          body: Callable[..., Sequence[SSAValue]], dtype: torch.dtype = torch.float32) -> ModuleOp:
    """``func.func @main`` over f32 tensors; ``body(emit, *args)`` returns the outputs."""
    types: list[Attribute] = [tensor_type(s, dtype) for s in arg_shapes]
    block = Block(arg_types=types)

    def emit(op: object) -> SSAValue:
        block.add_op(op)  # type: ignore[arg-type]
        return op.results[0]  # type: ignore[attr-defined]

    outs = list(body(emit, *block.args))
    block.add_op(func.ReturnOp(*outs))
    fn = func.FuncOp("main", (types, [o.type for o in outs]), Region(block))
    return ModuleOp([fn])


def scalar(emit: Emit, value: float, dtype: torch.dtype = torch.float32) -> SSAValue:
    t = tensor_type([], dtype)
    return emit(g.ConstantOp(DenseIntOrFPElementsAttr.from_list(t, [value])))  # type: ignore[arg-type]


def softmax(emit: Emit, x: SSAValue, dim: int = -1) -> SSAValue:
    m = emit(g.AmaxOp(x, [dim], keepdim=True))
    e = emit(g.ExpOp(emit(g.SubOp(x, m))))
    return emit(g.DivOp(e, emit(g.SumOp(e, [dim], keepdim=True))))


def log_softmax(emit: Emit, x: SSAValue, dim: int = -1) -> SSAValue:
    m = emit(g.AmaxOp(x, [dim], keepdim=True))
    s = emit(g.SubOp(x, m))
    lse = emit(g.LogOp(emit(g.SumOp(emit(g.ExpOp(s)), [dim], keepdim=True))))
    return emit(g.SubOp(s, lse))


def layer_norm(emit: Emit, x: SSAValue, w: SSAValue, b: SSAValue, eps: float = 1e-5) -> SSAValue:
    mean = emit(g.MeanOp(x, [-1], keepdim=True))
    c = emit(g.SubOp(x, mean))
    var = emit(g.MeanOp(emit(g.PowOp(c, scalar(emit, 2.0))), [-1], keepdim=True))
    r = emit(g.RsqrtOp(emit(g.AddOp(var, scalar(emit, eps)))))
    return emit(g.AddOp(emit(g.MulOp(emit(g.MulOp(c, r)), w)), b))


def rms_norm(emit: Emit, x: SSAValue, w: SSAValue, eps: float = 1e-6) -> SSAValue:
    ms = emit(g.MeanOp(emit(g.MulOp(x, x)), [-1], keepdim=True))
    r = emit(g.RsqrtOp(emit(g.AddOp(ms, scalar(emit, eps)))))
    return emit(g.MulOp(emit(g.MulOp(x, r)), w))


def gelu_mlp(emit: Emit, x: SSAValue, w1: SSAValue, b1: SSAValue, w2: SSAValue,
             b2: SSAValue) -> SSAValue:
    """x @ w1 + b1 -> GELU (erf form written out) -> @ w2 + b2."""
    h = emit(g.AddOp(emit(g.MatmulOp(x, w1)), b1))
    inner = emit(g.ErfOp(emit(g.MulOp(h, scalar(emit, 0.7071067811865476)))))
    act = emit(g.MulOp(emit(g.MulOp(h, scalar(emit, 0.5))), emit(g.AddOp(inner, scalar(emit, 1.0)))))
    return emit(g.AddOp(emit(g.MatmulOp(act, w2)), b2))
