"""What the graph dialect's library ops compute, in torch: one definition for
the reference interpreter (:mod:`irc.ir.interpreter`, the oracle), the CPU
runtime (:mod:`irc.backends.llvm.runtime`, through the interpreter's handlers)
and the package loader (:mod:`irc.loader_runtime`).

Compiler-free: torch only (no xDSL, llvmlite or triton), so ``irc.load`` can
import it. Each function takes the op's operands and its properties as plain
values; the interpreter reads them from the op, the loader from the JSON
schedule. Also here: a ``graph.aten_call`` (torch's own op, by name, on
decoded JSON arguments) and the view chains the host schedules apply to
library operands (``permute``, ``reshape``, ``expand``, ``slice`` steps).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F

from irc.errors import IrcError

# -- channels-last operands ---------------------------------------------------------


def from_channels_last(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A channels-last op's ``[N, *spatial, C]`` input as the ``[N, C, *spatial]``
    view torch's functional ops take, with channels-last strides (a runtime may
    hand over a strided view, e.g. of a channels-first input: it is copied
    once here, or oneDNN would take its slow channels-first path)."""
    if not channels_last:
        return x
    return x.contiguous().permute(0, x.dim() - 1, *range(1, x.dim() - 1))


def to_channels_last(y: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Back to ``[N, *spatial, C]`` (contiguous; free when torch produced a
    channels-last result, as oneDNN does for a channels-last input)."""
    if not channels_last:
        return y
    return y.permute(0, *range(2, y.dim()), 1).contiguous()


# -- the library ops ----------------------------------------------------------------


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
              causal: bool, scale: float) -> torch.Tensor:
    """``graph.attention``: torch's fused CPU kernel (the one eager runs for
    ``F.scaled_dot_product_attention``); elsewhere the functional op."""
    if q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                              scale=scale)
    # The fused kernel reads q/k/v as if their last dim were contiguous
    # (F.scaled_dot_product_attention makes it so before calling it); the
    # runtimes hand library calls torch views, e.g. the transposed results of
    # swap-skinny-matmul, whose last-dim stride is not 1.
    q, k, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v))
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    if q.dim() != 4:  # the fused kernel takes [batch, heads, L, E]
        lead = q.shape[:-2]
        as4 = [x.reshape(-1, 1, *x.shape[-2:]) for x in (q, k, v)]
        if mask is not None:
            mask = mask.expand(*lead, q.shape[-2], k.shape[-2]).reshape(-1, 1, q.shape[-2],
                                                                       k.shape[-2])
        out = flash(*as4, 0.0, causal, attn_mask=mask, scale=scale)[0]
        return out.reshape(*lead, *out.shape[-2:])
    return flash(q, k, v, 0.0, causal, attn_mask=mask, scale=scale)[0]


def conv(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, stride: Sequence[int],
         padding: Sequence[int], dilation: Sequence[int], groups: int) -> torch.Tensor:
    """``graph.conv`` on channels-first ``x`` (1-, 2- or 3-d)."""
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[x.dim() - 2]
    return fn(x, w, bias, stride=list(stride), padding=list(padding), dilation=list(dilation),
              groups=groups)


EPILOGUE_UNARY: dict[str, Callable[..., torch.Tensor]] = {
    "none": lambda y: y, "relu": torch.relu, "hardtanh": lambda y, lo, hi: y.clamp(lo, hi),
    "swish": F.silu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}
"""``graph.conv_epilogue``'s activations (``CONV_EPILOGUE_UNARY`` in ir/graph.py),
each with its scalars (hardtanh's bounds) after the tensor."""


def conv_epilogue(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None,
                  other: torch.Tensor | None, stride: Sequence[int], padding: Sequence[int],
                  dilation: Sequence[int], groups: int, unary: str,
                  scalars: Sequence[float]) -> torch.Tensor:
    """``graph.conv_epilogue``: ``unary(conv(x, w, bias) + other)`` on ``[N, H, W, C]`` data."""
    y = F.conv2d(from_channels_last(x, True), w, bias, stride=list(stride),
                 padding=list(padding), dilation=list(dilation), groups=groups)
    y = y.permute(0, 2, 3, 1)
    if other is not None:
        y = y + other
    return EPILOGUE_UNARY[unary](y, *scalars).contiguous()


def max_pool(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int],
             padding: Sequence[int], dilation: Sequence[int], ceil_mode: bool) -> torch.Tensor:
    """``graph.max_pool`` on channels-first ``x``."""
    fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[len(kernel)]
    return fn(x, list(kernel), list(stride), list(padding), list(dilation), ceil_mode=ceil_mode)


def avg_pool(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int],
             padding: Sequence[int], ceil_mode: bool, count_include_pad: bool,
             divisor: int | None) -> torch.Tensor:
    """``graph.avg_pool`` on channels-first ``x`` (``divisor``: 2-d and 3-d only)."""
    fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[len(kernel)]
    kwargs: dict[str, object] = {}
    if len(kernel) > 1 and divisor:
        kwargs["divisor_override"] = divisor
    return fn(x, list(kernel), list(stride), list(padding), ceil_mode=ceil_mode,
              count_include_pad=count_include_pad, **kwargs)


