"""Functional aten ops without a lowering -> ``graph.aten_call`` (a library call).

An aten op the graph dialect has no op for (``sort``, ``topk``,
``scatter_reduce``, ``unfold``, ``rand``...), or whose handler cannot express
these particular arguments (``index.Tensor`` with non-adjacent index
tensors...), becomes one ``graph.aten_call`` when it is *eligible*
(:func:`problem` returns None):

* it is an ``OpOverload`` (of aten, or of another library's namespace such as
  ``torch_nn``; not ``prims``) whose schema mutates nothing (views are fine:
  the call's results are copies, value semantics);
* every argument is a tensor value, a python scalar/string/None, a dtype,
  device, layout or memory format, or a list of those; no generator object;
* every output is a strided tensor (or a tuple/list of them) of a dtype irc
  supports, its shape static or symbolic (dynamo's sizes, not data-dependent
  ones); or the op returns nothing (a check such as
  ``_linalg_check_errors``: the call is kept for the error it may raise).

Results are typed from the node's example values (``meta["val"]``). Ops
tagged ``nondeterministic_seeded`` get the ``seeded`` unit property: every
backend calls torch's op at run time, so the same seed gives eager's values.
``as_strided`` is left to its own lowering.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import torch
import torch.fx
from xdsl.dialects.builtin import StringAttr, UnitAttr
from xdsl.ir import Operation, SSAValue

from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols

from irc.frontends.unsupported import NodeUnsupported
from irc.ir.symbols import Dim
from irc.ir import graph as g
from irc.ir.types import SUPPORTED_DTYPES, tensor_type

# Never a generic call: as_strided has a lowering of its own coming;
# native_batch_norm in training writes the running statistics in place
# although its schema does not say so (value semantics cannot express that;
# AOTAutograd's functional graphs use _native_batch_norm_legit_functional).
EXCLUDED = frozenset({"as_strided", "as_strided_copy", "as_strided_scatter",
                      "native_batch_norm", "batch_norm", "_batch_norm_impl_index"})


def callee_name(target: torch._ops.OpOverload) -> str:
    """``aten::sort.stable`` / ``aten::sort.default`` (other namespaces alike)."""
    return f"{target._schema.name}.{target._overloadname}"


def node_sizes(node: Any) -> list[Any]:
    """The sizes of the example values of ``node``'s tensor inputs."""
    out: list[Any] = []
    for arg in getattr(node, "all_input_nodes", ()):
        val = arg.meta.get("val")
        if isinstance(val, torch.Tensor):
            out.extend(val.shape)
        elif isinstance(val, torch.SymInt):
            out.append(val)
    return out


def _outputs(node: torch.fx.Node) -> list[torch.Tensor] | str:
    val = node.meta.get("val")
    target = node.target
    if val is None and isinstance(target, torch._ops.OpOverload) and not target._schema.returns:
        return []  # a check (``_linalg_check_errors``): kept for its error, no result
    vals = list(val) if isinstance(val, (tuple, list)) else [val]
    if not vals:
        return "it has no tensor result"
    for v in vals:
        if not isinstance(v, torch.Tensor):
            return f"a result is a {type(v).__name__}, not a tensor"
        if v.dtype not in SUPPORTED_DTYPES:
            return f"dtype {v.dtype} is not supported"
        if any(free_unbacked_symbols(d) for d in (*v.shape, *node_sizes(node))
               if isinstance(d, torch.SymInt)):
            return f"its result shape {tuple(v.shape)} depends on the data"
        if v.layout != torch.strided:
            return f"layout {v.layout} is not supported"
    return [v for v in vals if isinstance(v, torch.Tensor)]  # all of them (checked above)


