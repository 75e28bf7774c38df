"""What this machine can do at best: copy bandwidth and matmul peak, measured once.

The profiler (:mod:`irc.profile`) puts each kernel's GB/s and GFLOP/s next to
these two numbers. They are measured with torch itself (``Tensor.copy_`` of
64 MiB, ``torch.mm`` of 1024x1024 float32, best of several runs, at the
current ``torch.get_num_threads()``) and stored in the compile cache
(:mod:`irc.cache`) under a key of the CPU fingerprint, the thread count and
the torch version, so later profiles reuse them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import torch

from irc.cache import CacheConfig

COPY_BYTES = 64 << 20
MATMUL_SIZE = 1024


@dataclass(frozen=True)
class MachinePeaks:
    """The best rates measured on this machine."""

    copy_gbps: float
    """Bytes moved (read + written) per second by a large copy, in GB/s."""
    matmul_gflops: float
    """float32 matmul rate of torch.mm at 1024^3, in GFLOP/s."""
    threads: int
    """torch.get_num_threads() when measured."""


def _best(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(repeats: int = 5) -> MachinePeaks:
    """Measure both rates now (about half a second)."""
    src = torch.ones(COPY_BYTES // 4)
    dst = torch.empty_like(src)
    copy_s = _best(lambda: dst.copy_(src), repeats)
    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    b = torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    out = torch.empty(MATMUL_SIZE, MATMUL_SIZE)
    mm_s = _best(lambda: torch.mm(a, b, out=out), repeats)
    return MachinePeaks(copy_gbps=2 * COPY_BYTES / copy_s / 1e9,
                        matmul_gflops=2 * MATMUL_SIZE ** 3 / mm_s / 1e9,
                        threads=torch.get_num_threads())


def machine_peaks(cache: CacheConfig | None = None) -> MachinePeaks:
    """The peaks from the compile cache, measured (and stored) on a miss."""
    from irc.backends.llvm.jit import host_cpu_fingerprint
    from irc.cache import make_key, open_cache
    store = open_cache(cache or CacheConfig())
    key = make_key("machine-peaks", host_cpu_fingerprint(), str(torch.get_num_threads()),
                   torch.__version__)
    blob = store.get(key) if store is not None else None
    if blob is not None:
        try:
            return MachinePeaks(**json.loads(blob))
        except (ValueError, TypeError):
            pass  # an unreadable entry is measured again
    peaks = measure()
    if store is not None:
        store.put(key, json.dumps(asdict(peaks)).encode())
    return peaks
