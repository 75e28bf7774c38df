"""PyTorch's OpInfo samples (``op_db``) through the frontend, float32 on the CPU.

For every op the importer supports (``SUPPORTED``), the first samples of the
OpInfo are traced to core aten (our decomposition table, functionalized, as
AOTAutograd gives graphs), compiled with ``strict=True`` (so nothing may fall
back to eager) for the reference interpreter and for the CPU backend (LLVM),
and compared with eager (the Triton backend: :mod:`test_opinfo_triton`). Ops outside the set must raise
:class:`irc.UnsupportedOpError` under strict mode and fall back correctly
otherwise. ``IRC_OPINFO_SAMPLES`` (default 1) sets the samples per op; the
report's pass count comes from ``IRC_OPINFO_SAMPLES=3``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx
from torch.utils._pytree import tree_flatten, tree_unflatten

import irc
from irc.frontends.capture import IrcWarning, compile_graph
from irc.frontends.decompositions import decomposition_table

op_db = pytest.importorskip("torch.testing._internal.common_methods_invocations").op_db

SAMPLES = int(os.environ.get("IRC_OPINFO_SAMPLES", "1"))

SUPPORTED = (
    'H', 'T', 'abs', 'add', 'addcdiv', 'addcmul', 'addmm', 'addmv', 'addr', 'alias_copy', 'all',
    'amax', 'amin', 'aminmax', 'any', 'arange', 'argmax', 'argmin', 'atan2', 'atleast_1d',
    'atleast_2d', 'atleast_3d', 'baddbmm', 'bfloat16', 'block_diag', 'bmm', 'bool',
    'broadcast_shapes', 'broadcast_tensors', 'broadcast_to', 'cartesian_prod', 'cat', 'ceil',
    'char', 'chunk', 'clamp', 'clamp_max', 'clamp_min', 'clone', 'column_stack', 'conj',
    'conj_physical', 'constant_pad_nd', 'contiguous', 'cos', 'count_nonzero', 'cross', 'cumsum',
    'deg2rad', 'diag_embed', 'diagflat', 'diagonal', 'diagonal_copy', 'diff', 'dot', 'double',
    'dsplit', 'dstack', 'einsum', 'eq', 'erf', 'exp', 'exp2', 'expand', 'expand_as',
    'expand_copy', 'expm1', 'eye', 'fill', 'flatten', 'flip', 'fliplr', 'flipud', 'float',
    'float_power', 'floor', 'floor_divide', 'frac', 'full', 'full_like', 'gather', 'ge',
    'gradient', 'gt', 'half', 'heaviside', 'hsplit', 'hstack', 'index_select', 'inner', 'int',
    'isclose', 'isfinite', 'isinf', 'isnan', 'isneginf', 'isposinf', 'isreal', 'kron', 'le',
    'lerp', 'linspace', 'log', 'log1p', 'log2', 'log_softmax', 'logaddexp', 'logaddexp2',
    'logical_and', 'logical_not', 'logical_or', 'logical_xor', 'logit', 'logspace', 'logsumexp',
    'long', 'lt', 'mH', 'mT', 'masked_fill', 'matmul', 'maximum', 'mean', 'minimum', 'mm',
    'movedim', 'mul', 'mv', 'nan_to_num', 'nanmean', 'nansum', 'native_dropout_backward',
    'native_layer_norm', 'ne', 'neg', 'new_full', 'new_ones', 'new_zeros',
    'nn.functional.adaptive_avg_pool1d', 'nn.functional.adaptive_avg_pool2d',
    'nn.functional.avg_pool1d', 'nn.functional.avg_pool2d', 'nn.functional.avg_pool3d',
    'nn.functional.binary_cross_entropy', 'nn.functional.binary_cross_entropy_with_logits',
    'nn.functional.celu', 'nn.functional.channel_shuffle', 'nn.functional.conv1d',
    'nn.functional.conv2d', 'nn.functional.conv3d', 'nn.functional.cosine_embedding_loss',
    'nn.functional.cross_entropy', 'nn.functional.elu', 'nn.functional.embedding',
    'nn.functional.gelu', 'nn.functional.glu', 'nn.functional.hardshrink',
    'nn.functional.hardsigmoid', 'nn.functional.hardswish', 'nn.functional.hardtanh',
    'nn.functional.hinge_embedding_loss', 'nn.functional.huber_loss', 'nn.functional.kl_div',
    'nn.functional.l1_loss', 'nn.functional.layer_norm', 'nn.functional.leaky_relu',
    'nn.functional.linear', 'nn.functional.linear_cross_entropy',
    'nn.functional.local_response_norm', 'nn.functional.logsigmoid',
    'nn.functional.margin_ranking_loss', 'nn.functional.mish', 'nn.functional.mse_loss',
    'nn.functional.multi_margin_loss', 'nn.functional.multilabel_margin_loss',
    'nn.functional.multilabel_soft_margin_loss', 'nn.functional.nll_loss',
    'nn.functional.pixel_shuffle', 'nn.functional.pixel_unshuffle',
    'nn.functional.poisson_nll_loss', 'nn.functional.prelu', 'nn.functional.relu',
    'nn.functional.relu6', 'nn.functional.rms_norm', 'nn.functional.selu', 'nn.functional.silu',
    'nn.functional.smooth_l1_loss', 'nn.functional.soft_margin_loss', 'nn.functional.softmin',
    'nn.functional.softplus', 'nn.functional.softshrink', 'nn.functional.softsign',
    'nn.functional.tanhshrink', 'nn.functional.threshold', 'nn.functional.upsample_nearest',
    'ones', 'ones_like', 'outer', 'permute', 'permute_copy', 'positive', 'pow', 'prod',
    'rad2deg', 'ravel', 'real', 'reciprocal', 'remainder', 'repeat', 'repeat_interleave',
    'reshape', 'reshape_as', 'resolve_conj', 'resolve_neg', 'roll', 'round', 'rsqrt', 'rsub',
    'scalar_tensor', 'select', 'select_scatter', 'sgn', 'sigmoid', 'sign', 'sin', 'sinc',
    'slice', 'softmax', 'split', 'split_with_sizes', 'split_with_sizes_copy', 'sqrt', 'square',
    'squeeze', 'squeeze_copy', 'stack', 'std', 'std_mean', 'sub', 'sum', 'sum_to_size', 't',
    't_copy', 'take_along_dim', 'tan', 'tanh', 'tensordot', 'tile', 'to', 'trace', 'transpose',
    'transpose_copy', 'trapezoid', 'trapz', 'tril', 'triu', 'true_divide', 'trunc', 'unbind',
    'unbind_copy', 'unflatten', 'unsafe_chunk', 'unsafe_split', 'unsqueeze', 'unsqueeze_copy',
    'var', 'var_mean', 'vdot', 'view', 'view_as', 'view_copy', 'vsplit', 'vstack', 'where',
    'xlogy', 'zero_', 'zeros', 'zeros_like'
)

# ops with no lowering (they must be reported, then run eagerly)
OUTSIDE = ("sort", "topk", "cummax", "nn.functional.conv_transpose2d")

_OPS = {op.name: op for op in op_db if not op.variant_test_name}


def trace(fn: Callable[..., Any], *args: torch.Tensor) -> torch.fx.GraphModule:
    aten_gm = make_fx(fn, decomposition_table=decomposition_table(), tracing_mode="fake")(*args)
    functional = torch.func.functionalize(aten_gm, remove="mutations_and_views")
    return make_fx(functional, tracing_mode="fake")(*args)


def _as_function(op: Any, sample: Any) -> tuple[Callable[..., Any], list[torch.Tensor]]:
    flat, spec = tree_flatten((sample.input, sample.args, sample.kwargs))
    positions = [i for i, v in enumerate(flat) if isinstance(v, torch.Tensor)]

    def fn(*tensors: torch.Tensor) -> Any:
        values = list(flat)
        for i, t in zip(positions, tensors):
            values[i] = t
        x, args, kwargs = tree_unflatten(values, spec)
        return op(x, *args, **kwargs)

    return fn, [flat[i] for i in positions]


def _compare(got: list[Any], want: Any) -> None:
    expected = [w for w in tree_flatten(want)[0] if isinstance(w, torch.Tensor)]
    assert len(got) >= len(expected)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, equal_nan=True, atol=1e-4, rtol=1e-4, check_stride=False)


def _samples(name: str) -> list[Any]:
    op = _OPS[name]
    return list(op.sample_inputs("cpu", torch.float32, requires_grad=False))[:SAMPLES]


@pytest.mark.parametrize("name", SUPPORTED)
def test_opinfo_compiles_and_matches_eager(name: str) -> None:
    op = _OPS[name]
    for sample in _samples(name):
        fn, tensors = _as_function(op, sample)
        want = fn(*tensors)
        run = compile_graph(trace(fn, *tensors), "reference", strict=True)
        _compare(run(*tensors), want)


@pytest.mark.parametrize("name", SUPPORTED)
def test_opinfo_cpu_backend(name: str) -> None:
    op = _OPS[name]
    for sample in _samples(name):
        fn, tensors = _as_function(op, sample)
        want = fn(*tensors)
        run = compile_graph(trace(fn, *tensors), "cpu", strict=True)
        _compare(run(*tensors), want)


@pytest.mark.parametrize("name", [n for n in OUTSIDE if n in _OPS])
def test_op_outside_the_set_is_reported_and_falls_back(name: str) -> None:
    op = _OPS[name]
    sample = _samples(name)[0]
    fn, tensors = _as_function(op, sample)
    gm = trace(fn, *tensors)
    aten_name = name.rsplit(".", 1)[-1].replace("conv_transpose2d", "convolution")
    with pytest.raises(irc.UnsupportedOpError, match=f"aten.{aten_name}"):
        compile_graph(gm, "reference", strict=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = compile_graph(gm, "reference")
    assert [w for w in caught
            if issubclass(w.category, IrcWarning) and f"aten.{aten_name}" in str(w.message)]
    _compare(run(*tensors), fn(*tensors))


def test_supported_set_is_large() -> None:
    assert len(SUPPORTED) >= 250 and all(name in _OPS for name in SUPPORTED)
