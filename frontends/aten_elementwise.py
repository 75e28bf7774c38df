"""Elementwise aten ops -> graph dialect: unary math, binary arithmetic and
comparisons (with torch's wrapped-number promotion for python scalars),
where/masked_fill, clamp, casts and functional copies.

Binary ops compute in ``torch.result_type(lhs, rhs)``: both operands are cast
to it first, so 0-d tensors and python scalars promote exactly as in eager
(a 0-d f32 tensor does not widen an f16 tensor; an int scalar keeps a float
tensor's dtype; a float scalar turns an int tensor into the default float).
"""

from __future__ import annotations

from typing import Any

import sympy
import torch
import torch.fx
from xdsl.ir import SSAValue

from irc.frontends.fx_importer import FxImporter, handles
from irc.ir import graph as g
from irc.ir.types import dims_of, dtype_of, tensor_type

aten = torch.ops.aten

UNARY: dict[object, type[g.ElementwiseUnaryOp]] = {
    aten.neg: g.NegOp, aten.abs: g.AbsOp, aten.exp: g.ExpOp, aten.exp2: g.Exp2Op,
    aten.log: g.LogOp, aten.log2: g.Log2Op, aten.log1p: g.Log1pOp, aten.expm1: g.Expm1Op,
    aten.sqrt: g.SqrtOp, aten.rsqrt: g.RsqrtOp, aten.sin: g.SinOp, aten.cos: g.CosOp,
    aten.tan: g.TanOp, aten.tanh: g.TanhOp, aten.sigmoid: g.SigmoidOp, aten.erf: g.ErfOp,
    aten.reciprocal: g.ReciprocalOp, aten.relu: g.ReluOp, aten.floor: g.FloorOp,
    aten.ceil: g.CeilOp, aten.trunc: g.TruncOp, aten.sign: g.SignOp,
    aten.logical_not: g.LogicalNotOp, aten.bitwise_not: g.BitwiseNotOp, aten.isnan: g.IsNanOp,
    aten.isinf: g.IsInfOp, aten.silu: g.SiluOp,
}

BINARY: dict[object, type[g.ElementwiseBinaryOp]] = {
    aten.add: g.AddOp, aten.sub: g.SubOp, aten.mul: g.MulOp, aten.pow: g.PowOp,
    aten.maximum: g.MaximumOp, aten.minimum: g.MinimumOp, aten.remainder: g.RemainderOp,
    aten.atan2: g.Atan2Op, aten.eq: g.EqOp, aten.ne: g.NeOp, aten.lt: g.LtOp, aten.le: g.LeOp,
    aten.gt: g.GtOp, aten.ge: g.GeOp, aten.logical_and: g.LogicalAndOp,
    aten.logical_or: g.LogicalOrOp, aten.bitwise_and: g.BitwiseAndOp,
    aten.bitwise_or: g.BitwiseOrOp, aten.bitwise_xor: g.BitwiseXorOp,
}


def _proxy(ctx: FxImporter, arg: Any) -> Any:
    """What torch.result_type needs: a tensor of the right dtype and dim-ness, or the scalar."""
    m = ctx.meta(arg)
    if m is not None:
        return torch.empty(() if m.dim() == 0 else (1,), dtype=m.dtype)
    if isinstance(arg, (bool, int, float)):
        return arg
    if isinstance(arg, torch.fx.Node) and isinstance(ctx.constants.get(arg), (int, sympy.Expr)):
        return 1  # a size (dynamo's SymInt input or size arithmetic): a python int
    raise ctx.unsupported(f"operand {arg!r} is neither a tensor nor a number")


def compute_dtype(ctx: FxImporter, a: Any, b: Any) -> torch.dtype:
    """torch's result dtype of a binary op on ``a`` and ``b`` (wrapped numbers included)."""
    pa, pb = _proxy(ctx, a), _proxy(ctx, b)
    if not isinstance(pa, torch.Tensor) and not isinstance(pb, torch.Tensor):
        return torch.result_type(torch.tensor(pa), pb)
    return torch.result_type(pa, pb) if isinstance(pa, torch.Tensor) else torch.result_type(pb, pa)


def binary(ctx: FxImporter, op: type[g.ElementwiseBinaryOp], a: Any, b: Any) -> SSAValue:
    """``op(a, b)`` computed in torch's promoted dtype."""
    dt = compute_dtype(ctx, a, b)
    return ctx.emit(op(ctx.tensor(a, dt), ctx.tensor(b, dt)))


