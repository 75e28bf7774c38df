"""``conv-epilogue``: a convolution's residual add and activation in the convolution's call.

After ``channels-last``, a 2-d float32 convolution followed by a residual add
and/or an activation reads::

    %yl = graph.conv %xl, %w, %b {channels_last}       // [N, H, W, O]
    %y  = graph.permute %yl {dims = [0, 3, 1, 2]}
    %s  = graph.add %y, %r                              // optional
    %a  = graph.relu %s                                 // optional

which ``fuse`` would make a separate kernel reading and writing the whole
result once more. This pass replaces the chain by one
``graph.conv_epilogue`` (``unary(conv + other)``, what oneDNN computes as the
convolution's post-ops: the CPU runtime calls
``torch.ops.mkldnn._convolution_pointwise`` and its ``.binary`` overload) and
a permute of its result; permutes then compose (``permute(permute(x))``
vanishes), so a fused convolution feeding the next passes ``[N, H, W, C]``
data straight through, as before. Batch norm in eval mode is already part of
the weight and bias (``fold-batch-norm``).

Activations: ``graph.relu``, ``graph.silu`` or ``x * sigmoid(x)``
(``swish``), ``graph.sigmoid``,
``graph.tanh``, and ``graph.maximum`` by a scalar constant ``lo`` then
``graph.minimum`` by ``hi >= lo`` (``hardtanh``: ReLU6 is lo = 0, hi = 6);
``graph.maximum`` by 0 alone is ``relu``. The residual is the other operand
of a ``graph.add`` of the result's own type (a permute of a channels-last
value is taken in that layout; any other value gets a permute). After a
residual add only ReLU is fused (oneDNN's binary post-op takes no other
activation); another activation stays a kernel.

Guarantees: the module computes what it did, up to float rounding (the same
operations in the same order). Only chains whose intermediates have one use
are folded, so no other consumer loses a value it read. Run after
``channels-last`` (it rewrites channels-last convolutions only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, SSAValue
from xdsl.passes import ModulePass

from irc.ir import graph as g
from irc.ir.types import dtype_of, shape_of
from irc.passes.canonical_patterns import compose_permutes

_TO_LAST = (0, 2, 3, 1)
_TO_FIRST = (0, 3, 1, 2)
BINARY_UNARY = ("none", "relu")
"""Activations oneDNN applies after a residual add (``.binary`` refuses others)."""
_UNARY: dict[type[Operation], str] = {g.ReluOp: "relu", g.SiluOp: "swish",
                                      g.SigmoidOp: "sigmoid", g.TanhOp: "tanh"}


def _only_user(value: SSAValue) -> Operation | None:
    uses = list(value.uses)
    return uses[0].operation if len(uses) == 1 else None


def _scalar_constant(value: SSAValue) -> float | None:
    """The value of a one-element ``graph.constant`` (else None)."""
    op = value.owner
    if not isinstance(op, g.ConstantOp):
        return None
    from irc.ir.interpreter import dense_to_tensor
    t = dense_to_tensor(op.value)
    return float(t.reshape(())) if t.numel() == 1 and t.dtype.is_floating_point else None


def _clamp_operand(op: Operation, cur: SSAValue) -> float | None:
    """``lo`` when ``op`` is ``maximum(cur, lo)`` / ``minimum(cur, lo)`` with a scalar constant."""
    if not isinstance(op, (g.MaximumOp, g.MinimumOp)) or op.result.type != cur.type:
        return None
    other = op.rhs if op.lhs == cur else op.lhs
    return None if other == cur else _scalar_constant(other)


def _unary(cur: SSAValue) -> tuple[str, list[float], list[Operation]] | None:
    """The activation applied to ``cur`` (its one user, max-then-min, or
    ``cur * sigmoid(cur)``), with its ops."""
    silu = _silu(cur)
    if silu is not None:
        return "swish", [], silu
    user = _only_user(cur)
    if user is None:
        return None
    if type(user) in _UNARY and user.results[0].type == cur.type:
        return _UNARY[type(user)], [], [user]
    lo = _clamp_operand(user, cur) if isinstance(user, g.MaximumOp) else None
    if lo is None:
        return None
    following = _only_user(user.results[0])
    hi = _clamp_operand(following, user.results[0]) if isinstance(following, g.MinimumOp) else None
    if following is not None and hi is not None and hi >= lo:
        return "hardtanh", [lo, hi], [user, following]
    if lo == 0.0:
        return "relu", [], [user]
    return None


def _silu(cur: SSAValue) -> list[Operation] | None:
    """[sigmoid, mul] when ``cur``'s two users compute ``cur * sigmoid(cur)``."""
    users = [u.operation for u in cur.uses]
    if len(users) != 2:
        return None
    sig = next((u for u in users if isinstance(u, g.SigmoidOp)), None)
    mul = next((u for u in users if isinstance(u, g.MulOp)), None)
    if sig is None or mul is None or sig.result.type != cur.type or mul.result.type != cur.type:
        return None
    if {mul.lhs, mul.rhs} != {cur, sig.result} or _only_user(sig.result) is not mul:
        return None
    return [sig, mul]


