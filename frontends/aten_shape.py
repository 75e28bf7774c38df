"""Movement and indexing aten ops -> graph dialect: views (value semantics
here), slicing normalised like torch, concatenation, splits, padding,
gather/index_select/index, tuple ``getitem`` and shape-only constants.
"""


from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import sympy
import torch
import torch.fx
from xdsl.ir import SSAValue

from irc.frontends.fx_args import arg, int_arg, ints_arg, kwarg, static_shape, static_size
from irc.frontends.fx_importer import FxImporter, handles
from irc.ir import graph as g
from irc.ir.symbols import Dim
from irc.ir.types import dims_of, dtype_of, tensor_type

aten = torch.ops.aten


def _norm_dim(dim: int, rank: int) -> int:
    r = max(rank, 1)
    if not -r <= dim < r:
        raise IndexError(f"dim {dim} out of range for rank {rank}")
    return dim % r


def reshape(ctx: FxImporter, value: SSAValue, shape: Sequence[Dim]) -> SSAValue:
    if dims_of(value.type) == tuple(shape):
        return value
    return ctx.emit(g.ReshapeOp(value, tensor_type(shape, dtype_of(value.type))))


def slice_value(ctx: FxImporter, value: SSAValue, dim: int, start: Any, end: Any,
                step: int = 1) -> SSAValue:
    """``value[start:end:step]`` along ``dim`` with torch's normalisation of
    None, negative and out-of-range bounds."""
    size = dims_of(value.type)[dim]
    start = 0 if start is None else ctx.size_arg(start)
    end = size if end is None else ctx.size_arg(end)
    if not all(isinstance(b, int) for b in (size, start, end)):
        return _symbolic_slice(ctx, value, dim, start, end, step)
    if start < 0:
        start += size
    if end < 0:
        end += size
    start = min(max(start, 0), size)
    end = min(max(end, start), size)
    if step < 1:
        raise ValueError(f"slice step must be positive, got {step}")
    if (start, end, step) == (0, size, 1):
        return value
    return ctx.emit(g.SliceOp(value, dim, start, end, step))


def _symbolic_slice(ctx: FxImporter, value: SSAValue, dim: int, start: Any, end: Any,
                    step: int) -> SSAValue:
    """A slice with symbolic size or bounds: the bounds are taken as given when
    dynamo's result size confirms them (``end - start`` elements, in range),
    else it is unsupported (never a guessed clamp)."""
    size = dims_of(value.type)[dim]
    want = ctx.out_shape()[dim] if len(ctx.out_shape()) > dim else None
    if isinstance(end, int) and end >= 2**62:  # x[a:] spelled with a huge end
        end = size
    if step < 1:
        raise ValueError(f"slice step must be positive, got {step}")
    if (start, end, step) == (0, size, 1):
        return value
    # a negative or out-of-range bound: the normalisation dynamo's result
    # size shows it took (a guard on the sizes makes that branch certain)
    starts = [start] + ([start + size, 0] if isinstance(start, int) and start < 0 else [])
    ends = [end] + ([end + size] if isinstance(end, int) and end < 0 else []) + [size]
    got = g._slice_size(start, end, step)
    for s0 in starts:
        for e0 in ends:
            if got != want and g._slice_size(s0, e0, step) == want:
                start, end, got = s0, e0, want
    if (start, end, step) == (0, size, 1):
        return value
    if got != want:
        raise ctx.unsupported(f"slice {start}:{end}:{step} of a dimension of size {size} (dynamo "
                              f"gives {want} elements): symbolic bounds that need clamping")
    return ctx.emit(g.SliceOp(value, dim, start, end, step))


@handles("view", "_unsafe_view", "reshape", "view_copy", "flatten", "squeeze", "squeeze_copy",
         "alias_copy", "unflatten", "_reshape_copy")
