"""Cold compile of one training step, by phase: ``python -m bench.train_compile_time MODEL [OPTION=VALUE ...]``.

Runs in this process (start it fresh, with ``IRC_CACHE_DIR`` pointing at an
empty folder, for a cold compile; ``python -m bench.bench_training compile``
does that for each zoo decoder). One step is ``irc.compile(model)`` on a zoo
decoder in train mode, the first forward, a cross-entropy loss and the first
backward. Prints one JSON object:

* ``first_step_s``: the forward's and the backward's first calls together;
* ``dynamo``: bytecode analysis, guards (the forward call minus AOTAutograd
  and the compiled forward's run; the eager loss is in it too);
* ``aot_joint``: AOTAutograd tracing the joint forward + backward graph;
* ``aot_partition``: splitting it into the forward and backward graphs;
* ``aot_other``: the rest of AOTAutograd (wrappers, metadata);
* per graph (``graphs``: a list, ``fw`` / ``bw``) and summed over them:
  ``import`` (FX -> graph dialect), ``passes`` (the pipeline; ``per_pass``
  gives each pass's seconds), ``translate`` (loops IR -> LLVM IR text),
  ``llvm`` (object code: cache lookups, LLVM optimisation and code
  generation, loading), ``backend`` (the rest of the CPU backend: memory
  plan, host schedule), ``irc_other`` (the rest of irc's per-graph work);
* ``fw_run``: the compiled forward graph's first run; ``bw_run``: the rest
  of the first backward (the compiled backward's run, autograd).

``--cpu`` measures every phase in this process's CPU seconds instead of wall
seconds (steadier on a shared machine; ``worker_cpu_s`` is what the LLVM
worker processes used, ``wall_s`` the step's wall time either way).
``--compiler inductor`` times inductor's first training step instead (wall
seconds, no phases). ``OPTION=VALUE`` pairs are irc options (``compile_workers=1``,
``cache.enabled=false``...). The phases are measured by wrapping functions
with timers in this process only (the library has no instrumentation).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import torch


class Phases:
    """Seconds spent in wrapped functions (outermost call of each phase only),
    in total and per compiled graph."""

    PER_GRAPH = ("irc", "import", "passes", "translate", "llvm", "cpu_backend")

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.total: dict[str, float] = defaultdict(float)
        self.graphs: list[dict[str, Any]] = []
        self.per_pass: dict[str, float] = defaultdict(float)
        self._depth: dict[str, int] = defaultdict(int)

    def add(self, phase: str, seconds: float) -> None:
        self.total[phase] += seconds
        if self.graphs and phase in self.PER_GRAPH:
            current = self.graphs[-1]
            if current.get("open"):
                current[phase] = current.get(phase, 0.0) + seconds

    @contextlib.contextmanager
    def wrapped(self, owner: Any, attr: str, phase: str,
                before: Callable[[], None] | None = None) -> Iterator[None]:
        original = getattr(owner, attr)

        def timer(*args: Any, **kwargs: Any) -> Any:
            outermost = self._depth[phase] == 0
            if outermost and before is not None:
                before()
            self._depth[phase] += 1
            t0 = self.clock()
            try:
                return original(*args, **kwargs)
            finally:
                self._depth[phase] -= 1
                if outermost:
                    self.add(phase, self.clock() - t0)
        setattr(owner, attr, timer)
        try:
            yield
        finally:
            setattr(owner, attr, original)

    @contextlib.contextmanager
    def per_pass_timers(self) -> Iterator[None]:
        """Time each pass's ``apply`` by its name (every registered pass class)."""
        from irc.passes.registry import get_pass, pass_names
        with contextlib.ExitStack() as stack:
            seen: set[type] = set()
            for name in pass_names():
                cls = get_pass(name)
                if cls in seen:
                    continue
                seen.add(cls)
                stack.enter_context(self._pass_timer(cls, name))
            yield

    @contextlib.contextmanager
    def _pass_timer(self, cls: type, name: str) -> Iterator[None]:
        original = cls.apply  # type: ignore[attr-defined]

        def apply(pass_self: Any, ctx: Any, module: Any) -> Any:
            t0 = self.clock()
            try:
                return original(pass_self, ctx, module)
            finally:
                self.per_pass[name] += self.clock() - t0
        cls.apply = apply  # type: ignore[attr-defined]
        try:
            yield
        finally:
            cls.apply = original  # type: ignore[attr-defined]


