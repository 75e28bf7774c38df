"""Running a program with symbolic sizes on a backend that compiles static shapes.

The graph stage runs once on the symbolic module (every graph pass handles
``?`` dimensions). A backend whose lower stages take symbolic sizes
(``compiles_symbolic``: the cpu one) compiles the module once for all sizes
(``backends/llvm/symbolic.py``); on other backends, and where that raised
(``fallback_reason`` says why), :class:`SpecializingExecutable` compiles the
stages below it (fusion, memory plan, loops, code generation) per *binding*
of the size symbols, on the first call that has it, and keeps each result:

* every call first binds the symbols from the inputs' shapes and checks every
  relation the types state (:func:`irc.ir.symbols.bind`): a tensor whose
  sizes break them is an :class:`irc.InputMismatchError` naming the input,
  the dimension and both sizes;
* the module of one binding is :func:`irc.ir.specialize.specialize` of the
  symbolic one, so every binding runs exactly the code a static compile of
  that shape runs (same passes, same kernels; the JIT's kernel cache serves
  kernels whose text repeats across bindings);
* :attr:`specializations` counts the bindings compiled (one per distinct set of
  sizes): dynamo compiles the graph once, irc's lower stages once per size.

A backend that handles symbolic sizes itself (``Backend.symbolic_shapes``,
e.g. the reference interpreter) gets the symbolic module directly.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from xdsl.dialects.builtin import ModuleOp

from irc.ir.kernel import find_main
from irc.ir.specialize import specialize
from irc.ir.symbols import Binder, size_arg_names

Compile = Callable[[ModuleOp], Any]


class SpecializingExecutable:
    """Binds the size symbols per call; compiles each new binding once
    (``compile_static`` lowers a static graph-level module to an executable)."""

    def __init__(self, module: ModuleOp, compile_static: Compile, limit: int = 256) -> None:
        self.module = module
        main = find_main(module)
        self.arg_types = [a.type for a in main.body.block.args]
        self.size_names = size_arg_names(main)
        self._bind = Binder(self.arg_types, self.size_names)
        self._compile = compile_static
        self._limit = limit
        self._compiled: OrderedDict[tuple[tuple[str, int], ...], Any] = OrderedDict()
        self.specializations = 0
        """How many bindings have been compiled so far."""
        self.fallback_reason: str | None = None
        """Why a backend that compiles symbolic sizes once fell back to this (None: it does not)."""
        self.observers: list[Callable[[ModuleOp], None]] = []
        """Called with each binding's module after its lower stages ran (irc stats)."""

    def binding(self, inputs: tuple[Any, ...]) -> dict[str, int]:
        for x, name in zip(inputs, self.size_names):
            if name is None and not isinstance(x, torch.Tensor):
                from irc.errors import InputMismatchError
                raise InputMismatchError(f"expected a tensor, got {type(x).__name__}")
        return self._bind(inputs)

    def executable_for(self, binding: dict[str, int]) -> Any:
        key = tuple(sorted(binding.items()))
        executable = self._compiled.get(key)
        if executable is None:
            module = specialize(self.module, binding)
            executable = self._compile(module)
            self.specializations += 1
            for observe in self.observers:
                observe(module)
            self._compiled[key] = executable
            if len(self._compiled) > self._limit:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(key)
        return executable

    def __call__(self, *inputs: Any) -> list[Any]:
        from irc.errors import InputMismatchError
        if len(inputs) != len(self.arg_types):
            raise InputMismatchError(f"expected {len(self.arg_types)} input tensors, got {len(inputs)}")
        tensors = [x for x, name in zip(inputs, self.size_names) if name is None]
        return self.executable_for(self.binding(inputs))(*tensors)

    @property
    def backend_compiles(self) -> int:
        """Backend compiles so far: one per binding."""
        return self.specializations

    def eager_kernels(self) -> list[str]:
        """The eager kernels of the bindings compiled so far (irc stats)."""
        out: list[str] = []
        for executable in self._compiled.values():
            eager: Callable[[], list[str]] | None = getattr(executable, "eager_kernels", None)
            if callable(eager):
                out.extend(name for name in eager() if name not in out)
        return out


__all__ = ["SpecializingExecutable"]
