"""Migrating a model to a backend one kernel at a time.

The program is lowered to the kernel level (graph pipeline + ``fuse``); the
host schedule ``@main`` then runs in the reference interpreter, and each
``func.call @kernel_N`` goes either to that kernel compiled *alone* for the
target (a standalone module per kernel, prepared for the target's level) or
to eager PyTorch (the reference interpreter). Real tensors cross every
boundary, so a model can be moved to a new backend kernel by kernel, and
:mod:`irc.debug.bisect` can search for the kernel that breaks it.

Extern ops left in ``@main`` (matmul, conv, pooling, gathers, concat) and
``graph.weight``/``graph.constant`` always run in eager PyTorch here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Union

import torch
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from irc.backends.base import Backend, BackendOptions, Executable, Level
from irc.backends.registry import get_backend
from irc.debug.snippets import (
    is_kernel_level,
    kernel_calls,
    kernel_graph_module,
    kernel_host_module,
    kernels_by_name,
)
from irc.errors import BackendError, IrcError
from irc.frontends.program import Program
from irc.ir.interpreter import Interpreter
from irc.config import Config
from irc.passes.pipeline import DEFAULT_STAGES, run_pipeline

# Which kernels run on the target: names, a predicate on the name, or None for all.
Offload = Union[Iterable[str], Callable[[str], bool], None]


def lower_to_kernels(program: Program, config: Config | None = None) -> Program:
    """A kernel-level copy of ``program`` (the configured graph pipeline +
    fuse); a program that is already at the kernel level is copied as is."""
    module = program.module.clone()
    if not is_kernel_level(module):
        config = config or Config.from_options(None)
        run_pipeline(module, config.pipeline_for(Level.KERNEL), verify_each=False)
    return Program(module, program.weights, list(program.input_names), list(program.output_names))


def kernel_order(module: ModuleOp) -> list[str]:
    """Kernel names in the order the host schedule first launches them."""
    return list(dict.fromkeys(call.callee.string_value() for call in kernel_calls(module)))


def standalone_kernel_module(kernel: func.FuncOp, level: Level | str,
                             config: Config | None = None) -> ModuleOp:
    """One kernel as a module at ``level``: its body as ``@main`` (graph), or a
    copy of it called from ``@main`` (kernel), lowered to loops (loops)."""
    level = Level(level)
    if level is Level.GRAPH:
        return kernel_graph_module(kernel)
    module = kernel_host_module(kernel)
    if level is Level.LOOPS:
        config = config or Config.from_options(None)
        loops = config.pipeline.loops or DEFAULT_STAGES["loops"]
        run_pipeline(module, config.apply_pass_options(loops), verify_each=False)
    return module


class KernelMigrator:
    """A kernel-level program plus a target: compiles kernels for the target on
    first use (cached) and runs the model with any subset of them migrated."""

    def __init__(self, program: Program, target: str,
                 options: Mapping[str, Any] | BackendOptions | Config | None = None) -> None:
        self.target = target
        self.backend: Backend = get_backend(target)
        problem = self.backend.available()
        if problem is not None:
            raise BackendError(problem)
        if isinstance(options, BackendOptions):
            self.config, self.options = Config.from_options(None, target=target), options
        else:
            self.config = Config.from_options(options, target=target)
            self.options = self.config.backend_options(self.backend)
        self.program = program if is_kernel_level(program.module) else \
            lower_to_kernels(program, self.config)
        self.kernels = kernels_by_name(self.program.module)
        self.order = kernel_order(self.program.module)
        self._compiled: dict[str, Executable] = {}
        self.runs = 0

    def resolve(self, offload: Offload) -> set[str]:
        """The set of kernel names ``offload`` selects (unknown names are an error)."""
        if offload is None:
            return set(self.order)
        if callable(offload):
            return {name for name in self.order if offload(name)}
        chosen = set(offload)
        unknown = chosen - set(self.kernels)
        if unknown:
            raise IrcError(f"unknown kernel(s) {', '.join(sorted(unknown))} "
                           f"(the program has: {', '.join(self.order) or 'none'})")
        return chosen

    def compiled(self, name: str) -> Executable:
        """Kernel ``name`` compiled alone for the target (cached)."""
        if name not in self._compiled:
            module = standalone_kernel_module(self.kernels[name], self.backend.level, self.config)
            self._compiled[name] = self.backend.compile(module, self.program.weights, self.options)
        return self._compiled[name]

    def run(self, inputs: Sequence[torch.Tensor], migrated: set[str],
            record: dict[str, list[torch.Tensor]] | None = None,
            record_inputs: dict[str, list[torch.Tensor]] | None = None) -> list[torch.Tensor]:
        """One model run with the kernels in ``migrated`` on the target; every
        kernel's outputs (inputs) are stored by name in ``record`` (``record_inputs``)
        when given."""
        self.runs += 1
        host = _HostInterpreter(self, migrated, record, record_inputs)
        with torch.no_grad():  # an inference-time debugging tool: no autograd graph
            return host.run(list(inputs))


class _HostInterpreter(Interpreter):
    """Runs the host schedule; kernel calls go to the target or to eager."""

    def __init__(self, migrator: KernelMigrator, migrated: set[str],
                 record: dict[str, list[torch.Tensor]] | None,
                 record_inputs: dict[str, list[torch.Tensor]] | None) -> None:
        super().__init__(migrator.program.module, migrator.program.weights)
        self.migrator, self.migrated = migrator, migrated
        self.record, self.record_inputs = record, record_inputs

    def call(self, fn: func.FuncOp, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        name = fn.sym_name.data
        if self.record_inputs is not None and name in self.migrator.kernels:
            self.record_inputs[name] = [t.detach().clone().contiguous() for t in inputs]
        if name in self.migrated:
            outputs = list(self.migrator.compiled(name)(*inputs))
        else:
            outputs = super().call(fn, inputs)
        if self.record is not None and name in self.migrator.kernels:
            self.record[name] = [o.detach() for o in outputs]
        return outputs


class OffloadedExecutable:
    """What :func:`compile_offloaded` returns: call it like the model."""

    def __init__(self, migrator: KernelMigrator, migrated: set[str]) -> None:
        self.migrator = migrator
        self.migrated = migrated

    @property
    def eager_kernels(self) -> list[str]:
        return [k for k in self.migrator.order if k not in self.migrated]

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        return self.migrator.run(inputs, self.migrated)


def compile_offloaded(program: Program, target: str, offload: Offload = None,
                      options: Mapping[str, Any] | BackendOptions | Config | None = None,
                      ) -> OffloadedExecutable:
    """Compile the kernels ``offload`` selects for ``target`` (each alone); the
    rest of the model runs in eager PyTorch. ``program`` may be at the graph or
    the kernel level."""
    migrator = KernelMigrator(program, target, options)
    migrated = migrator.resolve(offload)
    for name in sorted(migrated):
        migrator.compiled(name)  # compile errors surface now, not at the first call
    return OffloadedExecutable(migrator, migrated)


def run_offloaded(program: Program, inputs: Sequence[torch.Tensor], target: str,
                  offload: Offload = None) -> list[torch.Tensor]:
    """Run ``program`` once with the ``offload``-selected kernels on ``target``."""
    return compile_offloaded(program, target, offload)(*inputs)


class OffloadedModel:
    """``irc.compile(model, target=T, offload=...)``: a callable standing in for
    ``model`` whose selected kernels run on T and the rest in eager PyTorch.

    The model is captured (torch.export) at the first call and again for each
    new input signature (shapes, dtypes); outputs come back in the structure
    the model returns them.
    """

    def __init__(self, model: Any, target: str, offload: Offload,
                 options: Mapping[str, Any] | None = None) -> None:
        self.model, self.target, self.offload, self.options = model, target, offload, options
        self._compiled: dict[tuple, tuple[OffloadedExecutable, Any]] = {}

    def _signature(self, inputs: Sequence[Any]) -> tuple:
        return tuple((tuple(t.shape), t.dtype, str(t.device)) if isinstance(t, torch.Tensor) else
                     repr(t) for t in inputs)

    def compiled_for(self, *inputs: Any) -> OffloadedExecutable:
        """The offloaded executable for this input signature (captured on first use)."""
        key = self._signature(inputs)
        if key not in self._compiled:
            from torch.utils._pytree import tree_flatten

            from irc.frontends.capture import export_program
            program = export_program(self.model, inputs)
            with torch.no_grad():
                _, spec = tree_flatten(self.model(*inputs))  # the output structure to rebuild
            self._compiled[key] = (compile_offloaded(program, self.target, self.offload,
                                                     self.options), spec)
        return self._compiled[key][0]

    def __call__(self, *inputs: Any) -> Any:
        from torch.utils._pytree import tree_unflatten
        executable = self.compiled_for(*inputs)
        outputs = executable(*inputs)
        spec = self._compiled[self._signature(inputs)][1]
        try:
            return tree_unflatten(list(outputs), spec)
        except (ValueError, TypeError, IndexError):
            return outputs[0] if len(outputs) == 1 else tuple(outputs)
