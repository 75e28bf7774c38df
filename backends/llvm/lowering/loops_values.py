"""Graph values inside a kernel as *index functions*: (output index) -> scalar node.

``KernelValues.at(value, index)`` returns the node computing ``value[index]``
(index: one :class:`~irc.ir.index.Lin` per dim of the value; the movement ops'
index maps are the shared ones of :mod:`irc.ir.index`).
Elementwise ops compose scalar nodes; expand/permute/reshape/slice/squeeze/
unsqueeze only rewrite the index (no memory traffic); concat selects between
clamped reads; gather/index_select/embedding read an index from memory;
reductions become reduction nodes over fresh loop variables.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import cast

import torch
from xdsl.ir import Attribute, Operation, SSAValue

from irc.errors import BackendError
from irc.ir import graph as g
from irc.ir.types import default_float, dims_of, dtype_of, numel, promote
from irc.ir import index as ix
from irc.backends.llvm.lowering.loops_emit import Node, NodeTable
from irc.backends.llvm.lowering.loops_scalar import HALF_TYPES, Scalars, compute_type, int_bounds

Index = ix.Index


def where(op: Operation) -> str:
    loc = getattr(op, "location", None)
    return f"{op.name} at {loc}" if loc is not None else op.name


def _same_scalar(a: float | int, b: float | int) -> bool:
    """Equal, bit for bit as far as torch can tell (-0.0 is not 0.0; NaN is NaN)."""
    if isinstance(a, float) or isinstance(b, float):
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return a == b


def _is_splat(values: Sequence[float | int]) -> bool:
    first = values[0]
    return all(_same_scalar(v, first) for v in values)


class KernelValues:
    """Index functions for the graph values of one kernel body.

    ``buffers`` maps a graph value to the memref holding it (kernel arguments,
    outputs already written, materialised scratch) and whether that memref
    stores the compute type (scratch) or the tensor's own dtype (arguments).
    ``constant_buffer`` makes a buffer for a non-splat constant.
    """

    def __init__(self, table: NodeTable,
                 constant_buffer: Callable[[g.ConstantOp], SSAValue]) -> None:
        self.table = table
        self.s = Scalars(table)
        self.buffers: dict[SSAValue, tuple[SSAValue, bool]] = {}
        self.constant_buffer = constant_buffer
        self._memo: dict[tuple, Node] = {}
        # e -> (r, buffer): e is written into buffer by r's loop, read back elsewhere
        # (see :mod:`loops_stash`)
        self.stash: dict[SSAValue, tuple[Operation, SSAValue]] = {}
        self._teeing: set[SSAValue] = set()

    # -- entry point ------------------------------------------------------------
    def at(self, value: SSAValue, index: Index) -> Node:
        stashed = self.stash.get(value)
        if stashed is not None and value not in self._teeing:
            return self.table.load(stashed[1], ix.linearise(index, dims_of(value.type)))
        key = (value, tuple(i.key() for i in index))
        found = self._memo.get(key)
        if found is None:
            found = self._compute(value, index)
            self._memo[key] = found
        return found

    def load(self, value: SSAValue, index: Index) -> Node:
        buffer, holds_compute = self.buffers[value]
        node = self.table.load(buffer, ix.linearise(index, dims_of(value.type)))
        if not holds_compute and dtype_of(value.type) in HALF_TYPES:
            node = self.s.op("extf", node, type_=compute_type(torch.float32))
        return node

    def _compute(self, value: SSAValue, index: Index) -> Node:
        if value in self.buffers:
            return self.load(value, index)
        op = value.owner
        if not isinstance(op, Operation):
            raise BackendError(f"kernel argument {value} has no buffer")
        handler = _HANDLERS.get(type(op))
        if handler is None:
            if isinstance(op, g.ElementwiseUnaryOp):
                return self.unary(op, index)
            if isinstance(op, g.ElementwiseBinaryOp):
                return self.binary(op, index)
            raise BackendError(f"lower-to-loops: cannot lower {where(op)} inside a kernel")
        return handler(self, op, index)

    # -- elementwise ------------------------------------------------------------
    def unary(self, op: g.ElementwiseUnaryOp, index: Index) -> Node:
        src, out = dtype_of(op.input.type), dtype_of(op.result.type)
        x = self.at(op.input, index)
        if type(op).DTYPE_RULE == "float" and not src.is_floating_point:
            x, src = self.s.cast(x, src, out), out
        approximate = op.approximate.data if isinstance(op, g.GeluOp) else "none"
        name = op.name.removeprefix("graph.")
        return self.s.unary(name, x, src, approximate)

    def binary(self, op: g.ElementwiseBinaryOp, index: Index) -> Node:
        da, db = dtype_of(op.lhs.type), dtype_of(op.rhs.type)
        out = dtype_of(op.result.type)
        mode = op.rounding_mode.data if isinstance(op, g.DivOp) else "none"
        dtype = promote(da, db)
        if type(op).DTYPE_RULE == "float" or (isinstance(op, g.DivOp) and mode == "none"):
            dtype = default_float(dtype)
        a = self.s.cast(self.at(op.lhs, ix.broadcast_index(index, dims_of(op.lhs.type))),
                        da, dtype)
        b = self.s.cast(self.at(op.rhs, ix.broadcast_index(index, dims_of(op.rhs.type))),
                        db, dtype)
        name = op.name.removeprefix("graph.")
        result = self.s.binary(name, a, b, dtype, mode)
        res_dtype = torch.bool if self.s.is_bool(result) and out == torch.bool else dtype
        return self.s.cast(result, res_dtype, out)

    def where_(self, op: g.WhereOp, index: Index) -> Node:
        out = dtype_of(op.result.type)
        c = self.at(op.cond, ix.broadcast_index(index, dims_of(op.cond.type)))
        a = self.s.cast(self.at(op.lhs, ix.broadcast_index(index, dims_of(op.lhs.type))),
                        dtype_of(op.lhs.type), out)
        b = self.s.cast(self.at(op.rhs, ix.broadcast_index(index, dims_of(op.rhs.type))),
                        dtype_of(op.rhs.type), out)
        return self.s.select(c, a, b)

    def cast(self, op: g.CastOp, index: Index) -> Node:
        return self.s.cast(self.at(op.input, index), dtype_of(op.input.type),
                           dtype_of(op.result.type))

    def constant(self, op: g.ConstantOp, index: Index) -> Node:
        dtype = dtype_of(op.result.type)
        # real values: xDSL also types complex elements, which no graph tensor has
        values = cast(Sequence[float | int], op.value.get_values())
        if len(values) == 1 or numel(dims_of(op.result.type)) == 1 or _is_splat(values):
            # a splat of any shape (e.g. a zero mask bias) is a scalar in the loop body
            v = values[0]
            if dtype.is_floating_point:
                v = float(v)
                if dtype in HALF_TYPES:  # the constant's value is its rounded value
                    v = float(torch.tensor(v, dtype=dtype).float())
            else:
                v = int(v)
            return self.table.const(v, compute_type(dtype))
        buffer = self.constant_buffer(op)
        return self.table.load(buffer, ix.linearise(index, dims_of(op.result.type)))

    def size_as(self, n: ix.Size, type_: Attribute) -> Node:
        """The value of a size expression as a scalar of float type ``type_``."""
        from xdsl.dialects.builtin import IntegerType
        i64 = self.s.op("index_cast", self.table.index(ix.const(n)), type_=IntegerType(64))
        return self.s.op("sitofp", i64, type_=type_)

    def size(self, op: g.SizeOp, index: Index) -> Node:
        """``graph.size "expr"``: the size's value (computed from the kernel's size arguments)."""
        from irc.ir.symbols import parse_dim
        return self.s.op("index_cast", self.table.index(ix.const(parse_dim(op.expr.data))),
                         type_=compute_type(torch.int64))

    def iota(self, op: g.IotaOp, index: Index) -> Node:
        """``graph.iota``: the element's own position, as i64."""
        return self.s.op("index_cast", self.table.index(index[0]), type_=compute_type(torch.int64))

    # -- movement ---------------------------------------------------------------
    def expand(self, op: g.ExpandOp, index: Index) -> Node:
        return self.at(op.input, ix.broadcast_index(index, dims_of(op.input.type)))

    def permute(self, op: g.PermuteOp, index: Index) -> Node:
        return self.at(op.input, ix.permute_index(index, g.ints(op.dims)))

    def reshape(self, op: Operation, index: Index) -> Node:
        return self.at(op.operands[0], ix.reshape_index(index, dims_of(op.results[0].type),
                                                        dims_of(op.operands[0].type)))

    def slice(self, op: g.SliceOp, index: Index) -> Node:
        dim, start, _end, step = op.symbolic_params()
        return self.at(op.input, ix.slice_index(index, dim, start, step))

    def concat(self, op: g.ConcatOp, index: Index) -> Node:
        dim = op.dim.value.data
        pos = self.table.index(index[dim])
        operands = list(op.inputs)
        pieces = [(offset, self.at(operands[k], src)) for k, offset, src in
                  ix.concat_pieces(index, dim, [dims_of(v.type)[dim] for v in operands])]
        if not pieces:  # an empty result: the loops never run this
            dtype = dtype_of(op.result.type)
            return self.table.const(0.0 if dtype.is_floating_point else 0, compute_type(dtype))
        result = pieces[-1][1]
        for k in range(len(pieces) - 2, -1, -1):
            offset = pieces[k + 1][0]
            bound = self.table.const(offset, pos.type) if isinstance(offset, int) else \
                self.table.index(ix.const(offset))
            below = self.s.cmpi("slt", pos, bound)
            result = self.s.select(below, pieces[k][1], result)
        return result

    # -- indexing ---------------------------------------------------------------
    def data_index(self, value: SSAValue, index: Index, size: ix.Size) -> ix.Lin:
        return ix.atom(ix.Data(self.at(value, index), size))

    def gather(self, op: g.GatherOp, index: Index) -> Node:
        dim = op.dim.value.data
        src = list(index)
        src[dim] = self.data_index(op.index, index, dims_of(op.input.type)[dim])
        return self.at(op.input, tuple(src))

    def index_select(self, op: g.IndexSelectOp, index: Index) -> Node:
        dim = op.dim.value.data
        src = list(index)
        src[dim] = self.data_index(op.index, (index[dim],), dims_of(op.input.type)[dim])
        return self.at(op.input, tuple(src))

    def embedding(self, op: g.EmbeddingOp, index: Index) -> Node:
        rows = dims_of(op.weight.type)[0]
        return self.at(op.weight, (self.data_index(op.indices, index[:-1], rows), index[-1]))

    # -- reductions -------------------------------------------------------------
    def reduction(self, op: g.ReduceOp, index: Index) -> Node:
        src, out = dtype_of(op.input.type), dtype_of(op.result.type)
        shape = dims_of(op.input.type)
        if not shape:  # 0-d input: the value itself (like the reference interpreter)
            return self.s.cast(self.at(op.input, ()), src, out)
        node = self.raw_reduction(op, index)
        if isinstance(op, g.MeanOp):
            n = numel([shape[d] for d in op.reduced_dims])
            count = self.s.c(float(n), node) if isinstance(n, int) else self.size_as(n, node.type)
            node = self.s.op("divf", node, count)
        return node

    def raw_reduction(self, op: g.ReduceOp, index: Index) -> Node:
        """The accumulator of ``op`` at ``index`` (mean: the sum)."""
        src, out = dtype_of(op.input.type), dtype_of(op.result.type)
        shape, dims = dims_of(op.input.type), op.reduced_dims
        kept = [d for d in range(len(shape)) if d not in dims]
        src_index: list[ix.Lin] = [ix.Lin(0)] * len(shape)
        rvars: list[ix.Var] = []
        for d in dims:
            if shape[d] != 1:  # a size-0 dim gets a loop that runs 0 times
                v = self.table.fresh_var(shape[d])
                rvars.append(v)
                src_index[d] = ix.var(v)
        for pos, d in enumerate(kept):
            src_index[d] = index[d] if op.keeps_dims else index[pos]
        stashed = self.stash.get(op.input)
        if stashed is not None and stashed[0] is op:
            self._teeing.add(op.input)
            try:
                x = self.at(op.input, tuple(src_index))
            finally:
                self._teeing.discard(op.input)
            offset = ix.linearise(tuple(src_index), shape)
            x = self.table.node("tee", (x, stashed[1], offset), x.type)
        else:
            x = self.at(op.input, tuple(src_index))
        combine, init, x, acc_dtype = self._reduction_kind(op, x, src, out)
        inits: tuple[Node, ...] = (init,)
        if combine in ("argmax", "argmin"):
            inits = (init, self.table.const(0, compute_type(torch.int64)))
        return self.table.reduce(combine, inits, x, tuple(rvars), (op.result, index),
                                 compute_type(acc_dtype))

    def _reduction_kind(self, op: g.ReduceOp, x: Node, src: torch.dtype,
                        out: torch.dtype) -> tuple[str, Node, Node, torch.dtype]:
        s = self.s
        if isinstance(op, (g.ArgmaxOp, g.ArgminOp)):
            is_max = isinstance(op, g.ArgmaxOp)
            if src == torch.bool:
                x, src = s.cast(x, torch.bool, torch.int32), torch.int32
            if src.is_floating_point:
                init = s.c(float("-inf") if is_max else float("inf"), x)
            else:
                lo, hi = int_bounds(src)
                init = s.c(lo if is_max else hi, x)
            return ("argmax" if is_max else "argmin"), init, x, torch.int64
        if isinstance(op, (g.AnyOp, g.AllOp)):
            is_any = isinstance(op, g.AnyOp)
            return ("ori" if is_any else "andi"), s.c(0 if is_any else 1, s.to_bool(x)), \
                s.to_bool(x), torch.bool
        x = s.cast(x, src, out)
        if out.is_floating_point:
            kinds = {g.SumOp: ("addf", 0.0), g.MeanOp: ("addf", 0.0), g.ProdOp: ("mulf", 1.0),
                     g.AmaxOp: ("maximumf", float("-inf")), g.AminOp: ("minimumf", float("inf"))}
        elif out == torch.bool:
            kinds = {g.AmaxOp: ("ori", 0), g.AminOp: ("andi", 1)}
        else:
            lo, hi = int_bounds(out)
            kinds = {g.SumOp: ("addi", 0), g.ProdOp: ("muli", 1), g.AmaxOp: ("maxsi", lo),
                     g.AminOp: ("minsi", hi)}
        if type(op) not in kinds:
            raise BackendError(f"lower-to-loops: cannot lower {where(op)} on {src}")
        combine, init = kinds[type(op)]
        return combine, s.c(init, x), x, out


# each handler takes the op type it is registered for
_HANDLERS: dict[type[Operation], Callable[..., Node]] = {
    g.WhereOp: KernelValues.where_,
    g.SizeOp: KernelValues.size,
    g.IotaOp: KernelValues.iota,
    g.CastOp: KernelValues.cast,
    g.ConstantOp: KernelValues.constant,
    g.ExpandOp: KernelValues.expand,
    g.PermuteOp: KernelValues.permute,
    g.ReshapeOp: KernelValues.reshape,
    g.SqueezeOp: KernelValues.reshape,
    g.UnsqueezeOp: KernelValues.reshape,
    g.SliceOp: KernelValues.slice,
    g.ConcatOp: KernelValues.concat,
    g.GatherOp: KernelValues.gather,
    g.IndexSelectOp: KernelValues.index_select,
    g.EmbeddingOp: KernelValues.embedding,
    **{t: KernelValues.reduction for t in g.REDUCE_OPS},
}