def adaptive_avg_pool(x: torch.Tensor, out_shape: Sequence[int]) -> torch.Tensor:
    """``graph.adaptive_avg_pool``: to the result's spatial size (1-d or 2-d)."""
    if x.dim() >= 4:
        return F.adaptive_avg_pool2d(x, (out_shape[-2], out_shape[-1]))
    return F.adaptive_avg_pool1d(x, (out_shape[-1],))


# -- graph.aten_call ----------------------------------------------------------------


def decode_args(text: str, inputs: Sequence[torch.Tensor]) -> tuple[list[object], dict[str, object]]:
    """A ``graph.aten_call``'s ``args`` JSON -> python ``(args, kwargs)``:
    operand references become ``inputs``; devices, dtypes, layouts and
    memory formats the torch objects they name."""
    def decode(value: object) -> object:
        if isinstance(value, list):
            return [decode(v) for v in value]
        if isinstance(value, dict):
            if "$t" in value:
                return inputs[value["$t"]]
            if "$dtype" in value:
                return getattr(torch, value["$dtype"])
            if "$device" in value:
                return torch.device(value["$device"])
            if "$layout" in value:
                return getattr(torch, value["$layout"])
            if "$memory_format" in value:
                return getattr(torch, value["$memory_format"])
            return {k: decode(v) for k, v in value.items()}
        return value
    args, kwargs = json.loads(text)
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise IrcError(f"graph.aten_call: malformed arguments {text!r}")
    return [decode(a) for a in args], {k: decode(v) for k, v in kwargs.items()}


@lru_cache(maxsize=None)
def aten_overload(callee: str) -> torch._ops.OpOverload:
    """``"aten::sort.stable"`` -> ``torch.ops.aten.sort.stable``."""
    namespace, rest = callee.split("::", 1)
    name, overload = rest.rsplit(".", 1)
    try:
        return getattr(getattr(getattr(torch.ops, namespace), name), overload)
    except AttributeError:
        raise IrcError(f"graph.aten_call: this torch has no operator {callee}") from None


def run_aten_call(callee: str, args: str, dtypes: Sequence[torch.dtype],
                  inputs: Sequence[torch.Tensor], device: torch.device | None = None
                  ) -> list[torch.Tensor]:
    """Run a ``graph.aten_call``: torch's op on ``inputs``; its tensor outputs in
    order, cast to ``dtypes``, contiguous and never sharing storage with an
    input (a view op's result is copied: value semantics). The one
    implementation the interpreter, the CPU runtime, Triton's host code and
    the package loader call.

    A factory op runs on the device the graph recorded (so a random draw
    comes from the generator eager used); with ``device``, the results are
    then moved to the device the program runs on."""
    positional, keywords = decode_args(args, inputs)
    out = aten_overload(callee)(*positional, **keywords)
    flat = [t for t in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(t, torch.Tensor)]
    if len(flat) != len(dtypes):
        raise IrcError(f"graph.aten_call {callee}: torch gave {len(flat)} tensors, the op "
                       f"declares {len(dtypes)}")
    storages = {t.untyped_storage().data_ptr() for t in inputs if t.numel()}
    results = []
    for t, dtype in zip(flat, dtypes):
        t = t.to(device=device or t.device, dtype=dtype).contiguous()
        if t.numel() and t.untyped_storage().data_ptr() in storages:
            t = t.clone()
        results.append(t)
    return results


# -- view chains --------------------------------------------------------------------

ViewSteps = Sequence[Sequence[object]]
"""``[kind, *args]`` per step: ``["permute", dims]``, ``["reshape", shape]``,
``["expand", shape]``, ``["slice", dim, start, end, step]`` (the ``irc.view``
attribute of a movement-only kernel, and a package schedule's view step)."""


def apply_view(t: torch.Tensor, steps: ViewSteps) -> torch.Tensor:
    """``t`` through the view chain ``steps`` (torch views; a reshape of a
    permuted tensor copies, as torch's does)."""
    for kind, *args in steps:
        if kind == "permute":
            t = t.permute(args[0])  # type: ignore[arg-type]
        elif kind == "reshape":
            t = t.reshape(args[0])  # type: ignore[arg-type]
        elif kind == "expand":
            t = t.expand(args[0])  # type: ignore[arg-type]
        else:
            dim, start, end, step = args
            t = t[(slice(None),) * dim + (slice(start, end, step),)]  # type: ignore[operator]
    return t


def planned_view(source: torch.Tensor, steps: ViewSteps) -> torch.Tensor | None:
    """The view chain of a planned buffer or constant, made once, or None where
    the chain copies (then it must run per call, on the buffer's current values)."""
    view = apply_view(source, steps)
    if view.untyped_storage().data_ptr() == source.untyped_storage().data_ptr():
        return view
    return None
