"""``irc.profile``: where a compiled model's time goes, kernel by kernel.

    report = irc.profile(model, x)              # compiles, warms up, runs 20 times
    print(report.table())                       # per kernel / library call
    report.write_trace("trace.json")            # open in https://ui.perfetto.dev

:func:`profile` compiles ``model`` for the ``cpu`` target exactly as
:func:`irc.compile` does (same capture, pipeline and backend), then wraps each
compiled graph's :class:`~irc.backends.llvm.runtime.HostProgram` in a
recorder. The recorder runs the program's own steps through
:meth:`HostProgram.run` with a timed copy of the step list (each entry calls
the original step between two clock reads); the program itself is not
changed, so a model compiled by :func:`irc.compile` pays nothing for this.

The report gives, per step of the host schedule (a native kernel or a library
call), the median time over the runs, its share of the median time of a whole
model call, the bytes it must move and the FLOPs it does
(:mod:`irc.profile_cost`, from the IR) as GB/s and GFLOP/s, both also as a
fraction of this machine's measured copy bandwidth and matmul peak
(:mod:`irc.profile_machine`), and the user's source line. What is left of a
call once the steps are taken out is host time: Python stepping through the
schedule, input checks, dynamo's guards, pieces that run in eager PyTorch;
``gap_seconds`` is the median time between the end of one step and the start
of the next. The Chrome trace holds the run closest to the median: one
``"ph": "X"`` event per step.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from irc.errors import IrcError
from irc.profile_cost import StepCost, step_cost
from irc.profile_machine import MachinePeaks, machine_peaks


@dataclass(frozen=True)
class StepProfile:
    """One step of a compiled graph's host schedule, measured."""

    graph: int
    """Which compiled graph (in the order dynamo compiled them)."""
    index: int
    """Position of the step in that graph's schedule."""
    cost: StepCost
    seconds: float
    """Median time of the step over the runs."""
    share: float
    """``seconds`` over the median time of a whole model call."""
    gbps: float
    gflops: float

    @property
    def label(self) -> str:
        return f"g{self.graph}.{self.cost.name}" if self.graph else self.cost.name


@dataclass
class ProfileReport:
    """What :func:`profile` measured (see the module docstring)."""

    name: str
    steps: list[StepProfile]
    total_seconds: float
    """Median time of one model call."""
    host_seconds: float
    """Median per call of the time not in steps: :attr:`outside_seconds` plus, per
    run, the schedules' own time between their steps."""
    gap_seconds: float
    """Median time between two consecutive steps of one schedule."""
    outside_seconds: float
    """Median time of a call outside the compiled schedules (dynamo's guards,
    AOTAutograd's wrappers, input checks, eager pieces)."""
    peaks: MachinePeaks
    runs: int
    compile_seconds: float
    """Time of the first call (capture, compile, first run)."""
    trace: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def host_share(self) -> float:
        return self.host_seconds / self.total_seconds if self.total_seconds > 0 else 0.0

    def kernels(self) -> list[StepProfile]:
        return [s for s in self.steps if s.cost.kind == "kernel"]

    def library_calls(self) -> list[StepProfile]:
        return [s for s in self.steps if s.cost.kind == "library"]

    def table(self, top: int | None = None) -> str:
        """The report as text, slowest steps first (``top``: only that many)."""
        p = self.peaks
        lines = [f"irc profile: {self.name}: {self.runs} runs, median {_ms(self.total_seconds)} "
                 f"per call, {len(self.steps)} steps (first call, compiling: "
                 f"{self.compile_seconds:.2f} s)",
                 f"machine: copy {p.copy_gbps:.1f} GB/s, matmul {p.matmul_gflops:.1f} GFLOP/s "
                 f"({p.threads} threads)",
                 f"{'time':>9} {'share':>6} {'kind':<8} {'name':<22} {'MB':>7} {'GB/s':>7} "
                 f"{'%bw':>4} {'MFLOP':>8} {'GFLOP/s':>8} {'%mm':>4}  source"]
        ordered = sorted(self.steps, key=lambda s: -s.seconds)
        shown = ordered if top is None else ordered[:top]
        for s in shown:
            c = s.cost
            where = f"{_short(c.source)}  {c.source_text[:60]}" if c.source else ""
            lines.append(f"{_ms(s.seconds):>9} {s.share:6.1%} {c.kind:<8} {s.label:<22.22} "
                         f"{c.bytes / 1e6:7.3f} {s.gbps:7.1f} {s.gbps / p.copy_gbps:4.0%} "
                         f"{c.flops / 1e6:8.2f} {s.gflops:8.2f} "
                         f"{s.gflops / p.matmul_gflops:4.0%}  {where}")
        rest = ordered[len(shown):]
        if rest:
            lines.append(f"{_ms(sum(s.seconds for s in rest)):>9} "
                         f"{sum(s.share for s in rest):6.1%} ({len(rest)} more steps)")
        lines.append(f"{_ms(self.host_seconds):>9} {self.host_share:6.1%} host     "
                     f"{_ms(self.outside_seconds)} outside the schedule (guards, wrappers, input "
                     f"checks, eager pieces), {self.gap_seconds * 1e6:.1f} us between steps")
        return "\n".join(lines)

    def write_trace(self, path: str | os.PathLike[str]) -> None:
        """Write the Chrome-trace JSON (temp file + rename)."""
        target = Path(path)
        fd, tmp = tempfile.mkstemp(dir=target.parent or Path("."), prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.trace, f)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}ms"


