"""Micro measurement of the LLVM CPU backend: memory-bound loops in GB/s.

    python bench/llvm_micro.py [--n 16777216] [--runs 10]

Kernels over N float32 values (bytes moved = read + write = 8 * N):
  affine: y = x * 2 + 1      vs torch ``x * 2 + 1``
  copy:   y = x              vs torch ``x.clone()``
torch is also timed writing into a preallocated tensor ("out=": ``torch.mul(x,
2, out=o).add_(1)``-style and ``o.copy_(x)``), which removes its allocation and
page-fault cost.  Each irc kernel runs single-threaded (one call over [0, N)) and through
``threads.run_parallel`` (the outer loop split over torch.get_num_threads()
threads).  Reported: the median of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from xdsl.context import Context
from xdsl.dialects import arith, builtin, func, math, memref, scf
from xdsl.parser import Parser

from irc.backends.llvm import jit, threads
from irc.backends.llvm.translate import translate_module

ROWS = 4096  # outer (parallel) loop; inner loop is contiguous and vectorises


def kernel(n: int, body: str) -> str:
    """An (ROWS x n/ROWS) loop nest; ``body`` defines %y from %x (empty: copy)."""
    cols = n // ROWS
    result = "%y" if body else "%x"
    t = f"memref<{ROWS}x{cols}xf32>"
    return f"""
func.func @k(%a: {t}, %o: {t}) {{
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cr = arith.constant {ROWS} : index
  %cc = arith.constant {cols} : index
  %two = arith.constant 2.0 : f32
  %one = arith.constant 1.0 : f32
  scf.for %i = %c0 to %cr step %c1 {{
    scf.for %j = %c0 to %cc step %c1 {{
      %x = memref.load %a[%i, %j] : {t}
{body}
      memref.store {result}, %o[%i, %j] : {t}
    }}
  }} {{irc.parallel}}
  func.return
}}
"""


AFFINE = "      %m = arith.mulf %x, %two : f32\n      %y = arith.addf %m, %one : f32"
COPY = ""


def compile_kernel(n: int, body: str):
    ctx = Context()
    for d in (builtin.Builtin, func.Func, scf.Scf, memref.MemRef, arith.Arith, math.Math):
        ctx.load_dialect(d)
    module = Parser(ctx, kernel(n, body)).parse_module()
    return jit.compile_llvm_ir(translate_module(module)).function("k", 2, parallel=True)


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=str(__doc__).splitlines()[0])
    ap.add_argument("--n", type=int, default=16 * 1024 * 1024)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    n, runs = args.n, args.runs
    x = torch.randn(n)
    out = torch.empty(n)
    gb = 8 * n / 1e9
    print(f"N={n} float32, {threads.num_threads()} threads, cpu={jit.host_cpu_fingerprint().split('|')[1]}")
    cases = (("y = x*2+1", AFFINE, lambda: x * 2 + 1,
              lambda: torch.add(torch.mul(x, 2, out=out), 1, out=out)),
             ("copy", COPY, lambda: x.clone(), lambda: out.copy_(x)))
    for label, body, ref, ref_out in cases:
        fn = compile_kernel(n, body)
        ptrs = [x.data_ptr(), out.data_ptr()]
        single = median_seconds(lambda: fn(*ptrs, 0, ROWS), runs)
        multi = median_seconds(lambda: threads.run_parallel(fn, ptrs, ROWS), runs)
        assert torch.equal(out, ref())
        eager = median_seconds(ref, runs)
        eager_out = median_seconds(ref_out, runs)
        print(f"{label:10s} irc 1T {gb / single:6.2f} GB/s | irc {threads.num_threads()}T "
              f"{gb / multi:6.2f} GB/s | torch {gb / eager:6.2f} GB/s | "
              f"torch out= {gb / eager_out:6.2f} GB/s")


if __name__ == "__main__":
    main()
