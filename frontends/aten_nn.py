"""Reductions, contractions, convolution, pooling and embedding aten ops ->
graph dialect. ``var``/``var_mean``/``std`` (when a graph still has them) are
spelled with mean/sub/mul/sum; ``max.dim``/``min.dim`` give (amax, argmax).
"""


from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import sympy
import torch
import torch.fx
from xdsl.ir import SSAValue

from irc.frontends.aten_shape import reshape
from irc.frontends.fx_args import int_arg, kwarg, static_size
from irc.frontends.fx_importer import FxImporter, handles
from irc.ir import graph as g
from irc.ir.symbols import Dim
from irc.ir.types import dims_of, dtype_of, tensor_type

aten = torch.ops.aten

# ----------------------------------------------------------------------------
# reductions


def _dims(dim: Any, rank: int) -> list[int]:
    """Reduction dims normalised; None or [] mean every dim."""
    if dim is None:
        return list(range(rank))
    dims = [dim] if isinstance(dim, int) else list(dim)
    if not dims:
        return list(range(rank))
    r = max(rank, 1)
    for d in dims:
        if not -r <= d < r:
            raise IndexError(f"dim {d} out of range for rank {rank}")
    return sorted({d % r for d in dims})


def reduce(ctx: FxImporter, op: type[g.ReduceOp], value: SSAValue, dims: Sequence[int],
           keepdim: bool) -> SSAValue:
    if not dims_of(value.type):  # 0-d: nothing to reduce; _check casts the dtype
        return value
    return ctx.emit(op(value, list(dims), keepdim))


_REDUCTIONS: dict[object, type[g.ReduceOp]] = {
    aten.sum: g.SumOp, aten.mean: g.MeanOp, aten.prod: g.ProdOp, aten.amax: g.AmaxOp,
    aten.amin: g.AminOp, aten.any: g.AnyOp, aten.all: g.AllOp,
}


