"""The reference interpreter: runs graph- and kernel-level modules on torch
tensors, op by op, with eager PyTorch semantics.

It is the oracle of every pass test: a pass keeps meaning iff interpreting the
module before and after it gives the same outputs. Kernel-level modules (host
function calling outlined kernels with ``func.call``) run too. What the
library ops (attention, convolution, pooling, ``graph.aten_call``) compute is
defined once, in :mod:`irc.library_calls`, which the package loader runs too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar, cast

import torch
import torch.nn.functional as F
from xdsl.dialects import func
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, ModuleOp
from xdsl.ir import Operation, SSAValue

from irc import library_calls as lib
from irc.errors import IrcError
from irc.ir import graph as g
from irc.library_calls import aten_overload, decode_args, run_aten_call
from irc.ir.types import dtype_of, shape_of

__all__ = ["HANDLERS", "Interpreter", "aten_overload", "decode_args", "dense_to_tensor",
           "dequantize_weight", "interpret", "run_aten_call"]

Handler = Callable[[Operation, list[torch.Tensor]], torch.Tensor]
HANDLERS: dict[type[Operation], Handler] = {}


_F = TypeVar("_F", bound=Callable[..., object])


def handles(*op_types: type[Operation]) -> Callable[[_F], _F]:
    """Register ``fn`` for ``op_types`` (it is only ever called with an op of those types)."""
    def register(fn: _F) -> _F:
        for t in op_types:
            HANDLERS[t] = cast(Handler, fn)
        return fn
    return register


def _out(op: Operation, value: torch.Tensor) -> torch.Tensor:
    """Cast to the op's declared result dtype (the IR, not torch, is the spec)."""
    return value.to(dtype_of(op.results[0].type))


def _compute(op: Operation, args: list[torch.Tensor]) -> list[torch.Tensor]:
    """Bring operands to the dtype the op computes in (torch promotion)."""
    from irc.ir.types import promote
    dt = promote(*(a.dtype for a in args))
    return [a.to(dt) for a in args]


_UNARY: dict[type[Operation], Callable[[torch.Tensor], torch.Tensor]] = {
    g.NegOp: torch.neg, g.AbsOp: torch.abs, g.ExpOp: torch.exp, g.Exp2Op: torch.exp2,
    g.LogOp: torch.log, g.Log2Op: torch.log2, g.Log1pOp: torch.log1p, g.Expm1Op: torch.expm1,
    g.SqrtOp: torch.sqrt, g.RsqrtOp: torch.rsqrt, g.SinOp: torch.sin, g.CosOp: torch.cos,
    g.TanOp: torch.tan, g.TanhOp: torch.tanh, g.SigmoidOp: torch.sigmoid, g.ErfOp: torch.erf,
    g.ReciprocalOp: torch.reciprocal, g.ReluOp: torch.relu, g.FloorOp: torch.floor,
    g.CeilOp: torch.ceil, g.RoundOp: torch.round, g.TruncOp: torch.trunc, g.SignOp: torch.sign,
    g.LogicalNotOp: torch.logical_not, g.BitwiseNotOp: torch.bitwise_not,
    g.IsNanOp: torch.isnan, g.IsInfOp: torch.isinf, g.SiluOp: F.silu,
}


def _unary(op: Operation, args: list[torch.Tensor]) -> torch.Tensor:
    x = args[0]
    if type(op).DTYPE_RULE == "float" and not x.is_floating_point():  # type: ignore[attr-defined]
        x = x.to(dtype_of(op.results[0].type))
    if isinstance(op, g.GeluOp):
        return _out(op, F.gelu(x, approximate=op.approximate.data))
    return _out(op, _UNARY[type(op)](x))


for _t in _UNARY:
    HANDLERS[_t] = _unary
HANDLERS[g.GeluOp] = _unary

_BINARY: dict[type[Operation], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    g.AddOp: torch.add, g.SubOp: torch.sub, g.MulOp: torch.mul, g.PowOp: torch.pow,
    g.MaximumOp: torch.maximum, g.MinimumOp: torch.minimum, g.RemainderOp: torch.remainder,
    g.Atan2Op: torch.atan2, g.EqOp: torch.eq, g.NeOp: torch.ne, g.LtOp: torch.lt,
    g.LeOp: torch.le, g.GtOp: torch.gt, g.GeOp: torch.ge, g.LogicalAndOp: torch.logical_and,
    g.LogicalOrOp: torch.logical_or, g.BitwiseAndOp: torch.bitwise_and,
    g.BitwiseOrOp: torch.bitwise_or, g.BitwiseXorOp: torch.bitwise_xor,
}


