"""``merge-quantized-matmuls``: quantized linear layers that share an input become one.

Guarantee: every set of two or more ``graph.quantized_matmul`` ops that read
the same input value with the same bit width, group size and ``K`` (an
attention block's q/k/v projections, an MLP's gate and up projections) is
replaced by one ``graph.quantized_matmul`` over the weights stacked along the
output channels, followed by one ``graph.slice`` of its result along the
last dim per original op. Each output channel is computed from the same row
of integers and scales as before; results agree to float32 rounding (the
CPU kernel may compute a channel in another of its code paths, whose
fast-math contraction can round the last bit differently; the reference
interpreter's float32 matmul may accumulate in another order with another
N), so the pass is marked approximating in :mod:`irc.passes.levels`.

Why: at batch 1 a decode step is a chain of GEMVs, each its own call with its
own thread split; one call over N = 3 x 768 channels instead of three of 768
pays the call once and splits a longer channel range over the threads.

With a weight store (``weights``, as ``irc.compile`` gives it) the stacked
integers and scales are computed now and the per-layer copies left unused
are removed from the store. Without one (``irc opt`` on text) the IR is
rewritten and the stacked weights are only named. Only weights a
``graph.weight`` op names are merged.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import torch
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, SSAValue
from xdsl.passes import ModulePass

from irc.errors import PassError
from irc.ir import graph as g
from irc.passes.derived_weights import DerivedWeights
from irc.ir.types import dims_of, shape_of, tensor_type

Key = tuple[SSAValue, int, int, object]


@dataclass(frozen=True)
class MergeQuantizedMatmuls(ModulePass):
    """Stack the weights of quantized matmuls that read one input; slice the result."""

    name = "merge-quantized-matmuls"
    weights: dict[str, torch.Tensor] | None = field(default=None, compare=False, hash=False)
    """The program's weight store (given by ``run_pipeline``/``irc.compile``)."""
    derived: DerivedWeights | None = field(default=None, compare=False, hash=False)
    """Stacked copies shared with the other graphs of one ``irc.compile``."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        groups: dict[Key, list[g.QuantizedMatmulOp]] = defaultdict(list)
        for matmul in op.walk():
            if isinstance(matmul, g.QuantizedMatmulOp) and _named_weights(matmul):
                key = (matmul.input, matmul.bits.value.data, matmul.group_size.value.data,
                       dims_of(matmul.qweight.type)[1])
                groups[key].append(matmul)
        merged: set[str] = set()
        for siblings in groups.values():
            if len(siblings) > 1 and len({m.parent_block() for m in siblings}) == 1:
                merged |= self._merge(siblings)
        if self.weights is not None and merged:
            used = {w.sym_name.data for w in op.walk() if isinstance(w, g.WeightOp)}
            for name in merged - used:
                del self.weights[name]

    def _merge(self, siblings: list[g.QuantizedMatmulOp]) -> set[str]:
        """Replace ``siblings`` (same block, same input) by one matmul + slices;
        the names of the weights they read."""
        block = siblings[0].parent_block()
        assert isinstance(block, Block)
        first = min(siblings, key=block.get_operation_index)
        qnames = [_weight(m.qweight).sym_name.data for m in siblings]
        snames = [_weight(m.scales).sym_name.data for m in siblings]
        base = "+".join(qnames)
        qname, sname = f"{base}.stacked", f"{base}.stacked.scales"
        if self.weights is not None:
            missing = [n for n in (*qnames, *snames) if n not in self.weights]
            if missing:
                raise PassError(f"merge-quantized-matmuls: no value for weight \"{missing[0]}\"")
            for name, parts in ((qname, qnames), (sname, snames)):
                sources = [self.weights[n] for n in parts]

                def stack(sources: list[torch.Tensor] = sources) -> torch.Tensor:
                    return torch.cat(sources).contiguous()
                if self.derived is None:
                    self.weights[name] = stack()
                else:
                    self.weights[name] = self.derived.get(("stack",), sources, stack)
                    self.derived.release(sources)  # the per-layer copies are not kept
        widths = [shape_of(m.qweight.type)[0] for m in siblings]
        n = sum(widths)
        qtype = tensor_type((n, shape_of(first.qweight.type)[1]), torch.int8)
        stype = tensor_type((n, shape_of(first.scales.type)[1]), torch.float32)
        qw, sc = g.WeightOp(qname, qtype), g.WeightOp(sname, stype)
        stacked = g.QuantizedMatmulOp(first.input, qw, sc, first.bits.value.data,
                                      first.group_size.value.data)
        new_ops = [qw, sc, stacked]
        last = len(dims_of(stacked.result.type)) - 1
        start = 0
        slices = []
        for width in widths:
            piece = g.SliceOp(stacked.result, last, start, start + width)
            slices.append(piece)
            start += width
        for o in (qw, sc, stacked, *slices):
            o.location = first.location
        block.insert_ops_before([*new_ops, *slices], first)
        for old, piece in zip(siblings, slices):
            piece.location = old.location
            old.result.replace_all_uses_with(piece.results[0])
        for old in siblings:
            operands = [v.owner for v in (old.qweight, old.scales)]
            block.erase_op(old)
            for owner in operands:
                if isinstance(owner, g.WeightOp) and not owner.results[0].uses:
                    block.erase_op(owner)
        return set(qnames) | set(snames)


def _weight(value: SSAValue) -> g.WeightOp:
    owner = value.owner
    assert isinstance(owner, g.WeightOp)
    return owner


def _named_weights(matmul: g.QuantizedMatmulOp) -> bool:
    return all(isinstance(v.owner, g.WeightOp) for v in (matmul.qweight, matmul.scales))
