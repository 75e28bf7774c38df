"""Convolution and pooling in NumPy: sliding windows + einsum / reductions.

All four take the op and return a closure over NumPy arrays. Windows come from
``numpy.lib.stride_tricks.sliding_window_view`` on the padded input (views, no
copy), subsampled by stride and dilation; ``ceil_mode`` pads extra on the
right so the last partial window exists, and average pooling divides by a
window count computed the same way from an indicator array (so padding and
``count_include_pad`` follow torch exactly).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from xdsl.ir import Operation

from irc.ir import graph as g
from irc.ir.types import dtype_of, shape_of

Kernel = Callable[[Sequence[np.ndarray]], np.ndarray]


def _np(t: object) -> np.dtype:
    return np.dtype(str(dtype_of(t)).removeprefix("torch."))  # type: ignore[arg-type]


def _windows(x: np.ndarray, nsp: int, kernel: Sequence[int], stride: Sequence[int],
             dilation: Sequence[int], out: Sequence[int]) -> np.ndarray:
    """View ``[..., *out, *kernel]`` of the trailing ``nsp`` dims of a padded ``x``."""
    lead = x.ndim - nsp
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    win = sliding_window_view(x, span, axis=tuple(range(lead, x.ndim)))
    index = ((slice(None),) * lead
             + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, stride))
             + tuple(slice(None, None, d) for d in dilation))
    return win[index]


def _pads(sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
          padding: Sequence[int], dilation: Sequence[int], out: Sequence[int]) -> list[tuple[int, int]]:
    """(left, right) padding per spatial dim so that ``out`` windows fit."""
    pads = []
    for n, k, s, p, d, o in zip(sizes, kernel, stride, padding, dilation, out):
        need = (o - 1) * s + d * (k - 1) + 1
        pads.append((p, max(p, need - n - p)))
    return pads


def _channels_first_shape(op: Operation, value: Any) -> tuple[int, ...]:
    """``value``'s shape as ``[N, C, *spatial]`` (a ``channels_last`` op's
    tensors are ``[N, *spatial, C]``)."""
    shape = shape_of(value.type)
    return g.channels_first(shape) if g.is_channels_last(op) else shape


def _with_layout(op: Operation, run: Kernel) -> Kernel:
    """``run`` computes channels-first; a ``channels_last`` op moves the
    channels of its input to dim 1 and of its result back to the end."""
    if not g.is_channels_last(op):
        return run

    def channels_last(a: Sequence[np.ndarray]) -> np.ndarray:
        y = run([np.moveaxis(a[0], -1, 1), *a[1:]])
        return np.ascontiguousarray(np.moveaxis(y, 1, -1))
    return channels_last


def conv(op: g.ConvOp) -> Kernel:
    x_shape, w_shape = _channels_first_shape(op, op.input), shape_of(op.weight.type)
    out_shape = _channels_first_shape(op, op.result)
    nsp = len(x_shape) - 2
    stride, padding, dilation = g.ints(op.stride), g.ints(op.padding), g.ints(op.dilation)
    groups = op.groups.value.data
    out_dtype = _np(op.result.type)
    compute = np.dtype(np.float32) if out_dtype == np.float16 else out_dtype
    n, c, o = x_shape[0], x_shape[1], w_shape[0]
    kernel, out = w_shape[2:], out_shape[2:]
    letters = iter(string.ascii_letters)
    sp = "".join(next(letters) for _ in range(nsp))
    ks = "".join(next(letters) for _ in range(nsp))
    spec = f"NGC{sp}{ks},GOC{ks}->NGO{sp}"
    has_bias = op.bias is not None

    def run(a: Sequence[np.ndarray]) -> np.ndarray:
        x = np.pad(a[0].astype(compute, copy=False), [(0, 0), (0, 0)] + [(p, p) for p in padding])
        win = _windows(x, nsp, kernel, stride, dilation, out)
        win = win.reshape(n, groups, c // groups, *out, *kernel)
        w = a[1].astype(compute, copy=False).reshape(groups, o // groups, c // groups, *kernel)
        y = np.einsum(spec, win, w, optimize=True).reshape(n, o, *out)
        if has_bias:
            y = y + a[2].astype(compute, copy=False).reshape(o, *([1] * nsp))
        return y.astype(out_dtype)

    return _with_layout(op, run)


def _pool_params(op: g.MaxPoolOp | g.AvgPoolOp) -> tuple[int, list[int], list[int], list[int],
                                                          list[int], list[int], list[int]]:
    kernel = list(g.ints(op.kernel))
    nsp = len(kernel)
    x_shape = _channels_first_shape(op, op.input)
    sizes = list(x_shape[-nsp:])
    out = list(_channels_first_shape(op, op.result)[-nsp:])
    dilation = list(op.dilations())
    return nsp, kernel, list(g.ints(op.stride)), list(g.ints(op.padding)), dilation, sizes, out


def max_pool(op: g.MaxPoolOp) -> Kernel:
    nsp, kernel, stride, padding, dilation, sizes, out = _pool_params(op)
    pads = _pads(sizes, kernel, stride, padding, dilation, out)
    dtype = _np(op.result.type)
    fill = -np.inf if dtype.kind == "f" else np.iinfo(dtype).min

    def run(a: Sequence[np.ndarray]) -> np.ndarray:
        x = a[0]
        x = np.pad(x, [(0, 0)] * (x.ndim - nsp) + pads, constant_values=fill)
        win = _windows(x, nsp, kernel, stride, dilation, out)
        return win.max(axis=tuple(range(-nsp, 0))).astype(dtype)

    return _with_layout(op, run)


def avg_pool(op: g.AvgPoolOp) -> Kernel:
    nsp, kernel, stride, padding, dilation, sizes, out = _pool_params(op)
    pads = _pads(sizes, kernel, stride, padding, dilation, out)
    dtype = _np(op.result.type)
    compute = np.dtype(np.float32) if dtype == np.float16 else dtype
    divisor = op.divisor.value.data
    axes = tuple(range(-nsp, 0))
    # Window sizes: count the cells inside the counted region (the input, or the
    # input plus its symmetric padding), never the extra ceil_mode cells.
    counted = np.zeros([n + lo + hi for n, (lo, hi) in zip(sizes, pads)], dtype=compute)
    inner = bool(op.count_include_pad.value.data)
    region = tuple(slice(0, n + 2 * p) if inner else slice(p, p + n) for n, p in zip(sizes, padding))
    counted[region] = 1
    counts = _windows(counted, nsp, kernel, stride, dilation, out).sum(axis=axes)
    if divisor:
        counts = np.full_like(counts, divisor)

    def run(a: Sequence[np.ndarray]) -> np.ndarray:
        x = a[0].astype(compute, copy=False)
        x = np.pad(x, [(0, 0)] * (x.ndim - nsp) + pads)
        total = _windows(x, nsp, kernel, stride, dilation, out).sum(axis=axes)
        return (total / counts).astype(dtype)

    return _with_layout(op, run)


def adaptive_avg_pool(op: Operation) -> Kernel:
    in_shape, out_shape = shape_of(op.operands[0].type), shape_of(op.results[0].type)
    nsp = 2 if len(in_shape) >= 4 else 1
    dtype = _np(op.results[0].type)
    compute = np.dtype(np.float32) if dtype == np.float16 else dtype

    def run(a: Sequence[np.ndarray]) -> np.ndarray:
        x = a[0].astype(compute, copy=False)
        # A box average is separable: average along each pooled dim in turn.
        for axis in range(x.ndim - nsp, x.ndim):
            n, m = in_shape[axis], out_shape[axis]
            parts = [x.take(range(i * n // m, -(-(i + 1) * n // m)), axis=axis).mean(axis=axis,
                                                                                 keepdims=True)
                     for i in range(m)]
            x = np.concatenate(parts, axis=axis)
        return x.astype(dtype)

    return run
