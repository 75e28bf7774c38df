"""Convolutions through oneDNN with prepacked weights: against eager, repacked on change."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from irc.backends.llvm.conv import conv_step, supported
from irc.frontends.capture import export_program
from irc.ir import graph as g
from irc.passes.pipeline import run_pipeline

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(),
                                reason="this torch build has no oneDNN")


def channels_last_conv(cin, cout, k, stride, groups, bias, shape):
    """The graph.conv op irc runs for F.conv2d(...), after the channels-last pass."""
    conv = torch.nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=bias)
    program = export_program(conv, (torch.randn(shape),))
    run_pipeline(program.module, "channels-last")
    (op,) = [o for o in program.module.walk() if isinstance(o, g.ConvOp)]
    return op, conv


@settings(max_examples=10, deadline=None)
@given(cin=st.sampled_from([2, 4, 8]), cout=st.sampled_from([4, 8]), k=st.sampled_from([1, 3]),
       stride=st.sampled_from([1, 2]), groups=st.sampled_from([1, 2]), bias=st.booleans(),
       hw=st.integers(3, 9))
def test_step_matches_eager_and_repacks_on_change(cin, cout, k, stride, groups, bias, hw):
    shape = (2, cin, hw, hw)
    op, conv = channels_last_conv(cin, cout, k, stride, groups, bias, shape)
    assert supported(op)
    step = conv_step(op, 0, 1, 2 if bias else None, 3)
    assert step is not None
    w = conv.weight.detach().clone()
    b = conv.bias.detach().clone() if bias else None

    def check(x, w):
        env = [x.permute(0, 2, 3, 1).contiguous(), w, b, None]
        step(env)
        want = F.conv2d(x, w, b, stride=stride, padding=k // 2, groups=groups)
        assert env[3].is_contiguous() and env[3].shape == want.permute(0, 2, 3, 1).shape
        torch.testing.assert_close(env[3], want.permute(0, 2, 3, 1), rtol=1e-4, atol=1e-4)

    for _ in range(3):
        check(torch.randn(shape), w)
    assert step.packed_weight.packs == 1  # packed once for unchanged weights
    w.mul_(-2.0)  # an in-place update: packed again
    check(torch.randn(shape), w)
    assert step.packed_weight.packs == 2
    w2 = torch.randn_like(w)  # another tensor
    check(torch.randn(shape), w2)
    assert step.packed_weight.packs == 3


def test_irc_compile_sees_weight_updates():
    import irc
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 4, 3, stride=2)).eval()
    x = torch.randn(2, 3, 10, 10)
    compiled = irc.compile(model, options={"cache": {"enabled": False}})
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)
        model[0].weight.mul_(0.5)
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)


def test_other_convolutions_use_the_generic_call():
    conv = torch.nn.Conv1d(3, 4, 3)
    program = export_program(conv, (torch.randn(1, 3, 8),))
    (op,) = [o for o in program.module.walk() if isinstance(o, g.ConvOp)]
    assert not supported(op) and conv_step(op, 0, 1, 2, 3) is None


def test_1d_step_matches_eager_and_repacks_on_change():
    """A 1-d channels-last conv as oneDNN's 2-d one of height 1, its weight packed once."""
    conv = torch.nn.Conv1d(4, 6, 5, stride=2, padding=3, dilation=2, groups=2)
    program = export_program(conv, (torch.randn(2, 4, 23),))
    run_pipeline(program.module, "channels-last")
    (op,) = [o for o in program.module.walk() if isinstance(o, g.ConvOp)]
    assert supported(op)
    step = conv_step(op, 0, 1, 2, 3)
    assert step is not None
    w, b = conv.weight.detach().clone(), conv.bias.detach().clone()

    def check(x, w):
        env = [x.transpose(1, 2).contiguous(), w, b, None]
        step(env)
        want = F.conv1d(x, w, b, stride=2, padding=3, dilation=2, groups=2).transpose(1, 2)
        assert env[3].is_contiguous() and env[3].shape == want.shape
        torch.testing.assert_close(env[3], want, rtol=1e-4, atol=1e-4)

    for _ in range(2):
        check(torch.randn(2, 4, 23), w)
    assert step.packed_weight.packs == 1
    w.mul_(-2.0)
    check(torch.randn(2, 4, 23), w)
    assert step.packed_weight.packs == 2
