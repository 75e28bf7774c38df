"""``patch-matmul``: patch-tiling convolutions (stride == kernel, no padding,
dilation 1, one group) become a matmul of the gathered patches; the others stay
convolutions. Meaning kept on random shapes (reference interpreter before ==
after, and the CPU backend == eager)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from irc.driver import compile_program
from irc.frontends.capture import export_program
from irc.ir import graph as g
from irc.ir.interpreter import interpret
from irc.passes.pipeline import run_pipeline

NO_CACHE = {"cache.enabled": False}


def convs(module) -> list[g.ConvOp]:
    return [op for op in module.walk() if isinstance(op, g.ConvOp)]


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(1, 3), c_in=st.integers(1, 5), c_out=st.integers(1, 9),
       kh=st.integers(2, 4), kw=st.integers(1, 4), tiles_h=st.integers(1, 4),
       tiles_w=st.integers(1, 4), bias=st.booleans())
def test_patch_convolutions_become_a_matmul_and_keep_meaning(batch, c_in, c_out, kh, kw, tiles_h,
                                                             tiles_w, bias) -> None:
    torch.manual_seed(0)
    x = torch.randn(batch, c_in, kh * tiles_h, kw * tiles_w)
    w = torch.randn(c_out, c_in, kh, kw)
    b = torch.randn(c_out) if bias else None

    def fn(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x * 2.0, w, b, stride=(kh, kw)).flatten(2).transpose(1, 2) + 1.0

    expected = fn(x)
    program = export_program(fn, (x,))
    before = interpret(program.module, [x], program.weights)
    run_pipeline(program.module, "patch-matmul", verify_each=True)
    assert not convs(program.module)
    assert any(isinstance(op, g.MatmulOp) for op in program.module.walk())
    torch.testing.assert_close(interpret(program.module, [x], program.weights)[0], before[0],
                               rtol=1e-4, atol=1e-4)
    run = compile_program(export_program(fn, (x,)), "cpu", NO_CACHE)
    torch.testing.assert_close(run(x)[0], expected, rtol=1e-4, atol=1e-4)


def test_other_convolutions_are_left_alone() -> None:
    x = torch.randn(2, 4, 8, 8)
    w = torch.randn(4, 4, 2, 2)
    cases = [lambda x: F.conv2d(x, w, stride=1),                       # overlapping windows
             lambda x: F.conv2d(x, w, stride=2, padding=1),            # padding
             lambda x: F.conv2d(x, w[:, :2], stride=2, groups=2),      # groups
             lambda x: F.conv2d(x, w, stride=2, dilation=2),           # dilation
             lambda x: F.conv2d(x[..., :7, :7], w, stride=2),          # a ragged edge
             lambda x: F.conv2d(x, w[..., :1, :1])]                    # 1x1: oneDNN's chain
    for fn in cases:
        program = export_program(fn, (x,))
        run_pipeline(program.module, "patch-matmul", verify_each=True)
        assert len(convs(program.module)) == 1
