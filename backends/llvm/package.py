"""The CPU backend's half of ``irc.export``: a lowered module -> package parts.

:func:`package_parts` takes a loops-level module (what ``LLVMBackend.compile``
received) and gives what :mod:`irc.export` writes into a package:

* ``objects``: the object code of every distinct kernel, exactly the entries
  the compile cache holds (:func:`irc.backends.llvm.jit.kernel_objects`: one
  position-independent object per kernel, keyed on its LLVM IR), plus one per
  ``graph.quantized_matmul`` shape; :func:`link_shared_library` links them with
  ``cc -shared`` into one library, with a small C shim defining the OpenMP
  entry points the code calls (a team of one until the loader points them at
  an OpenMP runtime: ``irc_set_openmp``);
* ``schedule``: ``@main`` as JSON (format ``irc-schedule``, see
  :mod:`irc.loader_runtime`, which runs it with torch and ctypes only): a value
  table (dtype and shape per slot), the arena size and the planned offsets
  (:func:`irc.passes.memory_plan.plan_memory`), weight reads, constants,
  weight-derived steps and per-call steps. Each step is a kernel launch (its
  symbol, argument slots, parallel trip count), a view, or a library call
  named by its graph op with its properties as plain JSON;
* ``tensors``: the weights (quantized ones included) and constants, by name.

Nothing here runs a model; the schedule is a faithful transcription of the
same walk :class:`irc.backends.llvm.runtime.HostProgram` makes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from xdsl.dialects import builtin, func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Attribute, BlockArgument, Operation, SSAValue

from irc.errors import BackendError, IrcError
from irc.ir import graph as g
from irc.ir.host import LaunchOp
from irc.ir.kernel import find_main
from irc.ir.types import dtype_of, shape_of

SCHEDULE_FORMAT = "irc-schedule"
SCHEDULE_VERSION = 1

OPENMP_SHIM = r"""
/* irc package runtime shim: the OpenMP entry points irc's kernels call.
 * A team of one until irc_set_openmp points them at a runtime (GOMP ABI). */
typedef void (*irc_body_t)(void *);
typedef void (*irc_parallel_t)(irc_body_t, void *, unsigned, unsigned);
typedef int (*irc_int_t)(void);
static void serial_parallel(irc_body_t fn, void *data, unsigned n, unsigned flags) {
  (void)n; (void)flags; fn(data);
}
static int serial_zero(void) { return 0; }
static int serial_one(void) { return 1; }
static irc_parallel_t p_parallel = serial_parallel;
static irc_int_t p_thread_num = serial_zero;
static irc_int_t p_num_threads = serial_one;
void __irc_GOMP_parallel(irc_body_t fn, void *data, unsigned n, unsigned flags) {
  p_parallel(fn, data, n, flags);
}
int __irc_omp_get_thread_num(void) { return p_thread_num(); }
int __irc_omp_get_num_threads(void) { return p_num_threads(); }
void irc_set_openmp(void *parallel, void *thread_num, void *num_threads) {
  if (parallel && thread_num && num_threads) {
    p_parallel = (irc_parallel_t)parallel;
    p_thread_num = (irc_int_t)thread_num;
    p_num_threads = (irc_int_t)num_threads;
  } else {
    p_parallel = serial_parallel; p_thread_num = serial_zero; p_num_threads = serial_one;
  }
}
"""


@dataclass
class PackageParts:
    """What the CPU backend contributes to a package."""

    schedule: dict
    objects: dict[str, bytes] = field(default_factory=dict)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    cpu: dict[str, object] = field(default_factory=dict)
    aten_calls: list[str] = field(default_factory=list)
    """``callee at source`` of each ``graph.aten_call`` (torch at run time)."""


def _attr_json(attr: Attribute) -> object:
    if isinstance(attr, builtin.UnitAttr):
        return True
    if isinstance(attr, builtin.IntegerAttr):
        width = getattr(attr.type, "width", None)
        if width is not None and width.data == 1:  # a BoolAttr
            return bool(attr.value.data)
        return int(attr.value.data)
    if isinstance(attr, builtin.FloatAttr):
        return float(attr.value.data)
    if isinstance(attr, builtin.StringAttr):
        return attr.data
    if isinstance(attr, builtin.DenseArrayBase):
        return list(g.ints(attr))
    raise BackendError(f"export: cannot serialise attribute {attr} (a {type(attr).__name__})")


def op_properties(op: Operation) -> dict[str, object]:
    """An op's properties as plain JSON values (unit -> true, arrays -> lists)."""
    return {name: _attr_json(attr) for name, attr in sorted(op.properties.items())}


def _source(op: Operation) -> str:
    loc = getattr(op, "location", None)
    return str(loc) if loc is not None else "?"


