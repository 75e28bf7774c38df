"""Per-call host overhead of the CPU backend: graphs of k tiny kernels.

Builds ``x -> exp -> exp -> ... (k ops)`` on a 4x4 float32 tensor, fused with
``max-ops=1`` so each op is its own kernel, compiles it for the ``cpu`` target
and prints the median microseconds per call and per kernel, next to eager torch
running the same k ops. Run: ``python -m bench.bench_overhead``.
"""

from __future__ import annotations

import time

import torch

from irc.backends.llvm.backend import LLVMBackend, LLVMOptions
from irc.ir.text import parse_module
from irc.passes.pipeline import run_pipeline

PIPELINE = "fuse{max-ops=1},memory-plan,lower-to-loops"


def chain_text(k: int, shape: tuple[int, ...] = (4, 4)) -> str:
    t = f"tensor<{'x'.join(map(str, shape))}xf32>"
    lines = [f"func.func @main(%v0: {t}) -> {t} {{"]
    for i in range(k):
        lines.append(f"  %v{i + 1} = graph.exp %v{i} : {t} -> {t}")
    lines.append(f"  func.return %v{k} : {t}")
    lines.append("}")
    return "\n".join(lines)


def median_us(fn, calls: int = 2000, rounds: int = 5) -> float:
    for _ in range(50):
        fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return sorted(times)[len(times) // 2]


def main() -> None:
    x = torch.randn(4, 4)
    print(f"{'k':>4} {'irc us/call':>12} {'irc us/kernel':>14} {'eager us/call':>14}")
    for k in (1, 10, 50):
        module, _ = parse_module(chain_text(k), "chain.mlir")
        run_pipeline(module, PIPELINE, verify_each=False)
        exe = LLVMBackend().compile(module, {}, LLVMOptions(cache=False))
        assert exe.kernel_count == k, exe.kernel_count
        ref = x
        for _ in range(k):
            ref = ref.exp()
        assert torch.allclose(exe(x)[0], ref, equal_nan=True)

        def eager(x: torch.Tensor = x, k: int = k) -> torch.Tensor:
            for _ in range(k):
                x = x.exp()
            return x
        ours = median_us(lambda: exe(x))
        theirs = median_us(eager)
        print(f"{k:>4} {ours:>12.1f} {ours / k:>14.2f} {theirs:>14.1f}")


if __name__ == "__main__":
    main()