@handles(*_REDUCTIONS)
def _reduction(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    packet = node.target.overloadpacket  # type: ignore[union-attr]
    value = ctx.tensor(node.args[0])
    rank = len(dims_of(value.type))
    overload = node.target._overloadname  # type: ignore[union-attr]
    if overload == "default" and packet not in (aten.amax, aten.amin):
        dim, keepdim = None, False
    else:
        dim, keepdim = ctx.arg(1, "dim", None), ctx.arg(2, "keepdim", False)
    dtype = kwarg(node, "dtype")
    if dtype is not None:
        value = ctx.cast(value, dtype)
    return reduce(ctx, _REDUCTIONS[packet], value, _dims(dim, rank), bool(keepdim))


@handles("argmax", "argmin")
def _arg_reduction(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    value = ctx.tensor(node.args[0])
    dim, keepdim = ctx.arg(1, "dim", None), bool(ctx.arg(2, "keepdim", False))
    op = g.ArgmaxOp if node.target.overloadpacket is aten.argmax else g.ArgminOp  # type: ignore[union-attr]
    shape = dims_of(value.type)
    if not shape:
        return ctx.scalar(0, torch.int64)
    if dim is None:
        flat = reshape(ctx, value, [int(torch.tensor(shape).prod())])
        result = ctx.emit(op(flat, [0], False))
        return reshape(ctx, result, ctx.out_shape())
    return ctx.emit(op(value, _dims(dim, len(shape)), keepdim))


@handles("max", "min")
def _max_min(ctx: FxImporter, node: torch.fx.Node) -> Any:
    is_max = node.target.overloadpacket is aten.max  # type: ignore[union-attr]
    value = ctx.tensor(node.args[0])
    shape = dims_of(value.type)
    overload = node.target._overloadname  # type: ignore[union-attr]
    if overload == "other":  # elementwise max(a, b)
        from irc.frontends.aten_elementwise import binary
        return binary(ctx, g.MaximumOp if is_max else g.MinimumOp, node.args[0], node.args[1])
    if overload == "default":
        return reduce(ctx, g.AmaxOp if is_max else g.AminOp, value, list(range(len(shape))), False)
    dims, keepdim = _dims(node.args[1], len(shape)), bool(ctx.arg(2, "keepdim", False))
    if not shape:
        return value, ctx.scalar(0, torch.int64)
    values = ctx.emit((g.AmaxOp if is_max else g.AminOp)(value, dims, keepdim))
    indices = ctx.emit((g.ArgmaxOp if is_max else g.ArgminOp)(value, dims, keepdim))
    return values, indices


def _variance(ctx: FxImporter, node: torch.fx.Node) -> tuple[SSAValue, SSAValue, list[int], bool]:
    value = ctx.tensor(node.args[0])
    if not dtype_of(value.type).is_floating_point:
        raise ctx.unsupported("variance of an integer tensor")
    shape = dims_of(value.type)
    dims = _dims(ctx.arg(1, "dim", None), len(shape))
    correction = kwarg(node, "correction", 1 if ctx.arg(2, "unbiased", True) is True else 0)
    if correction is None:
        correction = 1
    keepdim = bool(kwarg(node, "keepdim", False))
    mean = reduce(ctx, g.MeanOp, value, dims, True)
    diff = ctx.emit(g.SubOp(value, mean))
    total = reduce(ctx, g.SumOp, ctx.emit(g.MulOp(diff, diff)), dims, keepdim)
    count = 1
    for d in dims:
        count *= shape[d] if shape else 1
    denom = max(count - correction, 0)
    dtype = dtype_of(value.type)
    var = ctx.emit(g.DivOp(total, ctx.scalar(denom if isinstance(denom, sympy.Expr)
                                              else float(denom), dtype)))
    if not keepdim and shape:
        mean = reshape(ctx, mean, [s for i, s in enumerate(shape) if i not in dims])
    return var, mean, dims, keepdim


@handles("var")
def _var(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    return _variance(ctx, node)[0]


@handles("var_mean")
def _var_mean(ctx: FxImporter, node: torch.fx.Node) -> tuple[SSAValue, SSAValue]:
    var, mean, _, _ = _variance(ctx, node)
    return var, mean


@handles("std")
def _std(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    return ctx.emit(g.SqrtOp(_variance(ctx, node)[0]))


# ----------------------------------------------------------------------------
# contractions


def matmul(ctx: FxImporter, a: SSAValue, b: SSAValue, out_shape: Sequence[Dim]) -> SSAValue:
    """torch.matmul semantics: 1-d operands are made 2-d and the extra dim dropped."""
    sa, sb = dims_of(a.type), dims_of(b.type)
    if not sa or not sb:
        raise ValueError("matmul needs operands of rank >= 1")
    if len(sa) == 1:
        a = reshape(ctx, a, [1, sa[0]])
    if len(sb) == 1:
        b = reshape(ctx, b, [sb[0], 1])
    return reshape(ctx, ctx.emit(g.MatmulOp(a, b)), out_shape)


@handles("mm", "bmm", "matmul", "mv", "dot")
def _mm(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    out = ctx.out_meta()
    a, b = ctx.tensor(node.args[0], out.dtype), ctx.tensor(node.args[1], out.dtype)
    return matmul(ctx, a, b, ctx.dims(out.shape))


@handles("addmm", "baddbmm", "addmv")
def _addmm(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    out = ctx.out_meta()
    bias = ctx.tensor(node.args[0], out.dtype)
    a, b = ctx.tensor(node.args[1], out.dtype), ctx.tensor(node.args[2], out.dtype)
    beta, alpha = kwarg(node, "beta", 1), kwarg(node, "alpha", 1)
    product = matmul(ctx, a, b, ctx.dims(out.shape))
    if alpha != 1:
        product = ctx.emit(g.MulOp(product, ctx.scalar(alpha, out.dtype)))
    if beta == 0:  # torch ignores the input entirely (NaN included) when beta is 0
        return product
    if beta != 1:
        bias = ctx.emit(g.MulOp(bias, ctx.scalar(beta, out.dtype)))
    return ctx.emit(g.AddOp(product, bias))


@handles("linear")
def _linear(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    out = ctx.out_meta()
    x, w = ctx.tensor(node.args[0], out.dtype), ctx.tensor(node.args[1], out.dtype)
    ws = dims_of(w.type)
    wt = ctx.emit(g.PermuteOp(w, [1, 0])) if len(ws) == 2 else w
    y = matmul(ctx, x, wt, ctx.dims(out.shape))
    bias = ctx.arg(2, "bias", None)
    return ctx.emit(g.AddOp(y, ctx.tensor(bias, out.dtype))) if bias is not None else y


# ----------------------------------------------------------------------------
# convolution, pooling, embedding


def _tuple(value: Any, n: int) -> list[int]:
    if isinstance(value, int):
        return [value] * n
    values = list(value)
    return values * n if len(values) == 1 else values


@handles("convolution")
def _convolution(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    x, w, b, stride, padding, dilation, transposed, _output_padding, groups = node.args[:9]
    if transposed:
        raise ctx.unsupported("transposed convolution")
    out = ctx.out_meta()
    xv, wv = ctx.tensor(x, out.dtype), ctx.tensor(w, out.dtype)
    nsp = len(dims_of(xv.type)) - 2
    if nsp < 1:
        raise ctx.unsupported("convolution input without a batch dimension")
    operands: list[Any] = [xv, wv, [ctx.tensor(b, out.dtype)] if b is not None else []]
    return ctx.emit(g.ConvOp(operands=operands, result_types=[tensor_type(ctx.dims(out.shape), out.dtype)],
                             properties={"stride": g.i64_array(_tuple(stride, nsp)),
                                         "padding": g.i64_array(_tuple(padding, nsp)),
                                         "dilation": g.i64_array(_tuple(dilation, nsp)),
                                         "groups": g.int_attr(int_arg(node, 8))}))


def _bool(value: bool) -> Any:
    from xdsl.dialects.builtin import BoolAttr, IntegerType
    return BoolAttr(bool(value), IntegerType(1))


@handles("max_pool2d_with_indices", "max_pool3d_with_indices", "max_pool1d",
         "max_pool2d", "max_pool3d")
def _max_pool(ctx: FxImporter, node: torch.fx.Node) -> Any:
    with_indices = "with_indices" in str(node.target)
    if with_indices:
        for user in node.users:
            if not (user.target is operator.getitem and (user.args[1] == 0 or not user.users)):
                raise ctx.unsupported("max pooling indices are not lowered")
    x = ctx.tensor(node.args[0])
    kernel = list(ctx.arg(1, "kernel_size"))
    n = len(kernel)
    stride = list(ctx.arg(2, "stride", []) or kernel)
    props = {"kernel": g.i64_array(_tuple(kernel, n)), "stride": g.i64_array(_tuple(stride, n)),
             "padding": g.i64_array(_tuple(ctx.arg(3, "padding", 0), n)),
             "dilation": g.i64_array(_tuple(ctx.arg(4, "dilation", 1), n)),
             "ceil_mode": _bool(ctx.arg(5, "ceil_mode", False))}
    out = ctx.out_meta() if not with_indices else node.meta["val"][0]
    value = ctx.emit(g.MaxPoolOp(operands=[x], properties=props,
                                 result_types=[tensor_type(ctx.dims(out.shape), out.dtype)]))
    return (value, None) if with_indices else value


@handles("avg_pool1d", "avg_pool2d", "avg_pool3d")
def _avg_pool(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    x = ctx.tensor(node.args[0])
    kernel = list(ctx.arg(1, "kernel_size"))
    n = len(kernel)
    stride = list(ctx.arg(2, "stride", []) or kernel)
    divisor = ctx.arg(6, "divisor_override", None) or 0
    props = {"kernel": g.i64_array(_tuple(kernel, n)), "stride": g.i64_array(_tuple(stride, n)),
             "padding": g.i64_array(_tuple(ctx.arg(3, "padding", 0), n)),
             "ceil_mode": _bool(ctx.arg(4, "ceil_mode", False)),
             "count_include_pad": _bool(ctx.arg(5, "count_include_pad", True)),
             "divisor": g.int_attr(divisor)}
    out = ctx.out_meta()
    return ctx.emit(g.AvgPoolOp(operands=[x], properties=props,
                                result_types=[tensor_type(ctx.dims(out.shape), out.dtype)]))


@handles("_adaptive_avg_pool2d", "adaptive_avg_pool2d", "adaptive_avg_pool1d")
def _adaptive_avg_pool(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    x = ctx.tensor(node.args[0])
    out = ctx.out_meta()
    spatial = 1 if "1d" in str(node.target) else 2
    shape = list(dims_of(x.type))
    # an unbatched input gets a leading batch dim so the op's spatial dims are unambiguous
    lead = len(shape) - spatial
    if lead < 2:
        x = reshape(ctx, x, [1] * (2 - lead) + shape)
    result_shape = list(dims_of(x.type)[:-spatial]) + list(out.shape[-spatial:])
    pooled = ctx.emit(g.AdaptiveAvgPoolOp(operands=[x],
                                          result_types=[tensor_type(result_shape, out.dtype)]))
    return reshape(ctx, pooled, ctx.dims(out.shape))


@handles("embedding")
def _embedding(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    w, idx = ctx.tensor(node.args[0]), ctx.tensor(node.args[1])
    if len(dims_of(w.type)) != 2:
        raise ctx.unsupported("embedding weight must be 2-d")
    out = ctx.out_meta()
    return ctx.emit(g.EmbeddingOp(operands=[w, idx],
                                  result_types=[tensor_type(ctx.dims(out.shape), out.dtype)]))


@handles("_native_batch_norm_legit_no_training", "native_batch_norm")
def _batch_norm_eval(ctx: FxImporter, node: torch.fx.Node) -> tuple[SSAValue, None, None]:
    """Inference batch norm with running statistics, channel dim 1; f16/bf16
    compute in f32 as torch's kernels do."""
    x, weight, bias, mean, var = node.args[:5]
    if node.target.overloadpacket is aten.native_batch_norm:  # type: ignore[union-attr]
        if ctx.arg(5, "training", False) or mean is None or var is None:
            raise ctx.unsupported("batch norm in training mode (batch statistics)")
        eps = ctx.arg(7, "eps", 1e-5)
    else:
        eps = ctx.arg(6, "eps", 1e-5)
    out = node.meta["val"][0]
    dtype = torch.float32 if out.dtype in (torch.float16, torch.bfloat16) else out.dtype
    xv = ctx.tensor(x, dtype)
    rank = len(dims_of(xv.type))
    if rank < 2:
        raise ctx.unsupported("batch norm input needs a channel dimension")
    channels = dims_of(xv.type)[1]

    def per_channel(arg: Any) -> SSAValue:
        return reshape(ctx, ctx.tensor(arg, dtype), [channels] + [1] * (rank - 2))

    scale = ctx.emit(g.RsqrtOp(ctx.emit(g.AddOp(per_channel(var), ctx.scalar(eps, dtype)))))
    y = ctx.emit(g.MulOp(ctx.emit(g.SubOp(xv, per_channel(mean))), scale))
    if weight is not None:
        y = ctx.emit(g.MulOp(y, per_channel(weight)))
    if bias is not None:
        y = ctx.emit(g.AddOp(y, per_channel(bias)))
    for user in node.users:
        if not (user.target is operator.getitem and (user.args[1] == 0 or not user.users)):
            raise ctx.unsupported("batch norm statistics outputs are not lowered")
    return ctx.cast(y, out.dtype), None, None


_VIEWS = ("view", "_unsafe_view", "reshape", "clone", "alias")


def _shape(node: Any) -> tuple[int, ...] | None:
    val = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
    return tuple(val.shape) if isinstance(val, torch.Tensor) else None


def _packet(node: Any) -> str | None:
    target = getattr(node, "target", None)
    return target.overloadpacket.__name__ if isinstance(target, torch._ops.OpOverload) else None


def _repeated_kv(arg: Any) -> torch.fx.Node | None:
    """The ``[B, Hkv, S, D]`` key/value a ``[B, Hkv * n, S, D]`` operand repeats
    (``transformers``' ``repeat_kv``: unsqueeze at dim 2, expand, reshape), else
    None. Attention takes the source itself (grouped-query attention), so a
    decode step does not copy its KV cache ``n`` times over."""
    shape = _shape(arg)
    if shape is None or len(shape) != 4:
        return None
    node = arg
    while _packet(node) in _VIEWS and _shape(node.args[0]) is not None \
            and len(_shape(node.args[0]) or ()) == 5:  # the reshape (and clone) of the expand
        node = node.args[0]
    if _packet(node) not in ("expand", "expand_copy") or not isinstance(node.args[0], torch.fx.Node):
        return None
    expanded = _shape(node)
    b, heads, s, d = shape
    if expanded is None or expanded[0] != b or expanded[1] * expanded[2] != heads \
            or expanded[3:] != (s, d) or _shape(node.args[0]) != (b, expanded[1], 1, s, d):
        return None  # (a size-1 dim 2 expanded: each kv head repeated in place, not tiled)
    source = node.args[0]
    while _packet(source) in ("unsqueeze", "slice", "alias") and _shape(source) != (
            b, expanded[1], s, d):
        source = source.args[0]
        if not isinstance(source, torch.fx.Node):
            return None
    return source if _shape(source) == (b, expanded[1], s, d) else None


def _fused_attention(ctx: FxImporter, node: torch.fx.Node, is_causal: bool, mask: Any,
                     scale: float | None) -> SSAValue | None:
    """One ``graph.attention`` library call for an inference attention (its
    logsumexp unused, so no backward needs it), else None: then the importer
    spells the computation out, scores and softmax included."""
    lse_used = any(not (user.target is operator.getitem and user.args[1] == 0) and user.users
                   for user in node.users)
    mask_meta = ctx.meta(mask) if mask is not None else None
    if lse_used or (mask is not None and (is_causal or mask_meta is None
                                          or not mask_meta.dtype.is_floating_point)):
        return None
    out_meta = node.meta["val"][0]
    args = list(node.args[:3])
    grouped = [_repeated_kv(a) for a in args[1:]]
    if all(src is not None for src in grouped) and _shape(grouped[0])[1] == _shape(  # type: ignore[index]
            grouped[1])[1]:  # type: ignore[index]
        args[1:] = grouped
    q, k, v = (ctx.tensor(a, out_meta.dtype) for a in args)
    qs = dims_of(q.type)
    if len(qs) < 2 or not len(qs) == len(dims_of(k.type)) == len(dims_of(v.type)):
        return None
    factor: float = 1.0 / float(qs[-1]) ** 0.5 if scale is None else scale
    from xdsl.dialects.builtin import Float64Type, FloatAttr, UnitAttr
    properties: dict[str, Any] = {"scale": FloatAttr(float(factor), Float64Type())}
    if is_causal:
        properties["is_causal"] = UnitAttr()
    operands: list[Any] = [q, k, v, [ctx.tensor(mask, out_meta.dtype)] if mask is not None else []]
    return ctx.emit(g.AttentionOp(operands=operands, properties=properties,
                                  result_types=[tensor_type(ctx.dims(out_meta.shape), out_meta.dtype)]))


def _kv_heads_for(ctx: FxImporter, kv: SSAValue, q_heads: Dim) -> SSAValue:
    """Grouped-query attention: ``kv`` (heads ``H_kv`` at dim -3) repeated to
    ``q_heads`` heads, kv head ``j`` serving query heads ``j*G .. j*G+G-1``
    (``repeat_interleave``, as torch's kernels group them)."""
    shape = dims_of(kv.type)
    if len(shape) < 3 or shape[-3] == q_heads:
        return kv
    heads = shape[-3]
    if q_heads % heads:
        raise ctx.unsupported(f"{q_heads} query heads are not a multiple of {heads} key/value heads")
    lead, (s, d) = list(shape[:-3]), shape[-2:]
    grouped = reshape(ctx, kv, [*lead, heads, 1, s, d])
    wide = ctx.emit(g.ExpandOp(grouped, tensor_type([*lead, heads, q_heads // heads, s, d],
                                                    dtype_of(kv.type))))
    return reshape(ctx, wide, [*lead, q_heads, s, d])


def _grad_for_kv_heads(ctx: FxImporter, grad: SSAValue, kv_heads: Dim) -> SSAValue:
    """The gradient of :func:`_kv_heads_for`: each group of query heads summed
    back onto its key/value head."""
    shape = dims_of(grad.type)
    if len(shape) < 3 or shape[-3] == kv_heads:
        return grad
    lead, (s, d) = list(shape[:-3]), shape[-2:]
    grouped = reshape(ctx, grad, [*lead, kv_heads, shape[-3] // kv_heads, s, d])
    return reshape(ctx, ctx.emit(g.SumOp(grouped, [len(lead) + 1], True)), [*lead, kv_heads, s, d])


@handles("_scaled_dot_product_flash_attention_for_cpu")
def _sdpa_cpu(ctx: FxImporter, node: torch.fx.Node) -> tuple[SSAValue, SSAValue]:
    """softmax(q @ k^T * scale + mask) @ v, and the row logsumexp the backward uses.
    Computed in f32 for f16/bf16 inputs."""
    q, k, v = node.args[:3]
    dropout_p, is_causal = ctx.arg(3, "dropout_p", 0.0), bool(ctx.arg(4, "is_causal", False))
    mask, scale = kwarg(node, "attn_mask"), kwarg(node, "scale")
    if dropout_p:
        raise ctx.unsupported("attention dropout is random")
    out_meta, lse_meta = node.meta["val"][0], node.meta["val"][1]
    fused = _fused_attention(ctx, node, is_causal, mask, scale)
    if fused is not None:
        return fused, None  # type: ignore[return-value]  (the logsumexp is unused)
    dtype = torch.float32 if out_meta.dtype in (torch.float16, torch.bfloat16) else out_meta.dtype
    qv, kv, vv = ctx.tensor(q, dtype), ctx.tensor(k, dtype), ctx.tensor(v, dtype)
    qs, ks = dims_of(qv.type), dims_of(kv.type)
    if len(qs) < 2 or len(ks) != len(qs):
        raise ctx.unsupported("attention operands must share a rank >= 2")
    if len(qs) >= 3:  # grouped-query attention: fewer key/value heads than query heads
        kv, vv = _kv_heads_for(ctx, kv, qs[-3]), _kv_heads_for(ctx, vv, qs[-3])
    rank = len(ks)
    if scale is None:
        scale = 1.0 / float(qs[-1]) ** 0.5
    kt = ctx.emit(g.PermuteOp(kv, list(range(rank - 2)) + [rank - 1, rank - 2]))
    scores = ctx.emit(g.MulOp(ctx.emit(g.MatmulOp(qv, kt)), ctx.scalar(scale, dtype)))
    L, S = qs[-2], ks[-2]
    if is_causal:
        causal = torch.ones(static_size(L), static_size(S), dtype=torch.bool).tril()
        scores = ctx.emit(g.WhereOp(ctx.constant(causal), scores,
                                    ctx.scalar(float("-inf"), dtype)))
    if mask is not None:
        mask_meta = ctx.meta(mask)
        if mask_meta is not None and mask_meta.dtype == torch.bool:
            scores = ctx.emit(g.WhereOp(ctx.tensor(mask), scores, ctx.scalar(float("-inf"), dtype)))
        else:
            scores = ctx.emit(g.AddOp(scores, ctx.tensor(mask, dtype)))
    last = len(dims_of(scores.type)) - 1
    # fully masked rows (max = -inf) give zeros, as torch's kernels do
    row_max = ctx.emit(g.AmaxOp(scores, [last], True))
    neg_inf = ctx.scalar(float("-inf"), dtype)
    zero = ctx.scalar(0.0, dtype)
    row_max = ctx.emit(g.WhereOp(ctx.emit(g.EqOp(row_max, neg_inf)), zero, row_max))
    exps = ctx.emit(g.ExpOp(ctx.emit(g.SubOp(scores, row_max))))
    total = ctx.emit(g.SumOp(exps, [last], True))
    lse = ctx.emit(g.AddOp(ctx.emit(g.LogOp(total)), row_max))
    safe_total = ctx.emit(g.WhereOp(ctx.emit(g.EqOp(total, zero)), ctx.scalar(1.0, dtype), total))
    probs = ctx.emit(g.DivOp(exps, safe_total))
    out = ctx.cast(ctx.emit(g.MatmulOp(probs, vv)), out_meta.dtype)
    lse_flat = reshape(ctx, lse, list(dims_of(lse.type))[:-1])
    if ctx.dims(lse_meta.shape) != dims_of(lse_flat.type):
        lse_flat = reshape(ctx, lse_flat, ctx.dims(lse_meta.shape))
    return out, ctx.cast(lse_flat, lse_meta.dtype)


# the O(n^2) triangular-matmul form of cumsum is used up to this length
CUMSUM_MAX_LENGTH = 1024


@handles("cumsum")
def _cumsum(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    """Inclusive prefix sum along ``dim`` as a matmul with an upper-triangular
    matrix of ones (the dialect has no scan op; exact for integers)."""
    out = ctx.out_meta()
    value = ctx.tensor(node.args[0], out.dtype)
    shape = dims_of(value.type)
    if not shape:
        return value
    dim = _dims(node.args[1], len(shape))[0]
    n = shape[dim]
    if not isinstance(n, int):
        raise ctx.unsupported(f"cumsum over a symbolic length ({n}): its triangular-matmul form "
                              "needs a static one")
    if n > CUMSUM_MAX_LENGTH:
        raise ctx.unsupported(f"cumsum over {n} > {CUMSUM_MAX_LENGTH} elements")
    if out.dtype == torch.bool or out.dtype not in (torch.float32, torch.float64, torch.float16,
                                                    torch.bfloat16, torch.int64, torch.int32):
        raise ctx.unsupported(f"cumsum in {out.dtype}")
    last = len(shape) - 1
    perm = list(range(len(shape)))
    perm[dim], perm[last] = perm[last], perm[dim]
    moved = ctx.emit(g.PermuteOp(value, perm)) if dim != last else value
    moved_shape = dims_of(moved.type)
    rows = reshape(ctx, moved, [int(torch.tensor(moved_shape[:-1]).prod()) if moved_shape[:-1] else 1, n])
    tri = ctx.constant(torch.ones(n, n, dtype=out.dtype).triu())
    summed = reshape(ctx, ctx.emit(g.MatmulOp(rows, tri)), moved_shape)
    return ctx.emit(g.PermuteOp(summed, perm)) if dim != last else summed


@handles("_scaled_dot_product_flash_attention_for_cpu_backward")
def _sdpa_cpu_backward(ctx: FxImporter, node: torch.fx.Node) -> tuple[SSAValue, SSAValue, SSAValue]:
    """Gradients of :func:`_sdpa_cpu` from the saved output and logsumexp:
    P = exp(S - lse), dV = P^T dO, dS = P * (dO V^T - rowsum(dO * O)),
    dQ = scale * dS K, dK = scale * dS^T Q (fully masked rows give P = 0)."""
    grad_out, q, k, v, out, lse = node.args[:6]
    dropout_p, is_causal = node.args[6], bool(node.args[7])
    mask, scale = kwarg(node, "attn_mask"), kwarg(node, "scale")
    if dropout_p:
        raise ctx.unsupported("attention dropout is random")
    metas = node.meta["val"]
    dtype = torch.float32 if metas[0].dtype in (torch.float16, torch.bfloat16) else metas[0].dtype
    qv, kv, vv = ctx.tensor(q, dtype), ctx.tensor(k, dtype), ctx.tensor(v, dtype)
    do, o = ctx.tensor(grad_out, dtype), ctx.tensor(out, dtype)
    qs, ks = dims_of(qv.type), dims_of(kv.type)
    rank = len(qs)
    if rank < 2 or len(ks) != rank:
        raise ctx.unsupported("attention operands must share a rank >= 2")
    kv_heads = ks[-3] if rank >= 3 else 0
    if rank >= 3:  # grouped-query attention (see _sdpa_cpu)
        kv, vv = _kv_heads_for(ctx, kv, qs[-3]), _kv_heads_for(ctx, vv, qs[-3])
    if scale is None:
        scale = 1.0 / float(qs[-1]) ** 0.5

    def transpose(x: SSAValue) -> SSAValue:
        return ctx.emit(g.PermuteOp(x, list(range(rank - 2)) + [rank - 1, rank - 2]))

    scores = ctx.emit(g.MulOp(ctx.emit(g.MatmulOp(qv, transpose(kv))), ctx.scalar(scale, dtype)))
    if is_causal:
        causal = torch.ones(static_size(qs[-2]), static_size(ks[-2]), dtype=torch.bool).tril()
        scores = ctx.emit(g.WhereOp(ctx.constant(causal), scores, ctx.scalar(float("-inf"), dtype)))
    if mask is not None:
        mask_meta = ctx.meta(mask)
        if mask_meta is not None and mask_meta.dtype == torch.bool:
            scores = ctx.emit(g.WhereOp(ctx.tensor(mask), scores, ctx.scalar(float("-inf"), dtype)))
        else:
            scores = ctx.emit(g.AddOp(scores, ctx.tensor(mask, dtype)))
    lse_v = reshape(ctx, ctx.tensor(lse, dtype), list(qs[:-1]) + [1])
    neg_inf = ctx.scalar(float("-inf"), dtype)
    safe_lse = ctx.emit(g.WhereOp(ctx.emit(g.EqOp(lse_v, neg_inf)),
                                  ctx.scalar(float("inf"), dtype), lse_v))
    probs = ctx.emit(g.ExpOp(ctx.emit(g.SubOp(scores, safe_lse))))
    grad_v = ctx.emit(g.MatmulOp(transpose(probs), do))
    grad_p = ctx.emit(g.MatmulOp(do, transpose(vv)))
    last = rank - 1
    row = ctx.emit(g.SumOp(ctx.emit(g.MulOp(do, o)), [last], True))
    grad_s = ctx.emit(g.MulOp(probs, ctx.emit(g.SubOp(grad_p, row))))
    grad_s = ctx.emit(g.MulOp(grad_s, ctx.scalar(scale, dtype)))
    grad_q = ctx.emit(g.MatmulOp(grad_s, kv))
    grad_k = ctx.emit(g.MatmulOp(transpose(grad_s), qv))
    if rank >= 3:
        grad_k, grad_v = _grad_for_kv_heads(ctx, grad_k, kv_heads), _grad_for_kv_heads(ctx, grad_v, kv_heads)
    return tuple(ctx.cast(value, m.dtype) for value, m in zip((grad_q, grad_k, grad_v), metas))  # type: ignore[return-value]
