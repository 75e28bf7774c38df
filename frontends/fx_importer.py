"""Core-aten FX graphs -> the ``graph`` dialect.

:class:`FxImporter` walks an FX graph (placeholders, get_attr, call_function on
aten overloads, output) and emits one ``func.func @main``. What it guarantees:

* every tensor placeholder becomes an argument of ``@main`` in order (or a
  ``graph.weight`` referring to the live parameter/buffer when the caller says
  the placeholder is a weight); ``get_attr`` tensors become ``graph.weight`` ops
  referring to the module's own tensor (never copied into the text);
* nodes whose inputs are all known at import time (``arange``, ``full``,
  ``triu(full(..))``...) are evaluated with torch and become a splat
  ``graph.constant``, a small dense one, or a ``graph.weight`` holding the
  computed tensor when large and non-uniform; random ops are never folded;
* every emitted value has the dtype and shape torch gives the node
  (``node.meta["val"]``): python scalars become 0-d constants in the dtype
  torch's wrapped-number promotion gives, and a final cast fixes up any dtype
  the dialect's rules would derive differently;
* each op carries the node's user source line as its location;
* an op it cannot express raises :class:`NodeUnsupported` naming the node (the
  capture layer then runs that node in eager PyTorch, or reports it).

Op handlers live in ``aten_elementwise``, ``aten_shape`` and ``aten_nn``
(:data:`HANDLER_MODULES`), each marked with the targets it handles by
:func:`handles`; :func:`handlers` builds the table from those modules, once,
on first use. Importing a module registers nothing.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

import operator

import sympy
import torch
import torch.fx
from xdsl.builder import Builder
from xdsl.rewriter import InsertPoint
from xdsl.dialects import func
from xdsl.dialects.builtin import (ArrayAttr, DictionaryAttr, IndexType,
                                   ModuleOp, StringAttr)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.utils.exceptions import VerifyException

from irc.frontends.program import Program
from irc.frontends.source_locations import location
from irc.frontends.unsupported import NodeUnsupported
from irc.frontends.symbolic_sizes import SizeNormalizer, normalizer_for
from irc.ir import graph as g
from irc.ir.symbols import (SIZE_ARG, Dim, SymbolicShapeError, canonical, format_dim, from_torch,
                             symbols_of)
from irc.ir.types import SUPPORTED_DTYPES, dims_of, dtype_of, tensor_type

Handler = Callable[["FxImporter", torch.fx.Node], Any]
HANDLER_MODULES = ("irc.frontends.aten_elementwise", "irc.frontends.aten_shape",
                   "irc.frontends.aten_nn", "irc.frontends.aten_strided",
                   "irc.frontends.input_mutations")
"""The modules whose :func:`handles`-marked functions :func:`handlers` collects
(in this order: a later module's handler for the same target wins)."""
_TARGETS_ATTR = "_irc_handles"

# constants up to this many elements are printed as dense<...>; larger
# non-uniform ones become graph.weight ops holding the computed tensor
DENSE_LIMIT = 64
# splats larger than this are a 0-d constant + graph.expand (keeps IR small)
SPLAT_LIMIT = 4096


def handles(*targets: object) -> Callable[[Handler], Handler]:
    """Mark a handler for aten op packets (all overloads), aten op names
    (``"_to_copy"``; names this torch version lacks are skipped) or callables.
    Only marks ``fn``; :func:`handlers` collects the marked functions."""
    def mark(fn: Handler) -> Handler:
        setattr(fn, _TARGETS_ATTR, getattr(fn, _TARGETS_ATTR, ()) + targets)
        return fn
    return mark


@cache
def handlers() -> Mapping[object, Handler]:
    """aten op packet (e.g. ``torch.ops.aten.add``) or python callable -> its
    handler, built once from the :func:`handles` marks in :data:`HANDLER_MODULES`."""
    table: dict[object, Handler] = {}
    for name in HANDLER_MODULES:
        module = importlib.import_module(name)
        for fn in vars(module).values():
            if getattr(fn, "__module__", None) != name:
                continue  # a handler imported from another module is that module's
            for t in getattr(fn, _TARGETS_ATTR, ()):
                if isinstance(t, str):
                    if not hasattr(torch.ops.aten, t):
                        continue
                    t = getattr(torch.ops.aten, t)
                table[t] = fn
    return types.MappingProxyType(table)


def handler_for(node: torch.fx.Node) -> Handler | None:
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return handlers().get(target.overloadpacket)
    return handlers().get(target)


def _vals(node: torch.fx.Node) -> list[torch.Tensor]:
    val = node.meta.get("val")
    if isinstance(val, torch.Tensor):
        return [val]
    if isinstance(val, (tuple, list)):
        return [v for v in val if isinstance(v, torch.Tensor)]
    return []


def static_problem(node: torch.fx.Node) -> str | None:
    """Why ``node`` cannot be imported, judged without importing (None: maybe it can)."""
    if node.op != "call_function" or _is_size_node(node):
        return None
    if handler_for(node) is None and not _foldable_target(node):
        from irc.frontends.aten_extern import problem as extern_problem
        if extern_problem(node) is not None:
            return "no lowering to the graph dialect"
    for arg in node.all_input_nodes:
        for v in _vals(arg):
            if v.dtype not in SUPPORTED_DTYPES:
                return f"dtype {v.dtype} is not supported"
            if v.layout != torch.strided:
                return f"layout {v.layout} is not supported"
    for v in _vals(node):
        if v.dtype not in SUPPORTED_DTYPES:
            return f"dtype {v.dtype} is not supported"
        if v.layout != torch.strided:
            return f"layout {v.layout} is not supported"
        if v.device.type not in ("cpu", "meta") and v.device.type != "cuda":
            return f"device {v.device} is not supported"
    return None


def static_problems(gm: torch.fx.GraphModule) -> dict[str, str]:
    """Node name -> why it cannot be imported, for every node judged so
    without importing. A node with no lowering is fine when all its inputs are
    import-time constants (it is then evaluated by torch at import)."""
    constant: set[torch.fx.Node] = set()
    problems: dict[str, str] = {}
    for node in gm.graph.nodes:
        if node.op == "get_attr":
            constant.add(node)
        if node.op != "call_function":
            continue
        foldable = _foldable_target(node) and all(i in constant for i in node.all_input_nodes)
        if foldable:
            constant.add(node)
            continue  # evaluated by torch at import; only its materialised value matters
        problem = static_problem(node)
        if problem is None and handler_for(node) is None and not _is_size_node(node):
            from irc.frontends.aten_extern import problem as extern_problem
            if extern_problem(node) is not None:
                problem = "no lowering to the graph dialect"
        if problem is not None:
            problems[node.name] = problem
    return problems


def _reads_missing_output(node: torch.fx.Node, result: tuple[Any, ...]) -> bool:
    """Whether a used ``getitem`` of ``node`` reads an output the handler left None."""
    return any(user.target is operator.getitem and isinstance(user.args[1], int)
               and user.args[1] < len(result) and result[user.args[1]] is None and user.users
               for user in node.users)


def _foldable_target(node: torch.fx.Node) -> bool:
    target = node.target
    if not isinstance(target, torch._ops.OpOverload):
        return False
    if torch.Tag.nondeterministic_seeded in target.tags:
        return False
    return not target._schema.is_mutable


class FxImporter:
    """Builds one graph-level :class:`Program` from an FX graph.

    ``weight_placeholders`` maps placeholder names to (weight name, live tensor):
    those become ``graph.weight`` ops instead of ``@main`` arguments.
    """

    def __init__(self, gm: torch.fx.GraphModule,
                 weight_placeholders: Mapping[str, tuple[str, torch.Tensor]] | None = None) -> None:
        self.gm = gm
        self.weight_placeholders = dict(weight_placeholders or {})
        self.values: dict[torch.fx.Node, Any] = {}
        self.constants: dict[torch.fx.Node, Any] = {}  # import-time values (torch tensors etc.)
        self.weights: dict[str, torch.Tensor] = {}
        self.builder: Builder | None = None
        self.node: torch.fx.Node | None = None
        self._weight_values: dict[str, SSAValue] = {}
        self.op_nodes: dict[Operation, torch.fx.Node] = {}  # emitted op -> the node it came from
        self.arg_positions: list[int] = []  # placeholder index of each @main argument
        self.sizes: SizeNormalizer | None = None  # dynamo's sizes under its guards

    # ------------------------------------------------------------------ driver

    def run(self) -> Program:
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        arg_nodes, arg_types, size_args = self._arguments(placeholders)
        block = Block(arg_types=arg_types)
        self.builder = Builder(InsertPoint.at_end(block))
        for n, arg in zip(arg_nodes, block.args):
            arg.name_hint = _hint(size_args[n] if n in size_args else n.name)
            if n not in size_args:
                self.values[n] = arg
        outputs: list[SSAValue] = []
        output_names: list[str] = []
        # per FX output: index into the module's results, or ("const", python value)
        self.output_layout: list[int | tuple[str, Any]] = []
        for node in self.gm.graph.nodes:
            self.node = node
            if node.op == "placeholder":
                if node.name in self.weight_placeholders:
                    name, tensor = self.weight_placeholders[node.name]
                    self.values[node] = self.weight(name, tensor)
            elif node.op == "get_attr":
                self.constants[node] = _fetch_attr(self.gm, str(node.target))
            elif node.op == "call_function":
                self._import_call(node)
            elif node.op == "output":
                for out in _flat_outputs(node.args[0]):
                    if isinstance(out, torch.fx.Node) and not (
                            out in self.constants and not isinstance(self.constants[out], torch.Tensor)):
                        self.output_layout.append(len(outputs))
                        outputs.append(self.tensor(out))
                        output_names.append(out.name)
                    else:
                        value = self.constants.get(out, out) if isinstance(out, torch.fx.Node) else out
                        kind = "size" if isinstance(value, sympy.Expr) else "const"
                        self.output_layout.append((kind, value))
            else:
                raise NodeUnsupported(node, f"FX node kind {node.op} is not supported")
        self.node = None
        self.builder.insert(func.ReturnOp(*outputs))
        arg_attrs = ArrayAttr([DictionaryAttr({SIZE_ARG: StringAttr(size_args[n])} if n in size_args
                                              else {}) for n in arg_nodes]) if size_args else None
        main = func.FuncOp("main", (arg_types, [v.type for v in outputs]), Region(block),
                           arg_attrs=arg_attrs)
        module = ModuleOp([main])
        return Program(module, self.weights, [n.name for n in arg_nodes], output_names)

    def _arguments(self, placeholders: list[torch.fx.Node]
                   ) -> tuple[list[torch.fx.Node], list[Attribute], dict[torch.fx.Node, str]]:
        """@main's argument nodes and types, and the size arguments among them."""
        self.sizes = normalizer_for(n.meta.get("val") for n in self.gm.graph.nodes)
        # a size placeholder (dynamo's SymInt inputs) is a symbol, not a tensor:
        # its value is read from the tensors' shapes at run time
        for n in placeholders:
            if _is_size(n.meta.get("val")):
                self.constants[n] = self.dim(n.meta["val"])
        # a size placeholder whose value no shape spells (not a symbol of its own
        # after the guards) is an ``index`` argument of @main: MLIR's size operand
        spelled = symbols_of(d for n in placeholders if isinstance(n.meta.get("val"), torch.Tensor)
                             for d in self.dims(n.meta["val"].shape))
        size_args = {n: str(d) for n in placeholders
                     if isinstance(d := self.constants.get(n), sympy.Symbol) and str(d) not in spelled}
        arg_nodes = [n for n in placeholders if n.name not in self.weight_placeholders
                     and (n not in self.constants or n in size_args)]
        self.arg_positions = [placeholders.index(n) for n in arg_nodes]
        arg_types: list[Attribute] = []
        for n in arg_nodes:
            if n in size_args:
                arg_types.append(IndexType())
                continue
            val = n.meta.get("val")
            if not isinstance(val, torch.Tensor):
                raise NodeUnsupported(n, f"input {n.name} is not a tensor ({type(val).__name__})")
            if val.dtype not in SUPPORTED_DTYPES:
                raise NodeUnsupported(n, f"input dtype {val.dtype} is not supported")
            if val.layout != torch.strided:
                raise NodeUnsupported(n, f"input layout {val.layout} is not supported")
            try:
                arg_types.append(tensor_type(self.dims(val.shape), val.dtype))
            except SymbolicShapeError as err:
                raise NodeUnsupported(n, str(err)) from None
        return arg_nodes, arg_types, size_args

    def _import_call(self, node: torch.fx.Node) -> None:
        inputs = node.all_input_nodes
        if _is_size_node(node):
            # size arithmetic (sym_size, operator.mul on SymInts...): its value
            # is the expression dynamo derived; shapes that use it carry it
            self.constants[node] = self.dim(node.meta["val"])
            return
        if _foldable_target(node) and all(i in self.constants and not isinstance(
                self.constants[i], sympy.Expr) for i in inputs):
            self.constants[node] = self._evaluate(node)
            return
        problem = static_problem(node)
        if problem is None and handler_for(node) is None:
            from irc.frontends.aten_extern import problem as extern_problem
            if extern_problem(node) is not None:
                problem = "no lowering to the graph dialect"
        if problem is not None:
            raise NodeUnsupported(node, problem)
        handler = handler_for(node)
        try:
            if handler is None:
                raise NodeUnsupported(node, "no lowering to the graph dialect")
            result = handler(self, node)
            if isinstance(result, tuple) and _reads_missing_output(node, result):
                raise NodeUnsupported(node, "an output it does not lower is used")
        except NodeUnsupported as err:
            if err.node is not node:
                raise
            result = self._library_call(node, err)
        except (ValueError, TypeError, IndexError, KeyError, AssertionError, VerifyException) as err:
            why = f"cannot lower these arguments ({err})"
            if "Relational" in str(err):  # sympy: a size comparison a handler cannot decide
                why = f"its lowering needs a static size where this one is symbolic ({err})"
            result = self._library_call(node, NodeUnsupported(node, why))
        self.values[node] = self._check(node, result)

    def _library_call(self, node: torch.fx.Node, why: NodeUnsupported) -> Any:
        """``node`` as a ``graph.aten_call`` (torch's kernel at run time) where
        it has no lowering of its own, else ``why`` is raised."""
        from irc.frontends.aten_extern import import_aten_call, problem
        if problem(node) is not None:
            raise why
        return import_aten_call(self, node)

    def _evaluate(self, node: torch.fx.Node) -> Any:
        def real(a: Any) -> Any:
            return self.constants[a] if isinstance(a, torch.fx.Node) else a
        from torch.fx.node import map_aggregate
        args = map_aggregate(node.args, real)
        kwargs = map_aggregate(node.kwargs, real)
        return node.target(*args, **kwargs)  # type: ignore[operator]

    def _check(self, node: torch.fx.Node, result: Any) -> Any:
        """Make the value's dtype torch's; a shape disagreement is a lowering bug."""
        val = node.meta.get("val")
        if isinstance(result, SSAValue) and isinstance(val, torch.Tensor):
            want = self.dims(val.shape)
            if dims_of(result.type) != want:
                raise NodeUnsupported(node, f"lowered to shape {_fmt_dims(dims_of(result.type))}, "
                                            f"torch gives {_fmt_dims(want)}")
            if dtype_of(result.type) != val.dtype:
                result = self.cast(result, val.dtype)
            if result.name_hint is None:
                result.name_hint = _hint(node.name)
        return result

    # ------------------------------------------------------------------ helpers for handlers

    def emit(self, op: Operation) -> SSAValue:
        """Insert ``op`` at the current node's source line; its (first) result."""
        if self.node is not None:
            op.location = location(self.node)
            self.op_nodes[op] = self.node
        assert self.builder is not None
        self.builder.insert(op)
        return op.results[0] if op.results else None  # type: ignore[return-value]

    def tensor(self, arg: Any, dtype: torch.dtype | None = None) -> SSAValue:
        """The SSA value of an FX node argument (materialising import-time constants)."""
        if isinstance(arg, torch.fx.Node):
            if arg in self.values:
                value = self.values[arg]
                if not isinstance(value, SSAValue):
                    raise NodeUnsupported(arg, f"{arg.name} is not a tensor value")
            elif arg in self.constants:
                const = self.constants[arg]
                if not isinstance(const, torch.Tensor):
                    return self.scalar(const, dtype or _scalar_dtype(const))
                value = self.constant(const, arg)
                self.values[arg] = value
            else:
                raise NodeUnsupported(self.node or arg, f"value of {arg.name} is unavailable")
        elif isinstance(arg, (bool, int, float)):
            return self.scalar(arg, dtype or _scalar_dtype(arg))
        else:
            raise NodeUnsupported(self.node, f"argument {arg!r} is not a tensor")  # type: ignore[arg-type]
        if dtype is not None and dtype_of(value.type) != dtype:
            value = self.cast(value, dtype)
        return value

    def meta(self, arg: Any) -> torch.Tensor | None:
        """The example value (usually a FakeTensor) of a node, or None for scalars."""
        if isinstance(arg, torch.fx.Node):
            if arg in self.constants and isinstance(self.constants[arg], torch.Tensor):
                return self.constants[arg]
            val = arg.meta.get("val")
            return val if isinstance(val, torch.Tensor) else None
        return None

    def dim(self, size: Any) -> Dim:
        """A torch size (int or dynamo's ``SymInt``) as a graph-dialect dimension."""
        if isinstance(size, torch.SymInt):
            if self.sizes is None:
                self.sizes = normalizer_for([size])
            assert self.sizes is not None
            return self.sizes(size)
        return from_torch(size)

    def size_arg(self, arg: Any) -> Any:
        """An integer argument that may be a size node (a SymInt): its :data:`Dim`."""
        if isinstance(arg, torch.fx.Node):
            value = self.constants.get(arg)
            if isinstance(value, (int, sympy.Expr)):
                return value
            raise NodeUnsupported(self.node or arg, f"{arg.name} is not a size")
        return self.dim(arg) if isinstance(arg, torch.SymInt) else arg

    def dims(self, shape: Sequence[Any]) -> tuple[Dim, ...]:
        """A torch shape as graph-dialect dimensions (:meth:`dim` of each)."""
        return tuple(self.dim(d) for d in shape)

    def out_shape(self) -> tuple[Dim, ...]:
        """The current node's result shape (symbolic sizes as size expressions)."""
        return self.dims(self.out_meta().shape)

    def out_meta(self) -> torch.Tensor:
        assert self.node is not None
        val = self.node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            raise NodeUnsupported(self.node, "no example value for the result")
        return val

    def cast(self, value: SSAValue, dtype: torch.dtype) -> SSAValue:
        if dtype_of(value.type) == dtype:
            return value
        return self.emit(g.CastOp(value, tensor_type(dims_of(value.type), dtype)))

    def scalar(self, value: bool | int | float | sympy.Expr, dtype: torch.dtype) -> SSAValue:
        """A 0-d ``graph.constant`` holding a python number in ``dtype``; a
        symbolic size is a ``graph.size`` (cast to ``dtype``)."""
        if isinstance(value, sympy.Expr):
            return self.cast(self.emit(g.SizeOp(format_dim(canonical(value)))), dtype)
        return self.constant(torch.tensor(value, dtype=dtype))

    def constant(self, t: torch.Tensor, node: torch.fx.Node | None = None) -> SSAValue:
        """Materialise an import-time tensor (splat, dense, or a held weight)."""
        t = t.detach()
        if t.dtype not in SUPPORTED_DTYPES:
            raise NodeUnsupported(self.node or node, f"constant of dtype {t.dtype}")  # type: ignore[arg-type]
        shape, dtype = tuple(t.shape), t.dtype
        flat = t.reshape(-1)
        # f16/bf16 are built in f32 and cast (exact: every f16/bf16 value is an f32)
        build_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
        uniform = flat.numel() > 0 and bool((flat == flat[0]).all() | (flat.isnan().all()
                                            if dtype.is_floating_point else False))
        if flat.numel() == 0 or uniform or flat.numel() <= DENSE_LIMIT:
            if uniform and flat.numel() > SPLAT_LIMIT:
                scalar = self.constant(flat[0].clone())
                return self.emit(g.ExpandOp(scalar, tensor_type(shape, dtype)))
            values = [flat[0].item()] if uniform else flat.tolist()
            attr = g.dense_attr(tensor_type(shape, build_dtype),
                                _python_values(values, build_dtype))
            return self.cast(self.emit(g.ConstantOp(attr)), dtype)
        name = f"_const_{node.name if node is not None else len(self.weights)}"
        return self.weight(name, t.contiguous())

    def weight(self, name: str, tensor: torch.Tensor) -> SSAValue:
        """A ``graph.weight`` op referring to ``tensor`` (held, not copied)."""
        if name in self._weight_values:
            return self._weight_values[name]
        if tensor.dtype not in SUPPORTED_DTYPES:
            raise NodeUnsupported(self.node, f"weight {name} has dtype {tensor.dtype}")  # type: ignore[arg-type]
        self.weights[name] = tensor
        value = self.emit(g.WeightOp(name, tensor_type(tuple(tensor.shape), tensor.dtype)))
        value.name_hint = _hint(name)
        self._weight_values[name] = value
        return value

    def arg(self, index: int, name: str, default: Any = None) -> Any:
        """Positional-or-keyword argument of the current node."""
        assert self.node is not None
        if index < len(self.node.args):
            return self.node.args[index]
        return self.node.kwargs.get(name, default)

    def unsupported(self, reason: str) -> NodeUnsupported:
        assert self.node is not None
        return NodeUnsupported(self.node, reason)


_SIZE_OPS = (torch.ops.aten.sym_size.int, torch.ops.aten.sym_numel.default,
             torch.ops.aten.sym_stride.int)


def _is_size(val: Any) -> bool:
    """Whether an example value is a size (a ``SymInt``), not a tensor."""
    return isinstance(val, torch.SymInt)


def _is_size_node(node: torch.fx.Node) -> bool:
    """Size arithmetic: ``sym_size`` or a python operator on ``SymInt`` values."""
    return _is_size(node.meta.get("val")) and (
        not isinstance(node.target, torch._ops.OpOverload) or node.target in _SIZE_OPS)


def _fmt_dims(dims: Sequence[Dim]) -> str:
    return "[" + ", ".join(format_dim(d) for d in dims) + "]"


def _python_values(values: Sequence[Any], dtype: torch.dtype) -> list[Any]:
    if dtype.is_floating_point:
        return [float(v) for v in values]
    return [int(v) for v in values]


def _scalar_dtype(value: Any) -> torch.dtype:
    if isinstance(value, bool):
        return torch.bool
    if isinstance(value, (int, sympy.Expr)):
        return torch.int64
    return torch.get_default_dtype()


def _hint(name: str) -> str | None:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    if not cleaned or cleaned[0].isdigit():
        cleaned = "v" + cleaned
    return cleaned


def _fetch_attr(gm: torch.nn.Module, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _flat_outputs(args: Any) -> list[Any]:
    if isinstance(args, (tuple, list)):
        out: list[Any] = []
        for a in args:
            out.extend(_flat_outputs(a))
        return out
    return [args]