@handles(*UNARY)
def _unary(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    op = UNARY[node.target.overloadpacket]  # type: ignore[union-attr]
    return ctx.emit(op(ctx.tensor(node.args[0])))


@handles("gelu")
def _gelu(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    from xdsl.dialects.builtin import StringAttr
    approximate = ctx.arg(1, "approximate", "none")
    return ctx.emit(g.GeluOp(ctx.tensor(node.args[0]),
                             properties={"approximate": StringAttr(approximate)}))


@handles("round")
def _round(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    decimals = ctx.arg(1, "decimals", 0) or 0
    x = ctx.tensor(node.args[0])
    if decimals == 0:
        return ctx.emit(g.RoundOp(x))
    dtype = dtype_of(x.type)
    if dtype not in (torch.float32, torch.float64):  # halves: torch's kernel rounds differently
        raise ctx.unsupported(f"round with decimals in {dtype}")
    # torch's kernel: round(x * 10^d) / 10^d, or round(x / 10^-d) * 10^-d for d < 0
    ten_pow = ctx.scalar(float(10 ** abs(decimals)), dtype)
    if decimals > 0:
        return ctx.emit(g.DivOp(ctx.emit(g.RoundOp(ctx.emit(g.MulOp(x, ten_pow)))), ten_pow))
    return ctx.emit(g.MulOp(ctx.emit(g.RoundOp(ctx.emit(g.DivOp(x, ten_pow)))), ten_pow))


@handles("square")
def _square(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    return binary(ctx, g.MulOp, node.args[0], node.args[0])


@handles(*BINARY)
def _binary(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    packet = node.target.overloadpacket  # type: ignore[union-attr]
    a, b = node.args[0], node.args[1]
    alpha = ctx.arg(2, "alpha", 1)
    if packet in (aten.add, aten.sub) and alpha != 1:
        dt = compute_dtype(ctx, a, b)
        return ctx.emit(BINARY[packet](ctx.tensor(a, dt), _scaled(ctx, b, alpha, dt)))
    return binary(ctx, BINARY[packet], a, b)


def _scaled(ctx: FxImporter, value: Any, factor: Any, dtype: torch.dtype) -> SSAValue:
    """``value * factor`` in ``dtype`` (the ``alpha`` of add/sub/rsub)."""
    return ctx.emit(g.MulOp(ctx.tensor(value, dtype), ctx.scalar(factor, dtype)))


@handles("rsub")
def _rsub(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    a, b, alpha = node.args[0], node.args[1], ctx.arg(2, "alpha", 1)
    dt = compute_dtype(ctx, a, b)
    scaled_a = _scaled(ctx, a, alpha, dt) if alpha != 1 else ctx.tensor(a, dt)
    return ctx.emit(g.SubOp(ctx.tensor(b, dt), scaled_a))


@handles("div")
def _div(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    a, b = node.args[0], node.args[1]
    mode = ctx.arg(2, "rounding_mode", None) or "none"
    return _divide(ctx, a, b, mode)


@handles("floor_divide")
def _floor_divide(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    return _divide(ctx, node.args[0], node.args[1], "floor")


def _divide(ctx: FxImporter, a: Any, b: Any, mode: str) -> SSAValue:
    from xdsl.dialects.builtin import StringAttr
    dt = compute_dtype(ctx, a, b)
    lhs, rhs = ctx.tensor(a, dt), ctx.tensor(b, dt)
    out_dtype = g.DivOp.result_dtype(dt, dt) if mode == "none" else dt
    shape = g.broadcast_shapes(dims_of(lhs.type), dims_of(rhs.type))
    if shape is None:
        raise ValueError("operand shapes do not broadcast")
    return ctx.emit(g.DivOp(lhs, rhs, tensor_type(shape, out_dtype),
                            properties={"rounding_mode": StringAttr(mode)}))


@handles("logical_xor")
def _logical_xor(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    a, b = (ctx.tensor(x, torch.bool) for x in node.args[:2])
    return ctx.emit(g.NeOp(a, b))


@handles("where")
def _where(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    if len(node.args) == 1:
        raise ctx.unsupported("where(cond) with one argument has a data-dependent shape")
    out = ctx.out_meta().dtype
    cond = ctx.tensor(node.args[0], torch.bool)
    return ctx.emit(g.WhereOp(cond, ctx.tensor(node.args[1], out), ctx.tensor(node.args[2], out)))


@handles("masked_fill")
def _masked_fill(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    x, mask, value = node.args[0], node.args[1], node.args[2]
    out = ctx.out_meta().dtype
    return ctx.emit(g.WhereOp(ctx.tensor(mask, torch.bool), ctx.tensor(value, out),
                              ctx.tensor(x, out)))


@handles("clamp", "clamp_min", "clamp_max")
def _clamp(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    packet = node.target.overloadpacket  # type: ignore[union-attr]
    out = ctx.out_meta().dtype
    if packet is aten.clamp_min:
        lo, hi = node.args[1], None
    elif packet is aten.clamp_max:
        lo, hi = None, node.args[1]
    else:
        lo, hi = ctx.arg(1, "min"), ctx.arg(2, "max")
    value = ctx.tensor(node.args[0], out)
    if lo is not None:
        value = ctx.emit(g.MaximumOp(value, ctx.tensor(lo, out)))
    if hi is not None:
        value = ctx.emit(g.MinimumOp(value, ctx.tensor(hi, out)))
    return value


@handles("_to_copy", "_to_dim_order_copy", torch.ops.prims.convert_element_type)
def _to_copy(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    return ctx.cast(ctx.tensor(node.args[0]), ctx.out_meta().dtype)


@handles("copy")
def _copy(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    """Functional ``copy(dst, src)``: src broadcast to dst's shape, in dst's dtype."""
    out = ctx.out_meta()
    src = ctx.tensor(node.args[1], out.dtype)
    if dims_of(src.type) != ctx.dims(out.shape):
        src = ctx.emit(g.ExpandOp(src, tensor_type(ctx.dims(out.shape), dtype_of(src.type))))
    return src
