"""The static module of one binding of a symbolic module's size symbols.

Apart from :mod:`irc.ir.symbols` (which the graph dialect's types build on)
because it rewrites graph ops: here the dialect is imported, not the other
way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xdsl.dialects.builtin import ArrayAttr, FunctionType, IntegerAttr, ModuleOp, StringAttr, TensorType

from irc.ir.graph import ConstantOp
from irc.ir.kernel import find_main
from irc.ir.symbols import (
    SymbolicShapeError,
    evaluate,
    is_symbolic_type,
    parse_dim,
    size_arg_names,
    specialize_type,
    symbols_of,
    type_dims,
)


def module_symbols(module: ModuleOp) -> list[str]:
    """The size symbols of ``@main``'s arguments, in order of first appearance."""
    seen: list[str] = []
    for arg in find_main(module).args:
        for d in type_dims(arg.type):
            for name in sorted(symbols_of([d])):
                if name not in seen:
                    seen.append(name)
    return seen


def specialize(module: ModuleOp, binding: Mapping[str, int]) -> ModuleOp:
    """A static copy of ``module`` for one binding of its size symbols.

    Every value's and block argument's type is concretised, and so is every
    type-valued attribute (a function's signature, a constant's type)."""
    from xdsl.dialects import func
    from xdsl.rewriter import Rewriter
    new = module.clone()
    for op in list(new.walk()):
        for v in list(op.results):
            if is_symbolic_type(v.type):
                Rewriter.replace_value_with_new_type(v, specialize_type(v.type, binding))
        for region in op.regions:
            for block in region.blocks:
                for a in list(block.args):
                    if is_symbolic_type(a.type):
                        Rewriter.replace_value_with_new_type(a, specialize_type(a.type, binding))
        if op.name in ("graph.size", "graph.iota"):
            _size_to_constant(op, binding)
            continue
        for key in ("start", "end") if op.name == "graph.slice" else ():
            bound = op.properties[key]
            if isinstance(bound, StringAttr):
                op.properties[key] = IntegerAttr(evaluate(parse_dim(bound.data), binding), 64)
        if isinstance(op, func.FuncOp):
            _drop_size_args(op)
            ft = op.function_type
            op.function_type = FunctionType.from_lists(
                [specialize_type(t, binding) for t in ft.inputs.data],
                [specialize_type(t, binding) for t in ft.outputs.data])
    return new


def _drop_size_args(fn: Any) -> None:
    """Remove ``fn``'s size arguments (their values are in the specialised types now)."""
    if not fn.body.blocks:
        return  # a declaration
    names = size_arg_names(fn)
    if not any(n is not None for n in names):
        return
    block = fn.body.block
    for i in reversed(range(len(names))):
        if names[i] is not None:
            arg = block.args[i]
            if arg.uses:
                raise SymbolicShapeError(f"size argument {names[i]} is used by an op")
            block.erase_arg(arg)
    keep = [i for i, n in enumerate(names) if n is None]
    attrs = fn.arg_attrs.data if fn.arg_attrs is not None else ()
    fn.arg_attrs = ArrayAttr([attrs[i] for i in keep]) if attrs else None
    ft = fn.function_type
    fn.function_type = FunctionType.from_lists([ft.inputs.data[i] for i in keep],
                                                    list(ft.outputs.data))


def _size_to_constant(op: Any, binding: Mapping[str, int]) -> None:
    """``graph.size "expr"`` / ``graph.iota`` -> ``graph.constant`` of its
    value under ``binding``."""
    from xdsl.dialects.builtin import DenseIntOrFPElementsAttr
    from xdsl.rewriter import Rewriter

    if op.name == "graph.iota":
        n = evaluate(type_dims(op.result.type)[0], binding)
        values = list(range(n))
        result_type = TensorType(op.result.type.get_element_type(), [n])
    else:
        values = [evaluate(parse_dim(op.expr.data), binding)]
        result_type = op.result.type
    const = ConstantOp(DenseIntOrFPElementsAttr.from_list(result_type, values))
    Rewriter.replace_op(op, const)


__all__ = ["module_symbols", "specialize"]
