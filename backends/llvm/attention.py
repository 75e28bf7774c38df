"""Attention on the CPU: torch's fused kernel, or two matmuls and a softmax,
chosen per shape by a measurement kept in the compile cache.

torch's fused CPU kernel (``_scaled_dot_product_flash_attention_for_cpu``,
what eager runs) walks blocks of queries and keys; with a short head dim and
tens of keys it is slower than ``softmax(q @ k^T * scale) @ v`` on the
materialised scores (zoo wav2vec2, ``[2, 4, 79, 16]``, 1 thread: 148 us
against 88 us), while on 16 keys of dim 32 it wins (9 against 14 us). So
:func:`attention_step` times both forms once per shape, on random data of the
op's shapes at the current torch thread count (interleaved rounds, the best
time of each, with torch's Python dispatch modes off), and takes the matmul form only when it is at least
:data:`MARGIN` faster. The choice is stored in the compile cache under the
CPU fingerprint, thread count, torch version and the shapes, so a later
compile reuses it; with the cache off it is measured at each compile.

Only an attention that the matmul form computes the same way takes part:
float32, no mask, no causal mask, and key/value with the query's heads (no
grouped-query attention). Every other one (and every one where the fused kernel
is at least as fast) runs the fused kernel, as before (None: the runtime's
generic handler). Both forms agree to float32 rounding (the sum over keys runs
in another order), not bit for bit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import torch

from irc.cache import CacheConfig, make_key, open_cache
from irc.ir import graph as g
from irc.ir.types import dtype_of, shape_of

Step = Callable[[list], None]

MARGIN = 0.9
"""The matmul form is chosen when its best time is below this fraction of the fused kernel's."""
ROUNDS = 5
SAMPLE_SECONDS = 0.002


def eligible(op: g.AttentionOp) -> bool:
    """Whether the matmul form computes ``op`` as its definition says (module docs)."""
    q, k, v = (shape_of(x.type) for x in (op.query, op.key, op.value))
    return (op.mask is None and op.is_causal is None and len(q) >= 2
            and q[:-2] == k[:-2] == v[:-2]
            and all(dtype_of(x.type) == torch.float32 for x in (op.query, op.key, op.value)))


def _fused(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, False, scale=scale)[0]


def _matmuls(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    scores = torch.matmul(q, k.transpose(-2, -1))
    scores.mul_(scale)
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def _best_seconds(fns: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best time per call of each fn over interleaved rounds."""
    loops: dict[str, int] = {}
    for name, fn in fns.items():
        fn()
        t0 = time.perf_counter()
        fn()
        loops[name] = max(1, int(SAMPLE_SECONDS / max(time.perf_counter() - t0, 1e-7)))
    best = {name: float("inf") for name in fns}
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            n = loops[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / n)
    return best


def measure(q_shape: tuple[int, ...], k_shape: tuple[int, ...], v_shape: tuple[int, ...],
            scale: float) -> dict[str, float]:
    """Seconds per call of both forms on random float32 data of these shapes."""
    from torch.utils._python_dispatch import _disable_current_modes
    # dynamo compiles (and AOTAutograd runs a graph's first call) with Python
    # dispatch modes, the Python dispatcher and its dispatch keys on, which cost
    # per op: measured under them, the matmul form took 330-480 us against
    # 108 us in a plain call
    python_keys = torch._C.DispatchKeySet(torch._C.DispatchKey.Python) | \
        torch._C.DispatchKeySet(torch._C.DispatchKey.PythonTLSSnapshot)
    with _disable_current_modes(), torch._C.DisableTorchFunction(), \
            torch._C._DisablePythonDispatcher(), torch._C._ExcludeDispatchKeyGuard(python_keys):
        gen = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(s, generator=gen) for s in (q_shape, k_shape, v_shape))
        return _best_seconds({"fused": lambda: _fused4(q, k, v, scale),
                              "matmuls": lambda: _matmuls(q, k, v, scale)})


def _as4(x: torch.Tensor) -> torch.Tensor:
    """The ``[batch, heads, L, E]`` view the fused kernel takes."""
    return x if x.dim() == 4 else x.reshape(-1, 1, *x.shape[-2:])


def choose(op: g.AttentionOp, cache: CacheConfig | None) -> str:
    """``"matmuls"`` or ``"fused"`` for ``op`` (measured, or from the cache)."""
    from irc.backends.llvm.jit import host_cpu_fingerprint
    q_shape, k_shape, v_shape = (tuple(shape_of(x.type)) for x in (op.query, op.key, op.value))
    shapes = (q_shape, k_shape, v_shape)
    scale = op.scale.value.data
    store = open_cache(cache) if cache is not None else None
    key = make_key("attention-choice-1", host_cpu_fingerprint(), str(torch.get_num_threads()),
                   torch.__version__, json.dumps(shapes))
    blob = store.get(key) if store is not None else None
    if blob is not None:
        try:
            return str(json.loads(blob)["choice"])
        except (ValueError, KeyError, TypeError):
            pass  # an unreadable entry is measured again
    times = measure(q_shape, k_shape, v_shape, scale)
    choice = "matmuls" if times["matmuls"] < MARGIN * times["fused"] else "fused"
    if store is not None:
        store.put(key, json.dumps({"choice": choice, "seconds": times}).encode())
    return choice


def attention_step(op: g.AttentionOp, q: int, k: int, v: int, out: int,
                   cache: CacheConfig | None) -> Step | None:
    """The matmul form's step where it is eligible and measured faster, else None."""
    if not eligible(op) or choose(op, cache) != "matmuls":
        return None
    scale = op.scale.value.data

    def step(env: list) -> None:
        env[out] = _matmuls(env[q], env[k], env[v], scale)
    return step


def _fused4(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """The fused kernel on any batch dims (inputs with a non-unit last stride copied)."""
    q, k, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v))
    out = _fused(_as4(q), _as4(k), _as4(v), scale)
    return out if q.dim() == 4 else out.reshape(*q.shape[:-1], v.shape[-1])