def _short(source: str) -> str:
    file, _, line = source.rpartition(":")
    return f"{Path(file).name}:{line}"


class _Recorder:
    """Stands in for a HostProgram: calls it as is, or, while ``recording``,
    through :meth:`HostProgram.run` with timed steps, keeping each call's
    (starts, ends) in ``calls``."""

    def __init__(self, program: Any) -> None:
        self.program = program
        n = len(program.steps)
        self.starts = [0] * n
        self.ends = [0] * n
        self.timed = [self._timed(i, s) for i, s in enumerate(program.steps)]
        self.calls: list[tuple[list[int], list[int]]] = []
        self.recording = False

    def _timed(self, i: int, step: Callable[[list], None]) -> Callable[[list], None]:
        starts, ends, clock = self.starts, self.ends, time.perf_counter_ns

        def timed(env: list) -> None:
            starts[i] = clock()
            step(env)
            ends[i] = clock()
        return timed

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        if not self.recording:
            return self.program(*inputs)
        outputs = self.program.run(inputs, self.timed)
        self.calls.append((self.starts.copy(), self.ends.copy()))
        return outputs

    def __getattr__(self, name: str) -> Any:
        return getattr(self.program, name)


def _attach(runner: Any, recorders: list[_Recorder]) -> None:
    """Wrap the HostProgram of each compiled graph behind ``runner``."""
    from irc.backends.llvm.runtime import HostProgram
    from irc.frontends.capture import CompiledGraph
    runner = getattr(runner, "irc_inner", runner)  # behind a graph's input-mutation copies
    graphs = [runner] if isinstance(runner, CompiledGraph) else list(getattr(runner, "pieces", []))
    for graph in graphs:
        executable = graph.executable
        # the driver may wrap the backend's executable (_CopyAliasedOutputs):
        # the recorder goes where the backend's executable holds its program
        inner = getattr(executable, "_inner", executable)
        program = getattr(inner, "program", None)
        if not isinstance(program, HostProgram):
            raise IrcError(f"irc profile: a compiled graph has no CPU host program "
                           f"({type(inner).__name__}); only target 'cpu' can be profiled")
        recorder = _Recorder(program)
        inner.program = recorder
        recorders.append(recorder)


def _compile(model: Any, options: Mapping[str, Any] | None, strict: bool,
             recorders: list[_Recorder]) -> Callable[..., Any]:
    """``model`` compiled as :func:`irc.compile` does, with recorders attached."""
    from irc.api import _entry_frame
    from irc.driver import check_target
    from irc.errors import unwrapping_irc_errors
    from irc.frontends.capture import make_dynamo_backend
    config = check_target("cpu", options)
    backend = make_dynamo_backend("cpu", config, strict,
                                  on_compiled=lambda runner: _attach(runner, recorders))
    call = model._call_impl if isinstance(model, torch.nn.Module) else model
    if not callable(call):
        raise IrcError(f"irc profile needs an nn.Module or a function, got {type(model).__name__}")
    return unwrapping_irc_errors(torch.compile(_entry_frame(call), backend=backend, dynamic=False))


def profile(model: Any, *inputs: Any, kwargs: Mapping[str, Any] | None = None, runs: int = 20,
            warmup: int = 3, options: Mapping[str, Any] | None = None, strict: bool = False,
            name: str | None = None, peaks: MachinePeaks | None = None) -> ProfileReport:
    """Compile ``model`` for the CPU, call it ``warmup`` times, then ``runs``
    times timing every step; ``model(*inputs, **kwargs)`` is the call.
    Runs under ``torch.no_grad()`` (inference). ``peaks``: the machine's rates
    to compare with (default: measured once, kept in the compile cache)."""
    if runs < 1 or warmup < 0:
        raise IrcError(f"irc profile: runs must be >= 1 and warmup >= 0, got {runs}, {warmup}")
    kwargs = dict(kwargs or {})
    recorders: list[_Recorder] = []
    compiled = _compile(model, options, strict, recorders)
    clock = time.perf_counter_ns
    with torch.no_grad():
        t0 = clock()
        compiled(*inputs, **kwargs)
        compile_seconds = (clock() - t0) / 1e9
        for _ in range(warmup):
            compiled(*inputs, **kwargs)
        for r in recorders:
            r.recording = True
        spans: list[tuple[int, int, list[int]]] = []  # (start, end, calls per recorder before)
        for _ in range(runs):
            before = [len(r.calls) for r in recorders]
            start = clock()
            compiled(*inputs, **kwargs)
            spans.append((start, clock(), before))
        for r in recorders:
            r.recording = False
    if peaks is None:
        peaks = machine_peaks()
    return _report(name or _name_of(model), recorders, spans, peaks, compile_seconds)