def _view(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    return reshape(ctx, ctx.tensor(node.args[0]), ctx.out_shape())


@handles("unsqueeze", "unsqueeze_copy")
def _unsqueeze(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    value = ctx.tensor(node.args[0])
    rank = len(dims_of(value.type))
    dim = int_arg(node, 1)
    dim = dim + rank + 1 if dim < 0 else dim
    out = ctx.out_shape()
    return ctx.emit(g.UnsqueezeOp(operands=[value], result_types=[tensor_type(out, dtype_of(value.type))],
                                  properties={"dim": g.int_attr(dim)}))


@handles("expand", "expand_copy")
def _expand(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    value = ctx.tensor(node.args[0])
    out = ctx.out_shape()
    if dims_of(value.type) == out:
        return value
    return ctx.emit(g.ExpandOp(value, tensor_type(out, dtype_of(value.type))))


@handles("permute", "permute_copy")
def _permute(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    value = ctx.tensor(node.args[0])
    rank = len(dims_of(value.type))
    dims = [_norm_dim(d, rank) for d in ints_arg(node, 1)]
    if dims == list(range(rank)):
        return value
    return ctx.emit(g.PermuteOp(value, dims))


@handles("t", "transpose", "numpy_T", "t_copy", "transpose_copy")
def _transpose(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    value = ctx.tensor(node.args[0])
    rank = len(dims_of(value.type))
    if rank < 2:
        return value
    packet = node.target.overloadpacket  # type: ignore[union-attr]
    if packet in (aten.transpose, getattr(aten, "transpose_copy", aten.transpose)):
        a, b = _norm_dim(int_arg(node, 1), rank), _norm_dim(int_arg(node, 2), rank)
    else:
        a, b = rank - 2, rank - 1
        if packet is aten.numpy_T:
            return ctx.emit(g.PermuteOp(value, list(reversed(range(rank)))))
    dims = list(range(rank))
    dims[a], dims[b] = dims[b], dims[a]
    return value if a == b else ctx.emit(g.PermuteOp(value, dims))


@handles("slice", "slice_copy")
def _slice(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    value = ctx.tensor(node.args[0])
    rank = len(dims_of(value.type))
    dim = _norm_dim(ctx.arg(1, "dim", 0), rank)
    return slice_value(ctx, value, dim, ctx.arg(2, "start", None), ctx.arg(3, "end", None),
                       ctx.arg(4, "step", 1))


@handles("select", "select_copy")
def _select(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    value = ctx.tensor(node.args[0])
    shape = dims_of(value.type)
    dim = _norm_dim(int_arg(node, 1), len(shape))
    index = int_arg(node, 2)
    if not -shape[dim] <= index < shape[dim]:
        raise IndexError(f"index {index} out of range for size {shape[dim]}")
    index %= shape[dim]
    part = ctx.emit(g.SliceOp(value, dim, index, index + 1, 1))
    return reshape(ctx, part, ctx.out_shape())


@handles("cat", "concat")
def _cat(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    out = ctx.out_meta()
    values = []
    for t in arg(node, 0):
        v = ctx.tensor(t, out.dtype)
        if dims_of(v.type) == (0,) and out.dim() != 1:
            continue  # torch's legacy rule: empty 1-d tensors are skipped
        values.append(v)
    dim = _norm_dim(ctx.arg(1, "dim", 0), out.dim())
    values = [v for v in values if dims_of(v.type)[dim] > 0] or values[:1]
    if len(values) == 1:
        return values[0]
    return ctx.emit(g.ConcatOp(values, dim))


@handles("split_with_sizes", "split", "split_with_sizes_copy", "split_copy", "unbind",
         "unbind_copy", "chunk")
def _split(ctx: FxImporter, node: torch.fx.Node) -> tuple[SSAValue, ...]:
    value = ctx.tensor(node.args[0])
    shape = dims_of(value.type)
    packet = node.target.overloadpacket  # type: ignore[union-attr]
    unbind = packet in (aten.unbind, getattr(aten, "unbind_copy", aten.unbind))
    dim = _norm_dim(ctx.arg(1 if unbind else 2, "dim", 0), len(shape))
    outs = node.meta["val"]
    parts, start = [], 0
    for o in outs:
        size = 1 if unbind else ctx.dim(o.shape[dim])
        part = slice_value(ctx, value, dim, start, start + size)
        parts.append(reshape(ctx, part, ctx.dims(o.shape)))
        start += size
    return tuple(parts)


@handles(operator.getitem)
def _getitem(ctx: FxImporter, node: torch.fx.Node) -> Any:
    source, index = node.args
    if not isinstance(source, torch.fx.Node):
        raise ctx.unsupported("getitem on a non-node value")
    if source in ctx.constants:
        ctx.constants[node] = ctx.constants[source][index]
        return None
    values = ctx.values[source]
    item = values[index]
    if item is None and not node.users:
        return None  # an unused item of a tuple (e.g. pooling indices nobody reads)
    if item is None:
        raise ctx.unsupported(f"output {index} of {source.target} is not lowered")
    return item


@handles("clone", "alias", "contiguous", "detach", "lift_fresh_copy",
         "lift_fresh", "dropout", "feature_dropout")
def _identity(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    packet = node.target.overloadpacket  # type: ignore[union-attr]
    if packet in (aten.dropout, aten.feature_dropout) and ctx.arg(2, "train", False) \
            and ctx.arg(1, "p", 0.0) > 0:
        raise ctx.unsupported("dropout in training mode is random")
    return ctx.tensor(node.args[0])


@handles("arange")
def _arange(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    """``arange`` of a symbolic length (a static one is folded at import):
    ``start + step * iota(n)`` in the result dtype; integer bounds only."""
    overload = node.target._overloadname  # type: ignore[union-attr]
    args = [ctx.size_arg(a) for a in node.args]
    start, end, step = (0, args[0], 1) if overload == "default" else (
        args[0], args[1], args[2] if len(args) > 2 else kwarg(node, "step", 1))
    if not all(isinstance(b, (int, sympy.Expr)) for b in (start, end, step)):
        raise ctx.unsupported("arange with symbolic length needs integer start and step")
    out = ctx.out_meta()
    value = ctx.emit(g.IotaOp(tensor_type(ctx.out_shape(), torch.int64)))
    if step != 1:
        value = ctx.emit(g.MulOp(value, ctx.scalar(step, torch.int64)))
    if start != 0:
        value = ctx.emit(g.AddOp(value, ctx.scalar(start, torch.int64)))
    return ctx.cast(value, out.dtype)


@handles("full_like", "zeros_like", "ones_like", "empty_like", "new_full",
         "new_zeros", "new_ones", "new_empty", "fill", "scalar_tensor", "full", "zeros", "ones",
         "empty")
def _shape_only(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    """Ops whose value depends only on their inputs' shapes: evaluate now."""
    packet = node.target.overloadpacket  # type: ignore[union-attr]
    out = ctx.out_meta()
    if packet is aten.fill and isinstance(node.args[1], torch.fx.Node):
        value = ctx.tensor(node.args[1], out.dtype)
        return ctx.emit(g.ExpandOp(value, tensor_type(ctx.dims(out.shape), out.dtype)))
    fill = {aten.zeros_like: 0, aten.new_zeros: 0, aten.empty_like: 0, aten.new_empty: 0,
            aten.ones_like: 1, aten.new_ones: 1, aten.zeros: 0, aten.ones: 1,
            aten.empty: 0}.get(packet)
    if fill is None:
        fill = arg(node, 0) if packet is aten.scalar_tensor else arg(node, 1)
    shape = ctx.dims(out.shape)
    if not all(isinstance(d, int) for d in shape):  # symbolic: a splat, expanded
        scalar = ctx.constant(torch.full((), fill, dtype=out.dtype))
        return ctx.emit(g.ExpandOp(scalar, tensor_type(shape, out.dtype)))
    t = torch.full(static_shape(shape), fill, dtype=out.dtype)
    return ctx.constant(t, node)


@handles("repeat")
def _repeat(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    value = ctx.tensor(node.args[0])
    reps = ints_arg(node, 1)
    shape = [1] * (len(reps) - len(dims_of(value.type))) + list(dims_of(value.type))
    value = reshape(ctx, value, [d for s in shape for d in (1, s)])
    big = [d for r, s in zip(reps, shape) for d in (r, s)]
    value = ctx.emit(g.ExpandOp(value, tensor_type(big, dtype_of(value.type))))
    return reshape(ctx, value, ctx.out_shape())


@handles("constant_pad_nd")
def _pad(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    """Pad (or crop, for negative amounts) trailing dims; pairs run last dim first."""
    value = ctx.tensor(node.args[0])
    pad = ints_arg(node, 1)
    fill = ctx.arg(2, "value", 0)
    dtype = dtype_of(value.type)
    rank = len(dims_of(value.type))
    for i in range(len(pad) // 2):
        dim = rank - 1 - i
        before, after = pad[2 * i], pad[2 * i + 1]
        size = dims_of(value.type)[dim]
        value = slice_value(ctx, value, dim, max(-before, 0), size - max(-after, 0))
        pieces = []
        for amount in (before, after):
            if amount > 0:
                shape = list(dims_of(value.type))
                shape[dim] = amount
                pieces.append(ctx.constant(torch.full(static_shape(shape), fill, dtype=dtype)))
            else:
                pieces.append(None)
        parts = [p for p in (pieces[0], value, pieces[1]) if p is not None]
        if len(parts) > 1:
            value = ctx.emit(g.ConcatOp(parts, dim))
    return value


@handles("index_select")
def _index_select(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    value = ctx.tensor(node.args[0])
    dim = _norm_dim(int_arg(node, 1), len(dims_of(value.type)))
    index = ctx.tensor(node.args[2])
    if not dims_of(value.type):
        return value
    index_shape = dims_of(index.type)
    index = reshape(ctx, index, [index_shape[0] if index_shape else 1])  # 0-d index -> [1]
    out = ctx.out_shape()
    return _emit_index_select(ctx, value, index, dim, out)


def _emit_index_select(ctx: FxImporter, value: SSAValue, index: SSAValue, dim: int,
                       out: Sequence[Dim]) -> SSAValue:
    shape = list(dims_of(value.type))
    shape[dim] = dims_of(index.type)[0]
    result = ctx.emit(g.IndexSelectOp(operands=[value, index],
                                      result_types=[tensor_type(shape, dtype_of(value.type))],
                                      properties={"dim": g.int_attr(dim)}))
    return reshape(ctx, result, out)


@handles("gather")
def _gather(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    value = ctx.tensor(node.args[0])
    dim = _norm_dim(int_arg(node, 1), len(dims_of(value.type)))
    index = ctx.tensor(node.args[2])
    if not dims_of(value.type) or len(dims_of(index.type)) != len(dims_of(value.type)):
        raise ctx.unsupported("gather on 0-d tensors")
    return ctx.emit(g.GatherOp(operands=[value, index],
                               result_types=[tensor_type(dims_of(index.type), dtype_of(value.type))],
                               properties={"dim": g.int_attr(dim)}))


@handles("index")
def _index(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    """``x[..., i0, i1, ...]`` with integer index tensors on consecutive dims
    (others None): the indexed dims are flattened and gathered with one
    linear index (negative indices wrap like torch)."""
    value = ctx.tensor(node.args[0])
    indices = list(arg(node, 1))
    used = [i for i, t in enumerate(indices) if t is not None]
    if not used or used != list(range(used[0], used[-1] + 1)):
        raise ctx.unsupported("advanced indexing with index tensors on non-adjacent dims")
    metas = [ctx.meta(indices[i]) for i in used]
    if any(m is None or m.dtype not in (torch.int64, torch.int32) for m in metas):
        raise ctx.unsupported("indexing with a boolean mask (data-dependent shape)")
    shape = list(dims_of(value.type))
    first, last = used[0], used[-1]
    index_shape = g.broadcast_shapes(*(ctx.dims(m.shape) for m in metas))  # type: ignore[union-attr]
    if index_shape is None:
        raise ValueError("index tensors do not broadcast")
    linear: SSAValue | None = None
    for i in used:
        idx = ctx.tensor(indices[i], torch.int64)
        size = ctx.scalar(shape[i], torch.int64)
        zero = ctx.scalar(0, torch.int64)
        idx = ctx.emit(g.WhereOp(ctx.emit(g.LtOp(idx, zero)), ctx.emit(g.AddOp(idx, size)), idx))
        stride = 1
        for d in shape[i + 1:last + 1]:
            stride *= d
        if stride != 1:
            idx = ctx.emit(g.MulOp(idx, ctx.scalar(stride, torch.int64)))
        linear = idx if linear is None else ctx.emit(g.AddOp(linear, idx))
    assert linear is not None
    count = 1
    for d in index_shape:
        count *= d
    if dims_of(linear.type) != tuple(index_shape):
        linear = ctx.emit(g.ExpandOp(linear, tensor_type(index_shape, torch.int64)))
    flat_index = reshape(ctx, linear, [count])
    span = 1
    for d in shape[first:last + 1]:
        span *= d
    flat = reshape(ctx, value, shape[:first] + [span] + shape[last + 1:])
    selected = _emit_index_select(ctx, flat, flat_index, first,
                                  shape[:first] + [count] + shape[last + 1:])
    return reshape(ctx, selected, shape[:first] + list(index_shape) + shape[last + 1:])


@handles("squeeze_", "unsqueeze_", "t_", "transpose_")
def _inplace_view(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    """In-place metadata ops (left by some decompositions): the input node now
    stands for the reshaped tensor too, so later users of it see the new shape."""
    source = node.args[0]
    value = reshape_like_torch(ctx, ctx.tensor(source), node)
    if isinstance(source, torch.fx.Node):
        ctx.values[source] = value
    return value


def reshape_like_torch(ctx: FxImporter, value: SSAValue, node: torch.fx.Node) -> SSAValue:
    packet = node.target.overloadpacket  # type: ignore[union-attr]
    out = ctx.out_shape()
    if packet in (aten.t_, aten.transpose_):
        rank = len(dims_of(value.type))
        if rank < 2:
            return value
        a, b = (rank - 2, rank - 1) if packet is aten.t_ else (_norm_dim(int_arg(node, 1), rank),
                                                                _norm_dim(int_arg(node, 2), rank))
        dims = list(range(rank))
        dims[a], dims[b] = dims[b], dims[a]
        return value if a == b else ctx.emit(g.PermuteOp(value, dims))
    return reshape(ctx, value, out)


@handles("slice_scatter", "select_scatter")
def _slice_scatter(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    """``input`` with ``input[start:end]`` along ``dim`` replaced by ``src``
    (unit step): the untouched head and tail concatenated around ``src``."""
    out = ctx.out_meta()
    value, src = ctx.tensor(node.args[0], out.dtype), ctx.tensor(node.args[1], out.dtype)
    shape = dims_of(value.type)
    dim = _norm_dim(ctx.arg(2, "dim", 0), len(shape))
    size = shape[dim]
    if node.target.overloadpacket is aten.select_scatter:  # type: ignore[union-attr]
        index = int_arg(node, 3)
        start = index % size if -size <= index < size else None
        if start is None:
            raise IndexError(f"index {index} out of range for size {size}")
        end, step = start + 1, 1
        src = reshape(ctx, src, [*shape[:dim], 1, *shape[dim + 1:]])
    else:
        start, end, step = ctx.arg(3, "start", None), ctx.arg(4, "end", None), ctx.arg(5, "step", 1)
        start = 0 if start is None else (start + size if start < 0 else start)
        end = size if end is None else (end + size if end < 0 else end)
        start, end = min(max(start, 0), size), min(max(end, 0), size)
        end = max(end, start)
    if step != 1:
        raise ctx.unsupported("slice_scatter with a step other than 1")
    parts = [slice_value(ctx, value, dim, 0, start) if start > 0 else None, src,
             slice_value(ctx, value, dim, end, size) if end < size else None]
    parts = [p for p in parts if p is not None and dims_of(p.type)[dim] > 0]
    if not parts:
        return value
    return parts[0] if len(parts) == 1 else ctx.emit(g.ConcatOp(parts, dim))


@handles("flip")
def _flip(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    """Reverse ``dims``: an index_select with the reversed positions per dim."""
    value = ctx.tensor(node.args[0])
    shape = dims_of(value.type)
    for d in sorted({_norm_dim(d, len(shape)) for d in ints_arg(node, 1)}):
        if not shape or shape[d] <= 1:
            continue
        index = ctx.constant(torch.arange(static_size(shape[d]) - 1, -1, -1, dtype=torch.int64))
        value = _emit_index_select(ctx, value, index, d, shape)
    return value


@handles("diagonal", "diagonal_copy")
def _diagonal(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    """``torch.diagonal``: move dim1/dim2 last, flatten them, take every
    (m+1)-th element from the offset's start; the diagonal becomes the last dim."""
    value = ctx.tensor(node.args[0])
    shape = list(dims_of(value.type))
    rank = len(shape)
    offset = ctx.arg(1, "offset", 0)
    d1, d2 = _norm_dim(ctx.arg(2, "dim1", 0), rank), _norm_dim(ctx.arg(3, "dim2", 1), rank)
    if d1 == d2:
        raise ValueError("diagonal dims must differ")
    rest = [d for d in range(rank) if d not in (d1, d2)]
    if rest + [d1, d2] != list(range(rank)):
        value = ctx.emit(g.PermuteOp(value, rest + [d1, d2]))
    n, m = shape[d1], shape[d2]
    length = max(0, min(n, m - offset) if offset >= 0 else min(n + offset, m))
    out = ctx.out_shape()
    if length == 0:
        return ctx.constant(torch.zeros(static_shape(out), dtype=dtype_of(value.type)))
    flat = reshape(ctx, value, [shape[d] for d in rest] + [n * m])
    start = offset if offset >= 0 else -offset * m
    end = start + (length - 1) * (m + 1) + 1
    return reshape(ctx, ctx.emit(g.SliceOp(flat, len(rest), start, end, static_size(m) + 1)), out)
