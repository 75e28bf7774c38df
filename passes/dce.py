"""Dead-code elimination on graph-level (and kernel-level) modules.

Guarantee: the outputs of every public function are unchanged. Removed are

* operations without observable effects (``Pure`` ops, and others when xDSL's
  ``would_be_trivially_dead`` says so, e.g. an unused ``memref.load``) whose
  results are unused, transitively;
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
from xdsl.ir import Block, Operation, Region
from xdsl.passes import ModulePass
from xdsl.traits import Pure
from xdsl.transforms.dead_code_elimination import would_be_trivially_dead

_PURE_LEAF: dict[type[Operation], bool] = {}


def _is_pure_leaf(op: Operation) -> bool:
    """Pure and region-free, cached per op class (trait lookups dominate otherwise)."""
    kind = type(op)
    if kind not in _PURE_LEAF:
        _PURE_LEAF[kind] = op.has_trait(Pure) and not op.regions
    return _PURE_LEAF[kind]


def erase_dead_ops(region: Region) -> bool:
    """Erase ops without observable effect whose results are unused, in one
    reverse sweep per block (users follow their operands in a block or sit in
    regions of later ops, which are swept first). Returns whether anything
    was erased.

    Same result as xDSL's liveness-based ``region_dce`` on structured IR (one
    block per region, as every irc level is) but linear and much faster on
    large graphs: ``region_dce`` re-queries traits and effects for every op in
    at least two full passes."""
    changed = False
    for block in region.blocks:
        changed |= _sweep_block(block)
    return changed


def _sweep_block(block: Block) -> bool:
    changed = False
    op = block.last_op
    while op is not None:
        previous = op.prev_op
        for nested in op.regions:
            changed |= erase_dead_ops(nested)
        if all(not r.uses for r in op.results) and (
                _is_pure_leaf(op) or would_be_trivially_dead(op)):
            block.erase_op(op)
            changed = True
        op = previous
    return changed


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
        erase_dead_ops(op.body)
        # Dropping call operands can make ops in callers dead, and dead ops can
        # leave more arguments unused: iterate to a fixed point.
        while _drop_unused_private_args(op):
            erase_dead_ops(op.body)
