"""Deliberately broken backends for testing irc's debugging tools.

Each wraps the reference interpreter (at the graph or the kernel level) and
miscompiles exactly one kind of op, so carved tests and bisect have a known
culprit:

* ``broken-sub`` / ``broken-sub-kernel``: ``graph.sub`` results come out negated.
* ``broken-reduce`` / ``broken-reduce-kernel``: ``graph.sum`` reduces the wrong
  axis: another dim of the same size when there is one (the result keeps its
  shape), else the correct sum reversed along its first non-trivial dim.
* ``broken-mean``: ``graph.mean`` reduces the wrong axis, as ``broken-reduce``
  does for sums (Llama's RMS norm is a mean).
* ``no-exp``: refuses (BackendError) to compile anything containing ``graph.exp``.

Call :func:`register` to make them available as targets in this process.
:func:`chain_program` builds kernel-level programs of any length with one
kernel that only a broken ``graph.sub`` breaks (for bisect's cost tests).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from xdsl.dialects import func
from xdsl.dialects.builtin import FileLineColLoc, IntAttr, ModuleOp, StringAttr, UnitAttr
from xdsl.ir import Block, Operation, Region

from irc.backends.base import Backend, BackendOptions, Executable, Level
from irc.backends.registry import register_backend
from irc.errors import BackendError
from irc.frontends.program import Program
from irc.ir import graph as g
from irc.ir.interpreter import Interpreter
from irc.ir.types import dtype_of, tensor_type


class _SubFlipInterpreter(Interpreter):
    def execute(self, op: Operation, args: list[torch.Tensor]) -> torch.Tensor:
        result = super().execute(op, args)
        return -result if isinstance(op, g.SubOp) else result


def wrong_axis_sum(op: g.SumOp | g.MeanOp, x: torch.Tensor) -> torch.Tensor:
    """``sum`` (``mean`` for a MeanOp) over the wrong axis, keeping the result's shape."""
    reduce = torch.mean if isinstance(op, g.MeanOp) else torch.sum
    dims = list(op.reduced_dims)
    shape = list(x.shape)
    want = dtype_of(op.results[0].type)
    for d in dims:
        for other in range(len(shape)):
            if other not in dims and shape[other] == shape[d] and shape[d] > 1:
                swapped = x.transpose(d, other)  # reduce `other` where `d` should have been
                return reduce(swapped, dim=dims, keepdim=op.keeps_dims).to(want)
    right = reduce(x, dim=dims, keepdim=op.keeps_dims)
    flip = [i for i, s in enumerate(right.shape) if s > 1][:1]
    return (right.flip(flip) if flip else right).to(want)


class _WrongAxisInterpreter(Interpreter):
    def execute(self, op: Operation, args: list[torch.Tensor]) -> torch.Tensor:
        if isinstance(op, g.SumOp) and args[0].dim() > 0:
            return wrong_axis_sum(op, args[0])
        return super().execute(op, args)


class _WrongAxisMeanInterpreter(Interpreter):
    def execute(self, op: Operation, args: list[torch.Tensor]) -> torch.Tensor:
        if isinstance(op, g.MeanOp) and args[0].dim() > 0:
            return wrong_axis_sum(op, args[0])
        return super().execute(op, args)


class _BrokenBackend(Backend):
    interpreter: type[Interpreter] = Interpreter

    def compile(self, module: ModuleOp, weights: Mapping[str, torch.Tensor],
                options: BackendOptions) -> Executable:
        interpreter = self.interpreter(module, weights)

        def run(*inputs: torch.Tensor) -> list[torch.Tensor]:
            return interpreter.run(inputs)

        return run


class BrokenSubBackend(_BrokenBackend):
    """Graph level; negates every graph.sub result."""

    name = "broken-sub"
    level = Level.GRAPH
    interpreter = _SubFlipInterpreter


class BrokenSubKernelBackend(BrokenSubBackend):
    """Kernel level; negates every graph.sub result."""

    name = "broken-sub-kernel"
    level = Level.KERNEL


class BrokenReduceBackend(_BrokenBackend):
    """Graph level; graph.sum reduces the wrong axis."""

    name = "broken-reduce"
    level = Level.GRAPH
    interpreter = _WrongAxisInterpreter


class BrokenReduceKernelBackend(BrokenReduceBackend):
    """Kernel level; graph.sum reduces the wrong axis."""

    name = "broken-reduce-kernel"
    level = Level.KERNEL


class BrokenMeanBackend(_BrokenBackend):
    """Graph level; graph.mean reduces the wrong axis."""

    name = "broken-mean"
    level = Level.GRAPH
    interpreter = _WrongAxisMeanInterpreter


class NoExpBackend(_BrokenBackend):
    """Graph level; refuses to compile any module containing graph.exp."""

    name = "no-exp"
    level = Level.GRAPH

    def compile(self, module: ModuleOp, weights: Mapping[str, torch.Tensor],
                options: BackendOptions) -> Executable:
        if any(isinstance(op, g.ExpOp) for op in module.walk()):
            raise BackendError("no-exp backend: graph.exp is not supported")
        return super().compile(module, weights, options)


BROKEN_BACKENDS: dict[str, type[Backend]] = {
    cls.name: cls for cls in (BrokenSubBackend, BrokenSubKernelBackend, BrokenReduceBackend,
                              BrokenReduceKernelBackend, BrokenMeanBackend, NoExpBackend)
}


def register() -> list[str]:
    """Register every broken backend in-process; returns their names."""
    for name, cls in BROKEN_BACKENDS.items():
        register_backend(name, cls)
    return list(BROKEN_BACKENDS)


# ----------------------------------------------------------------------------
# synthetic kernel-level programs with one known culprit

CHAIN_FILE = "synthetic_chain.py"


def chain_program(n: int, culprit: int | None, shape: tuple[int, ...] = (4, 8)) -> Program:
    """A kernel-level program: ``@main`` chains ``n`` one-op kernels.

    Kernel ``i`` negates its input (``graph.neg``), except kernel ``culprit``,
    which computes ``x - (-x)`` (``graph.sub``), so a backend breaking
    ``graph.sub`` breaks exactly that kernel. Op ``i`` is located at line
    ``i + 1`` of :data:`CHAIN_FILE`.
    """
    t = tensor_type(list(shape), torch.float32)
    kernels: list[func.FuncOp] = []
    for i in range(n):
        block = Block(arg_types=[t])
        x = block.args[0]
        ops: list[Operation]
        if i == culprit:
            neg = g.NegOp(x)
            sub = g.SubOp(x, neg)
            neg.location = sub.location = _loc(i + 1)
            ops = [neg, sub]
        else:
            ops = [g.NegOp(x)]
            ops[0].location = _loc(i + 1)
        block.add_ops([*ops, func.ReturnOp(ops[-1].results[0])])
        fn = func.FuncOp(f"kernel_{i}", ([t], [t]), Region(block), "private")
        fn.attributes["irc.kernel"] = UnitAttr()
        kernels.append(fn)
    main_block = Block(arg_types=[t])
    value = main_block.args[0]
    for fn in kernels:
        call = func.CallOp(fn.sym_name.data, [value], [t])
        main_block.add_op(call)
        value = call.results[0]
    main_block.add_op(func.ReturnOp(value))
    main = func.FuncOp("main", ([t], [t]), Region(main_block))
    return Program(ModuleOp([*kernels, main]), {}, ["x"], ["y"])


def _loc(line: int) -> FileLineColLoc:
    return FileLineColLoc(StringAttr(CHAIN_FILE), IntAttr(line), IntAttr(1))
