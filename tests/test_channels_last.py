"""The ``channels-last`` pass: convolutions and pooling on ``[N, H, W, C]`` data.

Meaning is kept (reference interpreter before == after, on random conv and
pooling parameters), chained convolutions pass channels-last data with no
permute between them, the op's new form verifies, prints and parses, and the
CPU, Triton (interpreted) and NumPy-plugin backends run it like eager.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from irc.driver import compile_program
from irc.errors import VerificationError
from irc.frontends.capture import export_program
from irc.frontends.program import Program
from irc.ir import graph as g
from irc.ir.interpreter import interpret
from irc.ir.text import parse_module, print_module, verify_module
from irc.passes.pipeline import run_pipeline

NO_CACHE = {"cache.enabled": False}


def ops_of(module, kind) -> list:
    return [op for op in module.walk() if isinstance(op, kind)]


def assert_close(expected: list[torch.Tensor], got: list[torch.Tensor]) -> None:
    assert len(expected) == len(got)
    for e, o in zip(expected, got):
        assert o.shape == e.shape and o.dtype == e.dtype
        # oneDNN sums a channels-last convolution in another order
        torch.testing.assert_close(o, e, rtol=1e-4, atol=1e-4)


class ConvBnPool(nn.Module):
    """conv -> bn -> relu -> max pool -> conv -> conv (+ residual) -> avg pool."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.a = nn.Conv2d(c, c, 3, padding=1, groups=2)
        self.b = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.max_pool2d(F.relu(self.bn(self.stem(x))), 3, 2, 1)
        z = self.b(self.a(y))
        return F.avg_pool2d(F.relu(z + y), 2)


def conv_program() -> tuple[Program, torch.Tensor, nn.Module]:
    torch.manual_seed(0)
    model = ConvBnPool().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 16, 16)
    return export_program(model, (x,)), x, model


def test_pass_keeps_meaning_and_marks_every_2d_window_op() -> None:
    program, x, _ = conv_program()
    weights = {k: v for k, v in program.weights.items()}
    expected = interpret(program.module, [x], weights)
    run_pipeline(program.module, "channels-last", verify_each=True)
    windows = ops_of(program.module, (g.ConvOp, g.MaxPoolOp, g.AvgPoolOp))
    assert len(windows) == 5 and all(g.is_channels_last(op) for op in windows)
    assert_close(expected, interpret(program.module, [x], weights))


def test_chained_convolutions_pass_channels_last_data_directly() -> None:
    program, _, _ = conv_program()
    run_pipeline(program.module, "channels-last", verify_each=True)
    convs = ops_of(program.module, g.ConvOp)
    # a -> b: b's input is a's result itself, no permute in between
    a, b = [op for op in convs if shape_of_weight(op)[1] != 3][:2]
    assert b.input.owner is a
    # the model's input and output keep their layout: permutes at the edges only
    main_ops = list(program.module.walk())
    assert any(isinstance(op, g.PermuteOp) for op in main_ops)


def shape_of_weight(op: g.ConvOp) -> tuple[int, ...]:
    from irc.ir.types import shape_of
    return shape_of(op.weight.type)


def test_pass_is_idempotent() -> None:
    program, _, _ = conv_program()
    run_pipeline(program.module, "channels-last", verify_each=True)
    once = print_module(program.module)
    run_pipeline(program.module, "channels-last", verify_each=True)
    assert print_module(program.module) == once


def test_channels_last_ops_print_parse_and_verify() -> None:
    program, _, _ = conv_program()
    run_pipeline(program.module, "channels-last", verify_each=True)
    text = print_module(program.module)
    assert "channels_last" in text
    module, source_map = parse_module(text, "cl.mlir")
    verify_module(module, source_map)
    assert print_module(module) == text


def test_verifier_checks_channels_last_shapes() -> None:
    text = """
func.func @main(%x: tensor<1x8x8x3xf32>, %w: tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32> {
  %y = graph.conv %x, %w {stride = array<i64: 1, 1>, padding = array<i64: 1, 1>, dilation = array<i64: 1, 1>, groups = 1 : i64, channels_last} : (tensor<1x8x8x3xf32>, tensor<4x3x3x3xf32>) -> tensor<1x4x8x8xf32>
  func.return %y : tensor<1x4x8x8xf32>
}
"""
    module, source_map = parse_module(text, "bad.mlir")
    with pytest.raises(VerificationError, match="channels_last"):
        verify_module(module, source_map)
    good = text.replace("tensor<1x4x8x8xf32>", "tensor<1x8x8x4xf32>")
    module, source_map = parse_module(good, "good.mlir")
    verify_module(module, source_map)


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(1, 2), c_in=st.sampled_from([1, 3, 4]), groups=st.sampled_from([1, 2]),
       size=st.integers(5, 9), kernel=st.integers(1, 3), stride=st.integers(1, 2),
       padding=st.integers(0, 1), dilation=st.integers(1, 2), bias=st.booleans(),
       pool=st.sampled_from(["max", "avg", "none"]), ceil=st.booleans())
