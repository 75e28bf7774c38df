"""NumPy implementations of the graph ops, built per op at compile time.

``build(op)`` looks at the op's static types once and returns a closure
``(list of arrays) -> array`` with the dtype decisions already made: operands
are brought to torch's promoted compute dtype, float16 math runs in float32
(like torch's CPU kernels) and every result is cast to the dtype the IR
declares, so the IR, not NumPy's promotion rules, decides result types.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from xdsl.ir import Attribute, Operation

from irc.ir import graph as g
from irc.ir.interpreter import dense_to_tensor
from irc.ir.types import dtype_of, promote, shape_of

from irc_numpy_backend import windows

Kernel = Callable[[Sequence[np.ndarray]], np.ndarray]

NUMPY_DTYPES: dict[torch.dtype, type] = {
    torch.float64: np.float64, torch.float32: np.float32, torch.float16: np.float16,
    torch.int64: np.int64, torch.int32: np.int32, torch.int8: np.int8, torch.bool: np.bool_,
}


def np_dtype(t: Attribute | torch.dtype) -> np.dtype:
    """NumPy dtype of an IR type or torch dtype (KeyError for bfloat16)."""
    dt = t if isinstance(t, torch.dtype) else dtype_of(t)
    return np.dtype(NUMPY_DTYPES[dt])


def _math_dtype(dt: np.dtype) -> np.dtype:
    """float16 is computed in float32 (then rounded once), like torch on CPU."""
    return np.dtype(np.float32) if dt == np.float16 else dt


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# No scipy in the dependency list: math.erf elementwise is exact and fast enough
# for an example backend.
_erf_scalar = np.frompyfunc(math.erf, 1, 1)


def _erf(x: np.ndarray) -> np.ndarray:
    return np.asarray(_erf_scalar(x), dtype=x.dtype)


def _gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _integer_identity(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: x if x.dtype.kind in "iub" else fn(x)


UNARY: dict[type[Operation], Callable[[np.ndarray], np.ndarray]] = {
    g.NegOp: np.negative, g.AbsOp: np.abs, g.ExpOp: np.exp, g.Exp2Op: np.exp2,
    g.LogOp: np.log, g.Log2Op: np.log2, g.Log1pOp: np.log1p, g.Expm1Op: np.expm1,
    g.SqrtOp: np.sqrt, g.RsqrtOp: lambda x: 1.0 / np.sqrt(x), g.SinOp: np.sin, g.CosOp: np.cos,
    g.TanOp: np.tan, g.TanhOp: np.tanh, g.SigmoidOp: _sigmoid, g.ErfOp: _erf,
    g.ReciprocalOp: lambda x: 1.0 / x, g.ReluOp: lambda x: np.maximum(x, x.dtype.type(0)),
    g.FloorOp: _integer_identity(np.floor), g.CeilOp: _integer_identity(np.ceil),
    g.RoundOp: _integer_identity(np.round), g.TruncOp: _integer_identity(np.trunc),
    g.SignOp: np.sign, g.LogicalNotOp: np.logical_not, g.BitwiseNotOp: np.invert,
    g.IsNanOp: np.isnan, g.IsInfOp: np.isinf, g.SiluOp: lambda x: x * _sigmoid(x),
}

BINARY: dict[type[Operation], Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    g.AddOp: np.add, g.SubOp: np.subtract, g.MulOp: np.multiply, g.PowOp: np.power,
    g.MaximumOp: np.maximum, g.MinimumOp: np.minimum, g.RemainderOp: np.remainder,
    g.Atan2Op: np.arctan2, g.EqOp: np.equal, g.NeOp: np.not_equal, g.LtOp: np.less,
    g.LeOp: np.less_equal, g.GtOp: np.greater, g.GeOp: np.greater_equal,
    g.LogicalAndOp: np.logical_and, g.LogicalOrOp: np.logical_or,
    g.BitwiseAndOp: np.bitwise_and, g.BitwiseOrOp: np.bitwise_or, g.BitwiseXorOp: np.bitwise_xor,
}


def _unary(op: Operation) -> Kernel:
    out = np_dtype(op.results[0].type)
    rule = type(op).DTYPE_RULE  # type: ignore[attr-defined]
    source = np_dtype(op.operands[0].type)
    compute = _math_dtype(out if rule == "float" else source)
    if isinstance(op, g.GeluOp):
        approximate = op.approximate.data
        return lambda a: _gelu(a[0].astype(compute, copy=False), approximate).astype(out)
    fn = UNARY[type(op)]
    return lambda a: np.asarray(fn(a[0].astype(compute, copy=False))).astype(out, copy=False)


def _trunc_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f":
        return np.trunc(a / b)
    q = np.floor_divide(a, b)
    return q + ((np.remainder(a, b) != 0) & ((a < 0) != (b < 0)))


def _binary(op: Operation) -> Kernel:
    out = np_dtype(op.results[0].type)
    promoted = np_dtype(promote(dtype_of(op.operands[0].type), dtype_of(op.operands[1].type)))
    if isinstance(op, g.DivOp):
        mode = op.rounding_mode.data
        if mode == "none":
            compute = _math_dtype(out)
            return lambda a: np.true_divide(a[0].astype(compute), a[1].astype(compute)).astype(out)
        fn = _trunc_div if mode == "trunc" else np.floor_divide
        compute = _math_dtype(promoted)
        return lambda a: np.asarray(fn(a[0].astype(compute), a[1].astype(compute))).astype(out)
    compute = _math_dtype(out if type(op).DTYPE_RULE == "float" else promoted)  # type: ignore[attr-defined]
    fn2 = BINARY[type(op)]
    return lambda a: np.asarray(fn2(a[0].astype(compute, copy=False),
                                    a[1].astype(compute, copy=False))).astype(out, copy=False)


def _where(op: Operation) -> Kernel:
    out = np_dtype(op.results[0].type)
    return lambda a: np.where(a[0], a[1].astype(out, copy=False), a[2].astype(out, copy=False))


def _cast(op: Operation) -> Kernel:
    out = np_dtype(op.results[0].type)
    return lambda a: a[0].astype(out)


def _reduce(op: g.ReduceOp) -> Kernel:
    out = np_dtype(op.results[0].type)
    dims, keep = tuple(op.reduced_dims), op.keeps_dims
    acc = _math_dtype(out)
    if len(shape_of(op.input.type)) == 0:
        return lambda a: a[0].astype(out)
    if isinstance(op, (g.ArgmaxOp, g.ArgminOp)):
        arg = np.argmax if isinstance(op, g.ArgmaxOp) else np.argmin
        return lambda a: arg(a[0], axis=dims[0], keepdims=keep).astype(out)
    if isinstance(op, (g.AmaxOp, g.AminOp, g.AnyOp, g.AllOp)):
        red = {g.AmaxOp: np.amax, g.AminOp: np.amin, g.AnyOp: np.any, g.AllOp: np.all}[type(op)]
        return lambda a: np.asarray(red(a[0], axis=dims, keepdims=keep)).astype(out)
    red2 = {g.SumOp: np.sum, g.MeanOp: np.mean, g.ProdOp: np.prod}[type(op)]
    return lambda a: np.asarray(red2(a[0].astype(acc, copy=False), axis=dims, keepdims=keep,
                                     dtype=acc)).astype(out)


def _movement(op: Operation) -> Kernel:
    shape = shape_of(op.results[0].type)
    if isinstance(op, (g.ReshapeOp, g.SqueezeOp, g.UnsqueezeOp)):
        return lambda a: np.reshape(a[0], shape)
    if isinstance(op, g.ExpandOp):
        return lambda a: np.broadcast_to(a[0], shape)
    if isinstance(op, g.PermuteOp):
        dims = g.ints(op.dims)
        return lambda a: np.transpose(a[0], dims)
    if isinstance(op, g.SliceOp):
        dim, start, end, step = op.params()
        rank = len(shape)
        index = tuple(slice(start, end, step) if i == dim else slice(None) for i in range(rank))
        return lambda a: a[0][index]
    assert isinstance(op, g.ConcatOp)
    axis = op.dim.value.data
    return lambda a: np.concatenate(list(a), axis=axis)


def _matmul(op: Operation) -> Kernel:
    out = np_dtype(op.results[0].type)
    compute = _math_dtype(out)
    return lambda a: np.matmul(a[0].astype(compute, copy=False),
                               a[1].astype(compute, copy=False)).astype(out, copy=False)


def _attention(op: g.AttentionOp) -> Kernel:
    """softmax(q @ k^T * scale + mask) @ v; rows with no key left give zeros."""
    out = np_dtype(op.results[0].type)
    compute = _math_dtype(out)
    scale, causal = op.scale.value.data, op.is_causal is not None

    def run(a: Sequence[np.ndarray]) -> np.ndarray:
        q, k, v = (x.astype(compute, copy=False) for x in a[:3])
        scores = np.matmul(q, np.swapaxes(k, -1, -2)) * compute.type(scale)
        if len(a) > 3:
            mask = a[3]
            scores = np.where(mask, scores, -np.inf) if mask.dtype == np.bool_ else scores + mask
        if causal:
            length, keys = scores.shape[-2:]
            scores = np.where(np.tril(np.ones((length, keys), dtype=bool)), scores, -np.inf)
        top = scores.max(axis=-1, keepdims=True)
        top = np.where(np.isneginf(top), 0, top)
        e = np.exp(scores - top)
        total = e.sum(axis=-1, keepdims=True)
        probs = e / np.where(total == 0, 1, total)
        return np.matmul(probs, v).astype(out, copy=False)

    return run


def _indexing(op: Operation) -> Kernel:
    if isinstance(op, g.GatherOp):
        axis = op.dim.value.data
        return lambda a: np.take_along_axis(a[0], a[1].astype(np.int64), axis=axis)
    if isinstance(op, g.IndexSelectOp):
        axis = op.dim.value.data
        return lambda a: np.take(a[0], a[1].astype(np.int64), axis=axis)
    return lambda a: np.take(a[0], a[1].astype(np.int64), axis=0)  # embedding


def _constant(op: g.ConstantOp) -> Kernel:
    value = dense_to_tensor(op.value).numpy()
    value.setflags(write=False)
    return lambda a: value


BUILDERS: dict[type[Operation], Callable[..., Kernel]] = {
    **{t: _unary for t in (*UNARY, g.GeluOp)},
    **{t: _binary for t in (*BINARY, g.DivOp)},
    g.WhereOp: _where, g.CastOp: _cast, **{t: _reduce for t in g.REDUCE_OPS},
    **{t: _movement for t in (g.ReshapeOp, g.SqueezeOp, g.UnsqueezeOp, g.ExpandOp,
                              g.PermuteOp, g.SliceOp, g.ConcatOp)},
    g.MatmulOp: _matmul, g.ConstantOp: _constant, g.AttentionOp: _attention,
    **{t: _indexing for t in (g.GatherOp, g.IndexSelectOp, g.EmbeddingOp)},
    g.ConvOp: windows.conv, g.MaxPoolOp: windows.max_pool, g.AvgPoolOp: windows.avg_pool,
    g.AdaptiveAvgPoolOp: windows.adaptive_avg_pool,
}


def unsupported_reason(op: Operation) -> str | None:
    """None if :func:`build` handles ``op``, else why not."""
    if type(op) not in BUILDERS:
        return "no NumPy implementation"
    for v in (*op.operands, *op.results):
        try:
            np_dtype(v.type)
        except (KeyError, AttributeError):
            return f"type {v.type} has no NumPy dtype (bfloat16 is not supported)"
    return None


def build(op: Operation) -> Kernel:
    """The NumPy closure computing ``op`` (see module docstring)."""
    return BUILDERS[type(op)](op)
