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
        if isinstance(options, BackendOptions):
            self.config, self.options = Config.from_options(None, target=target), options
        else:
            self.config = Config.from_options(options, target=target)
            self.options = self.config.backend_options(self.backend)
        problem = self.backend.available(self.options)
        if problem is not None:
            raise BackendError(problem)
        self.program = program if is_kernel_level(program.module) else \
            lower_to_kernels(program, self.config)
        self.kernels = kernels_by_name(self.program.module)
        self.order = kernel_order(self.program.module)
        self._compiled: dict[str, Executable] = {}
        self.runs = 0

    def program_of(self, kernel: str) -> Program:
        """The kernel-level program that holds ``kernel``."""
        return self.program

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

    def __init__(self, migrator: KernelMigrator | ModelMigrator, migrated: set[str]) -> None:
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


class ModelMigrator:
    """A model captured as irc.compile captures it (:mod:`irc.debug.capture`),
    one :class:`KernelMigrator` per captured graph, run as the model runs.

    The same interface as :class:`KernelMigrator` (``order``, ``kernels``,
    ``run``, ``compiled``...), over the kernels of every graph; when dynamo
    captured several graphs (graph breaks), graph ``i``'s kernels are renamed
    ``g{i}_kernel_N`` so every name is unique. A run calls the model itself:
    its Python code runs as usual, and each graph's call goes to that graph's
    migrator with the same set of migrated kernels.
    """

    def __init__(self, capture: Any, target: str,
                 options: Mapping[str, Any] | BackendOptions | Config | None = None) -> None:
        self.capture = capture
        self.parts = [KernelMigrator(graph.program, target, options) for graph in capture.graphs]
        if len(self.parts) > 1:
            for i, part in enumerate(self.parts):
                rename_kernels(part.program.module, f"g{i}_")
                part.kernels = kernels_by_name(part.program.module)
                part.order = kernel_order(part.program.module)
        first = self.parts[0]
        self.target, self.backend, self.config, self.options = \
            first.target, first.backend, first.config, first.options
        self.owner = {name: part for part in self.parts for name in part.order}
        self.kernels = {name: fn for part in self.parts for name, fn in part.kernels.items()}
        self.order = [name for part in self.parts for name in part.order]
        self.runs = 0

    def program_of(self, kernel: str) -> Program:
        return self.owner[kernel].program

    def resolve(self, offload: Offload) -> set[str]:
        if offload is None or callable(offload):
            return {name for name in self.order if offload is None or offload(name)}
        chosen = set(offload)
        unknown = chosen - set(self.kernels)
        if unknown:
            raise IrcError(f"unknown kernel(s) {', '.join(sorted(unknown))} "
                           f"(the model has: {', '.join(self.order) or 'none'})")
        return chosen

    def compiled(self, name: str) -> Executable:
        return self.owner[name].compiled(name)

    def run_model(self, migrated: set[str], args: Sequence[Any] | None = None,
                  kwargs: Mapping[str, Any] | None = None,
                  record: dict[str, list[torch.Tensor]] | None = None,
                  record_inputs: dict[str, list[torch.Tensor]] | None = None) -> Any:
        """One run of the model (on the captured inputs, or on ``args``/``kwargs``
        of the same signature); returns what the model returns."""
        self.runs += 1

        def handler(index: int, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
            if index >= len(self.parts):
                raise IrcError("the model took another path than in the capture run (dynamo "
                               "captured a new graph); capture it again on these inputs")
            return self.parts[index].run(tensors, migrated, record, record_inputs)

        return self.capture.run(handler, args, kwargs)

    def run(self, inputs: Sequence[torch.Tensor], migrated: set[str],
            record: dict[str, list[torch.Tensor]] | None = None,
            record_inputs: dict[str, list[torch.Tensor]] | None = None) -> list[torch.Tensor]:
        """One run of the model, on the captured inputs (or on ``inputs`` as its
        positional arguments when given); its output tensors, flattened."""
        from irc.debug.capture import flat_tensors
        args = tuple(inputs) if len(inputs) else None
        return flat_tensors(self.run_model(migrated, args, None, record, record_inputs))


def rename_kernels(module: ModuleOp, prefix: str) -> None:
    """Prefix every kernel's symbol (and the calls to it) with ``prefix``."""
    from xdsl.dialects.builtin import StringAttr, SymbolRefAttr
    kernels = kernels_by_name(module)
    for op in module.walk():
        if isinstance(op, func.CallOp) and op.callee.string_value() in kernels:
            op.callee = SymbolRefAttr(prefix + op.callee.string_value())
    for name, fn in kernels.items():
        fn.sym_name = StringAttr(prefix + name)


def migrator_for(model_or_program: Any, inputs: Sequence[Any] | Mapping[str, Any], target: str,
                 options: Mapping[str, Any] | BackendOptions | Config | None = None
                 ) -> tuple[KernelMigrator | ModelMigrator, list[torch.Tensor]]:
    """A migrator for a Program (run on ``inputs``) or for a model (captured
    through dynamo + AOTAutograd, as irc.compile captures it)."""
    if isinstance(model_or_program, Program):
        if isinstance(inputs, Mapping):
            raise IrcError("a Program takes its inputs as a sequence, in @main's order")
        return KernelMigrator(model_or_program, target, options), list(inputs)
    from irc.debug.capture import capture_model
    get_backend(target)  # an unknown target fails before the model runs
    capture = capture_model(model_or_program, inputs)
    return ModelMigrator(capture, target, options), []


class OffloadedModel:
    """``irc.compile(model, target=T, offload=...)``: a callable standing in for
    ``model`` whose selected kernels run on T and the rest in eager PyTorch.

    The model is captured as irc.compile captures it (dynamo + AOTAutograd,
    :mod:`irc.debug.capture`) at the first call and again for each new input
    signature (shapes, dtypes); the model's own Python code runs around the
    graphs, so outputs come back in the structure the model returns them.
    """

    def __init__(self, model: Any, target: str, offload: Offload,
                 options: Mapping[str, Any] | None = None) -> None:
        self.model, self.target, self.offload, self.options = model, target, offload, options
        self._compiled: dict[tuple, tuple[ModelMigrator, set[str]]] = {}

    @staticmethod
    def _signature(args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple:
        def key(t: Any) -> Any:
            return (tuple(t.shape), t.dtype, str(t.device)) if isinstance(t, torch.Tensor) else repr(t)
        return (tuple(key(a) for a in args), tuple((k, key(v)) for k, v in sorted(kwargs.items())))

    def _migrator(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[ModelMigrator, set[str]]:
        key = self._signature(args, kwargs)
        if key not in self._compiled:
            from irc.debug.capture import ModelCapture
            migrator = ModelMigrator(ModelCapture(self.model, args, kwargs), self.target, self.options)
            migrated = migrator.resolve(self.offload)
            for name in sorted(migrated):
                migrator.compiled(name)  # compile errors surface now, not in the run
            self._compiled[key] = (migrator, migrated)
        return self._compiled[key]

    def compiled_for(self, *args: Any, **kwargs: Any) -> OffloadedExecutable:
        """The kernels of this input signature, captured on first use
        (``eager_kernels`` lists those that stay in eager PyTorch)."""
        migrator, migrated = self._migrator(args, kwargs)
        return OffloadedExecutable(migrator, migrated)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        migrator, migrated = self._migrator(args, kwargs)
        return migrator.run_model(migrated, args, kwargs)
