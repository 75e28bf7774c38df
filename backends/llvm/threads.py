"""A small process-wide thread pool that runs parallel kernels chunk by chunk.

A parallel kernel (see :mod:`translate`: an outer ``scf.for`` marked
``irc.parallel``) is a ctypes function ``fn(*ptrs, lo, hi)`` that runs
iterations ``[lo, hi)`` of its outer loop.  ctypes releases the GIL for the
duration of the call, so chunks given to different threads really run at the
same time.

* The pool has ``min(torch.get_num_threads(), os.cpu_count())`` threads in
  all, the calling thread included (it runs the first chunk itself), so irc
  never oversubscribes the cores that torch is configured to use.
* Small loops run inline on the caller's thread: a chunk must have at least
  ``min_work`` iterations.
* A call made from inside a pool worker runs inline (no nested parallelism, no
  deadlock).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Sequence

import torch

_state = threading.local()
_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def num_threads() -> int:
    """Threads a parallel kernel may use (torch's setting, capped by the cores)."""
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


def _mark_worker() -> None:
    _state.in_worker = True


def _executor(n: int) -> ThreadPoolExecutor:
    """The shared pool with ``n - 1`` workers (rebuilt if torch's count changed)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != n:
            if _pool is not None:
                _pool[1].shutdown(wait=False)
            pool = ThreadPoolExecutor(max_workers=max(n - 1, 1), thread_name_prefix="irc-cpu",
                                      initializer=_mark_worker)
            _pool = (n, pool)
        return _pool[1]


def split(trip_count: int, chunks: int) -> list[tuple[int, int]]:
    """[0, trip_count) as ``chunks`` contiguous ranges of near-equal size."""
    base, extra = divmod(trip_count, chunks)
    ranges, lo = [], 0
    for i in range(chunks):
        hi = lo + base + (1 if i < extra else 0)
        ranges.append((lo, hi))
        lo = hi
    return ranges


def run_parallel(fn: Callable[..., None], ptr_args: Sequence[int], trip_count: int,
                 min_work: int = 1) -> None:
    """Call ``fn(*ptr_args, lo, hi)`` over chunks covering ``[0, trip_count)``.

    ``min_work`` is the smallest number of outer iterations worth a thread.
    """
    if trip_count <= 0:
        return
    n = num_threads()
    chunks = min(n, trip_count // max(min_work, 1))
    if chunks <= 1 or getattr(_state, "in_worker", False):
        fn(*ptr_args, 0, trip_count)
        return
    ranges = split(trip_count, chunks)
    pool = _executor(n)
    futures: list[Future] = [pool.submit(fn, *ptr_args, lo, hi) for lo, hi in ranges[1:]]
    lo, hi = ranges[0]
    try:
        fn(*ptr_args, lo, hi)
    finally:
        for fut in futures:
            fut.result()
