"""Weight-only quantization of linear layers: ``quantize-weights{bits=8|4 group-size=N}``.

Guarantee: every float32 ``graph.matmul`` whose right operand is a 2-d weight
(``graph.weight`` ``[K, N]``, or ``graph.permute [1, 0]`` of a ``[N, K]``
weight, which is how a linear layer imports) becomes a
``graph.quantized_matmul`` reading two new weights, ``<name>.q<bits>`` (the
integers) and ``<name>.q<bits>.scales``, whose meaning (the reference
interpreter's) is ``x @ dequantize(q, scales)^T``. Quantization is symmetric
round-to-nearest: per group of ``group-size`` consecutive input channels of
one output row, ``scale = max|w| / 127`` (int8) or ``/ 7`` (int4), ``q =
round(w / scale)``. ``group-size = 0`` means the default of the bit width:
one group per output row (per-channel) at 8 bits, 64 at 4 bits. A K not
divisible by the group size gets a shorter last group.

With a weight store (``weights``, as ``irc.compile`` gives it) the integers
and scales are computed now and added to the store, and every float weight
the rewrite left unreferenced is removed from it, so the compiled program
holds only the quantized copy. The weights are then a compile-time snapshot:
later in-place updates of the float parameters are not seen. Without a store
(``irc opt`` on text) the IR is rewritten and the new weights are only named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass

from irc.errors import PassError
from irc.ir import graph as g
from irc.passes.derived_weights import DerivedWeights
from irc.ir.types import dims_of, dtype_of, shape_of, tensor_type

DEFAULT_INT4_GROUP = 64


def default_group_size(bits: int, k: int, group_size: int) -> int:
    """The group size used for a ``K``-wide weight (``group_size = 0``: the default)."""
    if group_size > 0:
        return group_size
    return k if bits == 8 else DEFAULT_INT4_GROUP


def quantize(w: torch.Tensor, bits: int, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[N, K]`` float weight -> (``qweight`` i8, ``scales`` f32 ``[N, ceil(K/G)]``),
    the layout of :class:`irc.ir.graph.QuantizedMatmulOp`."""
    w = w.detach().to(torch.float32)
    n, k = w.shape
    groups = -(-k // group_size)
    padded = torch.nn.functional.pad(w, (0, groups * group_size - k)).view(n, groups, group_size)
    qmax = 127 if bits == 8 else 7
    scales = padded.abs().amax(dim=-1) / qmax
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))
    q = torch.round(padded / scales[..., None]).clamp(-qmax - (bits == 4), qmax)
    q = q.view(n, groups * group_size)[:, :k].to(torch.int16)
    if bits == 8:
        return q.to(torch.int8).contiguous(), scales.contiguous()
    q = torch.nn.functional.pad(q + 8, (0, k % 2), value=8)  # stored as q + 8; pad with a zero
    packed = (q[:, 0::2] | (q[:, 1::2] << 4)).to(torch.uint8).view(torch.int8)
    return packed.contiguous(), scales.contiguous()


def _linear_weight(op: g.MatmulOp) -> tuple[g.WeightOp, bool] | None:
    """The weight of a linear layer (and whether it is stored ``[K, N]``), or None."""
    rhs = op.rhs.owner
    if len(dims_of(op.rhs.type)) != 2 or dtype_of(op.result.type) != torch.float32:
        return None
    if isinstance(rhs, g.WeightOp):
        return rhs, True
    if isinstance(rhs, g.PermuteOp) and g.ints(rhs.dims) == (1, 0) \
            and isinstance(rhs.input.owner, g.WeightOp):
        return rhs.input.owner, False
    return None


@dataclass(frozen=True)
class QuantizeWeights(ModulePass):
    """Store linear-layer weights in 8 or 4 bits; matmuls dequantize them on the fly."""

    name = "quantize-weights"
    bits: int = 8
    """8 (int8) or 4 (int4, two per byte)."""
    group_size: int = 0
    """Input channels sharing one scale; 0: per output channel at 8 bits, 64 at 4 bits."""
    weights: dict[str, torch.Tensor] | None = field(default=None, compare=False, hash=False)
    """The program's weight store (given by ``run_pipeline``/``irc.compile``)."""
    derived: DerivedWeights | None = field(default=None, compare=False, hash=False)
    """Quantized copies shared with the other graphs of one ``irc.compile``
    (computed once per source weight and version; given by the driver)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.bits not in (4, 8):
            raise PassError(f"quantize-weights: bits must be 8 or 4, got {self.bits}")
        if self.group_size < 0 or (self.bits == 4 and self.group_size % 2):
            raise PassError(f"quantize-weights: group-size must be 0 or positive (even at 4 bits), "
                            f"got {self.group_size}")
        made: dict[tuple[str, bool, int], tuple[str, str]] = {}
        replaced: set[str] = set()
        for matmul in [o for o in op.walk() if isinstance(o, g.MatmulOp)]:
            found = _linear_weight(matmul)
            if found is None:
                continue
            weight, stored_kn = found
            k, n = shape_of(matmul.rhs.type)
            group = default_group_size(self.bits, k, self.group_size)
            names = self._quantized(weight.sym_name.data, stored_kn, group, made)
            self._rewrite(matmul, weight, names, (n, k), group)
            replaced.add(weight.sym_name.data)
        if self.weights is not None:
            used = {w.sym_name.data for w in op.walk() if isinstance(w, g.WeightOp)}
            for name in replaced - used:
                del self.weights[name]  # irc keeps no float copy of a quantized weight

    def _quantized(self, name: str, stored_kn: bool, group: int,
                   made: dict[tuple[str, bool, int], tuple[str, str]]) -> tuple[str, str]:
        """Names of the integers and scales of weight ``name`` (computed once)."""
        key = (name, stored_kn, group)
        if key in made:
            return made[key]
        base = f"{name}{'.t' if stored_kn else ''}.q{self.bits}"
        qname, sname = base, f"{base}.scales"
        if self.weights is not None:
            if name not in self.weights:
                raise PassError(f"quantize-weights: no value for weight \"{name}\"")
            w = self.weights[name]
            bits = self.bits

            def make() -> tuple[torch.Tensor, torch.Tensor]:
                return quantize(w.t() if stored_kn else w, bits, group)
            qweight, scales = (make() if self.derived is None else
                               self.derived.get(("quantize", bits, group, stored_kn), [w], make))
            self.weights[qname], self.weights[sname] = qweight, scales
        made[key] = (qname, sname)
        return qname, sname

    def _rewrite(self, matmul: g.MatmulOp, weight: g.WeightOp, names: tuple[str, str],
                 nk: tuple[int, int], group: int) -> None:
        n, k = nk
        block = matmul.parent_block()
        assert block is not None
        qtype = tensor_type((n, g.quantized_row_bytes(k, self.bits)), torch.int8)
        stype = tensor_type((n, -(-k // group)), torch.float32)
        qw, sc = g.WeightOp(names[0], qtype), g.WeightOp(names[1], stype)
        new = g.QuantizedMatmulOp(matmul.lhs, qw, sc, self.bits, group)
        for o in (qw, sc, new):
            o.location = matmul.location
        block.insert_ops_before([qw, sc, new], matmul)
        rhs: Operation | None = matmul.rhs.owner  # type: ignore[assignment]
        matmul.results[0].replace_all_uses_with(new.result)
        block.erase_op(matmul)
        for dead in (rhs, weight):
            if isinstance(dead, Operation) and dead.parent is not None \
                    and not any(r.uses for r in dead.results):
                dead.parent_block().erase_op(dead)  # type: ignore[union-attr]
