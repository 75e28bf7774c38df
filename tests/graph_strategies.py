"""Hypothesis strategies of random, well-typed graph-level programs.

Public API (other test files import it; keep it stable):

* ``graph_programs(max_ops=10, dtypes=ALL_DTYPES)``: strategy yielding
  ``(module, inputs)``: a verified ``builtin.module`` with one
  ``func.func @main`` and a list of input tensors for it. Programs mix
  elementwise unary/binary ops with broadcasting and dtype promotion,
  comparisons + where, casts, reductions (random dims, keepdim), permute /
  reshape / expand / slice / concat / squeeze / unsqueeze, matmul, splat and
  dense constants, duplicated subexpressions (also with commuted operands) and
  dead code, and return one to three values.
* ``all_ops_module()``: one module using every op of the graph dialect once
  (for round-trip tests).

Numerics are kept tame on purpose so that backends can compare with a
tolerance: inputs lie in [-3, 3], ``log``/``sqrt`` only see ``|x| + 1``-like
values, division is only by non-zero constants, float -> integer casts only
happen on values with a known small bound. Infinities can still appear (e.g.
``exp`` in f16), NaN should not; compare with ``equal_nan=True`` anyway.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from hypothesis import strategies as st
from xdsl.dialects import func
from xdsl.dialects.builtin import (DenseIntOrFPElementsAttr, FileLineColLoc, IntAttr, ModuleOp,
                                   StringAttr)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue

from irc.ir import graph as g
from irc.ir.types import dtype_of, shape_of, tensor_type

ALL_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float16, torch.int32, torch.int64,
                                       torch.bool)
_FLOAT_UNARY = (g.NegOp, g.AbsOp, g.ReluOp, g.TanhOp, g.SigmoidOp, g.SinOp, g.CosOp, g.FloorOp,
                g.CeilOp, g.RoundOp, g.TruncOp, g.SignOp, g.ErfOp, g.SiluOp, g.GeluOp, g.ExpOp)
_INT_UNARY = (g.NegOp, g.AbsOp, g.ReluOp, g.SignOp, g.BitwiseNotOp, g.TanhOp, g.SigmoidOp)
_BOOL_UNARY = (g.LogicalNotOp, g.BitwiseNotOp)
_ARITH_BINARY = (g.AddOp, g.SubOp, g.MulOp, g.MaximumOp, g.MinimumOp)
_LOGIC_BINARY = (g.LogicalAndOp, g.LogicalOrOp, g.BitwiseAndOp, g.BitwiseOrOp, g.BitwiseXorOp)
_REDUCTIONS = (g.SumOp, g.MeanOp, g.AmaxOp, g.AminOp, g.ProdOp, g.AnyOp, g.AllOp, g.ArgmaxOp,
               g.ArgminOp)
_INF = math.inf


def dense(shape: Sequence[int], dtype: torch.dtype, values: Sequence[float | int]
          ) -> DenseIntOrFPElementsAttr:
    """``dense<values> : tensor<shape x dtype>`` (one value makes a splat)."""
    vals = [float(v) for v in values] if dtype.is_floating_point else [int(v) for v in values]
    return DenseIntOrFPElementsAttr.from_list(tensor_type(shape, dtype), vals)


@dataclass
class _Builder:
    draw: st.DrawFn
    block: Block
    dtypes: tuple[torch.dtype, ...]
    values: list[SSAValue] = field(default_factory=list)
    bound: dict[SSAValue, float] = field(default_factory=dict)  # max |x|, inf when unknown

    # -- helpers ------------------------------------------------------------

    def add(self, op: Operation, bound: float) -> SSAValue:
        self.block.add_op(op)
        value = op.results[0]
        self.values.append(value)
        self.bound[value] = bound
        return value

    def pick(self, pred=lambda v: True) -> SSAValue | None:
        candidates = [v for v in self.values if pred(v)]
        if not candidates:
            return None
        # Prefer recent values so that programs form chains, not flat fans.
        index = self.draw(st.integers(0, len(candidates) - 1))
        return candidates[max(index, len(candidates) - 1 - index)]

    def constant(self, shape: Sequence[int], dtype: torch.dtype, nonzero: bool = False) -> SSAValue:
        n = math.prod(shape)
        if dtype == torch.bool:
            pool = st.booleans()
        elif dtype.is_floating_point:
            # quarter steps are exact in f16; -0.0 and 1.0 exercise canonicalize
            pool = st.sampled_from([0.5, 1.0, 1.5, 2.0, -0.5, -1.0, -2.0, 0.25]) if nonzero else \
                st.sampled_from([0.0, -0.0, 0.5, 1.0, 1.5, 2.0, -0.5, -1.0, -2.0, 0.25])
        else:
            pool = st.sampled_from([1, 2, 3, -1, -2]) if nonzero else st.integers(-4, 4)
        if self.draw(st.booleans()) or n == 1:
            values = [self.draw(pool)]
        else:
            values = self.draw(st.lists(pool, min_size=n, max_size=n))
        attr = dense(shape, dtype, values)
        bound = max((abs(float(v)) for v in values), default=0.0)
        return self.add(g.ConstantOp(attr), bound)

    def broadcast_partner(self, shape: tuple[int, ...], dtype: torch.dtype,
                          nonzero: bool = False) -> SSAValue:
        """An existing value whose shape broadcasts with ``shape``, or a new constant."""
        if not nonzero and self.draw(st.booleans()):
            other = self.pick(lambda v: _broadcasts(shape_of(v.type), shape))
            if other is not None:
                return other
        drop = self.draw(st.integers(0, len(shape)))
        part = [d if self.draw(st.booleans()) else 1 for d in shape[drop:]]
        if self.draw(st.integers(0, 3)) == 0 and dtype != torch.bool:
            dtype = self.draw(st.sampled_from(self.dtypes))
        if nonzero and dtype == torch.bool:
            dtype = torch.int32
        return self.constant(part, dtype, nonzero=nonzero)

    # -- op kinds -----------------------------------------------------------

    def unary(self, x: SSAValue) -> None:
        dt, b = dtype_of(x.type), self.bound[x]
        if dt == torch.bool:
            op_type = self.draw(st.sampled_from(_BOOL_UNARY))
            self.add(op_type(x), 1.0)
            return
        kind = self.draw(st.sampled_from(["plain", "plain", "sqrt", "log1p"]))
        if kind != "plain" and dt.is_floating_point:
            a = self.add(g.AbsOp(x), b)
            op_type = g.SqrtOp if kind == "sqrt" else g.Log1pOp
            self.add(op_type(a), math.sqrt(b) if b < _INF else _INF)
            return
        op_type = self.draw(st.sampled_from(_FLOAT_UNARY if dt.is_floating_point else _INT_UNARY))
        if op_type is g.ExpOp and b > 8:
            op_type = g.TanhOp
        bounds = {g.TanhOp: 1.0, g.SigmoidOp: 1.0, g.SinOp: 1.0, g.CosOp: 1.0, g.ErfOp: 1.0,
                  g.SignOp: 1.0, g.ExpOp: math.exp(b) if b < 50 else _INF,
                  g.BitwiseNotOp: b + 1}
        self.add(op_type(x), bounds.get(op_type, b + 1))

    def binary(self, x: SSAValue) -> None:
        dt = dtype_of(x.type)
        if dt == torch.bool and self.draw(st.booleans()):
            y = self.broadcast_partner(shape_of(x.type), torch.bool)
            if dtype_of(y.type) == torch.bool:
                self.add(self.draw(st.sampled_from(_LOGIC_BINARY))(x, y), 1.0)
                return
        if self.draw(st.integers(0, 5)) == 0:
            y = self.broadcast_partner(shape_of(x.type), dt, nonzero=True)
            self.add(g.DivOp(x, y), self.bound[x] * 4)
            return
        y = self.broadcast_partner(shape_of(x.type), dt)
        ops = list(_ARITH_BINARY)
        if torch.bool in (dt, dtype_of(y.type)):
            ops.remove(g.SubOp)
        op_type = self.draw(st.sampled_from(ops))
        bx, by = self.bound[x], self.bound[y]
        bound = _times(bx, by) if op_type is g.MulOp else (max(bx, by) if op_type in (g.MaximumOp, g.MinimumOp)
                                                    else bx + by)
        lhs, rhs = (x, y) if self.draw(st.booleans()) else (y, x)
        self.add(op_type(lhs, rhs), bound)

    def compare_where(self, x: SSAValue) -> None:
        dt = dtype_of(x.type)
        y = self.broadcast_partner(shape_of(x.type), dt)
        cmp = self.draw(st.sampled_from(g.COMPARISON_OPS))
        cond = self.add(cmp(x, y), 1.0)
        z = self.broadcast_partner(shape_of(cond.type), dt)
        a, b = (x, z) if self.draw(st.booleans()) else (z, x)
        self.add(g.WhereOp(cond, a, b), max(self.bound[x], self.bound[z]))

    def cast(self, x: SSAValue) -> None:
        src, b = dtype_of(x.type), self.bound[x]
        targets = [d for d in self.dtypes if d != src]
        if src.is_floating_point and not b < 1000:
            targets = [d for d in targets if d.is_floating_point or d == torch.bool]
        if src.is_floating_point and not b < _INF:
            targets = [d for d in targets if d.is_floating_point]
        if not targets:
            return
        dst = self.draw(st.sampled_from(targets))
        self.add(g.CastOp(x, tensor_type(shape_of(x.type), dst)), 1.0 if dst == torch.bool else b)

    def reduce(self, x: SSAValue) -> None:
        shape, dt = shape_of(x.type), dtype_of(x.type)
        if not shape:
            return
        ops = [o for o in _REDUCTIONS if not (dt == torch.bool and o in (g.AmaxOp, g.AminOp,
                                                                         g.ArgmaxOp, g.ArgminOp))]
        op_type = self.draw(st.sampled_from(ops))
        if op_type in (g.ArgmaxOp, g.ArgminOp):
            dims = [self.draw(st.integers(0, len(shape) - 1))]
        else:
            dims = self.draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True))
        keep = self.draw(st.booleans())
        n = math.prod(shape[d] for d in dims)
        b = self.bound[x]
        bound = {g.SumOp: b * n, g.ProdOp: _power(b, n), g.AnyOp: 1.0, g.AllOp: 1.0,
                 g.ArgmaxOp: float(n), g.ArgminOp: float(n)}.get(op_type, b)
        self.add(op_type(x, dims, keep), bound)

    def movement(self, x: SSAValue) -> None:
        shape, b = list(shape_of(x.type)), self.bound[x]
        kind = self.draw(st.sampled_from(["permute", "reshape", "expand", "slice", "concat",
                                          "squeeze", "unsqueeze"]))
        dt = dtype_of(x.type)
        if kind == "permute" and len(shape) >= 2:
            dims = self.draw(st.permutations(range(len(shape))))
            self.add(g.PermuteOp(x, list(dims)), b)
        elif kind == "reshape":
            self.add(g.ReshapeOp(x, tensor_type(self.draw(_factorisations(math.prod(shape))), dt)), b)
        elif kind == "expand" and len(shape) < 4:
            new = [self.draw(st.integers(1, 3)) if d == 1 else d for d in shape]
            lead = self.draw(st.lists(st.integers(1, 3), max_size=4 - len(shape)))
            self.add(g.ExpandOp(x, tensor_type([*lead, *new], dt)), b)
        elif kind == "slice" and shape:
            dim = self.draw(st.integers(0, len(shape) - 1))
            start = self.draw(st.integers(0, shape[dim] - 1))
            end = self.draw(st.integers(start + 1, shape[dim]))
            step = self.draw(st.integers(1, 2))
            self.add(g.SliceOp(x, dim, start, end, step), b)
        elif kind == "concat" and shape:
            dim = self.draw(st.integers(0, len(shape) - 1))
            others = [v for v in self.values if dtype_of(v.type) == dt
                      and len(shape_of(v.type)) == len(shape)
                      and all(a == c for i, (a, c) in enumerate(zip(shape_of(v.type), shape))
                              if i != dim)]
            y = self.draw(st.sampled_from(others))
            self.add(g.ConcatOp([x, y], dim), max(b, self.bound[y]))
        elif kind == "squeeze" and 1 in shape:
            ones = [i for i, d in enumerate(shape) if d == 1]
            dims = sorted(self.draw(st.lists(st.sampled_from(ones), min_size=1, unique=True)))
            out = [d for i, d in enumerate(shape) if i not in dims]
            self.add(g.SqueezeOp.create(operands=[x], result_types=[tensor_type(out, dt)],
                                        properties={"dims": g.i64_array(dims)}), b)
        elif kind == "unsqueeze" and len(shape) < 4:
            dim = self.draw(st.integers(0, len(shape)))
            out = shape[:dim] + [1] + shape[dim:]
            self.add(g.UnsqueezeOp.create(operands=[x], result_types=[tensor_type(out, dt)],
                                          properties={"dim": g.int_attr(dim)}), b)

    def matmul(self, x: SSAValue) -> None:
        shape = shape_of(x.type)
        if len(shape) < 2:
            x = self.add(g.ReshapeOp(x, tensor_type([1, max(math.prod(shape), 1)],
                                                    dtype_of(x.type))), self.bound[x])
            shape = shape_of(x.type)
        if dtype_of(x.type) != torch.float32:
            x = self.add(g.CastOp(x, tensor_type(shape, torch.float32)), self.bound[x])
        if self.draw(st.booleans()):
            perm = list(range(len(shape)))
            perm[-1], perm[-2] = perm[-2], perm[-1]
            y = self.add(g.PermuteOp(x, perm), self.bound[x])
        else:
            y = self.constant([shape[-1], self.draw(st.integers(1, 4))], torch.float32)
        self.add(g.MatmulOp(x, y), _times(_times(self.bound[x], self.bound[y]), shape[-1]))

    def duplicate(self) -> None:
        """Re-emit an earlier op (commuted when commutative): planted CSE work."""
        ops = [v.owner for v in self.values if isinstance(v.owner, Operation)]
        if not ops:
            return
        op = self.draw(st.sampled_from(ops))
        clone = op.clone()
        if isinstance(op, (g.AddOp, g.MulOp, g.MaximumOp, g.MinimumOp, g.EqOp, g.NeOp)):
            clone.operands = list(reversed(clone.operands))
        self.add(clone, self.bound[op.results[0]])


def _power(base: float, n: int) -> float:
    try:
        return base ** n
    except OverflowError:
        return _INF


def _times(a: float, b: float) -> float:
    return _INF if _INF in (a, b) else a * b


def _broadcasts(a: Sequence[int], b: Sequence[int]) -> bool:
    """``a`` broadcasts *into* ``b`` (the result keeps b's shape)."""
    return len(a) <= len(b) and all(x in (1, y) for x, y in zip(reversed(a), reversed(b)))


@st.composite
def _factorisations(draw: st.DrawFn, n: int) -> list[int]:
    factors: list[int] = []
    m, p = n, 2
    while m > 1:
        while m % p == 0:
            factors.append(p)
            m //= p
        p += 1
    rank = draw(st.integers(0 if n == 1 else 1, 4))
    dims = [1] * max(rank, 1 if factors else 0)
    for f in factors:
        dims[draw(st.integers(0, len(dims) - 1))] *= f
    return dims


_SHAPES = st.lists(st.integers(1, 5), min_size=0, max_size=4)


def random_input(shape: Sequence[int], dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    """A tensor in the tame range the strategy assumes for inputs."""
    if dtype == torch.bool:
        return torch.rand(tuple(shape), generator=gen) < 0.5
    if dtype.is_floating_point:
        return (torch.rand(tuple(shape), generator=gen) * 6 - 3).to(dtype)
    return torch.randint(-5, 6, tuple(shape), generator=gen).to(dtype)


@st.composite
def graph_programs(draw: st.DrawFn, max_ops: int = 10,
                   dtypes: tuple[torch.dtype, ...] = ALL_DTYPES
                   ) -> tuple[ModuleOp, list[torch.Tensor]]:
    """A random verified ``@main`` and inputs for it (see the module docstring)."""
    n_args = draw(st.integers(1, 3))
    arg_types: list[Attribute] = []
    for _ in range(n_args):
        arg_types.append(tensor_type(draw(_SHAPES), draw(st.sampled_from(dtypes))))
    block = Block(arg_types=arg_types)
    b = _Builder(draw, block, tuple(dtypes))
    for arg in block.args:
        b.values.append(arg)
        b.bound[arg] = 3.0
    kinds = ["unary", "binary", "binary", "compare_where", "cast", "reduce", "movement",
             "movement", "matmul", "duplicate", "constant"]
    if torch.float32 not in dtypes:
        kinds.remove("matmul")
    for _ in range(draw(st.integers(1, max_ops))):
        kind = draw(st.sampled_from(kinds))
        if kind == "duplicate":
            b.duplicate()
        elif kind == "constant":
            b.constant(draw(_SHAPES), draw(st.sampled_from(dtypes)))
        else:
            # Mostly computed values; sometimes a constant, so that some
            # subgraphs are constant-foldable.
            any_value = draw(st.integers(0, 3)) == 0
            x = b.pick(lambda v: any_value or not isinstance(v.owner, g.ConstantOp)) or b.values[0]
            getattr(b, kind)(x)
    results = [v for v in b.values if v not in block.args] or list(block.args)
    n_out = draw(st.integers(1, min(3, len(results))))
    outputs = [results[-1]] + draw(st.lists(st.sampled_from(results), max_size=n_out - 1,
                                            unique=True).filter(lambda vs: results[-1] not in vs))
    block.add_op(func.ReturnOp(*outputs))
    fn = func.FuncOp("main", (arg_types, [v.type for v in outputs]), Region(block))
    module = ModuleOp([fn])
    module.verify()
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    inputs = [random_input(shape_of(t), dtype_of(t), gen) for t in arg_types]
    return module, inputs


# ----------------------------------------------------------------------------
# every op once


def all_ops_module(locations: bool = False, library_calls: bool = True,
                   quantized: bool = True, epilogues: bool = True,
                   in_place: bool = True) -> ModuleOp:
    """A verified module that uses every op of the graph dialect at least once
    (with ``locations``, op i carries ``loc("model.py":i:5)``; without
    ``library_calls``, no ``graph.aten_call``, without ``quantized``, no
    ``graph.quantized_matmul``, without ``epilogues``, no
    ``graph.conv_epilogue``, without ``in_place``, no ``graph.cache_update``
    (of its last argument, ``[4, 3]`` f32, rows ``idx`` set to ``x[idx]``):
    for backends that refuse them)."""
    f32, i64, b1 = torch.float32, torch.int64, torch.bool
    arg_types = [tensor_type([2, 3], f32), tensor_type([2, 3], i64), tensor_type([2, 3], b1),
                 tensor_type([1, 2, 5, 5], f32), tensor_type([3], i64)]
    arg_types += [tensor_type([4, 3], f32)] if in_place else []
    block = Block(arg_types=arg_types)
    x, n, m, img, idx = block.args[:5]
    ops: list[Operation] = []

    def emit(op: Operation) -> SSAValue:
        ops.append(op)
        return op.results[0]

    for cls in g.GRAPH_OPS:
        if issubclass(cls, g.ElementwiseUnaryOp):
            operand = m if cls in (g.LogicalNotOp,) else (n if cls is g.BitwiseNotOp else x)
            emit(cls(operand))
        elif cls is g.DivOp:
            emit(cls(x, x))
            emit(cls(n, n, tensor_type([2, 3], i64), properties={"rounding_mode":
                                                                  g.StringAttr("floor")}))
        elif issubclass(cls, g.ElementwiseBinaryOp):
            bitwise = cls in (g.BitwiseAndOp, g.BitwiseOrOp, g.BitwiseXorOp)
            emit(cls(n, n) if bitwise else cls(x, x))
    emit(g.WhereOp(m, x, x))
    emit(g.CastOp(x, tensor_type([2, 3], torch.float16)))
    for cls in g.REDUCE_OPS:
        emit(cls(x, [1], keepdim=cls is g.SumOp))
    emit(g.ReshapeOp(x, tensor_type([3, 2], f32)))
    emit(g.PermuteOp(x, [1, 0]))
    emit(g.ExpandOp(x, tensor_type([4, 2, 3], f32)))
    emit(g.SliceOp(x, 1, 0, 3, 2))
    emit(g.ConcatOp([x, x], 0))
    u = emit(g.UnsqueezeOp.create(operands=[x], result_types=[tensor_type([2, 1, 3], f32)],
                                  properties={"dim": g.int_attr(1)}))
    emit(g.SqueezeOp.create(operands=[u], result_types=[tensor_type([2, 3], f32)],
                            properties={"dims": g.i64_array([1])}))
    emit(g.MatmulOp(x, emit(g.PermuteOp(x, [1, 0]))))
    from xdsl.dialects.builtin import Float64Type, FloatAttr, UnitAttr
    emit(g.AttentionOp.create(operands=[x, x, x], result_types=[tensor_type([2, 3], f32)],
                              properties={"scale": FloatAttr(0.5, Float64Type()),
                                          "is_causal": UnitAttr()}))
    w = emit(g.WeightOp("conv.weight", tensor_type([4, 2, 3, 3], f32)))
    bias = emit(g.WeightOp("conv.bias", tensor_type([4], f32)))
    emit(g.ConvOp.create(operands=[img, w, bias], result_types=[tensor_type([1, 4, 3, 3], f32)],
                         properties={"stride": g.i64_array([1, 1]), "padding": g.i64_array([0, 0]),
                                     "dilation": g.i64_array([1, 1]), "groups": g.int_attr(1)}))
    if epilogues:  # [N, H, W, C]: the channels-last image, residual and relu
        img_last = emit(g.PermuteOp(img, [0, 2, 3, 1]))
        conv_props = {"stride": g.i64_array([1, 1]), "padding": g.i64_array([0, 0]),
                      "dilation": g.i64_array([1, 1]), "groups": g.int_attr(1)}
        out_last = tensor_type([1, 3, 3, 4], f32)
        first = emit(g.ConvEpilogueOp(img_last, w, bias, None, out_last, conv_props,
                                      "hardtanh", [-0.5, 0.5]))
        w2 = emit(g.WeightOp("conv2.weight", tensor_type([4, 4, 1, 1], f32)))
        emit(g.ConvEpilogueOp(first, w2, None, first, out_last, conv_props, "relu"))
    pool_props = {"kernel": g.i64_array([2, 2]), "stride": g.i64_array([2, 2]),
                  "padding": g.i64_array([0, 0])}
    emit(g.MaxPoolOp.create(operands=[img], result_types=[tensor_type([1, 2, 2, 2], f32)],
                            properties={**pool_props, "dilation": g.i64_array([1, 1])}))
    emit(g.AvgPoolOp.create(operands=[img], result_types=[tensor_type([1, 2, 2, 2], f32)],
                            properties=dict(pool_props)))
    emit(g.AdaptiveAvgPoolOp.create(operands=[img], result_types=[tensor_type([1, 2, 1, 1], f32)]))
    gidx = emit(g.ConstantOp(dense([2, 3], i64, [0, 1, 0, 1, 0, 1])))
    emit(g.GatherOp.create(operands=[x, gidx], result_types=[tensor_type([2, 3], f32)],
                           properties={"dim": g.int_attr(0)}))
    rows = emit(g.IndexSelectOp.create(operands=[x, idx], result_types=[tensor_type([3, 3], f32)],
                                       properties={"dim": g.int_attr(0)}))
    if in_place:
        emit(g.CacheUpdateOp(block.args[5], idx, rows, 0))  # in place into the last argument
    table = emit(g.WeightOp("embed.weight", tensor_type([10, 4], f32)))
    emit(g.EmbeddingOp.create(operands=[table, idx], result_types=[tensor_type([3, 4], f32)]))
    if quantized:
        qweight = emit(g.WeightOp("fc.q4", tensor_type([4, 2], torch.int8)))
        qscales = emit(g.WeightOp("fc.q4.scales", tensor_type([4, 1], f32)))
        emit(g.QuantizedMatmulOp(x, qweight, qscales, bits=4, group_size=4))
    emit(g.ConstantOp(dense([2], f32, [1.5, -0.0])))
    if library_calls:
        emit(g.AtenCallOp.create(
            operands=[x], result_types=[tensor_type([2, 3], f32), tensor_type([2, 3], i64)],
            properties={"callee": StringAttr("aten::sort.stable"),
                        "args": StringAttr('[[{"$t": 0}], {"stable": true, "dim": 1}]')}))
    emit(g.GeluOp(x, properties={"approximate": g.StringAttr("tanh")}))
    for line, op in enumerate(ops, start=10):
        if locations:
            op.location = FileLineColLoc(StringAttr("model.py"), IntAttr(line), IntAttr(5))
        block.add_op(op)
    block.add_op(func.ReturnOp(ops[-1]))
    fn = func.FuncOp("main", (arg_types, [ops[-1].results[0].type]), Region(block))
    module = ModuleOp([fn])
    module.verify()
    return module


def all_ops_weights() -> dict[str, torch.Tensor]:
    """Values for the ``graph.weight`` ops of :func:`all_ops_module`."""
    return {"conv.weight": torch.randn(4, 2, 3, 3), "conv.bias": torch.randn(4),
            "conv2.weight": torch.randn(4, 4, 1, 1),
            "embed.weight": torch.randn(10, 4),
            "fc.q4": torch.randint(-128, 128, (4, 2), dtype=torch.int8),
            "fc.q4.scales": torch.rand(4, 1)}
