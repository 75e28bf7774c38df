"""The PyTorch frontend: core aten -> graph dialect, per op family, plus
source locations, strict mode and the eager fallback.

Op-family cases trace with ``make_fx`` (fake mode, our decomposition table) and
compile with ``strict=True``, so a case passes only if every node was really
lowered (no silent eager fallback), and compare with eager on random inputs.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch.fx.experimental.proxy_tensor import make_fx
from xdsl.dialects.builtin import FileLineColLoc

import irc
from irc.frontends.capture import IrcWarning, compile_graph, export_program, import_graph_module
from irc.frontends.decompositions import decomposition_table
from irc.ir import graph as g
from irc.ir.interpreter import interpret
from irc.ir.text import print_module, verify_module

TARGETS = ["reference", "cpu"]


def trace(fn: Callable[..., object], *args: torch.Tensor) -> torch.fx.GraphModule:
    """Core aten, functional (as AOTAutograd gives it): decompose, then functionalize."""
    aten_gm = make_fx(fn, decomposition_table=decomposition_table(), tracing_mode="fake")(*args)
    functional = torch.func.functionalize(aten_gm, remove="mutations_and_views")
    return make_fx(functional, tracing_mode="fake")(*args)


def check(fn: Callable[..., object], args: tuple[torch.Tensor, ...], target: str,
          atol: float = 1e-5, rtol: float = 1e-5) -> None:
    gm = trace(fn, *args)
    run = compile_graph(gm, target, strict=True)
    got = run(*args)
    want = fn(*args)
    want = list(want) if isinstance(want, (tuple, list)) else [want]
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype, (a.dtype, b.dtype)
        assert a.shape == b.shape, (a.shape, b.shape)
        if b.dtype.is_floating_point:
            torch.testing.assert_close(a, b, atol=atol, rtol=rtol, equal_nan=True)
        else:
            assert torch.equal(a, b)


def r(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape).to(dtype)


def ri(*shape: int, high: int = 10, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    return torch.randint(-high, high, shape, dtype=dtype)


# name -> (function, inputs factory)
CASES: dict[str, tuple[Callable[..., object], Callable[[], tuple[torch.Tensor, ...]]]] = {
    # elementwise
    "unary_math": (lambda x: torch.exp(x).tanh() + torch.sigmoid(x) * torch.sin(x) - torch.cos(x).abs()
                   + torch.erf(x) + torch.log1p(x.abs()) + torch.rsqrt(x.abs() + 1) + torch.expm1(x),
                   lambda: (r(3, 5),)),
    "rounding_sign": (lambda x: torch.floor(x) + torch.ceil(x) * torch.round(x) - torch.trunc(x)
                      + torch.sign(x), lambda: (r(4, 4) * 3,)),
    "relu_silu_gelu": (lambda x: F.relu(x) + F.silu(x) + F.gelu(x) + F.gelu(x, approximate="tanh"),
                       lambda: (r(2, 8),)),
    "add_sub_alpha": (lambda a, b: (torch.add(a, b, alpha=2), torch.sub(a, b, alpha=0.5),
                                    torch.rsub(a, b, alpha=3), torch.add(a, 2, alpha=3)),
                      lambda: (r(3, 4), r(4))),
    "binary_broadcast": (lambda a, b: (a + b) * (a - b) / (b.abs() + 1) + torch.maximum(a, b)
                         - torch.minimum(a, b) + torch.pow(a.abs(), b), lambda: (r(3, 1, 4), r(5, 1))),
    "int_tensor_float_scalar": (lambda a: (a * 2.5, a + 1, a // 3, a % 4, a / 2),
                                lambda: (ri(3, 4),)),
    "float_tensor_int_scalar": (lambda a: (a * 2, a - 3, a ** 2, 1 - a, 2 / (a.abs() + 1)),
                                lambda: (r(3, 4),)),
    "half_tensor_f32_0d": (lambda a, s: a * s + 1.5, lambda: (r(4, 4, dtype=torch.float16), torch.randn(()))),
    "comparisons_where": (lambda a, b: torch.where(a > b, a, b * 2) + (a == b).float()
                          + torch.where(a <= 0, 0.0, a), lambda: (r(4, 6), r(6))),
    "logical": (lambda a, b: (a > 0) & (b < 0) | ~(a > b) ^ (b > 1), lambda: (r(5), r(5))),
    "masked_fill": (lambda x, m: x.masked_fill(m, float("-inf")).softmax(-1),
                    lambda: (r(2, 3, 5), torch.tensor([True, False, False, True, False]))),
    "clamp": (lambda x: (x.clamp(-0.5, 0.5), x.clamp(min=0.1), x.clamp(max=-0.1),
                         torch.clamp(x, x * 0.5, x + 1)), lambda: (r(4, 4),)),
    "casts": (lambda x: (x.to(torch.int32), x.to(torch.float16).float(), (x > 0).to(torch.int64),
                         x.to(torch.bfloat16)), lambda: (r(3, 3) * 10,)),
    "isnan_isinf": (lambda x: (torch.isnan(x), torch.isinf(x), torch.nan_to_num(x, 0.0, 1.0, -1.0)),
                    lambda: (torch.tensor([1.0, float("nan"), float("inf"), -float("inf")]),)),
    # reductions
    "reductions": (lambda x: (x.sum(), x.sum(1), x.mean((0, 2), keepdim=True), x.amax(-1),
                              x.amin(0), x.prod(1), x.argmax(2), x.argmin(), (x > 0).any(1),
                              (x > -3).all()), lambda: (r(3, 4, 5),)),
    "max_min_dim": (lambda x: (*torch.max(x, 1), *torch.min(x, 0, keepdim=True), x.max()),
                    lambda: (r(4, 6),)),
    "var_std": (lambda x: (x.var(1), x.std(0, keepdim=True), *torch.var_mean(x, -1, correction=0),
                           x.var()), lambda: (r(5, 7),)),
    "int_sum_mean": (lambda x: (x.sum(0), x.float().mean(), (x > 0).sum(1)), lambda: (ri(4, 5),)),
    # movement
    "views": (lambda x: (x.view(6, 4), x.reshape(-1), x.permute(2, 0, 1), x.transpose(0, 2),
                         x.unsqueeze(1), x[:, :1].squeeze(1), x.flatten(1), x.t() if x.dim() == 2
                         else x.mT), lambda: (r(2, 3, 4),)),
    "expand_repeat": (lambda x: (x.expand(3, 4, 5) + 0, x.repeat(2, 1, 3)), lambda: (r(4, 1),)),
    "slicing": (lambda x: (x[1:], x[:, -3:], x[..., ::2], x[-100:100], x[:, 2:1], x[:, None, 1],
                           x[-1], x.narrow(1, 1, 2)), lambda: (r(4, 5, 6),)),
    "cat_split": (lambda x, y: (torch.cat([x, y, x], 1), *x.split(2, 1), *torch.chunk(y, 3, 0),
                                *torch.unbind(x, 0), torch.stack([x, x], -1)),
                  lambda: (r(3, 5), r(3, 4))),
    "diagonal": (lambda x: (torch.diagonal(x), torch.diagonal(x, 1, 1, 2), torch.diagonal(x, -2, -1, 0),
                            torch.diagonal(x, 7), torch.einsum("ijj->ij", x[:, :4, :4])),
                 lambda: (r(3, 4, 5),)),
    "flip_cumsum": (lambda x, i: (torch.flip(x, [0, -1]), x.cumsum(1), i.cumsum(0), x.cumsum(-1)),
                    lambda: (r(3, 4, 5), ri(6, 2))),
    "scatter_slices": (lambda x, s, t: (torch.slice_scatter(x, s, 1, 1, 3), torch.slice_scatter(x, t, 0),
                                        torch.select_scatter(x, t[0], 0, -1),
                                        torch.slice_scatter(x, s[:, :0], 1, 4, 2)),
                       lambda: (r(3, 5), r(3, 2), r(3, 5))),
    "pad": (lambda x: (F.pad(x, (1, 2)), F.pad(x, (1, 1, 2, 0), value=3.0), F.pad(x, (-1, 1))),
            lambda: (r(2, 3, 4),)),
    "index_multi": (lambda x, i, j: (x[i[:, None], j], x[:, i[:, None], j], x[i, j[:1]]),
                    lambda: (r(4, 5, 6), torch.tensor([0, 3, -1]), torch.tensor([1, -2, 4]))),
    "index_gather": (lambda x, i: (x[i], x[:, i], torch.index_select(x, 1, i.abs()),
                                   torch.gather(x, 1, i.abs().expand(4, 3))),
                     lambda: (r(4, 5), torch.tensor([0, 3, -1]))),
    "constants": (lambda x: x + torch.triu(torch.full((4, 4), float("-inf")), diagonal=1)
                  + torch.arange(4.0) + torch.ones(4) - torch.zeros(4, 4) + torch.eye(4),
                  lambda: (r(2, 4, 4),)),
    # contractions, nn
    "matmul": (lambda a, b, v: (a @ b, torch.mm(a[0], b[0]), torch.bmm(a, b), v @ b[0], a[0] @ v.new_ones(4),
                                v @ v, torch.addmm(v[:1], a[0], b[0], beta=0.5, alpha=2.0)),
               lambda: (r(2, 3, 4), r(2, 4, 4), r(4))),
    "linear": (lambda x, w, b: (F.linear(x, w, b), F.linear(x, w)), lambda: (r(2, 3, 8), r(5, 8), r(5))),
    "conv2d": (lambda x, w1, w2, b: (F.conv2d(x, w1, b, stride=2, padding=1),
                                     F.conv2d(x, w2, None, padding=2, dilation=2, groups=2),
                                     F.conv1d(x[:, :, 0], w1[:, :, 0], b)),
               lambda: (r(2, 4, 9, 9), r(6, 4, 3, 3), r(4, 2, 3, 3), r(6))),
    "pooling": (lambda x: (F.max_pool2d(x, 3, 2, 1), F.max_pool2d(x, 2, ceil_mode=True),
                           F.avg_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 2, count_include_pad=False),
                           F.adaptive_avg_pool2d(x, (1, 1)), F.adaptive_avg_pool2d(x, (3, 2))),
                lambda: (r(2, 3, 9, 8),)),
    "norms": (lambda x, w, b, rm, rv: (F.layer_norm(x, (8,), w, b), F.layer_norm(x, (4, 8)),
                                       F.batch_norm(x, rm, rv, w[:4], b[:4], False, 0.1, 1e-5),
                                       F.group_norm(x, 2), F.rms_norm(x, (8,), w)),
              lambda: (r(2, 4, 4, 8), r(8), r(8), r(4), torch.rand(4) + 0.5)),
    "softmax": (lambda x: (x.softmax(-1), x.log_softmax(1), F.softmax(x, 0)), lambda: (r(3, 4, 5),)),
    "attention": (lambda q, k, v, m: (F.scaled_dot_product_attention(q, k, v, is_causal=True),
                                      F.scaled_dot_product_attention(q, k, v, attn_mask=m),
                                      F.scaled_dot_product_attention(q, k, v, attn_mask=m > 0)),
                  lambda: (r(2, 2, 5, 8), r(2, 2, 5, 8), r(2, 2, 5, 8), r(5, 5))),
    "embedding": (lambda w, i: F.embedding(i, w), lambda: (r(10, 4), torch.randint(0, 10, (2, 3)))),
    "activations": (lambda x: (F.hardtanh(x), F.leaky_relu(x, 0.2), F.elu(x), F.softplus(x),
                               F.hardsigmoid(x), F.hardswish(x), F.mish(x), torch.logsumexp(x, 1)),
                    lambda: (r(3, 7) * 3,)),
}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_op_family(case: str, target: str) -> None:
    fn, make_inputs = CASES[case]
    check(fn, make_inputs(), target)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.int32,
                                   torch.int64, torch.bool])
def test_dtypes(dtype: torch.dtype, target: str) -> None:
    x = (torch.randn(4, 6) * 4).to(dtype)

    def fn(a: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return a * a + a, a.permute(1, 0)[1:], torch.where(a > 0, a, a - a), a.sum(1), torch.cat([a, a])

    tol = {torch.float16: 1e-2, torch.bfloat16: 5e-2}.get(dtype, 1e-5)
    if dtype == torch.bool:
        check(lambda a: (a & a, a.permute(1, 0), torch.where(a, a, ~a), a.sum(1), a.any(0)), (x,),
              target)
    else:
        check(fn, (x,), target, atol=tol, rtol=tol)


def test_program_weights_are_live_and_not_printed() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()
    x = torch.randn(3, 8)
    program = export_program(model, (x,))
    verify_module(program.module)
    text = print_module(program.module)
    assert 'graph.weight "0.weight"' in text and "dense<" not in text
    assert program.weights["0.weight"].data_ptr() == model[0].weight.data_ptr()
    assert program.input_names == ["input"]  # Sequential.forward(input)
    torch.testing.assert_close(interpret(program.module, [x], program.weights)[0], model(x))
    with torch.no_grad():
        model[0].weight.mul_(2)  # in-place update is seen by the held weight
    torch.testing.assert_close(interpret(program.module, [x], program.weights)[0], model(x))


def test_import_graph_module_symbolic_trace() -> None:
    class Small(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.lin(x)) * 2

    model = Small().eval()
    gm = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 4)
    program = import_graph_module(gm, (x,))
    torch.testing.assert_close(interpret(program.module, [x], program.weights)[0], model(x))
    aten_gm = trace(lambda a: torch.relu(a) + 1, x)
    program = import_graph_module(aten_gm, (x,))
    torch.testing.assert_close(interpret(program.module, [x], program.weights)[0], torch.relu(x) + 1)


def test_constants_fold_at_import() -> None:
    def fn(x: torch.Tensor) -> torch.Tensor:
        return x + torch.triu(torch.full((16, 16), float("-inf")), diagonal=1) + torch.arange(16.0)

    program = import_graph_module(trace(fn, torch.randn(16, 16)), ())
    ops = [op.name for op in program.module.walk()]
    assert "graph.constant" in ops or "graph.weight" in ops
    assert not any(name in ops for name in ("graph.triu",))
    x = torch.randn(16, 16)
    torch.testing.assert_close(interpret(program.module, [x], program.weights)[0], fn(x))


def _line_of(fn: Callable[..., object], needle: str) -> int:
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if needle in line)


def _located_fn(x: torch.Tensor) -> torch.Tensor:
    y = torch.exp(x)
    z = y * 3.0  # the multiply
    return torch.relu(z)


def test_locations_point_at_user_lines() -> None:
    seen: list = []
    from irc.frontends import capture
    original = capture.compile_program_once

    def spy(program, target, options):  # type: ignore[no-untyped-def]
        seen.append(print_module(program.module))
        for op in program.module.walk():
            if isinstance(op, g.MulOp):
                seen.append(op.location)
        return original(program, target, options)

    capture.compile_program_once = spy
    try:
        out = irc.compile(_located_fn, target="reference")(torch.randn(3))
    finally:
        capture.compile_program_once = original
    assert out.shape == (3,)
    loc = next(s for s in seen if isinstance(s, FileLineColLoc))
    assert loc.filename.data == __file__
    assert loc.line.data == _line_of(_located_fn, "the multiply")
    assert f'loc("{__file__}":{_line_of(_located_fn, "torch.exp")}:0)' in seen[0]


def _uses_sort(x: torch.Tensor) -> torch.Tensor:
    y = x * 2
    z = torch.fft.rfft(y).abs()  # unsupported here (a complex intermediate)
    return z + 1


def test_strict_mode_names_op_and_line() -> None:
    compiled = irc.compile(_uses_sort, target="reference", strict=True)
    with pytest.raises(irc.UnsupportedOpError) as info:
        compiled(torch.randn(4))
    message = str(info.value)
    assert "aten._fft_r2c" in message
    assert f"{__file__}:{_line_of(_uses_sort, 'unsupported here')}" in message
    assert info.value.op.startswith("aten._fft_r2c")


def _uses_sort_too(x: torch.Tensor) -> torch.Tensor:
    y = torch.sin(x)
    z = torch.fft.rfft(y, dim=1).abs()  # falls back
    return torch.relu(z) + y.sum()


def test_fallback_warns_once_and_is_correct() -> None:
    compiled = irc.compile(_uses_sort_too, target="reference")
    x = torch.randn(3, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = compiled(x)
        second = compiled(x * 2)
        y = torch.randn(5, 6)
        other_shape = compiled(y)  # recompiles: the same op and line, no warning
    ours = [w for w in caught if issubclass(w.category, IrcWarning)]
    assert len(ours) == 1
    text = str(ours[0].message)
    assert "aten._fft_r2c" in text and f"{__file__}:{_line_of(_uses_sort_too, 'falls back')}" in text
    torch.testing.assert_close(first, _uses_sort_too(x))
    torch.testing.assert_close(second, _uses_sort_too(x * 2))
    torch.testing.assert_close(other_shape, _uses_sort_too(y))
    # the set of warned ops belongs to one compile: another irc.compile warns again
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        irc.compile(_uses_sort_too, target="reference")(x)
    assert len([w for w in caught if issubclass(w.category, IrcWarning)]) == 1


def test_unsupported_dtype_falls_back() -> None:
    def fn(x: torch.Tensor) -> torch.Tensor:
        return (x.to(torch.complex64) * 2).real + 1

    x = torch.randn(5)
    with pytest.warns(IrcWarning, match="complex"):
        out = irc.compile(fn, target="reference")(x)
    torch.testing.assert_close(out, fn(x))


def test_nan_constants_and_inf_scalars() -> None:
    def fn(x: torch.Tensor) -> torch.Tensor:
        return x.masked_fill(x > 0, float("nan")) + torch.full((3,), math.inf)

    check(fn, (torch.randn(2, 3),), "reference")


def test_backend_supports_is_honoured() -> None:
    """An op the target's ``supports`` rejects runs in eager PyTorch (one warning)."""
    from irc.backends.reference import ReferenceBackend

    class NoTanh(ReferenceBackend):
        name = "no-tanh-test"

        def supports(self, op) -> bool:  # type: ignore[no-untyped-def]
            return not isinstance(op, g.TanhOp)

    irc.register_backend("no-tanh-test", NoTanh)

    def fn(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x * 2) + 1  # tanh goes to eager

    x = torch.randn(4, 3)
    with pytest.warns(IrcWarning, match="does not support graph.tanh"):
        out = irc.compile(fn, target="no-tanh-test")(x)
    torch.testing.assert_close(out, fn(x))
    with pytest.raises(irc.UnsupportedOpError, match="aten.tanh"):
        irc.compile(lambda a: torch.tanh(a) * 3, target="no-tanh-test", strict=True)(x)


