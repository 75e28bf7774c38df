"""``python -m bench.compile_time WORKLOAD COMPILER TARGET``: compile one
workload in this (fresh) process and print ``{"seconds": ...}``: the time of
the first call, which compiles, minus nothing (imports are done before)."""

from __future__ import annotations

import importlib
import json
import sys
import time

import torch


def main() -> None:
    name, compiler, target = sys.argv[1], sys.argv[2], sys.argv[3]
    from bench.workloads import WORKLOADS
    fn, inputs = WORKLOADS[name].factory()
    if compiler == "inductor":
        importlib.import_module("torch._inductor")  # import cost is not compile cost
        compiled = torch.compile(fn)
    else:
        import irc
        importlib.import_module("irc.api")
        compiled = irc.compile(fn, target=target)
    with torch.no_grad():
        t0 = time.perf_counter()
        compiled(*inputs)
        seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    main()
