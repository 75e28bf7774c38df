"""What one compiled callable did: :class:`CompileStats`.

``irc.compile`` attaches one to the callable it returns (``compiled.irc_stats``);
the capture path fills it in as dynamo hands graphs to irc, and the callable's
wrapper counts the calls that ran no compiled graph at all. Nothing is kept in
module globals: two compiled callables never share their counts.

    fast = irc.compile(model)
    fast(x)
    fast.irc_stats.graphs        # FX graphs dynamo handed to irc (forward, backward)
    fast.irc_stats.eager_ops     # op names of nodes that run in eager PyTorch
    fast.irc_stats.kernels       # kernels generated (fused or single-op)
    fast.irc_stats.extern_ops    # library calls inside the compiled graphs, by op name

``stats_of(fast)`` is the same object, typed (``irc.compile`` returns its
input's type, a ``torch.nn.Module`` for a model, whose attributes torch types
as ``Tensor | Module``).

A compiled callable whose call ran nothing compiled (no graph reached irc, or
dynamo gave up on the frame after its recompile limit) says so once with an
:class:`~irc.frontends.capture.IrcWarning`; with ``strict=True`` it raises
:class:`~irc.errors.NothingCompiledError`.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, cast

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from irc.errors import NothingCompiledError



@dataclass
class CompileStats:
    """Counts for one compiled callable (see the module docstring)."""

    name: str
    """What was compiled, as messages name it (``GPT2LMHeadModel``, ``fn``)."""
    target: str = "cpu"
    """The target it was compiled for."""
    graphs: int = 0
    """FX graphs dynamo handed to irc (a graph break or a backward adds one)."""
    programs: int = 0
    """Programs irc compiled (a graph split around an eager node gives several)."""
    kernels: int = 0
    """Kernel functions generated over all programs."""
    extern_ops: Counter[str] = field(default_factory=Counter)
    """Library calls in the compiled host schedules (matmul, conv, ...), by op name."""
    eager_ops: list[str] = field(default_factory=list)
    """The aten op of every node that runs in eager PyTorch instead of compiled
    (and, for the Triton backend, ``kernel <name>`` per kernel it runs in eager)."""
    calls: int = 0
    """Calls of the compiled callable."""
    compiled_runs: int = 0
    """Runs of compiled graphs (one call may run several, or none)."""
    eager_calls: int = 0
    """Calls that ran no compiled graph at all."""
    nothing_compiled: str | None = None
    """Why the first such call ran nothing compiled, once one did."""
    symbolic_programs: int = 0
    """Programs compiled with symbolic sizes (``?`` dims): one serves every size."""
    symbolic_fallbacks: list[str] = field(default_factory=list)
    """Per symbolic program that its backend could not compile once for all sizes
    (it compiles per binding instead): why, naming the op."""
    _specializing: list[Any] = field(default_factory=list, repr=False)
    _executables: list[Any] = field(default_factory=list, repr=False)

    @property
    def backend_compiles(self) -> int:
        """Backend compiles so far over all programs: one per static program and
        per program compiled once for all sizes, one per binding where a
        program compiles per binding."""
        return sum(int(getattr(e, "backend_compiles", 1)) for e in self._executables)

    @property
    def specializations(self) -> int:
        """Sizes the symbolic programs' lower stages were compiled for so far
        (:mod:`irc.symbolic_executable`: once per distinct binding of the sizes)."""
        return sum(e.specializations for e in self._specializing)

    @property
    def externs(self) -> int:
        """Library calls in the compiled host schedules."""
        return sum(self.extern_ops.values())

    def summary(self) -> str:
        """One line: graphs, programs, kernels, externs, eager nodes."""
        text = (f"{self.name} on {self.target}: {self.graphs} graph(s), {self.programs} "
                f"program(s), {self.kernels} kernel(s), {self.externs} library call(s)")
        if self.symbolic_programs:
            text += (f", {self.symbolic_programs} with symbolic sizes "
                     f"({self.backend_compiles} backend compile(s))")
        if self.symbolic_fallbacks:
            text += f", {len(self.symbolic_fallbacks)} compiled per binding of the sizes"
        if self.eager_ops:
            text += f", {len(self.eager_ops)} node(s) in eager ({', '.join(sorted(set(self.eager_ops)))})"
        if self.nothing_compiled:
            text += f"; ran nothing compiled: {self.nothing_compiled}"
        return text

    # -- filled in by the capture path ----------------------------------------------
    def record_module(self, module: ModuleOp) -> None:
        """Count the kernels and library calls of a compiled program's module."""
        self.programs += 1
        self._record_kernels(module)

    def _record_kernels(self, module: ModuleOp) -> None:
        from irc.ir.kernel import is_extern, is_kernel
        for op in module.ops:
            if not isinstance(op, func.FuncOp):
                continue
            if is_kernel(op):
                self.kernels += 1
            elif op.sym_name.data == "main" and op.body.blocks:
                self.extern_ops.update(o.name for o in op.body.block.ops if is_extern(o))

    def record_executable(self, executable: Any) -> None:
        """Kernels a backend runs in eager torch instead (``eager_kernels()``, if it has one)."""
        self._executables.append(executable)
        if isinstance(getattr(executable, "bindings", None), int):
            self.symbolic_programs += 1  # compiled once for every binding
        reason = getattr(executable, "fallback_reason", None)
        if isinstance(reason, str):
            self.symbolic_fallbacks.append(reason)
        if isinstance(getattr(executable, "specializations", None), int):
            self.symbolic_programs += 1
            self._specializing.append(executable)
            # kernels are generated per binding of the sizes, on its first call
            executable.observers.append(self._record_kernels)
        eager = getattr(executable, "eager_kernels", None)
        if callable(eager):
            names = cast(Iterable[str], eager())  # the protocol: kernel names
            self.eager_ops.extend(f"kernel {name}" for name in names)

    def counting(self, runner: Callable[..., Any]) -> Callable[..., Any]:
        """``runner`` (a compiled graph) counting its runs in :attr:`compiled_runs`."""
        def run(*args: Any) -> Any:
            self.compiled_runs += 1
            return runner(*args)
        return run

    # -- filled in by the compiled callable's wrapper ---------------------------------
    def after_call(self, runs_before: int, strict: bool, entry: CodeType | None) -> None:
        """Called after each call; warns once (raises, if strict) when the call ran
        nothing compiled."""
        self.calls += 1
        if self.compiled_runs != runs_before:
            return
        self.eager_calls += 1
        if self.nothing_compiled is not None and not strict:
            return
        reason = self.nothing_compiled or _why_nothing_ran(self, entry)
        self.nothing_compiled = reason
        message = (f"irc.compile({self.name}) ran nothing compiled: {reason}; "
                   "this call ran in eager PyTorch")
        if strict:
            raise NothingCompiledError(message)
        from irc.frontends.capture import IrcWarning
        warnings.warn(message, IrcWarning, stacklevel=3)


