"""Fold inference batch norm (any per-channel affine) into the convolution before it.

In eval mode, batch norm after a convolution decomposes into a chain of
elementwise ops on the convolution's result ``y``, each with a per-channel
operand that depends on weights only::

    ((y - mean) * rsqrt(var + eps)) * gamma + beta

Every such chain is ``y * s + t`` for per-channel ``s, t``; since the
convolution is linear in its weight, ``conv(x, w, b) * s + t`` is
``conv(x, w * s[:, None, None, None], b * s + t)``. This pass matches chains of
``graph.add`` / ``graph.sub`` / ``graph.mul`` / ``graph.div`` (true division)
after a ``graph.conv`` whose other operand is *weight-derived* (computed from
``graph.weight`` / ``graph.constant`` ops only) and broadcasts per output
channel (shape ``[O, 1, ..]`` or a scalar, aligned from the right), and
replaces the chain's last op by one convolution with the scaled weight and
shifted bias. The scale and shift are emitted as graph ops on the original
weights, so

* with the weight store (``weights``, given by ``run_pipeline``), they are
  computed now: the pass runs ``constant-fold`` with the store, which adds
  them as new weights (named after the weight they come from, e.g.
  ``conv.weight.mul``; the reference interpreter computes them);
* without it, they stay weight-derived ops, which the CPU runtime computes once
  per weight version (see :mod:`irc.backends.llvm.runtime`), never per call.

Guarantees: outputs are those of the original program up to float rounding
(the product ``w * s`` is rounded once instead of ``y * s``). Only chains whose
intermediate values have one use are folded, so no other consumer sees a
changed value; a chain on batch statistics (training) has operands that are not
weight-derived and is left alone. Convolutions already laid out channels-last
are left alone (run this pass before ``channels-last``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, BlockArgument, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.traits import Pure

from irc.ir import graph as g
from irc.ir.symbols import Dim
from irc.ir.types import dims_of, dtype_of, shape_of, tensor_type
from irc.passes.constant_fold import tensor_to_dense

_CHAIN_OPS = (g.AddOp, g.SubOp, g.MulOp, g.DivOp)


def _weight_derived(value: SSAValue, memo: dict[SSAValue, bool]) -> bool:
    """Computed from graph.weight / graph.constant ops only (pure ops in between)."""
    if value in memo:
        return memo[value]
    if isinstance(value, BlockArgument):
        memo[value] = False
        return False
    op = value.owner
    assert isinstance(op, Operation)
    if isinstance(op, (g.WeightOp, g.ConstantOp)):
        ok = True
    else:
        ok = (op.has_trait(Pure) and not op.regions
              and all(_weight_derived(v, memo) for v in op.operands))
    memo[value] = ok
    return ok


def _channels_of(operand: SSAValue, result_shape: tuple[Any, ...]) -> Dim | None:
    """1 or O when ``operand`` broadcasts per channel of an ``[N, O, *sp]`` result."""
    shape = dims_of(operand.type)
    if len(shape) > len(result_shape):
        return None
    padded = (1,) * (len(result_shape) - len(shape)) + tuple(shape)
    if padded[0] != 1 or any(d != 1 for d in padded[2:]) or padded[1] not in (1, result_shape[1]):
        return None
    return padded[1]


class _Emitter:
    """Builds the per-channel scale/shift ops, to be inserted before the chain's end."""

    def __init__(self, channels: int, dtype: torch.dtype) -> None:
        self.ops: list[Operation] = []
        self.channels = channels
        self.dtype = dtype

    def emit(self, op: Operation) -> SSAValue:
        self.ops.append(op)
        return op.results[0]

    def const(self, value: float) -> SSAValue:
        return self.emit(g.ConstantOp(tensor_to_dense(torch.full((), value, dtype=self.dtype))))

    def vector(self, operand: SSAValue, channels: Dim) -> SSAValue:
        """``operand`` as a ``[O]`` tensor."""
        flat = self.emit(g.ReshapeOp(operand, tensor_type((channels,), self.dtype)))
        if channels == self.channels:
            return flat
        return self.emit(g.ExpandOp(flat, tensor_type((self.channels,), self.dtype)))

    def binary(self, cls: type[Operation], a: SSAValue, b: SSAValue) -> SSAValue:
        return self.emit(cls(a, b))  # type: ignore[call-arg]