def _binary(op: Operation, args: list[torch.Tensor]) -> torch.Tensor:
    a, b = _compute(op, args)
    if isinstance(op, g.DivOp):
        mode = op.rounding_mode.data
        return _out(op, torch.div(a, b, rounding_mode=None if mode == "none" else mode))
    if isinstance(op, g.Atan2Op) and not a.is_floating_point():
        a, b = a.to(dtype_of(op.results[0].type)), b.to(dtype_of(op.results[0].type))
    return _out(op, _BINARY[type(op)](a, b))


for _t in (*_BINARY, g.DivOp):
    HANDLERS[_t] = _binary


@handles(g.WhereOp)
def _where(op: Operation, args: list[torch.Tensor]) -> torch.Tensor:
    c, a, b = args
    a, b = _compute(op, [a, b])
    return _out(op, torch.where(c, a, b))


@handles(g.CastOp)
def _cast(op: Operation, args: list[torch.Tensor]) -> torch.Tensor:
    return _out(op, args[0])


_REDUCE: dict[type[Operation], Callable[..., torch.Tensor]] = {
    g.SumOp: torch.sum, g.MeanOp: torch.mean, g.AmaxOp: torch.amax, g.AminOp: torch.amin,
}


@handles(*g.REDUCE_OPS)
def _reduce(op: Operation, args: list[torch.Tensor]) -> torch.Tensor:
    assert isinstance(op, g.ReduceOp)
    x, dims, keep = args[0], list(op.reduced_dims), op.keeps_dims
    if x.dim() == 0:
        return _out(op, x)
    if isinstance(op, g.MeanOp) and not x.is_floating_point():
        x = x.to(dtype_of(op.results[0].type))
    if type(op) in _REDUCE:
        return _out(op, _REDUCE[type(op)](x, dim=dims, keepdim=keep))
    if isinstance(op, (g.ArgmaxOp, g.ArgminOp)):
        fn = torch.argmax if isinstance(op, g.ArgmaxOp) else torch.argmin
        return _out(op, fn(x, dim=dims[0], keepdim=keep))
    reducer = {g.ProdOp: torch.prod, g.AnyOp: torch.any, g.AllOp: torch.all}[type(op)]
    if isinstance(op, g.ProdOp) and not x.is_floating_point():
        x = x.to(torch.int64)
    for d in sorted(dims, reverse=True):  # these torch reductions take one dim at a time
        x = reducer(x, dim=d, keepdim=keep)
    return _out(op, x)


@handles(g.ReshapeOp, g.ExpandOp, g.SqueezeOp, g.UnsqueezeOp)
def _reshape(op: Operation, args: list[torch.Tensor]) -> torch.Tensor:
    shape = shape_of(op.results[0].type)
    if isinstance(op, g.ExpandOp):
        return args[0].expand(shape).contiguous()
    return args[0].reshape(shape)


@handles(g.PermuteOp)
def _permute(op: g.PermuteOp, args: list[torch.Tensor]) -> torch.Tensor:
    return args[0].permute(g.ints(op.dims)).contiguous()


@handles(g.SliceOp)
def _slice(op: g.SliceOp, args: list[torch.Tensor]) -> torch.Tensor:
    dim, start, end, step = op.params()
    index = [slice(None)] * args[0].dim()
    index[dim] = slice(start, end, step)
    return args[0][tuple(index)].contiguous()