class _ScheduleWriter:
    """One walk over ``@main`` producing the JSON schedule (see module docstring)."""

    def __init__(self, module: ModuleOp, weights: Mapping[str, torch.Tensor]) -> None:
        from irc.backends.llvm.kernel_texts import kernel_module, kernel_texts
        from irc.backends.llvm.jit import kernel_symbol
        from irc.backends.llvm.translate import kernel_signatures
        from irc.passes.memory_plan import functions_of, plan_memory, view_ops, weight_derived_values
        self.module = module
        self.weights = weights
        self.main = find_main(module, "export", BackendError)
        kernels = kernel_module(module)
        self.texts = kernel_texts(kernels)
        self.symbols = {name: kernel_symbol(text)[0] for name, text in self.texts.items()}
        self.signatures = kernel_signatures(kernels)
        self.functions = functions_of(module)
        ops = list(self.main.body.block.ops)
        self.ops = ops
        self.view_ops = view_ops(ops, self.functions)
        try:
            self.plan = plan_memory(module)
        except IrcError:
            self.plan = None
        self.derived = self.plan.derived if self.plan is not None else weight_derived_values(ops)
        self.slots: dict[SSAValue, int] = {}
        self.values: list[dict] = []
        self.tensors: dict[str, torch.Tensor] = {}
        self.extra_objects: dict[str, str] = {}  # symbol -> LLVM IR (quantized matmuls)
        self.aten_calls: list[str] = []

    def slot(self, value: SSAValue) -> int:
        if value not in self.slots:
            self.slots[value] = len(self.values)
            self.values.append({"dtype": str(dtype_of(value.type)).removeprefix("torch."),
                                "shape": list(shape_of(value.type))})
        return self.slots[value]

    def run(self) -> dict:
        block = self.main.body.block
        inputs = [self.slot(a) for a in block.args]
        input_names = [a.name_hint or f"arg{i}" for i, a in enumerate(block.args)]
        fixed = []
        for value, offset in (self.plan.assignment.items() if self.plan else ()):
            fixed.append([self.slot(value), int(offset)])
        weights, constants, steps, derived_steps, step_ops = [], [], [], [], []
        outputs: list[int] = []
        copy_outputs: list[int] = []
        for op in self.ops:
            if isinstance(op, func.ReturnOp):
                outputs = [self.slots[v] for v in op.operands]
                copy_outputs = [i for i, v in enumerate(op.operands)
                                if isinstance(v, BlockArgument) or isinstance(v.owner, g.WeightOp)]
                continue
            if isinstance(op, g.WeightOp):
                weights.append([op.sym_name.data, self.slot(op.result)])
                continue
            if isinstance(op, g.ConstantOp):
                from irc.ir.interpreter import dense_to_tensor
                name = f"__irc_constant_{len(constants)}"
                self.tensors[name] = dense_to_tensor(op.value).contiguous()
                constants.append([name, self.slot(op.result)])
                continue
            step = self.step(op)
            if any(r in self.derived for r in op.results):
                derived_steps.append(step)
            else:
                steps.append(step)
                step_ops.append(op)
        return {"format": SCHEDULE_FORMAT, "version": SCHEDULE_VERSION,
                "values": self.values, "inputs": inputs, "input_names": input_names,
                "outputs": outputs, "copy_outputs": copy_outputs, "weights": weights,
                "constants": constants, "arena_bytes": int(self.plan.arena_bytes if self.plan else 0),
                "fixed": fixed, "derived_steps": derived_steps, "steps": steps,
                "releases": self.releases(step_ops)}

    def releases(self, step_ops: list[Operation]) -> list[list[int]]:
        """[step index, slots...]: per-call library results dropped after their last use."""
        if self.plan is None:
            return []
        position = {op: i for i, op in enumerate(step_ops)}
        release: dict[int, list[int]] = {}
        for value in list(self.plan.library) + list(self.plan.views):
            if value in self.derived or value not in self.slots:
                continue
            uses = [position[u.operation] for u in value.uses if u.operation in position]
            if uses:
                release.setdefault(max(uses), []).append(self.slots[value])
        return [[i, *sorted(slots)] for i, slots in sorted(release.items())]  # a set's order: sorted, so a package is the same bytes on every export

    def step(self, op: Operation) -> dict:
        ins = [self.slots[v] for v in op.operands]
        outs = [self.slot(r) for r in op.results]
        if isinstance(op, LaunchOp):
            name = op.callee.string_value()
            if op in self.view_ops:
                from irc.backends.llvm.lowering.lower_to_loops import VIEW_ATTR
                steps = json.loads(self.functions[name].attributes[VIEW_ATTR].data)  # type: ignore[attr-defined]
                return {"op": "view", "in": ins, "out": outs, "steps": steps}
            sig = self.signatures.get(name)
            if sig is None:
                raise BackendError(f"export: host.launch of unknown kernel @{name}")
            return {"op": "launch", "kernel": self.symbols[name], "name": name, "in": ins,
                    "out": outs, "parallel": bool(sig.parallel), "trip": int(sig.trip_count or 0)}
        if isinstance(op, g.QuantizedMatmulOp):
            from irc.backends.llvm.quantized_matmul import KERNEL, kernel_ir, shape_of_op, vector_chunks
            shape = shape_of_op(op)
            text = kernel_ir(shape)
            symbol = "irc_qmm_" + hashlib.sha256(text.encode()).hexdigest()[:20]
            self.extra_objects[symbol] = _rename(text, KERNEL, symbol)
            return {"op": op.name, "kernel": symbol, "in": ins, "out": outs,
                    "m": shape.m, "k": shape.k, "n": shape.n,
                    # the int4 vector path reads the input even/odd-permuted
                    "permute_int4": shape.bits == 4 and vector_chunks(shape, shape.group_size) > 0}
        step: dict = {"op": op.name, "in": ins, "out": outs, "props": op_properties(op),
                      "source": _source(op)}
        if isinstance(op, g.ConvEpilogueOp):  # which optional operands "in" holds
            step["props"].update(channels_last=True, has_bias=op.bias is not None,
                                 has_other=op.other is not None)
        if isinstance(op, g.AtenCallOp):
            self.aten_calls.append(f"{op.callee.data} at {_source(op)}")
        from irc.loader_runtime import LIBRARY
        if op.name not in LIBRARY and not isinstance(op, g.AtenCallOp):
            raise BackendError(f"export: the package loader cannot run {op.name} in the host "
                               f"schedule (at {_source(op)})")
        return step


