"""Split large full reductions into a parallel partial kernel and a small final one.

A kernel whose single output reduces *all* of a large input to one element
(``sum(x * x)``, ``x.amax()``, ``mean``) would be one sequential loop: one
thread, and (for sums) one long accumulation chain.  :func:`split_full_reductions`
replaces such a kernel ``@k`` (before ``lower-to-loops`` lowers it) with

* ``@k_partial``: the same body, but reducing the input viewed as
  ``[N / BLOCK, BLOCK]`` over its last dim: ``N / BLOCK`` partial results, a
  row-reduction nest whose row loop is split over threads like any other;
* ``@k``: the same reduction over those partials (``mean`` of equal-sized
  block means is the mean).

``@main``'s call of ``@k`` becomes the two calls.  The result is deterministic
(fixed blocks, independent of the thread count) and, for sums, more accurate
than one sequential chain (two-level summation).  Applies to f32/f64
``sum``/``mean``/``amax``/``amin`` of at least :data:`SPLIT_MIN_ELEMENTS`
elements, a multiple of :data:`BLOCK`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from xdsl.dialects import func
from xdsl.dialects.builtin import FunctionType, ModuleOp, StringAttr, UnitAttr
from xdsl.ir import Block, Region

import torch

from irc.ir import graph as g
from irc.ir.kernel import ITERATION_ATTR, KERNEL_ATTR, is_kernel
from irc.ir.symbols import is_symbolic_type
from irc.ir.types import dtype_of, numel, shape_of, tensor_type

SPLIT_MIN_ELEMENTS = 1 << 20
BLOCK = 256
SPLITTABLE = (g.SumOp, g.MeanOp, g.AmaxOp, g.AminOp)


def _full_reduction(fn: func.FuncOp) -> int | None:
    """Position of the splittable full reduction that is ``fn``'s single output."""
    ops = list(fn.body.block.ops)
    ret = ops[-1] if ops else None
    if not isinstance(ret, func.ReturnOp) or len(ret.operands) != 1:
        return None
    out = ret.operands[0]
    r = out.owner
    if not isinstance(r, SPLITTABLE) or is_symbolic_type(r.input.type) \
            or numel(shape_of(out.type)) != 1:
        return None  # (a symbolic reduction is not split: its size is not known here)
    if len(list(out.uses)) != 1:
        return None
    dtype = dtype_of(r.input.type)
    n = numel(shape_of(r.input.type))
    if dtype not in (torch.float32, torch.float64) or dtype_of(out.type) != dtype:
        return None
    if n < SPLIT_MIN_ELEMENTS or n % BLOCK:
        return None
    return ops.index(r)


def _partial(fn: func.FuncOp, position: int, name: str) -> func.FuncOp:
    part = fn.clone()
    ops = list(part.body.block.ops)
    r, ret = ops[position], ops[-1]
    assert isinstance(r, g.ReduceOp)
    reduce_op = cast(Callable[..., g.ReduceOp], type(r))  # each reduction's own (input, dims, keepdim)
    n = numel(shape_of(r.input.type))
    dtype = dtype_of(r.input.type)
    block = part.body.block
    rows = g.ReshapeOp(r.input, tensor_type([n // BLOCK, BLOCK], dtype))
    partial = reduce_op(rows, [1], keepdim=False)
    block.insert_op_before(rows, r)
    block.insert_op_before(partial, r)
    new_ret = func.ReturnOp(partial.result)
    block.insert_op_before(new_ret, ret)
    ret.detach()
    ret.erase()
    r.detach()
    r.erase()
    part.sym_name = StringAttr(name)
    if ITERATION_ATTR in part.attributes:
        part.attributes[ITERATION_ATTR] = StringAttr(
            f"{part.attributes[ITERATION_ATTR].data} as {n // BLOCK} partials")  # type: ignore
    part.function_type = FunctionType.from_lists(list(fn.function_type.inputs.data),
                                                 [partial.result.type])
    return part


def _final(fn: func.FuncOp, position: int, partial_type) -> func.FuncOp:
    r = list(fn.body.block.ops)[position]
    assert isinstance(r, g.ReduceOp)
    reduce_op = cast(Callable[..., g.ReduceOp], type(r))
    out_type = r.result.type
    block = Block(arg_types=[partial_type])
    total = reduce_op(block.args[0], [0], keepdim=False)
    block.add_op(total)
    result = total.result
    if shape_of(out_type) != shape_of(result.type):
        reshape = g.ReshapeOp(result, out_type)
        block.add_op(reshape)
        result = reshape.result
    block.add_op(func.ReturnOp(result))
    final = func.FuncOp(fn.sym_name.data, ([partial_type], [out_type]), Region(block))
    final.attributes[KERNEL_ATTR] = UnitAttr()
    final.attributes[ITERATION_ATTR] = StringAttr(
        f"{shape_of(partial_type)[0]} -> reduce(0) of partials")
    return final


def split_full_reductions(module: ModuleOp, kernels: list[func.FuncOp]) -> list[func.FuncOp]:
    """Split the eligible ``kernels`` of ``module`` in place; returns the kernels to lower."""
    result: list[func.FuncOp] = []
    renamed: dict[str, tuple[func.FuncOp, func.FuncOp]] = {}
    for fn in kernels:
        position = _full_reduction(fn)
        if position is None:
            result.append(fn)
            continue
        name = fn.sym_name.data
        part = _partial(fn, position, f"{name}_partial")
        final = _final(fn, position, part.function_type.outputs.data[0])
        module.body.block.insert_op_before(part, fn)
        module.body.block.insert_op_before(final, fn)
        fn.detach()
        fn.erase(safe_erase=False)
        renamed[name] = (part, final)
        result += [part, final]
    if not renamed:
        return result
    for host in [f for f in module.ops if isinstance(f, func.FuncOp) and not is_kernel(f)]:
        for call in [o for o in host.walk() if isinstance(o, func.CallOp)]:
            pair = renamed.get(call.callee.string_value())
            if pair is None:
                continue
            part, final = pair
            first = func.CallOp(part.sym_name.data, list(call.operands),
                                list(part.function_type.outputs.data))
            second = func.CallOp(final.sym_name.data, list(first.results),
                                 list(final.function_type.outputs.data))
            parent = call.parent_block()
            assert parent is not None
            parent.insert_op_before(first, call)
            parent.insert_op_before(second, call)
            call.results[0].replace_all_uses_with(second.results[0])
            call.detach()
            call.erase()
    return result
