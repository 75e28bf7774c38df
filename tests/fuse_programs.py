"""Graph programs built with graph ops directly, for the fusion and memory-plan tests."""

from __future__ import annotations

import math
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


# ----------------------------------------------------------------------------
# a small random-program strategy (used until/unless tests/graph_strategies.py provides one)

from hypothesis import strategies as st  # noqa: E402

_UNARY = (g.ExpOp, g.NegOp, g.TanhOp, g.ReluOp, g.SigmoidOp, g.AbsOp)
_BINARY = (g.AddOp, g.MulOp, g.SubOp, g.MaximumOp)
_REDUCE = (g.SumOp, g.AmaxOp, g.MeanOp)


@st.composite
def random_programs(draw: st.DrawFn, max_steps: int = 14) -> tuple[ModuleOp, list[torch.Tensor]]:
    """Random DAGs of elementwise, broadcast, reduction, view and matmul ops on 2-d tensors."""
    rows, cols = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    steps = draw(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 1 << 16)),
                          min_size=1, max_size=max_steps))
    n_out = draw(st.integers(1, 3))

    def body(emit: Emit, x: SSAValue, y: SSAValue, w: SSAValue) -> list[SSAValue]:
        pool: list[SSAValue] = [x, y]
        for kind, seed in steps:
            a = pool[seed % len(pool)]
            b = pool[(seed // 7) % len(pool)]
            shape = tuple(a.type.get_shape())  # type: ignore[attr-defined]
            if kind == 0:
                pool.append(emit(_UNARY[seed % len(_UNARY)](a)))
            elif kind == 1:
                from irc.ir.types import broadcast_shapes
                other = b if broadcast_shapes(shape, tuple(b.type.get_shape())) is not None else a
                pool.append(emit(_BINARY[seed % len(_BINARY)](a, other)))
            elif kind == 2 and len(shape) == 2:
                pool.append(emit(_REDUCE[seed % len(_REDUCE)](a, [seed % 2], keepdim=True)))
            elif kind == 3 and len(shape) == 2:
                pool.append(emit(g.PermuteOp(a, [1, 0])))
            elif kind == 4 and len(shape) == 2 and shape[1] == cols:
                pool.append(emit(g.MatmulOp(a, w)))
            elif kind == 5:
                pool.append(emit(g.MulOp(a, scalar(emit, 0.5 + seed % 3))))
            elif kind == 6 and len(shape) == 2 and all(s in (1, t) for s, t in zip(shape, (rows, cols))):
                pool.append(emit(g.ExpandOp(a, tensor_type([rows, cols], torch.float32))))
            else:
                pool.append(emit(g.NegOp(a)))
        picks = sorted({pool[-1], *(pool[2 + s % (len(pool) - 2)] for _, s in steps[:n_out])},
                       key=lambda v: pool.index(v))
        return picks

    module = build([(rows, cols), (rows, cols), (cols, cols)], body)
    gen = torch.Generator().manual_seed(draw(st.integers(0, 1000)))
    inputs = [torch.randn(s, generator=gen) for s in ((rows, cols), (rows, cols), (cols, cols))]
    return module, inputs


def dense_splat(shape: Sequence[int], value: float) -> DenseIntOrFPElementsAttr:
    """A splat f32 ``dense<value>`` of ``shape``."""
    return DenseIntOrFPElementsAttr.from_list(tensor_type(shape, torch.float32),  # type: ignore[arg-type]
                                              [value] * math.prod(shape))