def _rename(text: str, old: str, new: str) -> str:
    """LLVM IR ``text`` with function ``@old`` (and ``@old.omp``) renamed ``@new``."""
    return text.replace(f'@"{old}"', f'@"{new}"').replace(f"@{old}(", f"@{new}(") \
        .replace(f'@"{old}.omp"', f'@"{new}.omp"').replace(f"@{old}.omp", f"@{new}.omp")


def package_parts(module: ModuleOp, weights: Mapping[str, torch.Tensor],
                  cache: object | None = None) -> PackageParts:
    """The schedule, object code and tensors of a loops-level module (see module
    docstring). ``cache``: the :class:`irc.cache.CacheConfig` the compile used,
    so the objects come from the entries it just wrote."""
    import os as _os

    from irc import __version__
    from irc.backends.llvm.kernel_texts import jit_source_digest
    from irc.backends.llvm.jit import emit_object, host_cpu_fingerprint, kernel_objects
    from irc.cache import CacheConfig, open_cache
    writer = _ScheduleWriter(module, weights)
    schedule = writer.run()
    try:
        store = open_cache(cache if isinstance(cache, CacheConfig) else CacheConfig())
    except IrcError:
        store = None
    key_parts = ("cpu", host_cpu_fingerprint(), __version__, jit_source_digest())
    _, objects = kernel_objects(writer.texts, store, key_parts, _os.cpu_count() or 1)
    for symbol, text in writer.extra_objects.items():
        objects[symbol] = emit_object(text)
    tensors = dict(writer.tensors)
    for name, _slot in schedule["weights"]:
        if name not in weights:
            raise BackendError(f"export: weight \"{name}\" is missing from the program")
        tensors[name] = weights[name].detach().contiguous()
    return PackageParts(schedule, objects, tensors, host_cpu(), writer.aten_calls)


def host_cpu() -> dict[str, object]:
    """The CPU the objects were compiled for: LLVM's name, its enabled features."""
    import llvmlite.binding as llvm

    from irc.backends.llvm.jit import target_machine
    target_machine()
    features = [f[1:] for f in llvm.get_host_cpu_features().flatten().split(",") if f.startswith("+")]
    return {"arch": os.uname().machine, "name": llvm.get_host_cpu_name(),
            "features": sorted(features)}


def link_shared_library(objects: Mapping[str, bytes], out: Path, extra_sources: Mapping[str, str] = {}
                        ) -> None:
    """``cc -shared`` the objects (+ the OpenMP shim and ``extra_sources``, C
    files by name) into ``out``. A missing or failing ``cc`` is an IrcError."""
    import shutil
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise IrcError("irc export needs a C compiler to link the package's library: "
                       "install gcc or clang (cc, gcc or clang on PATH)")
    with tempfile.TemporaryDirectory(prefix="irc-link-") as tmp:
        files = []
        for i, (symbol, blob) in enumerate(sorted(objects.items())):
            path = Path(tmp) / f"k{i}_{symbol}.o"
            path.write_bytes(blob)
            files.append(str(path))
        sources = {"irc_openmp_shim.c": OPENMP_SHIM, **extra_sources}
        for name, text in sources.items():
            path = Path(tmp) / name
            path.write_text(text)
            files.append(str(path))
        cmd = [cc, "-shared", "-fPIC", "-O3", "-march=native", "-fopenmp-simd", "-o", str(out), *files, "-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise IrcError(f"irc export: linking the package's library failed ({' '.join(cmd[:4])} "
                           f"...):\n{proc.stderr.strip()[-2000:]}")