def test_random_convolutions_and_pools_keep_meaning(batch, c_in, groups, size, kernel, stride,
                                                   padding, dilation, bias, pool, ceil) -> None:
    c_in *= groups
    torch.manual_seed(0)
    x = torch.randn(batch, c_in, size, size)
    w = torch.randn(2 * groups, c_in // groups, kernel, kernel)
    b = torch.randn(2 * groups) if bias else None

    def fn(x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, w, b, stride, padding, dilation, groups).relu()
        if pool == "max" and min(y.shape[-2:]) >= 2:
            y = F.max_pool2d(y, 2, 1, 1, ceil_mode=ceil)
        elif pool == "avg" and min(y.shape[-2:]) >= 2:
            y = F.avg_pool2d(y, 2, 1, 1, ceil_mode=ceil)
        return y * 2.0

    program = export_program(fn, (x,))
    expected = interpret(program.module, [x], program.weights)
    run_pipeline(program.module, "channels-last", verify_each=True)
    assert all(g.is_channels_last(op) for op in ops_of(program.module, g.ConvOp))
    assert_close(expected, interpret(program.module, [x], program.weights))


@pytest.mark.parametrize("target", ["cpu", "reference", "cuda"])
def test_backends_run_the_channels_last_kernel_pipeline_like_eager(target: str) -> None:
    program, x, model = conv_program()
    with torch.no_grad():
        expected = model(x)
    if target == "cuda":
        pytest.importorskip("triton")
    run = compile_program(program, target, NO_CACHE)
    assert_close([expected], list(run(x)))


def test_cpu_pipeline_runs_channels_last_convolutions() -> None:
    program, x, model = conv_program()
    from irc.config import Config
    text = Config.from_options(NO_CACHE, target="cpu").pipeline_for("loops")
    passes = [spec.split("{")[0] for spec in text.split(",")]
    assert passes.index("channels-last") < passes.index("fuse")  # layouts before fusion
    run_pipeline(program.module, text, verify_each=True)
    convs = ops_of(program.module, g.ConvOp)
    assert convs and all(g.is_channels_last(op) for op in convs)


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(1, 2), c_in=st.sampled_from([1, 3, 4]), groups=st.sampled_from([1, 2]),
       length=st.integers(5, 40), kernel=st.integers(1, 10), stride=st.integers(1, 5),
       padding=st.integers(0, 4), dilation=st.integers(1, 2), bias=st.booleans())
def test_1d_convolutions_run_channels_last_like_eager(batch, c_in, groups, length, kernel, stride,
                                                      padding, dilation, bias) -> None:
    """A batched 1-d conv is laid out [N, L, C]; reference and CPU backend (oneDNN,
    prepacked) agree with eager, the permutes around it folded into the kernels."""
    c_in *= groups
    if (length + 2 * padding - dilation * (kernel - 1) - 1) < 0:
        kernel = 1
    torch.manual_seed(0)
    x = torch.randn(batch, c_in, length)
    w = torch.randn(3 * groups, c_in // groups, kernel)
    b = torch.randn(3 * groups) if bias else None

    def fn(x: torch.Tensor) -> torch.Tensor:
        return F.gelu(F.conv1d(x * 2.0, w, b, stride, padding, dilation, groups)).transpose(1, 2)

    expected = fn(x)
    program = export_program(fn, (x,))
    run_pipeline(program.module, "channels-last", verify_each=True)
    convs = ops_of(program.module, g.ConvOp)
    assert convs and all(g.is_channels_last(op) for op in convs)
    assert_close([expected], interpret(program.module, [x], program.weights))
    run = compile_program(export_program(fn, (x,)), "cpu", NO_CACHE)
    assert_close([expected], list(run(x)))


def test_unbatched_1d_convolution_runs_like_eager() -> None:
    """torch's decomposition makes it a batch of one: laid out channels-last too."""
    w = torch.randn(4, 3, 3)
    x = torch.randn(3, 9)
    run = compile_program(export_program(lambda x: F.conv1d(x, w), (x,)), "cpu", NO_CACHE)
    assert_close([F.conv1d(x, w)], list(run(x)))
