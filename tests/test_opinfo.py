"""Every entry of PyTorch's OpInfo database (``op_db``) through irc, strict.

For each case (an op_db entry; float32 samples where the entry supports
them, see :mod:`opinfo_cases`) the first sample is traced to core aten as
AOTAutograd gives graphs, compiled with ``strict=True`` for the reference
interpreter and the CPU backend, and compared with eager. No case may end
in an internal error or a mismatch. A case compiles (library calls inside
the compiled graph count: ``graph.aten_call``) unless :data:`NOT_COMPILED`
lists it with the category it must end in; a case listed there that
compiles fails too, so the table stays true. :func:`test_strict_fraction`
keeps the compiled share at 90% or more. The slow test runs three samples per
case (``-m slow``); ``python -m bench.opinfo`` prints the counts.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

import irc
from irc.frontends.capture import IrcWarning, compile_graph
from opinfo_cases import as_function, case_name, classify, compare, op_db, trace

TARGETS = ("reference", "cpu")
CASES = {case_name(op): op for op in op_db()}

# Cases that do not compile strictly: name -> (category, why).
_DATA = "result shape or control flow depends on the values (dynamo graph-breaks too)"
_SCATTER = "aten.as_strided_scatter: no lowering (a strided write into a copy of the input)"
_COMPLEX = "complex dtypes are not supported"
NOT_COMPILED: dict[str, tuple[str, str]] = {
    # eager fallback: data-dependent shapes, Python scalars out of tensors
    **{name: ("eager", _DATA) for name in (
        "item", "allclose", "combinations", "corrcoef", "cov", "equal", "masked_select",
        "bincount", "tensor_split", "unique", "unique_consecutive", "nonzero", "argwhere",
        "nn.functional.one_hot", "nn.functional.ctc_loss", "nn.functional.gaussian_nll_loss",
        "linalg.lstsq", "linalg.lstsq.grad_oriented")},
    "as_strided_scatter": ("eager", _SCATTER),
    # dtypes irc has no element type for
    **{name: ("dtype", _COMPLEX) for name in (
        "stft", "view_as_real", "view_as_complex", "complex", "istft", "imag", "polar", "cdouble",
        "cfloat", "chalf", "nn.functional.silu.complex", "linalg.eig", "linalg.eigvals",
        *(f"fft.{k}" for k in ("fft", "fft2", "fftn", "hfft", "hfft2", "hfftn", "rfft",
                               "rfft2", "rfftn", "ifft", "ifft2", "ifftn", "ihfft", "ihfft2",
                               "ihfftn", "irfft", "irfft2", "irfftn")))},
    "byte": ("dtype", "uint8 is not supported"),
    "short": ("dtype", "int16 is not supported"),
    "hash_tensor": ("dtype", "uint64 is not supported"),
    "_batch_norm_with_update": ("dtype", "its reserve output is uint8"),
    "torch._scaled_mm": ("dtype", "float8 only"),
    "torch._scaled_mm_v2": ("dtype", "float8 only"),
    "sparse.sampled_addmm": ("dtype", "sparse layouts are not supported"),
    "sparse.mm.reduce": ("dtype", "sparse layouts are not supported"),
    "to_sparse": ("dtype", "sparse layouts are not supported"),
    # eager itself cannot run these on the CPU
    **{name: ("skipped", "no CPU kernel in eager") for name in (
        "jiterator_unary", "jiterator_binary", "jiterator_4inputs_with_extra_args",
        "jiterator_binary_return_by_ref", "jiterator_2inputs_2outputs",
        "torch.ops.aten._flash_attention_forward", "torch.ops.aten._efficient_attention_forward",
        "nn.functional.batch_norm.without_cudnn")},
}

# Internal errors another part of issue #11 fixes (the fuse pass on empty
# tensors, item 4): expected to fail until then, and to pass after (strict).
KNOWN_INTERNAL: dict[str, str] = {}


def _params(names: list[str]) -> list[Any]:
    return [pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_INTERNAL[n], strict=True))
            if n in KNOWN_INTERNAL else n for n in names]


@pytest.mark.parametrize("name", _params(sorted(CASES)))
def test_opinfo(name: str) -> None:
    want, why = NOT_COMPILED.get(name, ("compiled", ""))
    for target, outcome in classify(CASES[name], 1, TARGETS).items():
        assert outcome.category not in ("internal", "mismatch"), \
            f"{target}: {outcome.category}: {outcome.detail}"
        assert outcome.category == want, (
            f"{target}: expected {want} ({why}), got {outcome.category} {outcome.detail}"
            + (" -- it compiles now: remove it from NOT_COMPILED" if outcome.category == "compiled"
               else ""))


@pytest.mark.slow
@pytest.mark.parametrize("name", _params(sorted(CASES)))
def test_opinfo_more_samples(name: str) -> None:
    for target, outcome in classify(CASES[name], 3, TARGETS).items():
        # later samples may need what the first did not (narrow with a tensor start)
        assert outcome.category not in ("internal", "mismatch"), \
            f"{target}: {outcome.category}: {outcome.details}"


def test_strict_fraction() -> None:
    assert set(NOT_COMPILED) <= set(CASES) and set(KNOWN_INTERNAL) <= set(CASES)
    judged = [n for n in CASES if NOT_COMPILED.get(n, ("",))[0] != "skipped"]
    compiled = [n for n in judged if n not in NOT_COMPILED]
    assert len(CASES) >= 690
    assert len(compiled) / len(judged) >= 0.90, f"{len(compiled)} of {len(judged)} compile"


# ops the graph dialect cannot express (data-dependent result shapes): reported, then eager
OUTSIDE = ("nonzero", "masked_select", "unique")


@pytest.mark.parametrize("name", OUTSIDE)
def test_op_outside_the_set_is_reported_and_falls_back(name: str) -> None:
    op = CASES[name]
    sample = _samples(name)[0]
    fn, tensors = as_function(op, sample)
    gm = trace(fn, *tensors)
    with pytest.raises(irc.UnsupportedOpError, match="aten."):
        compile_graph(gm, "reference", strict=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = compile_graph(gm, "reference")
    assert [w for w in caught if issubclass(w.category, IrcWarning)
            and "irc cannot compile aten." in str(w.message)]
    compare(run(*tensors), fn(*tensors))


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_pixel_shuffle_index_algebra(factor: int) -> None:
    """reshape -> permute -> reshape chains whose floor divisions once split
    into a negative rest (a truncating division on the CPU: wrong elements)."""
    x = torch.randn(1, 2 * factor * factor, 3, 2)

    def fn(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pixel_shuffle(t, factor) * 1.0

    got = compile_graph(trace(fn, x), "cpu", strict=True)(x)[0]
    assert torch.equal(got, fn(x))


# ----------------------------------------------------------------------------
# the names test_opinfo_triton uses: the ops with a native lowering of their
# own (no library call), whose Triton kernels it checks in several dtypes

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

_OPS = {op.name: op for op in op_db() if not op.variant_test_name}


def _as_function(op: Any, sample: Any) -> tuple[Callable[..., Any], list[torch.Tensor]]:
    return as_function(op, sample)


def _samples(name: str) -> list[Any]:
    """The first float32 sample of op ``name`` (no variant)."""
    return list(_OPS[name].sample_inputs("cpu", torch.float32, requires_grad=False))[:1]
