"""One native compile for every binding of a module's symbolic sizes (cpu).

:class:`SymbolicCPUExecutable` runs a loops-level module whose kernels were
lowered with symbolic sizes (``memref<?xT>`` buffers, trailing ``index`` size
arguments named by ``irc.sizes``, loop bounds computed from them; see
``lower_to_loops``). What it guarantees:

* the kernels are translated and JIT-compiled **once** (``backend_compiles``
  is 1), and serve every binding of the sizes; the compile cache holds one
  object per kernel for all sizes;
* every call binds the size symbols from the inputs' shapes and checks every
  relation the types state (:class:`irc.ir.symbols.Binder`): a mismatch is an
  :class:`irc.InputMismatchError` naming the input, the dimension and both
  sizes, before any native code runs;
* per binding (on the first call that has it; at most ``limit`` kept) the
  host schedule is made for those sizes: ``@main`` specialised to static
  types, its memory plan (liveness reuse, as a static compile plans it) and a
  :class:`~irc.backends.llvm.runtime.HostProgram` whose launches pass the
  binding's sizes to the kernels and split parallel loops by the binding's
  trip count. This is Python work (milliseconds), no LLVM: ``bindings``
  counts it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import torch
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from irc.backends.llvm.jit import JitModule
from irc.backends.llvm.lowering.lower_to_loops import VIEW_ATTR
from irc.backends.llvm.runtime import HostProgram
from irc.backends.llvm.threads import LaunchStats
from irc.backends.llvm.translate import KernelSignature
from irc.errors import InputMismatchError, IrcError
from irc.ir.kernel import find_main, is_kernel
from irc.ir.specialize import specialize
from irc.ir.symbols import Binder, size_arg_names
from irc.passes.memory_plan import MemoryPlan, plan_memory


def host_module(module: ModuleOp) -> ModuleOp:
    """``@main`` of ``module`` with bodiless declarations of the kernels whose
    attributes the runtime and the memory plan read (torch-view kernels,
    ``irc.view``: all static); the kernels themselves are in the JIT. (Small,
    so that specialising it per binding is cheap.)"""
    keep: list[func.FuncOp] = []
    for op in module.ops:
        if isinstance(op, func.FuncOp) and is_kernel(op) and VIEW_ATTR in op.attributes:
            decl = func.FuncOp.external(op.sym_name.data, list(op.function_type.inputs.data),
                                        list(op.function_type.outputs.data))
            for name, attr in op.attributes.items():
                if name not in ("sym_name", "function_type", "sym_visibility"):
                    decl.attributes[name] = attr
            keep.append(decl)
    return ModuleOp([find_main(module).clone(), *keep])


class SymbolicCPUExecutable:
    """Call with ``@main``'s inputs (tensors and size arguments); see the module docstring."""

    def __init__(self, module: ModuleOp, jit: JitModule, signatures: Mapping[str, KernelSignature],
                 weights: Mapping[str, torch.Tensor], make_program: Callable[..., HostProgram],
                 llvm_ir: str, loops_ir: str | Callable[[], str], kernel_count: int,
                 limit: int = 256) -> None:
        self.host = host_module(module)
        main = find_main(self.host)
        self.arg_types = [a.type for a in main.body.block.args]
        self.size_names = size_arg_names(main)
        self._bind = Binder(self.arg_types, self.size_names)
        self.jit = jit
        self.signatures = signatures
        self.weights = weights
        self._make_program = make_program
        self.llvm_ir = llvm_ir
        self._loops_ir = loops_ir
        self.kernel_count = kernel_count
        self.backend_compiles = 1
        """Native compiles this executable ran: one, for every binding."""
        self.bindings = 0
        """Host schedules made so far (one per distinct binding; no compile)."""
        self._limit = limit
        self._programs: OrderedDict[tuple[tuple[str, int], ...], HostProgram] = OrderedDict()
        self._last: HostProgram | None = None

    @property
    def loops_ir(self) -> str:
        if callable(self._loops_ir):
            self._loops_ir = self._loops_ir()
        return self._loops_ir

    @property
    def memory_plan(self) -> MemoryPlan | None:
        """The memory plan of the binding run last (None before the first call)."""
        return self._last.plan if self._last is not None else None

    @property
    def stats(self) -> LaunchStats:
        """How parallel kernels ran, summed over the bindings kept."""
        total = LaunchStats()
        for program in self._programs.values():
            for kind, n in program.stats.launches.items():
                total.launches[kind] += n
        return total

    def program_for(self, binding: dict[str, int]) -> HostProgram:
        key = tuple(sorted(binding.items()))
        program = self._programs.get(key)
        if program is None:
            # the cyclic collector off while the binding's schedule is made (it
            # allocates thousands of IR objects): 150 -> 60 ms per new binding
            from irc.frontends.capture import gc_paused
            with gc_paused():
                static = specialize(self.host, binding)
                try:
                    plan: MemoryPlan | None = plan_memory(static)
                except IrcError:  # as LLVMBackend.compile: no plan, fresh buffers
                    plan = None
                program = self._make_program(static, self.jit, self.signatures, self.weights,
                                             plan, binding)
            self.bindings += 1
            self._programs[key] = program
            if len(self._programs) > self._limit:
                self._programs.popitem(last=False)
        else:
            self._programs.move_to_end(key)
        return program

    def __call__(self, *inputs: Any) -> list[torch.Tensor]:
        if len(inputs) != len(self.arg_types):
            raise InputMismatchError(f"expected {len(self.arg_types)} inputs, got {len(inputs)}")
        for x, name in zip(inputs, self.size_names):
            if name is None and not isinstance(x, torch.Tensor):
                raise InputMismatchError(f"expected a tensor, got {type(x).__name__}")
        program = self._last = self.program_for(self._bind(inputs))
        return program(*(x for x, name in zip(inputs, self.size_names) if name is None))


__all__ = ["SymbolicCPUExecutable", "host_module"]