def _step(em: _Emitter, user: Operation, cur: SSAValue, vec: SSAValue,
          scale: SSAValue | None, shift: SSAValue | None
          ) -> tuple[SSAValue | None, SSAValue | None]:
    """(scale, shift) after ``user`` applied ``vec`` to ``cur = y * scale + shift``."""
    if isinstance(user, g.MulOp):
        return (vec if scale is None else em.binary(g.MulOp, scale, vec),
                None if shift is None else em.binary(g.MulOp, shift, vec))
    if isinstance(user, g.DivOp):
        one = scale if scale is not None else em.const(1.0)
        return (em.binary(g.DivOp, one, vec),
                None if shift is None else em.binary(g.DivOp, shift, vec))
    if isinstance(user, g.AddOp):
        return scale, vec if shift is None else em.binary(g.AddOp, shift, vec)
    assert isinstance(user, g.SubOp)
    if user.lhs == cur:  # cur - vec
        return scale, (em.binary(g.SubOp, em.const(0.0), vec) if shift is None
                       else em.binary(g.SubOp, shift, vec))
    # vec - cur = y * (-scale) + (vec - shift)
    negated = em.binary(g.SubOp, em.const(0.0), scale if scale is not None else em.const(1.0))
    return negated, vec if shift is None else em.binary(g.SubOp, vec, shift)


def _fold(conv: g.ConvOp, memo: dict[SSAValue, bool]) -> bool:
    """Fold the affine chain after ``conv``; False when there is none."""
    result_type = conv.result.type
    shape, dtype = dims_of(result_type), dtype_of(result_type)
    if not isinstance(shape[1], int) or not dtype.is_floating_point or not _weight_derived(conv.weight, memo) or (
            conv.bias is not None and not _weight_derived(conv.bias, memo)):
        return False
    em = _Emitter(shape[1], dtype)
    scale: SSAValue | None = None
    shift: SSAValue | None = None
    cur: SSAValue = conv.result
    chain: list[Operation] = []
    while len(uses := list(cur.uses)) == 1:
        user = uses[0].operation
        if not isinstance(user, _CHAIN_OPS) or user.result.type != result_type:
            break
        if isinstance(user, g.DivOp) and (user.rounding_mode.data != "none" or user.rhs == cur):
            break
        other = user.rhs if user.lhs == cur else user.lhs
        if other == cur or dtype_of(other.type) != dtype or not _weight_derived(other, memo):
            break
        channels = _channels_of(other, shape)
        if channels is None:
            break
        scale, shift = _step(em, user, cur, em.vector(other, channels), scale, shift)
        chain.append(user)
        cur = user.result
    if not chain:
        return False
    weight = conv.weight
    if scale is not None:
        w_shape = shape_of(weight.type)
        column = em.emit(g.ReshapeOp(scale, tensor_type((w_shape[0],) + (1,) * (len(w_shape) - 1),
                                                        dtype)))
        weight = em.binary(g.MulOp, weight, column)
    bias = conv.bias
    if bias is not None and scale is not None:
        bias = em.binary(g.MulOp, bias, scale)
    if shift is not None:
        bias = shift if bias is None else em.binary(g.AddOp, bias, shift)
    new = g.ConvOp(operands=[conv.input, weight, [bias] if bias is not None else []],
                   result_types=[result_type], properties=dict(conv.properties),
                   attributes=dict(conv.attributes))
    last = chain[-1]
    for op in em.ops:
        op.location = conv.location
    new.location = conv.location
    if last.results[0].name_hint:
        new.result.name_hint = last.results[0].name_hint
    block = last.parent_block()
    assert isinstance(block, Block)
    block.insert_ops_before([*em.ops, new], last)
    last.results[0].replace_all_uses_with(new.result)
    for op in reversed(chain):
        block.erase_op(op)
    block.erase_op(conv)
    return True


@dataclass(frozen=True)
class FoldBatchNorm(ModulePass):
    """Fold per-channel affine chains (eval batch norm) into the convolution before them."""

    name = "fold-batch-norm"
    weights: dict[str, torch.Tensor] | None = field(default=None, compare=False, hash=False)
    """The weight store: when given, the folded weights are computed now and
    added to it (otherwise the runtime computes them once per weight version)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        memo: dict[SSAValue, bool] = {}
        convs = [o for o in op.walk() if isinstance(o, g.ConvOp) and not g.is_channels_last(o)]
        folded = [c for c in convs if _fold(c, memo)]
        if folded and self.weights is not None:
            _store_folded(op, self.weights)


def _store_folded(module: ModuleOp, weights: dict[str, torch.Tensor]) -> None:
    """Compute the folded weights and biases now (constant-fold with the store)."""
    from irc.passes.constant_fold import ConstantFold
    ConstantFold(weights=weights).apply(Context(), module)
