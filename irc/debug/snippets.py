"""Standalone modules cut out of a bigger one, and where their ops came from.

A carved case or a migrated kernel is compiled *alone*: these helpers build the
small module that holds just one op (graph level) or just one kernel (as a
graph-level ``@main`` whose body is the kernel's, or as a kernel-level module
whose ``@main`` calls a copy of the kernel). Values the piece uses from outside
(activations, weights, constants) become arguments of ``@main``, so the piece
runs on the real tensors recorded at its boundary.
"""

from __future__ import annotations

import linecache
import os
from collections.abc import Sequence

from xdsl.dialects import func
from xdsl.dialects.builtin import FileLineColLoc, ModuleOp, StringAttr
from xdsl.ir import Block, Operation, Region, SSAValue

from irc.ir.kernel import (  # noqa: F401  (re-exported for the debug tools)
    KERNEL_ATTR,
    is_kernel,
    is_kernel_level,
    kernel_calls,
    kernels_by_name,
    mark_kernel,
)


def source_of(op: Operation) -> str | None:
    """``file:line`` of the user's Python line an op came from, if known."""
    loc = op.location
    if isinstance(loc, FileLineColLoc):
        return f"{loc.filename.data}:{loc.line.data}"
    return None


def display_source(source: str | None) -> str:
    """``file:line`` for people: the path relative to the working directory
    when the file is under it."""
    if not source:
        return "-"
    filename, _, line = source.rpartition(":")
    try:
        rel = os.path.relpath(filename)
    except ValueError:  # another drive on Windows
        return source
    return f"{rel}:{line}" if not rel.startswith("..") else source


def source_text(source: str | None) -> str | None:
    """The text of the Python line ``file:line`` points at (None if unreadable)."""
    if not source or ":" not in source:
        return None
    filename, _, line = source.rpartition(":")
    if not line.isdigit():
        return None
    text = linecache.getline(filename, int(line)).strip()
    return text or None


def _unique(values: Sequence[SSAValue]) -> list[SSAValue]:
    seen: list[SSAValue] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def op_module(op: Operation) -> tuple[ModuleOp, list[SSAValue]]:
    """A graph-level module whose ``@main`` runs just ``op``.

    Returns the module and the original values that feed its arguments, in
    order (an operand used twice becomes one argument, used twice).
    """
    inputs = _unique(list(op.operands))
    block = Block(arg_types=[v.type for v in inputs])
    mapper: dict[SSAValue, SSAValue] = dict(zip(inputs, block.args))
    clone = op.clone(value_mapper=mapper)
    block.add_op(clone)
    block.add_op(func.ReturnOp(*clone.results))
    fn = func.FuncOp("main", ([v.type for v in inputs], [r.type for r in op.results]), Region(block))
    return ModuleOp([fn]), inputs


def kernel_graph_module(kernel: func.FuncOp) -> ModuleOp:
    """A graph-level module: the kernel's body as ``@main`` (what a graph-level
    backend, or ``irc test-carved``, compiles)."""
    clone = kernel.clone()
    clone.sym_name = StringAttr("main")
    clone.sym_visibility = None
    for attr in [a for a in clone.attributes if a.startswith("irc.")]:
        del clone.attributes[attr]
    return ModuleOp([clone])


def kernel_host_module(kernel: func.FuncOp) -> ModuleOp:
    """A kernel-level module: a copy of the kernel plus a ``@main`` that calls it."""
    clone = kernel.clone()
    mark_kernel(clone)
    ftype = kernel.function_type
    block = Block(arg_types=list(ftype.inputs))
    call = func.CallOp(kernel.sym_name.data, list(block.args), list(ftype.outputs))
    block.add_ops([call, func.ReturnOp(*call.results)])
    main = func.FuncOp("main", (list(ftype.inputs), list(ftype.outputs)), Region(block))
    return ModuleOp([clone, main])


def body_ops(fn: func.FuncOp) -> list[Operation]:
    """A function's ops, without the terminator."""
    return [op for op in fn.body.block.ops if not isinstance(op, func.ReturnOp)]

