"""Carving: per-operator (or per-kernel) tests cut from one real run of a model.

:func:`carve` captures a model as ``irc.compile`` does (dynamo + AOTAutograd,
:mod:`irc.debug.capture`: the graphs that really run, parameters as inputs),
runs each captured graph once with the reference interpreter
(eager torch semantics, op by op) and records, for every op of the graph-level
module, the real tensors that went in and came out. Each distinct op
(same name, properties, operand types) becomes one case: a standalone
``.mlir`` module holding just that op, a ``.safetensors`` file with its inputs
(``in0..``) and outputs (``out0..``), its source line and a tolerance. The
folder is self-contained: ``manifest.json`` lists every file with its sha256,
and ``test_carved.py`` + ``conftest.py`` run it under pytest
(``pytest DIR --target cpu`` or ``IRC_TARGET=cpu pytest DIR``).

With ``level="kernel"`` the module is first lowered to the kernel level (the
graph pipeline + ``fuse``) and each fused kernel becomes a case instead.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from xdsl.dialects import func
from xdsl.dialects.builtin import FunctionType, ModuleOp
from xdsl.ir import Operation

from irc.debug.snippets import (
    body_ops,
    is_kernel,
    kernel_graph_module,
    op_module,
    source_of,
    source_text,
)
from irc.errors import IrcError
from irc.ir.kernel import find_main
from irc.frontends.program import Program
from irc.ir import graph as g
from irc.ir.interpreter import Interpreter, dense_to_tensor
from irc.ir.text import print_module
from irc.ir.types import numel, shape_of

FORMAT = "irc-carved"
FORMAT_VERSION = 1

# Ops whose result rounds a transcendental function: a likely place for a
# backend's approximation to drift (ranked higher by --max-cases).
TRANSCENDENTAL = {
    "graph.exp", "graph.exp2", "graph.log", "graph.log2", "graph.log1p", "graph.expm1",
    "graph.sqrt", "graph.rsqrt", "graph.sin", "graph.cos", "graph.tan", "graph.tanh",
    "graph.sigmoid", "graph.erf", "graph.gelu", "graph.silu", "graph.pow", "graph.atan2",
    "graph.div", "graph.reciprocal",
}
VALUE_OPS = (g.WeightOp, g.ConstantOp)  # values, not computations: nothing to test alone


@dataclass
class CarvedCase:
    """One standalone test: a module, the real tensors at its boundary, where it came from."""

    id: str
    op: str
    module: ModuleOp
    inputs: list[torch.Tensor]
    outputs: list[torch.Tensor]
    source: str | None = None
    sources: list[str] = field(default_factory=list)
    occurrences: int = 1
    risk: float = 0.0
    rtol: float = 0.0
    atol: float = 0.0
    ops: list[str] = field(default_factory=list)

    @property
    def source_text(self) -> str | None:
        return source_text(self.source)


@dataclass
class CarveResult:
    """What :func:`carve` wrote: the folder, the manifest, the cases kept."""

    out_dir: Path
    manifest_path: Path
    model_name: str
    level: str
    cases: list[CarvedCase]
    ops_seen: int
    unique_cases: int

    def summary(self) -> str:
        unit = "op" if self.level == "graph" else "kernel"
        return (f"carved {len(self.cases)} case(s) from {self.ops_seen} {unit} execution(s) of "
                f"{self.model_name} ({self.unique_cases} distinct) into {self.out_dir}")


# ----------------------------------------------------------------------------
# risk and tolerance


def reduction_size(op: Operation, inputs: Sequence[torch.Tensor]) -> int:
    """How many terms each output element accumulates (1 for elementwise ops)."""
    if isinstance(op, g.ReduceOp) and inputs:
        out = numel(shape_of(op.results[0].type))
        return max(1, inputs[0].numel() // max(out, 1))
    if isinstance(op, g.MatmulOp):
        return int(shape_of(op.lhs.type)[-1])
    if isinstance(op, g.ConvOp):
        w = shape_of(op.weight.type)
        return int(math.prod(w[1:]))
    if isinstance(op, (g.AvgPoolOp, g.AdaptiveAvgPoolOp)) and inputs:
        return max(1, inputs[0].numel() // max(numel(shape_of(op.results[0].type)), 1))
    return 1


def op_risk(op: Operation, inputs: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor]) -> float:
    """A score of how likely a backend gets this op numerically wrong: long
    reductions, many elements, half precision and transcendental functions."""
    size = sum(t.numel() for t in outputs)
    score = math.log2(size + 1) + 2.0 * math.log2(reduction_size(op, inputs))
    dtypes = {t.dtype for t in (*inputs, *outputs)}
    if dtypes & {torch.float16, torch.bfloat16}:
        score += 6.0
    if op.name in TRANSCENDENTAL:
        score += 4.0
    return score


def tolerance(dtype: torch.dtype, terms: int, scale: float) -> tuple[float, float]:
    """(rtol, atol) for comparing a backend's output of ``dtype`` with the
    recorded one: exact for integers and bool; for floats the dtype's usual
    tolerance, with atol growing like sqrt(terms) * input magnitude for reductions."""
    if not dtype.is_floating_point:
        return 0.0, 0.0
    rtol, atol = {torch.float64: (1e-7, 1e-9), torch.float32: (1e-4, 1e-5),
                  torch.float16: (1e-2, 1e-3), torch.bfloat16: (2e-2, 1e-2)}.get(dtype, (1e-4, 1e-5))
    return rtol, atol * max(1.0, math.sqrt(terms)) * max(1.0, scale)


def _input_scale(inputs: Sequence[torch.Tensor]) -> float:
    scale = 0.0
    for t in inputs:
        if t.is_floating_point() and t.numel():
            finite = t[torch.isfinite(t)]
            if finite.numel():
                scale = max(scale, float(finite.abs().max()))
    return scale


def case_tolerance(ops: Sequence[Operation], inputs: Sequence[torch.Tensor],
                    outputs: Sequence[torch.Tensor]) -> tuple[float, float]:
    terms = 1
    for op in ops:
        terms = max(terms, reduction_size(op, inputs))
    rtol = atol = 0.0
    for out in outputs:
        r, a = tolerance(out.dtype, terms, _input_scale(inputs))
        rtol, atol = max(rtol, r), max(atol, a)
    return rtol, atol


# ----------------------------------------------------------------------------
# recording one run


class RecordingInterpreter(Interpreter):
    """The reference interpreter, noting each op's (or kernel call's) tensors."""

    def __init__(self, module: ModuleOp, weights: Mapping[str, torch.Tensor], kernels: bool) -> None:
        super().__init__(module, weights)
        self.kernels = kernels
        self.depth = 0
        self.records: list[tuple[Operation, list[torch.Tensor], list[torch.Tensor]]] = []

    def call(self, fn: func.FuncOp, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        self.depth += 1
        try:
            outputs = super().call(fn, inputs)
        finally:
            self.depth -= 1
        if self.kernels and is_kernel(fn):
            self.records.append((fn, list(inputs), list(outputs)))
        return outputs

    def execute(self, op: Operation, args: list[torch.Tensor]) -> torch.Tensor:
        result = super().execute(op, args)
        if not self.kernels and self.depth == 1 and not isinstance(op, VALUE_OPS):
            self.records.append((op, list(args), [result]))
        return result


def _snapshot(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu").clone().contiguous()


def _op_key(op: Operation) -> tuple:
    props = tuple(sorted((k, str(v)) for k, v in op.properties.items()))
    return (op.name, props, tuple(str(v.type) for v in op.operands),
            tuple(str(r.type) for r in op.results))


def op_case(op: Operation, args: Sequence[torch.Tensor], results: Sequence[torch.Tensor]) -> CarvedCase:
    """One op, cut out with the real tensors it consumed and produced (id unset)."""
    module, operands = op_module(op)
    arg_of = dict(zip(op.operands, args))
    case_inputs = [_snapshot(arg_of[v]) for v in operands]
    case_outputs = [_snapshot(r) for r in results]
    rtol, atol = case_tolerance([op], case_inputs, case_outputs)
    where = source_of(op)
    return CarvedCase(id="", op=op.name, module=module, inputs=case_inputs, outputs=case_outputs,
                      source=where, sources=[where] if where else [],
                      risk=op_risk(op, case_inputs, case_outputs), rtol=rtol, atol=atol,
                      ops=[op.name])


def record_op_cases(program: Program, inputs: Sequence[torch.Tensor],
                    by_key: dict[tuple, CarvedCase] | None = None) -> tuple[list[CarvedCase], int]:
    """Run a graph-level program once; one case per distinct op, in program order
    (``by_key``: cases already carved from other graphs of the model, extended
    in place). Returns the cases and how many op executions were seen."""
    interp = RecordingInterpreter(program.module, program.weights, kernels=False)
    with torch.no_grad():
        interp.run(list(inputs))
    by_key = {} if by_key is None else by_key
    for op, args, results in interp.records:
        key = _op_key(op)
        where = source_of(op)
        if key in by_key:
            case = by_key[key]
            case.occurrences += 1
            if where and where not in case.sources:
                case.sources.append(where)
            continue
        by_key[key] = op_case(op, args, results)
    return _number(list(by_key.values())), len(interp.records)


def hoist_nonfinite_constants(module: ModuleOp,
                              inputs: list[torch.Tensor]) -> tuple[ModuleOp, list[torch.Tensor]]:
    """Turn ``graph.constant`` ops holding NaN/inf into extra ``@main`` inputs.

    xDSL prints such values as hex bit patterns (``dense<0xff800000>`` for
    -inf) but its parser reads a hex literal back as an integer *value*, so a
    written case would not mean what ran. Passing them as recorded tensors
    keeps the .mlir file faithful (constants as inputs, like op cases)."""
    main = find_main(module)
    block = main.body.block
    extra: list[torch.Tensor] = []
    for op in list(block.ops):
        if isinstance(op, g.ConstantOp):
            value = dense_to_tensor(op.value)
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                arg = block.insert_arg(op.result.type, len(block.args))
                op.result.replace_all_uses_with(arg)
                op.detach()
                op.erase()
                extra.append(value)
    if extra:
        main.function_type = FunctionType.from_lists([a.type for a in block.args],
                                                     list(main.function_type.outputs))
    return module, [*inputs, *extra]


def record_kernel_cases(program: Program, inputs: Sequence[torch.Tensor],
                        by_key: dict[str, CarvedCase] | None = None) -> tuple[list[CarvedCase], int]:
    """Run a kernel-level program once; one case per distinct kernel (its body
    as a graph-level ``@main``), in schedule order (``by_key`` as in
    :func:`record_op_cases`)."""
    interp = RecordingInterpreter(program.module, program.weights, kernels=True)
    with torch.no_grad():
        interp.run(list(inputs))
    by_key = {} if by_key is None else by_key
    for fn, args, results in interp.records:
        assert isinstance(fn, func.FuncOp)
        module = kernel_graph_module(fn)
        key = print_module(module, locations=False)
        ops = body_ops(fn)
        wheres = [w for w in (source_of(op) for op in ops if not isinstance(op, VALUE_OPS)) if w]
        if key in by_key:
            by_key[key].occurrences += 1
            continue
        module, case_inputs = hoist_nonfinite_constants(module, [_snapshot(a) for a in args])
        case_outputs = [_snapshot(r) for r in results]
        rtol, atol = case_tolerance(ops, case_inputs, case_outputs)
        risk = max((op_risk(op, case_inputs, case_outputs) for op in ops), default=0.0)
        by_key[key] = CarvedCase(
            id="", op=fn.sym_name.data, module=module, inputs=case_inputs, outputs=case_outputs,
            source=wheres[0] if wheres else None, sources=list(dict.fromkeys(wheres)),
            risk=risk + math.log2(len(ops) + 1), rtol=rtol, atol=atol, ops=[op.name for op in ops])
    return _number(list(by_key.values())), len(interp.records)


def _number(cases: list[CarvedCase]) -> list[CarvedCase]:
    for i, case in enumerate(cases):
        case.id = f"{i:04d}_{case.op.split('.')[-1]}"
    return cases


def select_cases(cases: list[CarvedCase], max_cases: int | None) -> list[CarvedCase]:
    """The ``max_cases`` highest-risk cases, kept in program order."""
    if max_cases is None or max_cases >= len(cases):
        return cases
    if max_cases < 0:
        raise IrcError(f"--max-cases must be >= 0, got {max_cases}")
    ranked = sorted(range(len(cases)), key=lambda i: (-cases[i].risk, i))[:max_cases]
    return [cases[i] for i in sorted(ranked)]


# ----------------------------------------------------------------------------
# writing the folder


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_case(case: CarvedCase, cases_dir: Path) -> dict:
    """Write one case's ``.mlir`` and ``.safetensors``; return its manifest entry."""
    ir_path = cases_dir / f"{case.id}.mlir"
    tensor_path = cases_dir / f"{case.id}.safetensors"
    header = f"// irc carved case {case.id}: {case.op}" + (f" at {case.source}" if case.source else "")
    ir_path.write_text(header + "\n" + print_module(case.module))
    tensors = {f"in{i}": t for i, t in enumerate(case.inputs)}
    tensors.update({f"out{i}": t for i, t in enumerate(case.outputs)})
    save_file(tensors, str(tensor_path), metadata={"case": case.id, "op": case.op})
    return {
        "id": case.id, "op": case.op, "ops": case.ops, "source": case.source,
        "source_text": case.source_text, "also_at": case.sources[1:],
        "occurrences": case.occurrences, "risk": round(case.risk, 3),
        "ir": f"cases/{ir_path.name}", "tensors": f"cases/{tensor_path.name}",
        "sha256": {"ir": sha256_of(ir_path), "tensors": sha256_of(tensor_path)},
        "inputs": len(case.inputs), "outputs": len(case.outputs),
        "tolerance": {"rtol": case.rtol, "atol": case.atol},
    }


