"""Conv nets through irc.compile: batch norm folded, the epilogue a oneDNN post-op.

Against eager PyTorch on random weights and inputs: conv -> batch norm ->
(residual add) -> activation blocks compile to one ``graph.conv_epilogue``
library call each (irc_stats counts them; no plain convolution, no per-call
batch-norm kernel is left), and a weight changed in place or replaced is seen
by the next call (never a stale fold).
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import irc
from irc.backends.llvm.runtime import HostProgram

ACTIVATIONS = {
    "none": torch.nn.Identity, "relu": torch.nn.ReLU, "relu6": torch.nn.ReLU6,
    "silu": torch.nn.SiLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh,
    "hardtanh": lambda: torch.nn.Hardtanh(-0.5, 1.5),
}


class Block(torch.nn.Module):
    """conv -> bn -> (+ x) -> activation, then a second conv -> bn -> activation."""

    def __init__(self, channels: int, groups: int, stride: int, bias: bool, residual: bool,
                 activation: str) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, 3, stride=stride, padding=1,
                                    groups=groups, bias=bias)
        self.bn = torch.nn.BatchNorm2d(channels)
        self.act = ACTIVATIONS[activation]()
        self.conv2 = torch.nn.Conv2d(channels, channels, 1, bias=bias)
        self.bn2 = torch.nn.BatchNorm2d(channels)
        self.residual = residual and stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        if self.residual:
            y = y + x
        return torch.relu(self.bn2(self.conv2(self.act(y))))


def randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.normal_()
            m.bias.data.normal_()
            m.running_mean.normal_()
            m.running_var.uniform_(0.3, 3.0)
    return model.eval()


def programs(monkeypatch) -> list[HostProgram]:
    made: list[HostProgram] = []
    init = HostProgram.__init__

    def record(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self)
    monkeypatch.setattr(HostProgram, "__init__", record)
    return made


@settings(max_examples=10, deadline=None)
@given(activation=st.sampled_from(sorted(ACTIVATIONS)), residual=st.booleans(),
       groups=st.sampled_from([1, 2, 8]), stride=st.sampled_from([1, 2]), bias=st.booleans(),
       seed=st.integers(0, 2**16))
def test_blocks_match_eager_with_epilogues_fused(activation, residual, groups, stride, bias,
                                                 seed):
    model = randomize(Block(8, groups, stride, bias, residual, activation), seed)
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        compiled = irc.compile(model, strict=True)
        _matches_eager(compiled, model, x)
        _matches_eager(compiled, model, torch.randn(2, 8, 9, 9))
    externs = compiled.irc_stats.extern_ops
    # the first convolution fuses when it has an activation or a residual, the second always
    fused = 1 if activation == "none" and not (residual and stride == 1) else 2
    assert externs["graph.conv_epilogue"] == fused, externs
    assert externs["graph.conv"] == 2 - fused, externs


def _matches_eager(compiled, model, x) -> None:
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)


def _residual_block(activation: str, seed: int):
    """A residual block (bias, stride 1) with random weights, compiled strictly,
    and an input; the first (inference) call is checked against eager."""
    model = randomize(Block(8, 1, 1, True, True, activation), seed)
    x = torch.randn(2, 8, 9, 9)
    compiled = irc.compile(model, strict=True)
    with torch.no_grad():
        _matches_eager(compiled, model, x)
    return model, x, compiled


def test_batch_norm_is_folded_once_per_weight_version(monkeypatch):
    made = programs(monkeypatch)
    model, x, compiled = _residual_block("relu", 0)
    with torch.no_grad():
        for _ in range(2):
            _matches_eager(compiled, model, x)
    (program,) = made
    assert program.derived_runs == 1  # the fold ran once, not per call
    assert program.derived_steps  # ... and it is the runtime's, from the live weights
    # per call: the input's layout change, two library calls, the output's layout change
    assert len(program.steps) <= 4


def test_weight_updates_refold_never_stale(monkeypatch):
    made = programs(monkeypatch)
    model, x, compiled = _residual_block("relu6", 1)
    with torch.no_grad():
        model.conv.weight.mul_(-2.0)                      # in place: a new version
        _matches_eager(compiled, model, x)
        model.bn.running_var.fill_(4.0)                   # a buffer in place
        _matches_eager(compiled, model, x)
        model.bn2.weight = torch.nn.Parameter(torch.randn(8))  # a new tensor
        _matches_eager(compiled, model, x)
        model.load_state_dict(randomize(Block(8, 1, 1, True, True, "relu6"), 2).state_dict())
        _matches_eager(compiled, model, x)
    assert made[-1].derived_runs >= 4


def test_training_graph_keeps_batch_statistics_and_gradients():
    import copy
    model = Block(8, 1, 1, True, True, "relu")
    reference = copy.deepcopy(model)
    x = torch.randn(2, 8, 9, 9, requires_grad=True)
    ref_x = x.detach().clone().requires_grad_(True)
    out = irc.compile(model, strict=True)(x)
    ref = reference(ref_x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    # the compiled call updated the running statistics as eager did
    torch.testing.assert_close(model.bn.running_mean, reference.bn.running_mean)
    assert int(model.bn.num_batches_tracked) == 1
    out.sum().backward()
    ref.sum().backward()
    assert x.grad is not None and ref_x.grad is not None
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-4, atol=1e-4)
    assert model.conv.weight.grad is not None
    torch.testing.assert_close(model.conv.weight.grad, reference.conv.weight.grad,
                               rtol=1e-3, atol=1e-3)
