"""The decomposition table the frontend traces with.

Core aten (``torch._decomp.core_aten_decompositions()``) plus a few composite
ops that core aten keeps but the graph dialect has no op for; their torch
decompositions give elementwise ops and reductions with torch's own upcasting
rules (e.g. layer norm and softmax of f16/bf16 compute in f32, as eager does).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch
from torch._decomp import core_aten_decompositions, get_decompositions

aten = torch.ops.aten

# Composite ops decomposed beyond core aten: the graph dialect expresses them
# with the ops it has (mean/sub/mul/rsqrt, amax/exp/sum/div, maximum...).
EXTRA_DECOMPOSED = [
    aten.native_layer_norm,
    aten._softmax,
    aten._log_softmax,
    aten.native_group_norm,
    aten.hardtanh,
    aten.leaky_relu,
    aten.elu,
    # in training it writes the running statistics in place although its
    # schema does not say so: decomposed, functionalization sees those writes
    aten.native_batch_norm,
    aten.linalg_vector_norm,  # weight norm (wav2vec2's positional conv): abs, pow, sum
]


# Core-aten decompositions irc does not use. The CPU flash-attention
# decomposition computes a logsumexp that the (undecomposed) flash-attention
# backward does not expect, which gives wrong gradients in training; the
# importer lowers the op itself (scores, softmax, logsumexp, matmul).
KEPT = [aten._scaled_dot_product_flash_attention_for_cpu.default]


@lru_cache(maxsize=1)
def decomposition_table() -> dict[torch._ops.OperatorBase, Callable[..., object]]:
    """op overload -> python decomposition used while tracing to aten."""
    table = dict(core_aten_decompositions())
    table.update(get_decompositions(EXTRA_DECOMPOSED))
    for op in KEPT:
        table.pop(op, None)
    return table
