"""The ``numpy`` backend: runs kernel-level IR with NumPy.

Consumes the KERNEL level (after ``fuse``): ``@main`` is the host schedule of
``func.call @kernel_N`` and extern ops; each kernel is a function of graph
ops. ``compile`` turns every function into a flat list of NumPy closures
(dtype decisions made once, at compile time), so a call is a loop over
prepared steps. torch tensors become NumPy arrays at the boundary (inputs and
weights, zero-copy on the CPU) and outputs become fresh torch tensors.

Guarantees: the results agree with the reference interpreter within the
dtype's tolerance; an op it cannot run (bfloat16 values, an op without a
NumPy implementation) fails ``compile`` with an UnsupportedOpError naming it;
with ``validate_inputs`` a call with the wrong number, shape or dtype of
tensors raises InputMismatchError instead of broadcasting silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue

from irc.backends.base import Backend, BackendOptions, Executable, Level
from irc.errors import InputMismatchError, UnsupportedOpError
from irc.ir import graph as g
from irc.ir.types import dtype_of, shape_of

from irc_numpy_backend import ops

Step = Callable[[list[np.ndarray]], None]


@dataclass(frozen=True)
class NumpyOptions(BackendOptions):
    """Options of the numpy backend (``backend.numpy.*`` in the configuration)."""

    validate_inputs: bool = True
    """Check the number, shapes and dtypes of the inputs on every call."""


def _to_numpy(t: torch.Tensor, what: str) -> np.ndarray:
    if t.dtype not in ops.NUMPY_DTYPES:
        raise InputMismatchError(f"{what}: dtype {t.dtype} is not supported by the numpy backend")
    return t.detach().cpu().resolve_conj().resolve_neg().numpy()


class _Function:
    """One func.func as a list of steps over a register file of arrays."""

    def __init__(self, fn: func.FuncOp, compiled: dict[str, _Function],
                 functions: dict[str, func.FuncOp], weights: Mapping[str, torch.Tensor]) -> None:
        self.name = fn.sym_name.data
        slots: dict[SSAValue, int] = {}

        def slot(v: SSAValue) -> int:
            return slots.setdefault(v, len(slots))

        self.arg_slots = [slot(a) for a in fn.body.block.args]
        self.steps: list[Step] = []
        self.result_slots: list[int] = []
        for op in fn.body.block.ops:
            ins = [slots[v] for v in op.operands]
            if isinstance(op, func.ReturnOp):
                self.result_slots = ins
                break
            outs = [slot(r) for r in op.results]
            self.steps.append(self._step(op, ins, outs, compiled, functions, weights))
        self.size = len(slots)

    @staticmethod
    def _step(op: Operation, ins: list[int], outs: list[int], compiled: dict[str, _Function],
              functions: dict[str, func.FuncOp], weights: Mapping[str, torch.Tensor]) -> Step:
        if isinstance(op, func.CallOp):
            callee = op.callee.string_value()
            if callee not in compiled:
                compiled[callee] = _Function(functions[callee], compiled, functions, weights)
            target = compiled[callee]

            def call(regs: list[np.ndarray]) -> None:
                for o, value in zip(outs, target([regs[i] for i in ins])):
                    regs[o] = value
            return call
        if isinstance(op, g.WeightOp):
            name, out = op.sym_name.data, outs[0]

            def weight(regs: list[np.ndarray]) -> None:
                if name not in weights:
                    raise InputMismatchError(f"no value for weight \"{name}\"")
                regs[out] = _to_numpy(weights[name], f"weight {name}")
            return weight
        kernel, out = ops.build(op), outs[0]

        def compute(regs: list[np.ndarray]) -> None:
            regs[out] = np.asarray(kernel([regs[i] for i in ins]))
        return compute

    def __call__(self, args: Sequence[np.ndarray]) -> list[np.ndarray]:
        regs: list[np.ndarray] = [None] * self.size  # type: ignore[list-item]
        for s, a in zip(self.arg_slots, args):
            regs[s] = a
        for step in self.steps:
            step(regs)
        return [regs[i] for i in self.result_slots]


class NumpyBackend(Backend):
    """Runs kernel-level modules with NumPy (see the module docstring)."""

    name = "numpy"
    level = Level.KERNEL
    Options = NumpyOptions
    description = "NumPy interpreter of kernel-level IR (example plugin)"

    def supports(self, op: Operation) -> bool:
        if isinstance(op, (ModuleOp, func.FuncOp, func.ReturnOp, func.CallOp, g.WeightOp)):
            return True
        return ops.unsupported_reason(op) is None

    def compile(self, module: ModuleOp, weights: Mapping[str, torch.Tensor],
                options: BackendOptions) -> Executable:
        assert isinstance(options, NumpyOptions)
        for op in module.walk():
            if self.supports(op):
                continue
            raise UnsupportedOpError(op.name, reason=f"the numpy backend cannot run it: "
                                                     f"{ops.unsupported_reason(op)}")
        functions = {f.sym_name.data: f for f in module.ops if isinstance(f, func.FuncOp)}
        if "main" not in functions:
            raise UnsupportedOpError("builtin.module", reason="the module has no func.func @main")
        main = functions["main"]
        signature = [(shape_of(t), dtype_of(t)) for t in main.function_type.inputs.data]
        entry = _Function(main, {}, functions, weights)
        validate = options.validate_inputs

        def run(*inputs: torch.Tensor) -> list[torch.Tensor]:
            if validate:
                _check_inputs(inputs, signature)
            arrays = [_to_numpy(t, f"input {i}") for i, t in enumerate(inputs)]
            with np.errstate(all="ignore"):  # inf/nan results are values, as in torch
                results = entry(arrays)
            return [torch.from_numpy(np.array(r, copy=True, order="C")) for r in results]

        return run


def _check_inputs(inputs: Sequence[torch.Tensor],
                  signature: list[tuple[tuple[int, ...], torch.dtype]]) -> None:
    if len(inputs) != len(signature):
        raise InputMismatchError(f"expected {len(signature)} inputs, got {len(inputs)}")
    for i, (t, (shape, dtype)) in enumerate(zip(inputs, signature)):
        if not isinstance(t, torch.Tensor):
            raise InputMismatchError(f"input {i} must be a torch.Tensor, got {type(t).__name__}")
        if tuple(t.shape) != shape or t.dtype != dtype:
            raise InputMismatchError(f"input {i}: expected {dtype} of shape {list(shape)}, "
                                     f"got {t.dtype} of shape {list(t.shape)}")