def _name_of(model: Any) -> str:
    return type(model).__name__ if isinstance(model, torch.nn.Module) else \
        getattr(model, "__name__", type(model).__name__)


def _report(name: str, recorders: Sequence[_Recorder], spans: list[tuple[int, int, list[int]]],
            peaks: MachinePeaks, compile_seconds: float) -> ProfileReport:
    runs = len(spans)
    totals = [(end - start) / 1e9 for start, end, _ in spans]
    total = statistics.median(totals)
    # per step: its time summed over the calls of one run (a graph may be called
    # more than once per model call), median over runs
    steps: list[StepProfile] = []
    gaps: list[float] = []
    inside = [0.0] * runs  # wall time within the schedules, per run
    stepped = [0.0] * runs  # ... of it in steps
    for gi, r in enumerate(recorders):
        program = r.program
        kernels = program.functions
        per_run: list[list[float]] = [[0.0] * len(r.timed) for _ in range(runs)]
        for run, (_, _, before) in enumerate(spans):
            after = spans[run + 1][2][gi] if run + 1 < runs else len(r.calls)
            for starts, ends in r.calls[before[gi]:after]:
                for i in range(len(starts)):
                    per_run[run][i] += (ends[i] - starts[i]) / 1e9
                if starts:
                    inside[run] += (ends[-1] - starts[0]) / 1e9
                gaps.extend((starts[i + 1] - ends[i]) / 1e9 for i in range(len(starts) - 1))
        for run in range(runs):
            stepped[run] += sum(per_run[run])
        for i, op in enumerate(program.step_ops):
            seconds = statistics.median(times[i] for times in per_run)
            cost = step_cost(op, kernels)
            steps.append(StepProfile(
                graph=gi, index=i, cost=cost, seconds=seconds,
                share=seconds / total if total > 0 else 0.0,
                gbps=cost.bytes / seconds / 1e9 if seconds > 0 else 0.0,
                gflops=cost.flops / seconds / 1e9 if seconds > 0 else 0.0))
    # per run, not total - sum of per-step medians: on a busy machine each
    # step's tail (preemption) lands in some runs only, and a sum of medians
    # would book all of it as host time
    outside = max(total - statistics.median(inside), 0.0)
    between = statistics.median(max(i - t, 0.0) for i, t in zip(inside, stepped))
    host = outside + between
    gap = statistics.median(gaps) if gaps else 0.0
    median_run = min(range(runs), key=lambda k: abs(totals[k] - total))
    trace = _trace(name, recorders, spans, median_run, steps)
    return ProfileReport(name, steps, total, host, gap, outside, peaks, runs, compile_seconds,
                         trace)


def _trace(name: str, recorders: Sequence[_Recorder], spans: list[tuple[int, int, list[int]]],
           run: int, steps: list[StepProfile]) -> dict[str, Any]:
    """Chrome-trace JSON of one run: one complete ("X") event per step."""
    start, _, before = spans[run]
    by_key = {(s.graph, s.index): s for s in steps}
    events: list[dict[str, Any]] = [
        {"ph": "M", "pid": 1, "tid": 1, "name": "process_name", "args": {"name": f"irc {name}"}},
        {"ph": "M", "pid": 1, "tid": 1, "name": "thread_name", "args": {"name": "host schedule"}},
    ]
    for gi, r in enumerate(recorders):
        after = spans[run + 1][2][gi] if run + 1 < len(spans) else len(r.calls)
        for starts, ends in r.calls[before[gi]:after]:
            for i in range(len(starts)):
                s = by_key[(gi, i)]
                events.append({
                    "ph": "X", "pid": 1, "tid": 1, "name": s.label, "cat": s.cost.kind,
                    "ts": (starts[i] - start) / 1e3, "dur": (ends[i] - starts[i]) / 1e3,
                    "args": {"bytes": s.cost.bytes, "flops": s.cost.flops,
                             "source": s.cost.source, "code": s.cost.source_text}})
    return {"traceEvents": events, "displayTimeUnit": "ms"}


__all__ = ["ProfileReport", "StepProfile", "profile"]