def stats_of(compiled: object) -> CompileStats:
    """The :class:`CompileStats` that ``irc.compile`` attached to ``compiled``."""
    stats = getattr(compiled, "irc_stats", None)
    if not isinstance(stats, CompileStats):
        raise TypeError(f"{type(compiled).__name__} was not made by irc.compile (no irc_stats)")
    return stats


def _why_nothing_ran(stats: CompileStats, entry: CodeType | None) -> str:
    """The reason a call ran no compiled graph, from dynamo's own records."""
    import torch._dynamo
    limit = torch._dynamo.config.recompile_limit
    versions = _cache_entries(entry)
    if versions is not None and versions >= limit:
        return (f"dynamo stopped compiling it after its recompile limit ({versions} compiled "
                f"versions, torch._dynamo.config.recompile_limit = {limit}); inputs of a new "
                "shape or dtype, or a guard that keeps failing, recompile on every call")
    if stats.graphs == 0:
        return ("no graph reached irc (dynamo traced no tensor operation, or skipped the "
                "code it calls)")
    return "dynamo ran this call without any of the graphs it compiled"


def _cache_entries(code: CodeType | None) -> int | None:
    """How many compiled versions dynamo keeps for ``code`` (None: cannot tell)."""
    if code is None:
        return None
    try:
        from torch._C._dynamo.eval_frame import _debug_get_cache_entry_list
        return len(_debug_get_cache_entry_list(code))
    except (ImportError, AttributeError, TypeError, RuntimeError):
        return None
