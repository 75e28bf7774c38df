"""``graph.aten_call``: aten ops without a lowering run as torch's kernel in
the compiled graph (a library call) on every backend.

The reference interpreter is the oracle: every backend must agree with it
and with eager, random ops must give eager's values for the same seed (and
new values on the next call), and the passes around the call (dce, cse,
constant-fold, fusion, memory planning) must treat it as an opaque extern.
"""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import irc
from irc.errors import VerificationError
from irc.frontends.capture import compile_graph
from irc.frontends.fx_importer import FxImporter
from irc.ir import graph as g
from irc.ir.interpreter import interpret
from irc.ir.text import parse_module, print_module, verify_module
from irc.passes.pipeline import run_pipeline
from opinfo_cases import trace

TARGETS = ["reference", "cpu", "cuda"]  # cuda: Triton's interpreter on the CPU in CI


def _on(target: str, t: torch.Tensor) -> torch.Tensor:
    """Inputs for ``target``: CUDA tensors for "cuda" where there is a GPU."""
    return t.cuda() if target == "cuda" and torch.cuda.is_available() else t


def _ops(gm: torch.fx.GraphModule) -> list[g.AtenCallOp]:
    program = FxImporter(gm).run()
    return [op for op in program.module.walk() if isinstance(op, g.AtenCallOp)]


def _sort_topk(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    values, indices = torch.sort(x * 2, dim=-1, stable=True)  # fused producer
    top = torch.topk(x, 2, dim=0)
    return values.exp() + 1, indices, top.values - top.indices, torch.lgamma(x.abs() + 1)


@pytest.mark.parametrize("target", TARGETS)
@given(rows=st.integers(1, 5), cols=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_library_calls_with_fused_neighbours_match_eager(target: str, rows: int, cols: int,
                                                         seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(max(rows, 2), cols, generator=gen)
    gm = trace(_sort_topk, x)
    assert {op.callee.data for op in _ops(gm)} >= {"aten::sort.stable", "aten::topk.default"}
    got = compile_graph(gm, target, strict=True)(_on(target, x))
    for a, b in zip(got, _sort_topk(x), strict=True):
        torch.testing.assert_close(a.cpu(), b)


def _random(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    a = torch.rand(3, 4)
    b = torch.rand(3, 4)  # same call twice: must not be merged
    noise = torch.randn_like(x)
    return a, b, x + noise, torch.nn.functional.dropout(x, 0.5, training=True)


@pytest.mark.parametrize("target", TARGETS)
def test_random_ops_draw_like_eager_with_the_same_seed(target: str) -> None:
    x = torch.randn(3, 4)
    gm = trace(_random, x)
    assert all(op.seeded is not None for op in _ops(gm))
    run = compile_graph(gm, target, strict=True)
    torch.manual_seed(7)
    want = gm(x)  # the traced graph, eagerly: the draws in the graph's order
    torch.manual_seed(7)
    got = [t.cpu() for t in run(_on(target, x))]
    if target != "cuda" or not torch.cuda.is_available():
        # (on a GPU, randn_like of a CUDA tensor draws from the CUDA generator)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b)
    else:  # the factory ops the graph recorded on the CPU draw like eager there
        torch.testing.assert_close(got[0], want[0])
        torch.testing.assert_close(got[1], want[1])
    assert not torch.equal(got[0], got[1])
    again = [t.cpu() for t in run(_on(target, x))]  # never folded or cached: new draws every call
    assert not torch.equal(again[0], got[0]) and not torch.equal(again[2], got[2])


def test_seeded_calls_survive_the_graph_passes_and_others_are_dropped_when_unused() -> None:
    text = """builtin.module {
  func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
    %r0 = graph.aten_call "aten::rand.default"() {args = "[[[4]], {}]", seeded} : () -> tensor<4xf32>
    %r1 = graph.aten_call "aten::rand.default"() {args = "[[[4]], {}]", seeded} : () -> tensor<4xf32>
    %dead = graph.aten_call "aten::lgamma.default"(%x) {args = "[[{\\"$t\\": 0}], {}]"} : (tensor<4xf32>) -> tensor<4xf32>
    %s = graph.add %r0, %r1 : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
    func.return %s : tensor<4xf32>
  }
}"""
    module, _ = parse_module(text)
    run_pipeline(module, "cse,canonicalize,constant-fold,dce", verify_each=True)
    calls = [op for op in module.walk() if isinstance(op, g.AtenCallOp)]
    assert [op.callee.data for op in calls] == ["aten::rand.default"] * 2
    torch.manual_seed(3)
    want = torch.rand(4) + torch.rand(4)
    torch.manual_seed(3)
    torch.testing.assert_close(interpret(module, [torch.zeros(4)])[0], want)


def test_weight_derived_library_call_is_computed_once_but_random_ones_every_call() -> None:
    weight = torch.randn(5, 3)

    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(weight.clone(), requires_grad=False)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            top = torch.sort(self.w, dim=0).values  # from the weight only
            return x @ top.t(), torch.rand(2) + x.sum()

    m = M()
    x = torch.randn(2, 3)
    fast = irc.compile(m, target="cpu", strict=True)
    first = fast(x)
    second = fast(x)
    torch.testing.assert_close(first[0], x @ torch.sort(weight, dim=0).values.t())
    torch.testing.assert_close(second[0], first[0])
    assert not torch.equal(first[1], second[1])
    with torch.no_grad():
        m.w.mul_(2)  # a changed weight is seen
    torch.testing.assert_close(fast(x)[0], x @ torch.sort(weight * 2, dim=0).values.t())


def test_view_op_results_are_copies() -> None:
    def fn(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.unfold(0, 2, 1), torch.ops.aten.alias.default(x)

    x = torch.randn(5)
    gm = trace(fn, x)
    for target in ("reference", "cpu"):
        got = compile_graph(gm, target, strict=True)(x)
        torch.testing.assert_close(got[0], x.unfold(0, 2, 1))
        assert all(t.untyped_storage().data_ptr() != x.untyped_storage().data_ptr() for t in got)


def test_text_round_trip_and_verifier() -> None:
    x = torch.randn(3, 4)
    program = FxImporter(trace(_sort_topk, x)).run()
    text = print_module(program.module)
    assert 'graph.aten_call "aten::sort.stable"' in text
    module, source_map = parse_module(text)
    verify_module(module, source_map)
    assert print_module(module) == text
    call = next(op for op in module.walk() if isinstance(op, g.AtenCallOp))
    call.args = g.StringAttr(json.dumps([[{"$t": 0}, {"$t": 1}], {}]))
    with pytest.raises(VerificationError, match="args refer to operands"):
        verify_module(module)


def test_op_irc_cannot_express_stays_an_eager_fallback() -> None:
    def fn(x: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.nonzero.default(x)  # data-dependent result shape

    x = torch.tensor([0.0, 1.0, 2.0])
    with pytest.raises(irc.UnsupportedOpError, match="aten.nonzero"):
        compile_graph(trace(fn, x), "reference", strict=True)
