"""Bisecting a model's migration to a backend: which kernel breaks it first?

A model is captured as ``irc.compile`` captures it (:mod:`irc.debug.capture`)
and each run calls the model itself, its graphs' kernels going to the target
or to eager (:class:`irc.debug.offload.ModelMigrator`); a Program runs as is.

Kernels are taken in the host schedule's order (a topological order). Step k
migrates the first k kernels to the target (the rest run in eager PyTorch).
Prefix 0 is the eager reference itself; if the full prefix n stays within
tolerance there is nothing to find. Otherwise a binary search finds the k
with prefix k-1 passing and prefix k failing: kernel k-1 is the culprit. It is
then migrated *alone* to confirm. Model runs used: 1 (reference) + 1 (all
migrated) + ceil(log2 n) (search) + 1 (confirmation). Finally each op of the
culprit is compiled alone on the tensors it saw (:mod:`irc.debug.narrow`), to
point at the op(s) that break.

The report names the kernel, its ops and their source lines, prints its IR
and (when the backend can show it) the code generated for it, and writes a
carved test case that reproduces it alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from xdsl.dialects import func

from irc.backends.base import BackendOptions
from irc.config import Config
from irc.debug.carve import (
    VALUE_OPS,
    CarvedCase,
    case_tolerance,
    hoist_nonfinite_constants,
    write_folder,
)
from irc.debug.carved_tests import compare_all
from irc.debug.narrow import narrow_kernel
from irc.debug.offload import KernelMigrator, ModelMigrator, migrator_for, standalone_kernel_module
from irc.debug.snippets import (
    body_ops,
    display_source,
    kernel_graph_module,
    source_of,
    source_text,
)
from irc.ir import graph as g
from irc.ir.kernel import find_main
from irc.ir.text import print_module


@dataclass
class BisectStep:
    """One model run: how many kernels were migrated and how far the output moved."""

    label: str
    migrated: list[str]
    max_abs: float
    max_rel: float
    passed: bool
    kernel_errors: dict[str, float] = field(default_factory=dict)
    error: str | None = None  # the target failed to compile or run a migrated kernel


@dataclass
class KernelOp:
    """An op of the culprit kernel; ``alone`` says whether it passed when
    compiled alone for the target (None for constants, which are not run)."""

    name: str
    source: str | None
    source_text: str | None
    alone: bool | None = None
    max_abs: float | None = None


@dataclass
class BisectReport:
    """The outcome of :func:`bisect` (render with ``to_text()`` / ``to_html()``)."""

    target: str
    kernels: list[str]
    rtol: float
    atol: float
    steps: list[BisectStep]
    model_runs: int
    culprit: str | None = None
    culprit_index: int | None = None
    culprit_ops: list[KernelOp] = field(default_factory=list)
    kernel_ir: str | None = None
    generated_code: str | None = None
    confirm: BisectStep | None = None
    case_dir: Path | None = None
    edges: list[tuple[str, str]] = field(default_factory=list)
    nodes: dict[str, str] = field(default_factory=dict)  # node -> label (kernels and extern ops)
    message: str = ""

    @property
    def sources(self) -> list[str]:
        return [op.source for op in self.culprit_ops if op.source]

    @property
    def failing_ops(self) -> list[KernelOp]:
        """The culprit kernel's ops that also fail when compiled alone."""
        return [op for op in self.culprit_ops if op.alone is False]

    def to_text(self) -> str:
        from irc.debug.report import text_report
        return text_report(self)

    def to_html(self) -> str:
        from irc.debug.report import html_report
        return html_report(self)


