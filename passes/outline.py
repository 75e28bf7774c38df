"""Emitting fusion: turn a :class:`~irc.passes.fusion_groups.FusionPlan` into
kernel-level IR.

Each kernel group becomes ``func.func private @kernel_N`` (N = position in the
schedule, counting kernels only) with the unit attribute ``irc.kernel`` and a
one-line ``irc.iteration`` summary; its body is a clone of the group's ops and
a ``func.return`` of the group's outputs. ``@main`` is rebuilt as a straight
line: host values (weights, constants) first, then the schedule, in which each
group is replaced by ``func.call @kernel_N`` and extern ops keep their place.
"""

from __future__ import annotations

from typing import Any

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, Region, SSAValue

from irc.ir import graph as g
from irc.ir.kernel import mark_kernel
from irc.ir.symbols import format_dim
from irc.ir.types import dims_of
from irc.passes.fusion_groups import FusionPlan, KernelGroup


def _fmt(shape: tuple[Any, ...]) -> str:
    return "x".join(format_dim(d) for d in shape) if shape else "scalar"


def iteration_summary(ops: list[Operation]) -> str:
    """``"4096x4096 -> reduce(1) 4096x1 -> 4096x4096"``: the spaces a kernel
    iterates over, in order, repeated spaces collapsed."""
    parts: list[str] = []

    def add(space: str) -> None:
        if not parts or parts[-1].split(" ")[-1] != space:
            parts.append(space)

    for op in ops:
        if isinstance(op, g.ReduceOp):
            add(_fmt(dims_of(op.input.type)))
            dims = ",".join(str(d) for d in op.reduced_dims)
            parts.append(f"reduce({dims}) {_fmt(dims_of(op.result.type))}")
        elif op.results:
            add(_fmt(dims_of(op.results[0].type)))
    return " -> ".join(parts)


def _free_kernel_name(taken: set[str], counter: list[int]) -> str:
    while f"kernel_{counter[0]}" in taken:
        counter[0] += 1
    name = f"kernel_{counter[0]}"
    counter[0] += 1
    taken.add(name)
    return name


def _build_kernel(name: str, kernel: KernelGroup) -> tuple[func.FuncOp, func.CallOp]:
    body = Block(arg_types=[v.type for v in kernel.inputs])
    mapper: dict[SSAValue, SSAValue] = dict(zip(kernel.inputs, body.args))
    for outer, arg in zip(kernel.inputs, body.args):
        arg.name_hint = outer.name_hint  # the kernel's %x reads the host's %x
    for op in (*kernel.clones, *kernel.ops):
        body.add_op(op.clone(mapper))
    body.add_op(func.ReturnOp(*(mapper[v] for v in kernel.outputs)))
    fn = func.FuncOp(name, ([v.type for v in kernel.inputs], [v.type for v in kernel.outputs]),
                     Region(body), "private")
    mark_kernel(fn, iteration_summary(kernel.ops))
    call = func.CallOp(name, list(kernel.inputs), [v.type for v in kernel.outputs])
    call.location = kernel.ops[0].location
    return fn, call


def outline(module: ModuleOp, main: func.FuncOp, plan: FusionPlan) -> list[func.FuncOp]:
    """Rewrite ``module`` as the plan says; returns the new kernel functions."""
    block = main.body.block
    terminator = block.last_op
    taken = {op.sym_name.data for op in module.ops if isinstance(op, func.FuncOp)}
    counter = [0]
    kernels: list[func.FuncOp] = []
    new_order: list[Operation] = list(plan.host_values)
    calls: list[tuple[KernelGroup, func.CallOp]] = []
    for item in plan.schedule:
        if isinstance(item, KernelGroup):
            fn, call = _build_kernel(_free_kernel_name(taken, counter), item)
            kernels.append(fn)
            calls.append((item, call))
            new_order.append(call)
        else:
            new_order.append(item)
    if terminator is not None:
        new_order.append(terminator)

    old_ops = list(block.ops)
    for op in old_ops:
        op.detach()
    for op in new_order:
        block.add_op(op)
    for kernel, call in calls:
        for value, result in zip(kernel.outputs, call.results):
            result.name_hint = value.name_hint
            value.replace_all_uses_with(result)
    kept = set(new_order)
    for op in reversed(old_ops):
        if op not in kept:
            op.erase(safe_erase=False)

    insert_at = main
    for fn in kernels:
        module.body.block.insert_op_after(fn, insert_at)
        insert_at = fn
    return kernels
