"""How many model runs ``irc bisect`` needs to find a broken kernel.

Synthetic kernel-level chains of n one-op kernels (tests/broken_backends.py:
``chain_program``); the ``broken-sub`` backend miscompiles exactly one of them.
Prints, for n = 10, 100, 1000 and the culprit early/middle/late, the model runs
used (reference + all-migrated + binary search + confirmation) against
ceil(log2 n), and the wall time of the whole search (reference interpreter).

    python bench/bench_bisect.py
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import broken_backends  # noqa: E402
from irc.debug import bisect  # noqa: E402


def main() -> None:
    broken_backends.register()
    x = [torch.randn(4, 8, generator=torch.Generator().manual_seed(0))]
    print(f"{'kernels':>8} {'culprit':>8} {'found':>12} {'runs':>5} {'ceil(log2 n)':>13} {'seconds':>8}")
    for n in (10, 100, 1000):
        for culprit in (0, n // 2, n - 1):
            program = broken_backends.chain_program(n, culprit)
            start = time.perf_counter()
            report = bisect(program, x, target="broken-sub")
            elapsed = time.perf_counter() - start
            print(f"{n:>8} {culprit:>8} {report.culprit or '-':>12} {report.model_runs:>5} "
                  f"{math.ceil(math.log2(n)):>13} {elapsed:>8.2f}")


if __name__ == "__main__":
    main()