def _host_graph(module: Any, prefix: str = "") -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The host schedule as a dataflow graph over kernels and extern ops
    (extern nodes named with ``prefix``, to keep several graphs apart)."""
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    producer: dict[Any, str] = {}
    counter = 0
    for op in find_main(module).body.block.ops:
        if isinstance(op, (func.ReturnOp, g.WeightOp, g.ConstantOp)):
            continue
        if isinstance(op, func.CallOp):
            node = op.callee.string_value()
            nodes[node] = node
        else:
            node = f"{prefix}{op.name}#{counter}"
            nodes[node] = op.name.removeprefix("graph.")
        counter += 1
        for v in op.operands:
            edge = (producer.get(v, ""), node)
            if v in producer and edge not in seen:
                seen.add(edge)
                edges.append(edge)
        for r in op.results:
            producer[r] = node
    return nodes, edges


def _kernel_errors(record: dict[str, list[torch.Tensor]],
                   reference: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    errors: dict[str, float] = {}
    for name, outs in record.items():
        ref = reference.get(name, [])
        worst = 0.0
        for a, e in zip(outs, ref):
            if a.shape != e.shape:
                worst = math.inf
                continue
            if a.numel():
                d = (a.to(torch.float64) - e.to(torch.float64)).abs()
                d = torch.where(torch.isnan(a.to(torch.float64)) & torch.isnan(e.to(torch.float64)),
                                torch.zeros_like(d), d).nan_to_num(math.inf)
                worst = max(worst, float(d.max()))
        errors[name] = worst
    return errors


# Attributes under which a compiled executable may carry its generated code
# (the cpu backend's CPUExecutable has ``llvm_ir``).
CODE_ATTRIBUTES = ("llvm_ir", "triton_source", "source", "code")


def host_graph(migrator: KernelMigrator | ModelMigrator) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The host dataflow graph of every captured graph (kernel names are unique)."""
    parts = migrator.parts if isinstance(migrator, ModelMigrator) else [migrator]
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    for i, part in enumerate(parts):
        n, e = _host_graph(part.program.module, f"g{i}:" if len(parts) > 1 else "")
        nodes.update(n)
        edges += e
    return nodes, edges


def generated_code(migrator: KernelMigrator | ModelMigrator, kernel: str) -> str | None:
    """The code the target generated for one kernel, when the backend shows it:
    a ``generated_code(module)`` method of the backend, or a text attribute of
    the compiled kernel (:data:`CODE_ATTRIBUTES`). None otherwise."""
    backend = migrator.backend
    try:
        shower = getattr(backend, "generated_code", None)
        if callable(shower):
            module = standalone_kernel_module(migrator.kernels[kernel], backend.level, migrator.config)
            return str(shower(module))
        executable = migrator.compiled(kernel)
        for attr in CODE_ATTRIBUTES:
            text = getattr(executable, attr, None)
            if isinstance(text, str) and text.strip():
                return text
    except Exception as err:  # noqa: BLE001 - the report goes on without generated code
        return f"(could not show generated code: {type(err).__name__}: {err})"
    return None