def lm_batch(name: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """Zoo decoder ``name`` in train mode (dropout 0) and its input ids."""
    from tests.zoo.models import ZOO
    model, inputs = ZOO[name].make(seed=0)
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model, {"input_ids": inputs["input_ids"]}


def lm_loss(out: Any, ids: torch.Tensor) -> torch.Tensor:
    """Next-token cross entropy of a causal LM's output."""
    logits = out.logits
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                             ids[:, 1:].reshape(-1))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def profile(name: str, options: dict[str, Any] | None = None, cpu: bool = False) -> dict[str, Any]:
    """One cold training step of zoo model ``name`` by phase (see the module
    docstring); with ``cpu``, every phase in this process's CPU seconds."""
    import torch._dynamo.backends.common as common
    import torch._functorch._aot_autograd.graph_compile as graph_compile
    import torch._functorch.aot_autograd as aot_autograd

    import irc
    import irc.backends.llvm.backend as backend
    import irc.backends.llvm.kernel_texts as kernel_texts
    import irc.driver as driver
    import irc.frontends.capture as capture
    clock = time.process_time if cpu else time.perf_counter
    p = Phases(clock)
    kinds = iter(["fw", "bw"] * 1000)

    def new_graph() -> None:
        if p.graphs:
            p.graphs[-1].pop("open", None)
        p.graphs.append({"graph": next(kinds), "open": True})

    patches = [
        (common.AotAutograd, "__call__", "aot", None),
        (aot_autograd, "aot_stage1_graph_capture", "aot_joint", None),
        (graph_compile, "_aot_stage2a_partition", "aot_partition", None),
        (capture, "compile_graph", "irc", new_graph),
        (capture.FxImporter, "run", "import", None),
        (driver, "run_pipeline", "passes", None),
        (kernel_texts, "translate_function", "translate", None),
        (backend, "jit_kernel_texts", "llvm", None),
        (backend.LLVMBackend, "compile", "cpu_backend", None),
        (capture.CompiledGraph, "__call__", "run", None),
    ]
    model, batch = lm_batch(name)
    with contextlib.ExitStack() as stack:
        for owner, attr, phase, before in patches:
            if hasattr(owner, attr):  # older trees (for before/after comparisons)
                stack.enter_context(p.wrapped(owner, attr, phase, before))
        stack.enter_context(p.per_pass_timers())
        compiled = irc.compile(model, options=options)
        workers0, wall0 = _children_cpu(), time.perf_counter()
        t0 = clock()
        loss = lm_loss(compiled(**batch), batch["input_ids"])
        forward = clock() - t0
        irc_in_forward, fw_run = p.total["irc"], p.total["run"]
        t0 = clock()
        loss.backward()
        backward = clock() - t0
        wall, workers = time.perf_counter() - wall0, _children_cpu() - workers0
    t = p.total
    irc_in_backward = t["irc"] - irc_in_forward
    for g in p.graphs:
        g.pop("open", None)
        g["backend"] = g.get("cpu_backend", 0.0) - g.get("translate", 0.0) - g.get("llvm", 0.0)
        g["irc_other"] = g.get("irc", 0.0) - sum(g.get(k, 0.0) for k in
                                                 ("import", "passes", "cpu_backend"))
        g.pop("cpu_backend", None)
    result: dict[str, Any] = {
        "model": name, "clock": "cpu" if cpu else "wall", "first_step_s": forward + backward,
        "wall_s": wall, "worker_cpu_s": workers,
        "dynamo": forward - t["aot"] - fw_run,
        "aot_joint": t["aot_joint"], "aot_partition": t["aot_partition"],
        "aot_other": t["aot"] - t["aot_joint"] - t["aot_partition"] - irc_in_forward,
        "import": t["import"], "passes": t["passes"], "translate": t["translate"],
        "llvm": t["llvm"], "backend": t["cpu_backend"] - t["translate"] - t["llvm"],
        "irc_other": t["irc"] - t["import"] - t["passes"] - t["cpu_backend"],
        "fw_run": fw_run, "bw_run": backward - irc_in_backward,
    }
    # what ran in eager instead of compiled (a phase table of an eager graph is meaningless)
    stats: Any = getattr(compiled, "irc_stats")
    result["eager_ops"] = len(stats.eager_ops)
    result["graphs"] = [{k: round(v, 3) if isinstance(v, float) else v for k, v in g.items()}
                        for g in p.graphs]
    result["per_pass"] = {k: round(v, 3) for k, v in sorted(p.per_pass.items(), key=lambda kv: -kv[1])
                          if v >= 0.005}
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}


def inductor_first_step(name: str) -> dict[str, Any]:
    """Wall seconds of inductor's first training step of ``name`` (compiles
    the forward and the backward), for comparison."""
    import torch._inductor  # noqa: F401  (its import is not compile time)
    model, batch = lm_batch(name)
    compiled = torch.compile(model)
    t0 = time.perf_counter()
    lm_loss(compiled(**batch), batch["input_ids"]).backward()
    return {"model": name, "compiler": "inductor", "clock": "wall",
            "first_step_s": round(time.perf_counter() - t0, 3)}


def _parse_option(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("model", help="a zoo decoder (tests/zoo/models.py): gpt2, llama, ...")
    parser.add_argument("options", nargs="*", help="irc options as KEY=VALUE")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    parser.add_argument("--compiler", choices=("irc", "inductor"), default="irc",
                        help="inductor: its first step's wall time only")
    parser.add_argument("--cpu", action="store_true",
                        help="phases in this process's CPU seconds (steadier on a loaded machine; "
                             "LLVM workers' CPU is worker_cpu_s)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.compiler == "inductor":
        print(json.dumps({"part": "compile", **inductor_first_step(args.model)}), flush=True)
        return
    options = dict(_parse_option(o) for o in args.options) or None
    print(json.dumps({"part": "compile", "compiler": "irc", **profile(args.model, options, args.cpu)}),
          flush=True)


if __name__ == "__main__":
    main()
