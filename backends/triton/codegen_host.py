"""Host-wrapper text for the extern ops of ``@main`` (library calls).

Matmul goes to ``torch.matmul`` (cuBLAS on CUDA tensors) unless the Triton
template runs it (:mod:`codegen_matmul`), convolution and
pooling to ``torch.nn.functional`` (cuDNN), gather-like ops and concat to
torch's own kernels. The semantics match :mod:`irc.ir.interpreter` (the
reference); results are made contiguous because generated kernels index
their operands with static row-major strides.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.ir import Operation

from irc.errors import UnsupportedOpError
from irc.ir import graph as g
from irc.ir.types import dtype_of, shape_of

def dtype_text(op_result_type: object) -> str:
    return str(dtype_of(op_result_type))  # e.g. "torch.float32"


def _tuple(values: Sequence[int]) -> str:
    return "(" + ", ".join(str(v) for v in values) + ("," if len(values) == 1 else "") + ")"


def aten_call_text(op: g.AtenCallOp, args: Sequence[str]) -> str:
    """Python expression giving the list of a ``graph.aten_call``'s results:
    torch's op run by :func:`irc.ir.interpreter.run_aten_call` (the reference's
    own implementation), on the program's device."""
    dtypes = ", ".join(dtype_text(r.type) for r in op.results)
    return (f"run_aten_call({op.callee.data!r}, {op.args.data!r}, ({dtypes},), "
            f"[{', '.join(args)}], _device)")


def extern_call(op: Operation, args: Sequence[str]) -> str:
    """Python expression computing ``op``'s result from the named tensors ``args``.

    A ``channels_last`` conv/pooling op (:mod:`irc.passes.channels_last`) gets
    its ``[N, *spatial, C]`` input as a channels-last-strided ``[N, C, *spatial]``
    view, and its result is permuted back and made contiguous.
    """
    if g.is_channels_last(op):
        rank = len(shape_of(op.operands[0].type))
        to_first = _tuple([0, rank - 1, *range(1, rank - 1)])
        to_last = _tuple(g.channels_last_dims(rank))
        inner = _channels_first_call(op, [f"{args[0]}.contiguous().permute{to_first}",
                                          *args[1:]])
        # the library's result is channels-last already: permuting it back is free
        return f"{inner.removesuffix('.contiguous()')}.permute{to_last}.contiguous()"
    return _channels_first_call(op, args)


def _channels_first_call(op: Operation, args: Sequence[str]) -> str:
    out_dtype = dtype_text(op.results[0].type)
    if isinstance(op, g.MatmulOp):
        return f"torch.matmul({args[0]}, {args[1]})"
    if isinstance(op, g.QuantizedMatmulOp):
        from irc.backends.triton.quantized_matmul import call_text
        return call_text(op, args)
    if isinstance(op, g.AttentionOp):
        mask = args[3] if len(args) > 3 else "None"
        return (f"F.scaled_dot_product_attention({args[0]}, {args[1]}, {args[2]}, attn_mask={mask}, "
                f"is_causal={op.is_causal is not None}, scale={op.scale.value.data!r}).contiguous()")
    if isinstance(op, g.ConvOp):
        n = len(shape_of(op.input.type)) - 2
        bias = args[2] if len(args) > 2 else "None"
        return (f"F.conv{n}d({args[0]}, {args[1]}, {bias}, stride={_tuple(g.ints(op.stride))}, "
                f"padding={_tuple(g.ints(op.padding))}, dilation={_tuple(g.ints(op.dilation))}, "
                f"groups={op.groups.value.data}).contiguous()")
    if isinstance(op, g.MaxPoolOp):
        k = g.ints(op.kernel)
        return (f"F.max_pool{len(k)}d({args[0]}, {_tuple(k)}, {_tuple(g.ints(op.stride))}, "
                f"{_tuple(g.ints(op.padding))}, {_tuple(g.ints(op.dilation))}, "
                f"ceil_mode={bool(op.ceil_mode.value.data)}).contiguous()")
    if isinstance(op, g.AvgPoolOp):
        k = g.ints(op.kernel)
        extra = ""
        if len(k) > 1 and op.divisor.value.data:
            extra = f", divisor_override={op.divisor.value.data}"
        return (f"F.avg_pool{len(k)}d({args[0]}, {_tuple(k)}, {_tuple(g.ints(op.stride))}, "
                f"{_tuple(g.ints(op.padding))}, ceil_mode={bool(op.ceil_mode.value.data)}, "
                f"count_include_pad={bool(op.count_include_pad.value.data)}{extra}).contiguous()")
    if isinstance(op, g.AdaptiveAvgPoolOp):
        out = shape_of(op.result.type)
        n = 2 if len(shape_of(op.input.type)) >= 4 else 1
        return f"F.adaptive_avg_pool{n}d({args[0]}, {_tuple(out[-n:])}).contiguous()"
    if isinstance(op, g.CacheUpdateOp):  # in place: only the new positions are written
        return f"{args[0]}.index_copy_({op.dim.value.data}, {args[1]}.to(torch.int64), {args[2]})"
    if isinstance(op, g.GatherOp):
        return f"torch.gather({args[0]}, {op.dim.value.data}, {args[1]}.to(torch.int64))"
    if isinstance(op, g.IndexSelectOp):
        return f"torch.index_select({args[0]}, {op.dim.value.data}, {args[1]}.to(torch.int64))"
    if isinstance(op, g.EmbeddingOp):
        return f"F.embedding({args[1]}.to(torch.int64), {args[0]})"
    if isinstance(op, g.ConcatOp):
        return f"torch.cat([{', '.join(args)}], dim={op.dim.value.data})"
    raise UnsupportedOpError(op.name, reason=f"the Triton backend has no host call for it "
                                             f"(result dtype {out_dtype})")