def bisect(model_or_program: object, inputs: Sequence[Any] | Mapping[str, Any], target: str,
           rtol: float = 1e-4, atol: float = 1e-5, case_dir: str | Path | None = None,
           options: Mapping[str, Any] | BackendOptions | Config | None = None) -> BisectReport:
    """Find the first kernel (in schedule order) whose migration to ``target``
    makes the model's output leave ``rtol``/``atol``; see the module docstring.

    ``model_or_program``: a Program (run on ``inputs``), or a model or function
    captured as ``irc.compile`` captures it (dynamo + AOTAutograd) and called
    with ``inputs`` (a sequence of positional arguments, or a mapping of
    keyword arguments)."""
    migrator, inputs = migrator_for(model_or_program, inputs, target, options)
    order = migrator.order
    nodes, edges = host_graph(migrator)
    report = BisectReport(target, order, rtol, atol, [], 0, nodes=nodes, edges=edges)

    reference_record: dict[str, list[torch.Tensor]] = {}
    reference_inputs: dict[str, list[torch.Tensor]] = {}
    expected = migrator.run(inputs, set(), reference_record, reference_inputs)
    report.steps.append(BisectStep("eager reference", [], 0.0, 0.0, True))

    def step(label: str, migrated: list[str]) -> BisectStep:
        record: dict[str, list[torch.Tensor]] = {}
        error = None
        try:
            outputs = migrator.run(inputs, set(migrated), record)
            ok, max_abs, max_rel, _ = compare_all(outputs, expected, rtol, atol)
        except Exception as err:  # noqa: BLE001 - a kernel the target cannot compile or run fails too
            ok, max_abs, max_rel = False, math.inf, math.inf
            error = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        s = BisectStep(label, migrated, max_abs, max_rel, ok, _kernel_errors(record, reference_record),
                       error)
        report.steps.append(s)
        return s

    if not order:
        report.message = "the program has no kernels to migrate"
        report.model_runs = migrator.runs
        return report
    if step(f"all {len(order)} kernels migrated", order).passed:
        report.message = f"all {len(order)} kernels run on '{target}' within tolerance"
        report.model_runs = migrator.runs
        return report

    lo, hi = 0, len(order)  # prefix lo passes, prefix hi fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if step(f"first {mid} kernels migrated", order[:mid]).passed:
            lo = mid
        else:
            hi = mid
    culprit = order[hi - 1]
    report.culprit, report.culprit_index = culprit, hi - 1
    report.confirm = step(f"only {culprit} migrated", [culprit])
    fn = migrator.kernels[culprit]
    verdicts = iter(narrow_kernel(migrator, culprit, reference_inputs[culprit]))
    op_cases: list[CarvedCase] = []
    for op in body_ops(fn):
        item = KernelOp(op.name, source_of(op), source_text(source_of(op)))
        if not isinstance(op, VALUE_OPS):
            verdict = next(verdicts)
            item.alone, item.max_abs = verdict.passed, verdict.max_abs
            if not verdict.passed:
                op_cases.append(verdict.case)
        report.culprit_ops.append(item)
    report.kernel_ir = print_module(fn)
    report.generated_code = generated_code(migrator, culprit)
    confirmed = "confirmed" if not report.confirm.passed else \
        "NOT reproduced alone: it fails only together with the kernels before it"
    report.message = (f"first failing kernel: {culprit} (#{hi - 1} of {len(order)}); "
                      f"migrating it alone {confirmed}")
    if report.failing_ops:
        report.message += "; failing alone: " + ", ".join(
            f"{op.name} at {display_source(op.source)}" for op in report.failing_ops)
    if case_dir is not None:
        report.case_dir = _write_culprit_case(migrator, culprit, reference_inputs,
                                              reference_record, op_cases, case_dir)
    report.model_runs = migrator.runs
    return report


def _write_culprit_case(migrator: KernelMigrator | ModelMigrator, culprit: str,
                        reference_inputs: dict[str, list[torch.Tensor]],
                        reference_outputs: dict[str, list[torch.Tensor]],
                        op_cases: list[CarvedCase], case_dir: str | Path) -> Path:
    """A carved folder reproducing the culprit kernel alone, on the real
    tensors it saw in the eager reference run, plus each of its ops that
    fails alone."""
    fn = migrator.kernels[culprit]
    inputs = reference_inputs[culprit]
    outputs = [t.detach().clone().contiguous() for t in reference_outputs[culprit]]
    ops = body_ops(fn)
    rtol, atol = case_tolerance(ops, inputs, outputs)
    wheres = [w for w in (source_of(op) for op in ops if not isinstance(op, VALUE_OPS)) if w]
    module, inputs = hoist_nonfinite_constants(kernel_graph_module(fn), list(inputs))
    case = CarvedCase(id=f"0000_{culprit}", op=culprit, module=module,
                      inputs=inputs, outputs=outputs, source=wheres[0] if wheres else None,
                      sources=list(dict.fromkeys(wheres)), rtol=rtol, atol=atol,
                      ops=[op.name for op in ops])
    write_folder([case, *op_cases], case_dir, f"bisect culprit {culprit}", level="kernel")
    return Path(case_dir)
