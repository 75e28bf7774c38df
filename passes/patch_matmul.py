"""``patch-matmul``: a convolution whose windows tile its input runs as one matmul.

A 2-d convolution with ``stride == kernel``, no padding, dilation 1 and one
group (a ViT/ConvNeXt/Swin patch embedding, a ConvNeXt downsampling layer)
reads every input element exactly once: it is a linear layer over the
``C * kh * kw`` values of each patch. oneDNN's call costs tens of
microseconds whatever the size; the same product as a matmul of the patches
is much cheaper on the zoo's small images (1 thread, loaded 2-core machine:
3->64 channels, 4x4 patches of 2x3x32x32, 35 us as a prepacked channels-last
oneDNN call against 26 us; 64->128, 2x2 patches of 2x64x2x2, 30 against
7 us). This pass rewrites::

    %y = graph.conv %x, %w, %b {stride = [k, k], padding = [0, 0], ...}   // [N, O, H/k, W/k]
  ->
    %p  = reshape(permute(reshape(%x, [N, C, H/k, k, W/k, k]), [0, 2, 4, 1, 3, 5]),
                  [N * H/k * W/k, C * k * k])
    %wt = permute(reshape(%w, [O, C * k * k]), [1, 0])
    %m  = graph.matmul %p, %wt (+ %b)                                      // [N * H/k * W/k, O]
    %y  = permute(reshape(%m, [N, H/k, W/k, O]), [0, 3, 1, 2])

The gather of the patches is one movement kernel; the permute of the result
folds into its consumers (a ViT flattens and transposes it back to
``[N, H/k * W/k, O]``: no copy at all); the weight's reshape and transpose are
weight-derived (computed once per weight version).

Applies to float32 2-d ``graph.conv`` ops not yet ``channels_last`` whose
sizes are multiples of the kernel (``H % kh == W % kw == 0``), with a kernel
of more than one element: a 1x1 stride-1 convolution (ResNet, MobileNet) stays
in oneDNN's channels-last chain, where ``conv-epilogue`` fuses its activation. Guarantees:
the same products, summed over the same ``C * kh * kw`` terms per output
(in the order the matmul library picks, as any convolution library does), and
the result has the op's type; nothing else changes. Runs before
``channels-last`` (which then leaves these convolutions no longer there).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from irc.ir import graph as g
from irc.ir.types import dtype_of, shape_of, tensor_type
from irc.passes.canonical_patterns import compose_permutes


def _tiles(op: Operation) -> bool:
    if not isinstance(op, g.ConvOp) or g.is_channels_last(op):
        return False
    x, w = shape_of(op.input.type), shape_of(op.weight.type)
    if len(x) != 4 or len(w) != 4 or op.groups.value.data != 1:
        return False
    if not all(dtype_of(v.type) == torch.float32 for v in (op.input, op.weight, op.result)):
        return False
    kh, kw = w[2], w[3]
    return (kh * kw > 1 and list(g.ints(op.stride)) == [kh, kw] and list(g.ints(op.padding)) == [0, 0]
            and list(g.ints(op.dilation)) == [1, 1] and x[2] % kh == 0 and x[3] % kw == 0)


def _reshape(x: SSAValue, shape: list[int]) -> g.ReshapeOp:
    return g.ReshapeOp(x, tensor_type(shape, dtype_of(x.type)))


def _rewrite(op: g.ConvOp) -> None:
    n, c, h, w_ = shape_of(op.input.type)
    o, _, kh, kw = shape_of(op.weight.type)
    ho, wo = h // kh, w_ // kw
    ops: list[Operation] = []

    def add(new: Operation) -> SSAValue:
        ops.append(new)
        return new.results[0]

    split = add(_reshape(op.input, [n, c, ho, kh, wo, kw]))
    patches = add(_reshape(add(g.PermuteOp(split, [0, 2, 4, 1, 3, 5])),
                           [n * ho * wo, c * kh * kw]))
    wt = add(g.PermuteOp(add(_reshape(op.weight, [o, c * kh * kw])), [1, 0]))
    y = add(g.MatmulOp(patches, wt))
    if op.bias is not None:
        y = add(g.AddOp(y, op.bias))
    result = add(g.PermuteOp(add(_reshape(y, [n, ho, wo, o])), [0, 3, 1, 2]))
    for created in ops:
        created.location = op.location
    if op.result.name_hint:
        y.name_hint = f"{op.result.name_hint}_mm"
    block = op.parent_block()
    assert block is not None
    # (not Rewriter.replace_op: it would hand op's name to the last new op)
    block.insert_ops_before(ops, op)
    op.result.replace_all_uses_with(result)
    block.erase_op(op)


@dataclass(frozen=True)
class PatchMatmul(ModulePass):
    """Run patch-tiling convolutions as matmuls (see the module docs)."""

    name = "patch-matmul"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        targets = [o for o in op.walk() if _tiles(o)]
        for target in targets:
            _rewrite(target)  # type: ignore[arg-type]
        if targets:
            compose_permutes(op)