@pytest.mark.parametrize("target", TARGETS)
def test_attention_gradients_compile(target: str) -> None:
    """Forward and backward of SDPA (causal, additive and boolean masks) compile strictly."""

    def fn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        b = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
        c = F.scaled_dot_product_attention(q, k, v, attn_mask=m > 0, scale=0.3)
        return (a * b + c).sum()

    torch.manual_seed(3)
    inputs = [torch.randn(2, 2, 5, 8, requires_grad=True) for _ in range(3)] + [torch.randn(5, 5)]
    compiled = irc.compile(fn, target=target, strict=True)
    got = torch.autograd.grad(compiled(*inputs), inputs[:3])
    want = torch.autograd.grad(fn(*inputs), inputs[:3])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_handler_table_is_built_once_from_the_marked_functions() -> None:
    from irc.frontends import aten_elementwise, fx_importer
    table = fx_importer.handlers()
    assert fx_importer.handlers() is table  # built once, on first use
    assert table[torch.ops.aten.add] is aten_elementwise._binary
    stray = fx_importer.handles("add")(lambda ctx, node: None)  # marking registers nothing
    assert fx_importer.handlers()[torch.ops.aten.add] is not stray
    with pytest.raises(TypeError):
        table[torch.ops.aten.add] = stray  # type: ignore[index]  # read-only
