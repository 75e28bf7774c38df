"""CPU backend micro-benchmarks: irc "cpu" vs eager torch vs torch.compile (inductor).

Workloads (float32): a 4-op elementwise chain ``((x*2+1).relu()*3)`` on 16M
elements, softmax / layer-norm / GELU over 4096x4096, and a plain copy of 16M
elements (the memory-bandwidth ceiling), and a full sum of 16M elements. Each is timed round-robin, median of
10 round-robin samples (median and min), in one process. The compile cache is
off (its key does not cover the LLVM translation, so a cached object could be
stale after a backend change).

    python bench/cpu_micro.py [--no-inductor] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fuse_programs import build, layer_norm, scalar, softmax  # noqa: E402
from irc.backends.llvm.backend import LLVMOptions  # noqa: E402
from irc.driver import compile_program  # noqa: E402
from irc.frontends.program import Program  # noqa: E402
from irc.ir import graph as g  # noqa: E402

N = 1 << 24
ROWS = COLS = 4096


def chain_module():
    def body(emit, x):
        y = emit(g.AddOp(emit(g.MulOp(x, scalar(emit, 2.0))), scalar(emit, 1.0)))
        return [emit(g.MulOp(emit(g.ReluOp(y)), scalar(emit, 3.0)))]
    return build([[N]], body)


def copy_module():
    # x * 1 would be folded by canonicalize; abs keeps one load and one store per element
    return build([[N]], lambda emit, x: [emit(g.AbsOp(x))])


def sum_module():
    return build([[N]], lambda emit, x: [emit(g.SumOp(x, [0]))])


def softmax_module():
    return build([[ROWS, COLS]], lambda emit, x: [softmax(emit, x)])


def layernorm_module():
    return build([[ROWS, COLS], [COLS], [COLS]], lambda emit, x, w, b: [layer_norm(emit, x, w, b)])


def gelu_module():
    return build([[ROWS, COLS]], lambda emit, x: [emit(g.GeluOp(x))])


def workloads():
    x16 = torch.randn(N)
    x2 = torch.randn(ROWS, COLS)
    w, b = torch.randn(COLS), torch.randn(COLS)
    return {
        "chain (16M)": (chain_module, (x16,), lambda x: (x * 2 + 1).relu() * 3),
        "copy (16M)": (copy_module, (x16,), lambda x: x.abs()),
        "sum (16M)": (sum_module, (x16,), lambda x: x.sum()),
        "softmax 4096x4096": (softmax_module, (x2,), lambda x: torch.softmax(x, -1)),
        "layernorm 4096x4096": (layernorm_module, (x2, w, b),
                                lambda x, w, b: F.layer_norm(x, (COLS,), w, b)),
        "gelu 4096x4096": (gelu_module, (x2,), lambda x: F.gelu(x)),
    }


def timings(fns: dict, repeats: int = 10) -> dict[str, tuple[float, float]]:
    """(median, min) seconds per call of each fn over ``repeats`` round-robin samples.

    The minimum is reported beside the median because the 2-core dev machine
    is shared: other processes inflate some samples, never deflate them.
    """
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return {k: (statistics.median(v), min(v)) for k, v in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=str(__doc__).splitlines()[0])
    parser.add_argument("--no-inductor", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {}
    print(f"torch {torch.__version__}, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}; median (min) of 10, ms")
    print(f"{'workload':22} {'irc':>15} {'eager':>15} {'inductor':>15} "
          f"{'vs eager':>9} {'vs ind.':>8} {'irc GB/s':>9}")
    for name, (make, inputs, eager) in workloads().items():
        exe = compile_program(Program(make(), {}), "cpu", LLVMOptions(cache=False))
        ref = eager(*inputs)
        got = exe(*inputs)[0]
        assert torch.allclose(got, ref, atol=1e-4, rtol=1e-4), name
        fns = {"irc": lambda: exe(*inputs), "eager": lambda: eager(*inputs)}
        if not args.no_inductor:
            compiled = torch.compile(eager)
            compiled(*inputs)
            fns["inductor"] = lambda: compiled(*inputs)
        t = timings(fns)
        nbytes = sum(x.numel() * 4 for x in inputs) + ref.numel() * 4
        ind = t.get("inductor", (float("nan"), float("nan")))

        def cell(v: tuple[float, float]) -> str:
            return f"{v[0] * 1e3:7.1f} ({v[1] * 1e3:5.1f})"
        print(f"{name:22} {cell(t['irc']):>15} {cell(t['eager']):>15} {cell(ind):>15} "
              f"{t['eager'][0] / t['irc'][0]:8.2f}x {ind[0] / t['irc'][0]:7.2f}x "
              f"{nbytes / t['irc'][0] / 1e9:9.1f}")
        results[name] = {k: {"median_ms": v[0] * 1e3, "min_ms": v[1] * 1e3} for k, v in t.items()}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
