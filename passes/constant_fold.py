"""Constant folding with the reference interpreter's semantics.

Guarantee: an op is replaced only by the exact tensor the reference
interpreter (:mod:`irc.ir.interpreter`) computes for it, so outputs are
unchanged bit for bit. Folded are pure, region-free ops with a reference
handler whose operands are all ``graph.constant`` (or ``graph.weight`` when the
weight values were given). The result becomes

* ``graph.constant dense<v>`` when all its elements are equal (a splat: small
  in the text whatever its shape), or when it has at most ``max-elements``
  elements;
* otherwise, only when a weight store was given (``weights``), a new
  ``graph.weight`` whose value is added to that store under a derived name
  (e.g. the transpose of a weight, computed once at compile time);
* otherwise it is left alone.

Ops with side effects, ops with regions, calls and ops whose result has a
symbolic (``?``) shape are never folded (the value depends on the call). Without a
weight store, ops reading a ``graph.weight`` are not folded. Constants and
weights left unused by folding are erased.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from xdsl.context import Context
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.traits import Pure

from irc.ir import graph as g
from irc.ir.interpreter import HANDLERS, dense_to_tensor
from irc.ir.symbols import is_symbolic_type
from irc.ir.types import tensor_type

_BITS_VIEW = {torch.float64: torch.int64, torch.float32: torch.int32,
              torch.float16: torch.int16, torch.bfloat16: torch.int16}


def is_splat(t: torch.Tensor) -> bool:
    """All elements bit-identical (so -0.0 and +0.0 differ, NaNs compare)."""
    if t.numel() <= 1:
        return True
    flat = t.reshape(-1)
    if t.dtype in _BITS_VIEW:
        flat = flat.view(_BITS_VIEW[t.dtype])
    return bool(torch.all(flat == flat[0]))


def tensor_to_dense(t: torch.Tensor) -> DenseIntOrFPElementsAttr:
    """``dense<...>`` holding ``t`` exactly (one value when it is a splat)."""
    t = t.detach().cpu().contiguous()
    type_ = tensor_type(tuple(t.shape), t.dtype)
    flat = t.reshape(-1)
    if is_splat(t) and t.numel() > 0:
        flat = flat[:1]
    if t.dtype.is_floating_point:
        values = flat.to(torch.float64).tolist()
    else:
        values = [int(v) for v in flat.to(torch.int64).tolist()]
    return g.dense_attr(type_, values)


def _unique_name(base: str, taken: dict[str, torch.Tensor]) -> str:
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}.{n}"
    return name


@dataclass(frozen=True)
class ConstantFold(ModulePass):
    """Evaluate ops on constants (and given weights) at compile time."""

    name = "constant-fold"
    max_elements: int = 65536
    weights: dict[str, torch.Tensor] | None = field(default=None, compare=False, hash=False)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for block in (b for o in op.walk() for r in o.regions for b in r.blocks):
            self._fold_block(list(block.ops))

    def _value_of(self, value: SSAValue, cache: dict[SSAValue, torch.Tensor]) -> torch.Tensor | None:
        if value in cache:
            return cache[value]
        owner = value.owner
        result: torch.Tensor | None = None
        if isinstance(owner, g.ConstantOp):
            result = dense_to_tensor(owner.value)
        elif isinstance(owner, g.WeightOp) and self.weights is not None:
            result = self.weights.get(owner.sym_name.data)
        if result is not None:
            cache[value] = result
        return result

    def _foldable(self, op: Operation) -> bool:
        return (type(op) in HANDLERS and not isinstance(op, (g.ConstantOp, g.WeightOp))
                and not op.regions and len(op.results) == 1 and op.has_trait(Pure)
                and bool(op.operands) and not is_symbolic_type(op.results[0].type))

    def _fold_block(self, ops: list[Operation]) -> None:
        cache: dict[SSAValue, torch.Tensor] = {}
        for op in ops:
            # Cheap test first: are all operands constants (or known weights)?
            if not op.operands or not all(isinstance(v.owner, (g.ConstantOp, g.WeightOp))
                                          for v in op.operands):
                continue
            if not self._foldable(op):
                continue
            args = [self._value_of(v, cache) for v in op.operands]
            if any(a is None for a in args):
                continue
            try:
                value = HANDLERS[type(op)](op, args)  # type: ignore[arg-type]
            except (RuntimeError, ValueError, IndexError, TypeError):
                continue  # torch rejects it at run time too; leave it for the backend to report
            replacement = self._materialize(op, value)
            if replacement is None:
                continue
            replacement.location = op.location
            block = op.parent_block()
            assert block is not None
            block.insert_op_before(replacement, op)
            cache[replacement.results[0]] = value
            sources = [v.owner for v in op.operands]
            op.results[0].replace_all_uses_with(replacement.results[0])
            block.erase_op(op)
            for source in sources:
                if isinstance(source, (g.ConstantOp, g.WeightOp)) and source.parent is not None \
                        and not source.results[0].uses:
                    source.parent_block().erase_op(source)  # type: ignore[union-attr]

    def _materialize(self, op: Operation, value: torch.Tensor) -> Operation | None:
        if value.numel() <= self.max_elements or is_splat(value):
            return g.ConstantOp(tensor_to_dense(value))
        if self.weights is None:
            return None
        base = next((v.owner.sym_name.data for v in op.operands if isinstance(v.owner, g.WeightOp)),
                    "folded")
        name = _unique_name(f"{base}.{op.name.removeprefix('graph.')}", self.weights)
        self.weights[name] = value.contiguous()
        return g.WeightOp(name, op.results[0].type)
