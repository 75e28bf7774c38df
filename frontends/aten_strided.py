"""``aten.as_strided`` -> graph dialect.

In the graph dialect every value is a contiguous tensor, so on an input whose
example value is contiguous ``as_strided(x, size, stride, offset)`` is an index
map on ``x``'s flat elements: result ``[i0, i1, ...]`` reads flat element
``offset - x.storage_offset() + sum(i_k * stride_k)``. Two forms:

* a *view chain* (fusible, no copy in the kernels that read it) when the map is
  a strided block of the flat input: the dims of size > 1 and stride > 0, by
  decreasing stride, nest (each stride is a multiple of the next one's stride
  times its size) and the block lies inside the input. Then it is ``reshape`` to
  ``[..., stride_k / stride_k+1, ..., stride_last]``, ``slice`` of each dim,
  ``permute`` back to the requested order, ``reshape`` for the size-1 dims and
  ``expand`` for stride-0 dims -- the layouts transformers' models produce
  (transposes, windows, size-1 dims with arbitrary strides);
* otherwise (overlapping windows, a block that runs past the end of the input)
  a gather of the flat input at a constant index (``graph.index_select``).

An input that is not contiguous in its example value is unsupported: its
storage order is not its value's order (an :class:`UnsupportedOpError` with
``strict=True``, an eager node otherwise).
"""


from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.fx
from xdsl.ir import SSAValue

from irc.frontends.aten_shape import _emit_index_select, reshape, slice_value
from irc.frontends.fx_importer import FxImporter, handles
from irc.frontends.fx_args import arg
from irc.ir import graph as g
from irc.ir.types import dims_of, dtype_of, tensor_type


def flat_index(size: Sequence[int], stride: Sequence[int], offset: int) -> torch.Tensor:
    """The flat input element each element of the result reads (int64, ``size``)."""
    index = torch.full(tuple(size), offset, dtype=torch.int64)
    for dim, (n, s) in enumerate(zip(size, stride)):
        shape = [1] * len(size)
        shape[dim] = n
        index = index + (torch.arange(n, dtype=torch.int64) * s).reshape(shape)
    return index


def _view_chain(ctx: FxImporter, value: SSAValue, size: Sequence[int], stride: Sequence[int],
                offset: int) -> SSAValue | None:
    """``as_strided`` as reshape/slice/permute/expand of ``value``, or None where
    the map is not a nested strided block inside it (see the module docs)."""
    numel = math.prod(dims_of(value.type))
    dims = sorted((d for d in range(len(size)) if size[d] > 1 and stride[d] > 0),
                  key=lambda d: (-stride[d], d))
    if not dims:  # every element reads the same input element
        flat = slice_value(ctx, reshape(ctx, value, [numel]), 0, offset, offset + 1)
        one = reshape(ctx, flat, [1] * len(size))
        return _expanded(ctx, one, size)
    strides = [stride[d] for d in dims]
    for k in range(len(dims) - 1):
        if strides[k] % strides[k + 1] or strides[k] < strides[k + 1] * size[dims[k + 1]]:
            return None
    span = strides[0] * size[dims[0]]
    if offset + span > numel:
        return None
    block = slice_value(ctx, reshape(ctx, value, [numel]), 0, offset, offset + span)
    inner = [strides[k] // strides[k + 1] for k in range(len(dims) - 1)] + [strides[-1]]
    shaped = reshape(ctx, block, [size[dims[0]], *inner])
    for k in range(1, len(dims)):
        shaped = slice_value(ctx, shaped, k, 0, size[dims[k]])
    shaped = slice_value(ctx, shaped, len(dims), 0, 1)  # element 0 of the innermost stride
    shaped = reshape(ctx, shaped, [size[d] for d in dims])
    order = sorted(range(len(dims)), key=lambda k: dims[k])  # back to the requested order
    if order != list(range(len(dims))):
        shaped = ctx.emit(g.PermuteOp(shaped, order))
    with_ones = [size[d] if d in dims else 1 for d in range(len(size))]
    return _expanded(ctx, reshape(ctx, shaped, with_ones), size)


def _expanded(ctx: FxImporter, value: SSAValue, size: Sequence[int]) -> SSAValue:
    if dims_of(value.type) == tuple(size):
        return value
    return ctx.emit(g.ExpandOp(value, tensor_type(tuple(size), dtype_of(value.type))))


@handles("as_strided", "as_strided_copy")
def _as_strided(ctx: FxImporter, node: torch.fx.Node) -> SSAValue:
    value = ctx.tensor(node.args[0])
    meta = ctx.meta(node.args[0])
    size, stride = [int(n) for n in arg(node, 1)], [int(s) for s in arg(node, 2)]
    offset = ctx.arg(3, "storage_offset", None)
    if meta is None or not meta.is_contiguous():
        raise ctx.unsupported("as_strided of a tensor that is not contiguous (its storage "
                              "order is not its value's)")
    if len(size) != len(stride):
        raise ValueError(f"as_strided: {len(size)} sizes but {len(stride)} strides")
    if any(n < 0 for n in size) or any(s < 0 for s in stride):
        raise ValueError("as_strided: negative size or stride")
    start: int = (meta.storage_offset() if offset is None  # pyright: ignore[reportAssignmentType]  # torch types storage_offset() int | SymInt; these sizes and strides are ints
                  else int(offset)) - meta.storage_offset()
    numel = math.prod(dims_of(value.type))
    dtype = dtype_of(value.type)
    if math.prod(size) == 0:
        return ctx.constant(torch.zeros(size, dtype=dtype))
    last = start + sum((n - 1) * s for n, s in zip(size, stride))
    if start < 0 or last >= numel:
        raise ctx.unsupported(f"as_strided reads elements {start}..{last} of a tensor's own "
                              f"{numel} (outside its value)")
    chain = _view_chain(ctx, value, size, stride, start)
    if chain is not None:
        return chain
    index = ctx.constant(flat_index(size, stride, start).reshape(-1))
    flat = reshape(ctx, value, [numel])
    return _emit_index_select(ctx, flat, index, 0, size)
