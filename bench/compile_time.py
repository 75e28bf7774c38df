"""Cold-compile time of one workload in this (fresh) process.

``python -m bench.compile_time WORKLOAD COMPILER TARGET`` prints
``{"seconds": ...}``: the time of the first call, which compiles (imports are
done before). WORKLOAD is a name of ``bench.workloads`` or ``zoo:NAME`` (a model
of ``tests/zoo/models.py``).

``python -m bench.compile_time --phases WORKLOAD [WORKLOAD ...]`` compiles each
with irc (target cpu) and prints where the first call's time went, per phase:

* ``dynamo``: bytecode analysis and guards (the rest of the first call);
* ``aot``: AOTAutograd tracing to core aten (irc's backend minus irc's part);
* ``import``: FX graph -> graph dialect;
* ``passes``: the pass pipeline (graph, kernel, loops levels);
* ``translate``: loops IR -> LLVM IR text;
* ``llvm``: LLVM optimisation and code generation (or cache loads);
* ``backend``: the rest of the CPU backend (memory plan, host schedule);
* ``first_run``: running the compiled model once (the second call's time).

The phases are measured by wrapping those functions with timers in this
process only (the bench's own instrumentation; the library has none). Run it
with ``IRC_CACHE_DIR`` pointing at an empty folder for a cold compile.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent


def load(name: str) -> tuple[Any, tuple, dict]:
    """(model, args, kwargs) of a bench workload or a ``zoo:NAME`` model."""
    if name.startswith("zoo:"):
        sys.path.insert(0, str(ROOT))
        from tests.zoo.models import ZOO
        model, kwargs = ZOO[name[4:]].make()
        return model, (), kwargs
    from bench.workloads import WORKLOADS
    fn, inputs = WORKLOADS[name].factory()
    return fn, tuple(inputs), {}


@contextlib.contextmanager
def timed(owner: Any, attr: str, totals: dict[str, float], phase: str) -> Iterator[None]:
    """Add the time spent in ``owner.attr`` (outermost calls only) to ``totals[phase]``."""
    original = getattr(owner, attr)
    depth = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        depth[0] += 1
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                totals[phase] += time.perf_counter() - t0
    setattr(owner, attr, wrapper)
    try:
        yield
    finally:
        setattr(owner, attr, original)


def phases(name: str) -> dict[str, float]:
    """Seconds per phase of the first irc call of ``name`` (see the module docstring)."""
    import irc
    import irc.backends.llvm.backend as backend
    import irc.backends.llvm.kernel_texts as kernel_texts
    import irc.driver as driver
    import irc.frontends.capture as capture
    import torch._dynamo.backends.common as aot  # irc's backend goes through dynamo's aot_autograd
    model, args, kwargs = load(name)
    totals: dict[str, float] = defaultdict(float)
    patches: list[tuple[Any, str, str]] = [
        (aot, "aot_module_simplified", "irc_backend"), (capture, "compile_graph", "irc"),
        (capture.FxImporter, "run", "import"), (driver, "run_pipeline", "passes"),
        (kernel_texts, "translate_function", "translate"), (backend, "jit_kernels", "llvm"),
        (backend, "jit_kernel_texts", "llvm"),
        (backend.LLVMBackend, "compile", "cpu_backend"),
    ]
    with contextlib.ExitStack() as stack:
        for owner, attr, phase in patches:
            stack.enter_context(timed(owner, attr, totals, phase))
        compiled = irc.compile(model)
        with torch.no_grad():
            t0 = time.perf_counter()
            compiled(*args, **kwargs)
            total = time.perf_counter() - t0
            t0 = time.perf_counter()
            compiled(*args, **kwargs)
            first_run = time.perf_counter() - t0
    return {
        "total": total,
        "dynamo": total - totals["irc_backend"] - first_run,
        "aot": totals["irc_backend"] - totals["irc"],
        "import": totals["import"],
        "passes": totals["passes"],
        "translate": totals["translate"],
        "llvm": totals["llvm"],
        "backend": totals["cpu_backend"] - totals["translate"] - totals["llvm"],
        "first_run": first_run,
    }


def first_call_seconds(name: str, compiler: str, target: str) -> float:
    model, args, kwargs = load(name)
    if compiler == "inductor":
        importlib.import_module("torch._inductor")  # import cost is not compile cost
        compiled = torch.compile(model)
    else:
        import irc
        importlib.import_module("irc.api")
        compiled = irc.compile(model, target=target)
    with torch.no_grad():
        t0 = time.perf_counter()
        compiled(*args, **kwargs)
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=str(__doc__).splitlines()[0])
    parser.add_argument("--phases", action="store_true", help="irc's first call by phase")
    parser.add_argument("names", nargs="+", help="WORKLOAD [COMPILER TARGET], or workloads "
                                                 "with --phases")
    args = parser.parse_args(argv)
    if args.phases:
        for name in args.names:
            print(json.dumps({"workload": name, **{k: round(v, 4) for k, v in
                                                   phases(name).items()}}), flush=True)
        return
    name, compiler, target = (args.names + ["irc", "cpu"])[:3]
    print(json.dumps({"seconds": first_call_seconds(name, compiler, target)}))


if __name__ == "__main__":
    main()
