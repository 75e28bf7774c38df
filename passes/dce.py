"""Dead-code elimination on graph-level (and kernel-level) modules.

Guarantee: the outputs of every public function are unchanged. Removed are

* pure operations (``Pure`` trait, no regions with effects) whose results are
  unused, transitively (xDSL's liveness-based ``region_dce``);
* unused arguments of **private** functions (``sym_visibility = "private"``),
  with the matching operands dropped at every ``func.call`` of that function.

Public functions keep their signatures: ``@main``'s argument list is the
calling convention of the compiled program and is never changed. Ops with
side effects or unknown effects are never removed.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, FunctionType, ModuleOp
from xdsl.passes import ModulePass
from xdsl.transforms.dead_code_elimination import region_dce


def _drop_unused_private_args(module: ModuleOp) -> bool:
    """Remove unused block arguments of private functions and the matching call
    operands. Returns whether anything changed."""
    calls: dict[str, list[func.CallOp]] = {}
    for op in module.walk():
        if isinstance(op, func.CallOp):
            calls.setdefault(op.callee.string_value(), []).append(op)
    changed = False
    for fn in module.ops:
        if not isinstance(fn, func.FuncOp) or fn.is_declaration:
            continue
        if fn.sym_visibility is None or fn.sym_visibility.data != "private":
            continue
        block = fn.body.block
        dead = [arg.index for arg in block.args if not arg.uses]
        if not dead:
            continue
        users = calls.get(fn.sym_name.data, [])
        if any(len(c.arguments) != len(block.args) for c in users):
            continue  # a malformed call; leave the function alone rather than guess
        for call in users:
            call.operands = [v for i, v in enumerate(call.operands) if i not in dead]
        for index in reversed(dead):
            block.erase_arg(block.args[index])
        inputs = [t for i, t in enumerate(fn.function_type.inputs.data) if i not in dead]
        fn.properties["function_type"] = FunctionType.from_lists(
            inputs, list(fn.function_type.outputs.data))
        if fn.arg_attrs is not None:
            fn.properties["arg_attrs"] = ArrayAttr(
                [a for i, a in enumerate(fn.arg_attrs.data) if i not in dead])
        changed = True
    return changed


@dataclass(frozen=True)
class DeadCodeElimination(ModulePass):
    """Remove unused pure ops and unused arguments of private functions.

    Public function signatures (``@main``) are never changed; ops with side
    effects are never removed.
    """

    name = "dce"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        region_dce(op.body)
        # Dropping call operands can make ops in callers dead, and dead ops can
        # leave more arguments unused: iterate to a fixed point.
        while _drop_unused_private_args(op):
            region_dce(op.body)
