"""The OpenMP team irc's parallel kernels run on, and how a launch splits its
work: one compiler-free module (torch and ctypes only) for the JIT's runtime
(:mod:`irc.backends.llvm.threads`, :mod:`irc.backends.llvm.runtime`) and the
package loader (:mod:`irc.loader_runtime`), so both pick the same runtime and
the same number of chunks.

Only an OpenMP library already mapped into the process is used: loading
another copy would start a second thread team next to torch's.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

RUNTIME_NAMES = ("libgomp", "libiomp5", "libomp")  # all export the GOMP_* entry points
OPENMP_MIN_WORK = 1 << 14
"""Elements per chunk worth a thread of the OpenMP team (the default of both runtimes)."""


@lru_cache(maxsize=1)
def cores() -> int:
    """The cores this process may run on (read once: os.cpu_count() costs
    microseconds on some VMs)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass(frozen=True)
class OpenMPRuntime:
    """The OpenMP library torch runs on, and the addresses irc's code calls."""

    path: str
    parallel: int  # GOMP_parallel(void (*fn)(void *), void *data, unsigned n, unsigned flags)
    thread_num: int  # omp_get_thread_num()
    num_threads: int  # omp_get_num_threads()


def _mapped_runtime_paths() -> list[str]:
    """OpenMP libraries already mapped into this process (Linux /proc/self/maps)."""
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return []
    found: list[str] = []
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) < 6:
            continue
        path = parts[5].strip()
        base = os.path.basename(path)
        if base.startswith(RUNTIME_NAMES) and ".so" in base and path not in found:
            found.append(path)
    return sorted(found, key=lambda p: next(i for i, n in enumerate(RUNTIME_NAMES)
                                            if os.path.basename(p).startswith(n)))


def _torch_uses_openmp() -> bool:
    try:
        return "parallel backend: OpenMP" in torch.__config__.parallel_info()
    except Exception:  # an odd torch build: do not guess
        return False


@lru_cache(maxsize=1)
def detect_openmp() -> OpenMPRuntime | None:
    """The OpenMP runtime torch has loaded, or None (then parallel kernels run
    on irc's pool in the JIT, serially in a package). Detected once per process."""
    if not _torch_uses_openmp():
        return None
    for path in _mapped_runtime_paths():
        try:
            lib = ctypes.CDLL(path)  # already loaded: the same handle, nothing new starts
            addrs = [ctypes.cast(getattr(lib, name), ctypes.c_void_p).value for name in
                     ("GOMP_parallel", "omp_get_thread_num", "omp_get_num_threads")]
        except (OSError, AttributeError):
            continue
        parallel, thread_num, num_threads = addrs
        if parallel and thread_num and num_threads:
            return OpenMPRuntime(path, parallel, thread_num, num_threads)
    return None


def min_iterations(trip_count: int, largest_result: int, min_work: int) -> int:
    """Iterations of a parallel loop one chunk must have to be worth a thread:
    ``min_work`` elements, the work per iteration estimated from the kernel's
    largest result (``largest_result`` elements over ``trip_count`` iterations)."""
    per_iteration = max(largest_result // max(trip_count, 1), 1)
    return max(-(-min_work // per_iteration), 1)


def chunk_count(most: int, max_threads: int) -> int:
    """Chunks one launch splits into: at most ``most`` (the trip count over
    the minimum chunk), ``max_threads`` (0: no cap), torch's thread setting
    now and the cores."""
    cap = max_threads if max_threads > 0 else 1 << 30
    return min(most, cap, torch.get_num_threads(), cores())
