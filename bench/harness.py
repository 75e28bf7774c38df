"""Timing and memory measurement shared by the benchmarks.

* :func:`interleaved_medians` times several implementations of one workload
  round-robin (so drift in machine state hits all of them alike) and returns
  the median per implementation.
* :func:`eager_peak_bytes` measures the peak bytes of tensors alive during an
  eager call that the call itself allocated (its intermediates and outputs).
* :func:`compile_seconds` times a compile in a fresh process (cold: empty
  caches; warm: the caches the previous process left).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

ROOT = Path(__file__).resolve().parent.parent


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int = 10,
                        min_seconds: float = 0.02) -> dict[str, float]:
    """Median seconds per call of each fn, timed round-robin.

    Each sample runs a fn ``n`` times back to back, with ``n`` chosen so a
    sample takes at least ``min_seconds`` (per-call overhead of tiny workloads
    is then measured, not timer resolution).
    """
    loops: dict[str, int] = {}
    for name, fn in fns.items():
        fn()  # warm-up (and compile, for lazily compiling callables)
        t0 = time.perf_counter()
        fn()
        once = max(time.perf_counter() - t0, 1e-7)
        loops[name] = max(1, int(min_seconds / once))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            n = loops[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - t0) / n)
    return {name: statistics.median(s) for name, s in samples.items()}


class _LiveBytes(TorchDispatchMode):
    """Counts bytes of tensors created by ops while active, until they die."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        # Outputs sharing an argument's storage (views, in-place, `t` of a
        # parameter) allocate nothing.
        arg_storages = {a.untyped_storage().data_ptr()
                        for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key in self._seen or key in arg_storages or storage.nbytes() == 0:
                    continue
                self._seen.add(key)
                nbytes = storage.nbytes()
                self.live += nbytes
                self.peak = max(self.peak, self.live)
                weakref.finalize(t, self._free, key, nbytes)
        return out

    def _free(self, key: int, nbytes: int) -> None:
        self.live -= nbytes
        self._seen.discard(key)


def eager_peak_bytes(fn: Callable[..., object], inputs: Sequence[torch.Tensor]) -> int:
    """Peak bytes of tensors the eager call allocated and held at once."""
    mode = _LiveBytes()
    with torch.no_grad(), mode:
        out = fn(*inputs)
    del out
    return mode.peak


def compile_seconds(workload: str, compiler: str, cache_dir: str, target: str = "cpu") -> float:
    """Seconds to compile and run once ``workload`` with ``compiler`` in a new process."""
    env = dict(os.environ)
    env["IRC_CACHE_DIR"] = os.path.join(cache_dir, "irc")
    env["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(cache_dir, "inductor")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "bench.compile_time", workload, compiler, target]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])
