"""How parallel kernels are split over threads: torch's OpenMP team, or a pool.

A parallel kernel (see :mod:`translate`: an outer ``scf.for`` marked
``irc.parallel``) has two entry points: ``fn(*ptrs, lo, hi)`` runs iterations
``[lo, hi)`` of its outer loop, and ``fn.omp(*ptrs, lo, hi, nthreads)`` runs
``[lo, hi)`` in one ``GOMP_parallel`` region of ``nthreads`` threads, each
thread taking one contiguous chunk.

* **OpenMP** (the default where available): the ``.omp`` entry runs on the
  OpenMP runtime torch itself runs on (the libgomp its ATen parallel backend,
  MKL and oneDNN use), found once in the process's mapped libraries
  (:func:`irc.openmp.detect_openmp`, which the package loader uses too).  irc's
  kernels and torch's matmuls then share one thread team: no second set of
  threads competes for the cores, and the hand-off to workers that are still
  spinning after torch's last region costs a few microseconds.
  :func:`link_openmp` binds the symbols the generated code calls
  (``__irc_GOMP_parallel``, ``__irc_omp_get_thread_num``,
  ``__irc_omp_get_num_threads``) to that runtime for the JIT, before any code
  (freshly compiled or loaded from the compile cache) is finalised.
* **Pool** (no OpenMP runtime found, torch built with another parallel
  backend, or the cpu backend's option ``parallel_runtime="pool"``, which
  :class:`~irc.backends.llvm.runtime.HostProgram` applies by passing no
  ``.omp`` entry to :func:`parallel_launcher`): a process-wide ``ThreadPoolExecutor``
  runs the ``(lo, hi)`` entry chunk by chunk (ctypes releases the GIL); the
  calling thread runs the first chunk.  The OpenMP symbols are then bound to a
  serial implementation (a team of one), so code always links.

Either way a launch uses at most ``min(torch.get_num_threads(), cores)``
threads, read on every call (``torch.set_num_threads(1)`` makes irc serial),
and a chunk gets at least ``min_work`` iterations.  Nested calls are serial:
GOMP runs a region inside another region on a team of one, and a call from a
pool worker runs inline.  A call from a Python thread other than the main one
is correct in both modes (GOMP gives each calling thread its own team).
"""

from __future__ import annotations

import ctypes
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache

import torch

# the names the generated code calls are prefixed, so that binding them never
# changes what another JIT in the process gets for GOMP_parallel
from irc.backends.llvm.translate import OMP_NUM_THREADS, OMP_PARALLEL, OMP_THREAD_NUM
from irc.openmp import OpenMPRuntime, chunk_count, cores, detect_openmp

__all__ = ["LaunchStats", "OpenMPRuntime", "detect_openmp", "link_openmp", "num_threads",
           "parallel_launcher", "run_chunks", "run_parallel", "split"]


@dataclass
class LaunchStats:
    """What one executable's parallel kernels did (``executable.stats``)."""

    launches: Counter[str] = field(default_factory=Counter)
    """Parallel launches by how they ran: ``openmp``, ``pool`` or ``serial``."""


_state = threading.local()
_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def num_threads() -> int:
    """Threads a parallel kernel may use (torch's setting, capped by the cores)."""
    return max(1, min(torch.get_num_threads(), cores()))


# -- the OpenMP runtime --------------------------------------------------------------
# a team of one: what the OpenMP symbols mean when no runtime is found (the
# runtime never calls an .omp entry then; this only makes the code link)
_BODY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


@ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint)
def _serial_parallel(fn: int, data: int, n: int, flags: int) -> None:
    _BODY(fn)(data)


_serial_thread_num = ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 0)
_serial_num_threads = ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 1)


@lru_cache(maxsize=1)
def link_openmp() -> OpenMPRuntime | None:
    """Bind the OpenMP symbols of generated code for the JIT (once per process).

    Must run before code is finalised (:mod:`jit` calls it); returns the
    runtime the symbols point to, or None when they point to a team of one.
    """
    import llvmlite.binding as llvm
    rt = detect_openmp()
    if rt is not None:
        addrs = (rt.parallel, rt.thread_num, rt.num_threads)
    else:
        addrs = tuple(ctypes.cast(f, ctypes.c_void_p).value or 0 for f in
                      (_serial_parallel, _serial_thread_num, _serial_num_threads))
    for name, addr in zip((OMP_PARALLEL, OMP_THREAD_NUM, OMP_NUM_THREADS), addrs):
        llvm.add_symbol(name, addr)
    return rt


# -- the pool fallback ------------------------------------------------------------
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
    """[0, trip_count) as ``chunks`` contiguous ranges of near-equal size
    (the same split the ``.omp`` entry makes over its team)."""
    base, extra = divmod(trip_count, chunks)
    ranges, lo = [], 0
    for i in range(chunks):
        hi = lo + base + (1 if i < extra else 0)
        ranges.append((lo, hi))
        lo = hi
    return ranges


def run_parallel(fn: Callable[..., None], ptr_args: Sequence[int], trip_count: int,
                 min_work: int = 1) -> None:
    """Call ``fn(*ptr_args, lo, hi)`` on the pool over chunks covering ``[0, trip_count)``.

    ``min_work`` is the smallest number of outer iterations worth a thread.
    """
    if trip_count <= 0:
        return
    chunks = min(num_threads(), trip_count // max(min_work, 1))
    run_chunks(fn, ptr_args, trip_count, chunks)


def run_chunks(fn: Callable[..., None], ptr_args: Sequence[int], trip_count: int,
               chunks: int) -> None:
    """``fn(*ptr_args, lo, hi)`` over ``chunks`` ranges of ``[0, trip_count)``: the
    first on this thread, the others on the pool (inline inside a pool worker)."""
    if chunks <= 1 or getattr(_state, "in_worker", False):
        fn(*ptr_args, 0, trip_count)
        return
    ranges = split(trip_count, chunks)
    pool = _executor(num_threads())
    futures: list[Future] = [pool.submit(fn, *ptr_args, lo, hi) for lo, hi in ranges[1:]]
    lo, hi = ranges[0]
    try:
        fn(*ptr_args, lo, hi)
    finally:
        for fut in futures:
            fut.result()


# -- one launch ------------------------------------------------------------------
def parallel_launcher(fn: Callable[..., None], omp_fn: Callable[..., None] | None,
                      trip_count: int, min_work: int, max_threads: int = 0,
                      stats: LaunchStats | None = None) -> Callable[[list[int]], None]:
    """``launch(ptr_args)`` running ``fn`` over ``[0, trip_count)`` on threads.

    Per call: ``chunks = min(threads allowed now, trip_count // min_work)``
    where the threads allowed are :func:`num_threads` capped by
    ``max_threads`` (0: no cap); one chunk runs inline, more run on the OpenMP
    team through ``omp_fn`` (when given and a runtime was found) or on the pool.
    Each launch is counted in ``stats.launches`` (a fresh LaunchStats if None).
    """
    launches = (stats if stats is not None else LaunchStats()).launches
    min_work = max(min_work, 1)
    most = trip_count // min_work
    use_omp = omp_fn is not None and link_openmp() is not None

    def launch(args: list[int]) -> None:
        chunks = chunk_count(most, max_threads)
        if chunks <= 1:
            launches["serial"] += 1
            fn(*args, 0, trip_count)
        elif use_omp:
            launches["openmp"] += 1
            omp_fn(*args, 0, trip_count, chunks)  # type: ignore[misc]
        else:
            launches["pool"] += 1
            run_chunks(fn, args, trip_count, chunks)
    return launch