def _argument_problem(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):
        return next((p for p in map(_argument_problem, value) if p is not None), None)
    if isinstance(value, torch.fx.Node):
        val = value.meta.get("val")
        if value.op == "get_attr" or isinstance(val, torch.Tensor):
            return None
        if isinstance(val, (bool, int, float)) and not isinstance(val, torch.SymInt):
            return None
        return f"argument {value.name} is not a tensor ({type(val).__name__})"
    if value is None or isinstance(value, (bool, int, float, str, torch.dtype, torch.device,
                                           torch.layout, torch.memory_format)):
        return None
    return f"argument of type {type(value).__name__} cannot be passed to a library call"


def problem(node: torch.fx.Node) -> str | None:
    """Why ``node`` cannot be a ``graph.aten_call`` (None: it can)."""
    target = node.target
    if node.op != "call_function" or not isinstance(target, torch._ops.OpOverload):
        return "not an aten op"
    if target.namespace in ("prims", "higher_order") or target.overloadpacket.__name__ in EXCLUDED:
        return "no lowering to the graph dialect"
    if target._schema.is_mutable:
        return "it mutates its arguments"
    outs = _outputs(node)
    if isinstance(outs, str):
        return outs
    return _argument_problem([*node.args, *node.kwargs.values()])


class Importer(Protocol):
    """What the extern import uses of :class:`~irc.frontends.fx_importer.FxImporter`."""

    @property
    def constants(self) -> dict[torch.fx.Node, Any]: ...
    def tensor(self, arg: Any, dtype: torch.dtype | None = None) -> SSAValue: ...
    def emit(self, op: Operation) -> SSAValue: ...
    def dims(self, shape: Any) -> tuple[Dim, ...]: ...


class _Encoder:
    """Arguments -> JSON-able values, tensor arguments collected as operands."""

    def __init__(self, ctx: Importer) -> None:
        self.ctx = ctx
        self.operands: list[SSAValue] = []

    def encode(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [self.encode(v) for v in value]
        if isinstance(value, torch.fx.Node):
            const = self.ctx.constants.get(value)
            if value in self.ctx.constants and not isinstance(const, torch.Tensor):
                return self.encode(const)
            if value not in self.ctx.constants and not isinstance(value.meta.get("val"),
                                                                   torch.Tensor):
                raise NodeUnsupported(value, f"{value.name} is not a tensor value")
            self.operands.append(self.ctx.tensor(value))
            return {"$t": len(self.operands) - 1}
        if isinstance(value, torch.dtype):
            return {"$dtype": str(value).removeprefix("torch.")}
        if isinstance(value, torch.device):
            return {"$device": str(value)}
        if isinstance(value, torch.layout):
            return {"$layout": str(value).removeprefix("torch.")}
        if isinstance(value, torch.memory_format):
            return {"$memory_format": str(value).removeprefix("torch.")}
        return value  # None, bool, int, float (inf/nan as JSON's Infinity/NaN), str


def import_aten_call(ctx: Importer, node: torch.fx.Node) -> SSAValue | tuple[SSAValue, ...]:
    """Emit ``node`` as one ``graph.aten_call``; its result (a tuple for
    several outputs, as ``getitem`` expects)."""
    reason = problem(node)
    if reason is not None:
        raise NodeUnsupported(node, reason)
    target = node.target
    assert isinstance(target, torch._ops.OpOverload)
    outs = _outputs(node)
    assert not isinstance(outs, str)
    encoder = _Encoder(ctx)
    encoded = [encoder.encode(list(node.args)), {k: encoder.encode(v) for k, v in node.kwargs.items()}]
    properties: dict[str, Any] = {"callee": StringAttr(callee_name(target)),
                                  "args": StringAttr(json.dumps(encoded))}
    if torch.Tag.nondeterministic_seeded in target.tags:
        properties["seeded"] = UnitAttr()
    result_types = [tensor_type(ctx.dims(v.shape), v.dtype) for v in outs]
    op = g.AtenCallOp(operands=[encoder.operands], result_types=[result_types],
                      properties=properties)
    ctx.emit(op)
    results = tuple(op.results)
    if not results:
        return None  # type: ignore[return-value]
    val = node.meta.get("val")
    return results if isinstance(val, (tuple, list)) else results[0]
