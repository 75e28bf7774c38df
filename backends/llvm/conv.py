"""Convolutions on the CPU through oneDNN, with the weight prepacked once per version.

``F.conv2d`` reorders the weight into oneDNN's blocked layout on every call;
for the small convolutions of the zoo that reorder is a large part of the call.
:func:`conv_step` makes the host-schedule step of a 2-d, float32,
channels-last ``graph.conv`` call ``torch.ops.mkldnn._convolution_pointwise``
(what inductor's CPU backend calls; for a ``graph.conv_epilogue`` with its
activation as a oneDNN post-op, and a residual add through the ``.binary``
overload) with a weight packed by
``torch.ops.mkldnn._reorder_convolution_weight`` for the convolution's fixed
input size. The packed weight is kept with the tensor it came from, its
``_version`` and data pointer, and packed again when any of them changes (an
in-place update, a new weight); the kept reference stops the tensor's id from
being reused while its packing is cached.

A 1-d channels-last ``graph.conv`` (``[N, L, C]``) runs the same way as a 2-d
one of height 1: its input is viewed ``[N, C, 1, L]`` with channels-last
strides, its weight ``[O, C/g, 1, K]`` is packed for that input, and the
``[N, C, 1, L']`` channels-last result is the ``[N, L', O]`` one.

Where oneDNN is not available (or the op is not of that kind) :func:`conv_step`
returns None and the runtime calls the reference handler (``F.conv2d``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from irc.ir import graph as g
from irc.ir.types import dtype_of, shape_of

Step = Callable[[list], None]


def supported(op: g.ConvOp | g.ConvEpilogueOp) -> bool:
    """A 1-d or 2-d float32 channels-last convolution, and oneDNN in this torch."""
    rank = len(shape_of(op.input.type))
    return ((isinstance(op, g.ConvEpilogueOp) or g.is_channels_last(op))
            and (rank == 4 or (rank == 3 and isinstance(op, g.ConvOp)
                               and len(shape_of(op.weight.type)) == 3))
            and dtype_of(op.result.type) == torch.float32
            and dtype_of(op.weight.type) == torch.float32
            and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))


class PackedWeight:
    """One weight's oneDNN packing, redone when the weight changes."""

    def __init__(self, padding: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
                 groups: int, input_size: list[int], one_d: bool = False) -> None:
        self.args = (padding, stride, dilation, groups, input_size)
        self.one_d = one_d  # a [O, C/g, K] weight, packed as [O, C/g, 1, K]
        self.source: torch.Tensor | None = None
        self.key: tuple[int, int] = (-1, -1)
        self.packed: torch.Tensor | None = None
        self.packs = 0  # how many times it packed (tests)

    def get(self, w: torch.Tensor) -> torch.Tensor:
        try:
            key = (w._version, w.data_ptr())
        except RuntimeError:  # an inference tensor has no version: cannot cache
            return w
        packed = self.packed
        if w is not self.source or key != self.key or packed is None:
            padding, stride, dilation, groups, input_size = self.args
            w2 = w.detach().unsqueeze(2) if self.one_d else w.detach()
            packed = self.packed = torch.ops.mkldnn._reorder_convolution_weight(
                w2, padding, stride, dilation, groups, input_size)
            self.source, self.key = w, key
            self.packs += 1
        return packed


def conv_step(op: g.ConvOp | g.ConvEpilogueOp, x: int, w: int, b: int | None, out: int,
              other: int | None = None) -> Step | None:
    """The step computing ``op`` (env indices of input, weight, bias, result, and
    of a ``graph.conv_epilogue``'s residual), or None. A ``graph.conv_epilogue``
    is one oneDNN call with post-ops: its activation as the ``attr`` of
    ``_convolution_pointwise``, a residual add through the ``.binary`` overload."""
    if not supported(op):
        return None
    padding, stride, dilation = g.ints(op.padding), g.ints(op.stride), g.ints(op.dilation)
    groups = op.groups.value.data
    if len(shape_of(op.input.type)) == 3:
        return _conv1d_step(op, x, w, b, out, padding, stride, dilation, groups)
    n, h, wd, c = shape_of(op.input.type)
    weight = PackedWeight(padding, stride, dilation, groups, [n, c, h, wd])
    unary, scalars = "none", []
    if isinstance(op, g.ConvEpilogueOp):
        unary, scalars = op.unary.data, op.scalars()
    if other is not None:
        from irc.passes.conv_epilogue import BINARY_UNARY
        if unary not in BINARY_UNARY:
            return None  # oneDNN refuses it: the reference handler computes it
        binary = torch.ops.mkldnn._convolution_pointwise.binary
        attr = None if unary == "none" else unary

        def step_binary(env: list) -> None:
            bias = env[b] if b is not None else None
            r = env[other]
            if not r.is_contiguous():
                r = r.contiguous()
            y = binary(env[x].permute(0, 3, 1, 2), r.permute(0, 3, 1, 2), weight.get(env[w]),
                       bias, padding, stride, dilation, groups, "add", None, attr, scalars, "")
            y = y.permute(0, 2, 3, 1)
            env[out] = y if y.is_contiguous() else y.contiguous()
        step_binary.packed_weight = weight  # type: ignore[attr-defined]
        return step_binary
    pointwise = torch.ops.mkldnn._convolution_pointwise

    def step(env: list) -> None:
        bias = env[b] if b is not None else None
        y = pointwise(env[x].permute(0, 3, 1, 2), weight.get(env[w]), bias, padding, stride,
                      dilation, groups, unary, scalars, "")
        y = y.permute(0, 2, 3, 1)
        env[out] = y if y.is_contiguous() else y.contiguous()
    step.packed_weight = weight  # type: ignore[attr-defined]
    return step


def _conv1d_step(op: g.ConvOp | g.ConvEpilogueOp, x: int, w: int, b: int | None, out: int,
                 padding: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
                 groups: int) -> Step:
    """A 1-d channels-last convolution as a 2-d one of height 1 (module docs)."""
    n, length, c = shape_of(op.input.type)
    pad, step_, dil = [0, *padding], [1, *stride], [1, *dilation]
    weight = PackedWeight(pad, step_, dil, groups, [n, c, 1, length], one_d=True)
    pointwise = torch.ops.mkldnn._convolution_pointwise

    def step(env: list) -> None:
        bias = env[b] if b is not None else None
        y = pointwise(env[x].unsqueeze(1).permute(0, 3, 1, 2), weight.get(env[w]), bias,
                      pad, step_, dil, groups, "none", [], "")
        y = y.permute(0, 2, 3, 1)  # [N, 1, L', O]
        env[out] = (y if y.is_contiguous() else y.contiguous()).squeeze(1)
    step.packed_weight = weight  # type: ignore[attr-defined]
    return step