def _residual(cur: SSAValue) -> tuple[SSAValue, Operation] | None:
    """(other, add) when ``cur``'s one user is ``add(cur, other)`` of ``cur``'s type."""
    user = _only_user(cur)
    if not isinstance(user, g.AddOp) or user.result.type != cur.type:
        return None
    other = user.rhs if user.lhs == cur else user.lhs
    if other == cur or other.type != cur.type:
        return None
    return other, user


def _channels_last_view(other: SSAValue, block: Block, before: Operation) -> SSAValue:
    """``other`` ([N, C, H, W]) as [N, H, W, C]: the value it is a permute of, or a new permute."""
    owner = other.owner
    if isinstance(owner, g.PermuteOp) and g.ints(owner.dims) == _TO_FIRST:
        return owner.input
    for use in other.uses:  # one made already (the convolution's input, say)
        user = use.operation
        if (isinstance(user, g.PermuteOp) and g.ints(user.dims) == _TO_LAST
                and user.parent_block() is block and user.is_before_in_block(before)):
            return user.result
    to_last = g.PermuteOp(other, _TO_LAST)
    to_last.location = before.location
    block.insert_op_before(to_last, before)
    return to_last.result


def _rewrite(conv: g.ConvOp) -> bool:
    """Fold the epilogue after ``conv`` into one ``graph.conv_epilogue``; False if none."""
    to_first = _only_user(conv.result)
    if not isinstance(to_first, g.PermuteOp) or g.ints(to_first.dims) != _TO_FIRST:
        return False
    cur: SSAValue = to_first.result
    chain: list[Operation] = []
    other: SSAValue | None = None
    residual = _residual(cur)
    if residual is not None:
        other, add = residual
        chain.append(add)
        cur = add.results[0]
    unary = _unary(cur)
    name, scalars = "none", []
    if unary is not None and (other is None or unary[0] in BINARY_UNARY):
        name, scalars, ops = unary
        chain += ops
        cur = chain[-1].results[0]
    if not chain:
        return False
    last = chain[-1]
    block = last.parent_block()
    assert isinstance(block, Block)
    if other is not None:
        other = _channels_last_view(other, block, last)
    fused = g.ConvEpilogueOp(conv, other, name, scalars)
    back = g.PermuteOp(fused.result, _TO_FIRST)
    for op in (fused, back):
        op.location = conv.location
    if conv.result.name_hint:
        fused.result.name_hint = conv.result.name_hint
    block.insert_ops_before([fused, back], last)
    cur.replace_all_uses_with(back.result)
    for op in reversed(chain):
        block.erase_op(op)
    block.erase_op(to_first)
    block.erase_op(conv)
    return True


def _eligible(op: Operation) -> bool:
    return (isinstance(op, g.ConvOp) and g.is_channels_last(op)
            and len(shape_of(op.input.type)) == 4
            and dtype_of(op.result.type) == torch.float32
            and dtype_of(op.weight.type) == torch.float32)


@dataclass(frozen=True)
class ConvEpilogue(ModulePass):
    """Fuse residual adds and activations into channels-last convolutions (module docs)."""

    name = "conv-epilogue"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        convs = [o for o in op.walk() if _eligible(o)]
        if sum(_rewrite(c) for c in convs):  # type: ignore[arg-type]
            compose_permutes(op)