@handles(g.ConcatOp)
def _concat(op: g.ConcatOp, args: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(args, dim=op.dim.value.data)


@handles(g.MatmulOp)
def _matmul(op: Operation, args: list[torch.Tensor]) -> torch.Tensor:
    return _out(op, torch.matmul(args[0], args[1]))


def dequantize_weight(qweight: torch.Tensor, scales: torch.Tensor, bits: int, group_size: int,
                      k: int) -> torch.Tensor:
    """The float32 ``[N, K]`` weight a ``graph.quantized_matmul`` stands for."""
    q = qweight.to(torch.int16)
    if bits == 4:  # two per byte, low nibble first, each stored as q + 8
        q = torch.stack([q & 15, (q >> 4) & 15], dim=-1).reshape(q.shape[0], -1)[:, :k] - 8
    groups = scales.to(torch.float32).repeat_interleave(group_size, dim=1)[:, :k]
    return q.to(torch.float32) * groups


@handles(g.QuantizedMatmulOp)
def _quantized_matmul(op: g.QuantizedMatmulOp, args: list[torch.Tensor]) -> torch.Tensor:
    x, qweight, scales = args
    w = dequantize_weight(qweight, scales, op.bits.value.data, op.group_size.value.data,
                          x.shape[-1])
    return _out(op, torch.matmul(x.to(torch.float32), w.t()))


@handles(g.CacheUpdateOp)
def _cache_update(op: g.CacheUpdateOp, args: list[torch.Tensor]) -> torch.Tensor:
    """In place: only the positions ``index`` of the caller's ``cache`` are written."""
    cache, index, values = args
    return cache.index_copy_(op.dim.value.data, index.to(torch.int64), values)


def _channels_last(op: Operation) -> bool:
    return g.is_channels_last(op)


@handles(g.AttentionOp)
def _attention(op: g.AttentionOp, args: list[torch.Tensor]) -> torch.Tensor:
    mask = args[3] if len(args) > 3 else None
    return lib.attention(args[0], args[1], args[2], mask, op.is_causal is not None,
                         op.scale.value.data)


@handles(g.ConvOp)
def _conv(op: g.ConvOp, args: list[torch.Tensor]) -> torch.Tensor:
    cl = _channels_last(op)
    y = lib.conv(lib.from_channels_last(args[0], cl), args[1], args[2] if len(args) > 2 else None,
                 g.ints(op.stride), g.ints(op.padding), g.ints(op.dilation), op.groups.value.data)
    return _out(op, lib.to_channels_last(y, cl))


@handles(g.ConvEpilogueOp)
def _conv_epilogue(op: g.ConvEpilogueOp, args: list[torch.Tensor]) -> torch.Tensor:
    """``unary(conv + other)`` on ``[N, H, W, C]`` data (the op's definition)."""
    bias = args[2] if op.bias is not None else None
    other = args[-1] if op.other is not None else None
    return _out(op, lib.conv_epilogue(args[0], args[1], bias, other, g.ints(op.stride),
                                      g.ints(op.padding), g.ints(op.dilation),
                                      op.groups.value.data, op.unary.data, op.scalars()))


@handles(g.MaxPoolOp)
def _max_pool(op: g.MaxPoolOp, args: list[torch.Tensor]) -> torch.Tensor:
    cl = _channels_last(op)
    y = lib.max_pool(lib.from_channels_last(args[0], cl), g.ints(op.kernel), g.ints(op.stride),
                     g.ints(op.padding), g.ints(op.dilation), bool(op.ceil_mode.value.data))
    return lib.to_channels_last(y, cl)


@handles(g.AvgPoolOp)
def _avg_pool(op: g.AvgPoolOp, args: list[torch.Tensor]) -> torch.Tensor:
    cl = _channels_last(op)
    y = lib.avg_pool(lib.from_channels_last(args[0], cl), g.ints(op.kernel), g.ints(op.stride),
                     g.ints(op.padding), bool(op.ceil_mode.value.data),
                     bool(op.count_include_pad.value.data), op.divisor.value.data)
    return lib.to_channels_last(y, cl)


@handles(g.AdaptiveAvgPoolOp)
def _adaptive(op: Operation, args: list[torch.Tensor]) -> torch.Tensor:
    return lib.adaptive_avg_pool(args[0], shape_of(op.results[0].type))


@handles(g.GatherOp)
def _gather(op: g.GatherOp, args: list[torch.Tensor]) -> torch.Tensor:
    return torch.gather(args[0], op.dim.value.data, args[1].to(torch.int64))


@handles(g.IndexSelectOp)
def _index_select(op: g.IndexSelectOp, args: list[torch.Tensor]) -> torch.Tensor:
    return torch.index_select(args[0], op.dim.value.data, args[1].to(torch.int64))


@handles(g.EmbeddingOp)
def _embedding(op: Operation, args: list[torch.Tensor]) -> torch.Tensor:
    return F.embedding(args[1].to(torch.int64), args[0])


@handles(g.AtenCallOp)
def _aten_call(op: g.AtenCallOp, args: list[torch.Tensor]) -> list[torch.Tensor]:  # type: ignore[override]
    return run_aten_call(op.callee.data, op.args.data, [dtype_of(r.type) for r in op.results],
                         args)


@handles(g.ConstantOp)
def _constant(op: g.ConstantOp, args: list[torch.Tensor]) -> torch.Tensor:
    return dense_to_tensor(op.value)


def dense_to_tensor(attr: DenseIntOrFPElementsAttr) -> torch.Tensor:
    """The torch tensor a ``dense<...>`` attribute holds (splats expanded)."""
    shape, dtype = shape_of(attr.type), dtype_of(attr.type)
    values = attr.get_values()
    t = torch.tensor(list(values), dtype=torch.float64 if dtype.is_floating_point else torch.int64)
    if t.numel() == 1 and len(shape) > 0:
        t = t.expand(shape)
    return t.reshape(shape).to(dtype).contiguous()


class Interpreter:
    """Runs one module. ``weights`` supplies the values of ``graph.weight`` ops.

    A module with symbolic sizes (``?`` dimensions) runs too: each call binds
    the size symbols from the inputs (checking every relation the types state,
    :func:`irc.ir.symbols.bind`) and runs the module specialised to that
    binding (kept per binding)."""

    def __init__(self, module: ModuleOp, weights: Mapping[str, torch.Tensor] | None = None) -> None:
        from irc.ir.symbols import module_is_symbolic
        self.module = module
        self.weights = dict(weights or {})
        self.functions = {f.sym_name.data: f for f in module.ops if isinstance(f, func.FuncOp)}
        self.symbolic = module_is_symbolic(module)
        self._specialized: dict[tuple[tuple[str, int], ...], Interpreter] = {}

    def run(self, inputs: Sequence[torch.Tensor], entry: str = "main") -> list[torch.Tensor]:
        fn = self.functions.get(entry)
        if fn is None:
            raise IrcError(f"no function @{entry} in the module (have: "
                           f"{', '.join('@' + n for n in self.functions) or 'none'})")
        if self.symbolic:
            return self._run_symbolic(fn, list(inputs), entry)
        return self.call(fn, list(inputs))

    def _run_symbolic(self, fn: func.FuncOp, inputs: list[torch.Tensor],
                      entry: str) -> list[torch.Tensor]:
        from irc.ir.specialize import specialize
        from irc.ir.symbols import bind_inputs, size_arg_names
        names = size_arg_names(fn)
        binding = bind_inputs([a.type for a in fn.body.block.args], names, inputs)
        inputs = [x for x, name in zip(inputs, names) if name is None]
        key = tuple(sorted(binding.items()))
        static = self._specialized.get(key)
        if static is None:
            if len(self._specialized) >= 64:
                self._specialized.clear()
            static = self._specialized[key] = Interpreter(specialize(self.module, binding),
                                                          self.weights)
        return static.run(inputs, entry)

    def call(self, fn: func.FuncOp, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        block = fn.body.block
        if len(inputs) != len(block.args):
            raise IrcError(f"@{fn.sym_name.data} takes {len(block.args)} inputs, got {len(inputs)}")
        env: dict[SSAValue, torch.Tensor] = dict(zip(block.args, inputs))
        for op in block.ops:
            args = [env[v] for v in op.operands]
            if isinstance(op, func.ReturnOp):
                return args
            if isinstance(op, func.CallOp):
                results = self.call(self.functions[op.callee.string_value()], args)
                env.update(zip(op.results, results))
                continue
            result = self.execute(op, args)
            if isinstance(result, list):  # graph.aten_call: its results in order
                env.update(zip(op.results, result))
            else:
                env[op.results[0]] = result
        return []

    def execute(self, op: Operation, args: list[torch.Tensor]) -> torch.Tensor:
        if isinstance(op, g.WeightOp):
            name = op.sym_name.data
            if name not in self.weights:
                raise IrcError(f"no value for weight \"{name}\" (have: {sorted(self.weights)})")
            return self.weights[name]
        handler = HANDLERS.get(type(op))
        if handler is None:
            raise IrcError(f"the reference interpreter has no semantics for {op.name}")
        return handler(op, args)


def interpret(module: ModuleOp, inputs: Sequence[torch.Tensor],
              weights: Mapping[str, torch.Tensor] | None = None, entry: str = "main") -> list[torch.Tensor]:
    """Run ``@entry`` of ``module`` on ``inputs``; returns its results."""
    return Interpreter(module, weights).run(inputs, entry)