def write_folder(cases: Sequence[CarvedCase], out_dir: str | Path, model_name: str,
                 level: str = "graph") -> Path:
    """Write a self-contained carved-test folder; returns the manifest's path."""
    out = Path(out_dir)
    cases_dir = out / "cases"
    try:
        cases_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise IrcError(f"cannot create carve folder {out}: {err.strerror}") from None
    entries = [write_case(c, cases_dir) for c in cases]
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "model": model_name, "level": level,
                "torch": torch.__version__, "cases": entries}
    manifest_path = out / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    from irc.debug.carved_tests import CONFTEST_SOURCE, TEST_FILE_SOURCE
    (out / "test_carved.py").write_text(TEST_FILE_SOURCE)
    (out / "conftest.py").write_text(CONFTEST_SOURCE)
    return manifest_path


# ----------------------------------------------------------------------------
# the entry point


def captured_programs(model: object, example_inputs: Sequence[Any] | Mapping[str, Any]
                      ) -> list[tuple[Program, list[torch.Tensor]]]:
    """The graph-level programs a model runs, each with the real tensors it
    received: a Program as is, else every graph dynamo + AOTAutograd capture
    (the graphs ``irc.compile`` lowers; parameters are ``@main`` arguments)."""
    if isinstance(model, Program):
        if isinstance(example_inputs, Mapping):
            raise IrcError("a Program takes its inputs as a sequence, in @main's order")
        return [(model, list(example_inputs))]
    if not callable(model):
        raise IrcError(f"cannot carve a {type(model).__name__}: give a model, a function "
                       f"or an irc Program")
    from irc.debug.capture import capture_model
    capture = capture_model(model, example_inputs)
    return [(graph.program, graph.inputs) for graph in capture.graphs]


def carve(model: object, example_inputs: Sequence[Any] | Mapping[str, Any], out_dir: str | Path,
          max_cases: int | None = None, level: str = "graph",
          model_name: str | None = None) -> CarveResult:
    """Carve per-op (``level="graph"``) or per-kernel (``level="kernel"``) test
    cases from one eager run of ``model`` on ``example_inputs`` (positional
    arguments, or a mapping of keyword arguments) into ``out_dir``."""
    if level not in ("graph", "kernel"):
        raise IrcError(f"carve level must be 'graph' or 'kernel', got '{level}'")
    programs = captured_programs(model, example_inputs)
    name = model_name or type(model).__name__
    seen = 0
    by_key: dict = {}
    cases: list[CarvedCase] = []
    for program, inputs in programs:
        if level == "kernel":
            from irc.debug.offload import lower_to_kernels
            cases, n = record_kernel_cases(lower_to_kernels(program), inputs, by_key)
        else:
            find_main(program.module)  # a clear error if there is no @main
            cases, n = record_op_cases(program, inputs, by_key)
        seen += n
    kept = select_cases(cases, max_cases)
    manifest = write_folder(kept, out_dir, name, level)
    return CarveResult(Path(out_dir), manifest, name, level, kept, seen, len(cases))
