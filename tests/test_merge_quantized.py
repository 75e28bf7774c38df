"""``merge-quantized-matmuls``: quantized layers sharing an input become one call.

The pass changes which call computes a channel, not what it computes: the
compiled model with and without it agrees to float32 rounding (a channel
may fall in another code path of the kernel, whose fast-math contraction
rounds the last bit differently; the interpreter's matmul accumulates in
another order with another N), on random shapes (hypothesis), at 8 and 4
bits, on the CPU and under the Triton interpreter, with fewer calls.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import irc
from irc.ir import graph as g
from irc.ir.interpreter import interpret
from irc.passes.pipeline import run_pipeline

NO_CACHE = {"cache.enabled": False}


class Projections(torch.nn.Module):
    """q/k/v-style siblings of different widths, and a layer on another input."""

    def __init__(self, k: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.siblings = torch.nn.ModuleList(torch.nn.Linear(k, n, bias=False) for n in widths)
        self.out = torch.nn.Linear(sum(widths), 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.tanh(layer(x)) for layer in self.siblings]
        return self.out(torch.cat(parts, dim=-1))


def _compiled(model: torch.nn.Module, bits: str, merge: bool, target: str = "cpu"):
    return irc.compile(model, target=target, strict=True, options={
        **NO_CACHE, "quantize.weights": bits, "quantize.merge": merge})


@settings(max_examples=8, deadline=None)
@given(k=st.integers(1, 100), widths=st.lists(st.integers(1, 40), min_size=2, max_size=3),
       rows=st.integers(1, 5), bits=st.sampled_from(["int8", "int4"]))
def test_merged_model_agrees_and_makes_fewer_calls(
        k: int, widths: list[int], rows: int, bits: str) -> None:
    torch.manual_seed(k * 31 + rows)
    model = Projections(k, tuple(widths)).eval()
    x = torch.randn(rows, k)
    merged, separate = _compiled(model, bits, True), _compiled(model, bits, False)
    with torch.no_grad():
        got, want = merged(x), separate(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    calls = merged.irc_stats.extern_ops["graph.quantized_matmul"]
    assert calls == 2 and separate.irc_stats.extern_ops["graph.quantized_matmul"] == len(widths) + 1


def test_merged_model_agrees_under_triton() -> None:
    model = Projections(48, (32, 16, 16)).eval()
    x = torch.randn(3, 48)
    merged, separate = _compiled(model, "int4", True, "cuda"), _compiled(model, "int4", False, "cuda")
    with torch.no_grad():
        torch.testing.assert_close(merged(x), separate(x), rtol=1e-5, atol=1e-5)
    assert merged.irc_stats.extern_ops["graph.quantized_matmul"] == 2


QKV = """\
func.func @main(%x: tensor<2x8xf32>) -> (tensor<2x4xf32>, tensor<2x6xf32>, tensor<2x3xf32>) {
  %q0 = graph.weight "a" : tensor<4x8xi8>
  %s0 = graph.weight "a.scales" : tensor<4x1xf32>
  %q1 = graph.weight "b" : tensor<6x8xi8>
  %s1 = graph.weight "b.scales" : tensor<6x1xf32>
  %q2 = graph.weight "c" : tensor<3x8xi8>
  %s2 = graph.weight "c.scales" : tensor<3x1xf32>
  %y0 = graph.quantized_matmul %x, %q0, %s0 {bits = 8 : i64, group_size = 8 : i64} : (tensor<2x8xf32>, tensor<4x8xi8>, tensor<4x1xf32>) -> tensor<2x4xf32>
  %y1 = graph.quantized_matmul %x, %q1, %s1 {bits = 8 : i64, group_size = 8 : i64} : (tensor<2x8xf32>, tensor<6x8xi8>, tensor<6x1xf32>) -> tensor<2x6xf32>
  %y2 = graph.quantized_matmul %x, %q2, %s2 {bits = 8 : i64, group_size = 8 : i64} : (tensor<2x8xf32>, tensor<3x8xi8>, tensor<3x1xf32>) -> tensor<2x3xf32>
  func.return %y0, %y1, %y2 : tensor<2x4xf32>, tensor<2x6xf32>, tensor<2x3xf32>
}
"""


def test_pass_stacks_the_weights_and_slices_the_result() -> None:
    from irc.ir.text import parse_module
    module, _ = parse_module(QKV)
    weights = {}
    for name, n in (("a", 4), ("b", 6), ("c", 3)):
        weights[name] = torch.randint(-127, 128, (n, 8), dtype=torch.int8)
        weights[f"{name}.scales"] = torch.rand(n, 1)
    x = torch.randn(2, 8)
    want = interpret(module, [x], dict(weights))
    run_pipeline(module, "merge-quantized-matmuls", weights=weights)
    ops = list(module.walk())
    assert sum(isinstance(o, g.QuantizedMatmulOp) for o in ops) == 1
    assert sum(isinstance(o, g.SliceOp) for o in ops) == 3
    assert set(weights) == {"a+b+c.stacked", "a+b+c.stacked.scales"}  # no per-layer copy left
    got = interpret(module, [x], weights)
    for a, b in zip(got, want):  # the interpreter's f32 matmul: accumulation order only
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-5)


def test_pass_without_a_store_only_renames() -> None:
    from irc.ir.text import parse_module, print_module
    module, _ = parse_module(QKV)
    run_pipeline(module, "merge-quantized-matmuls")
    text = print_module(module)
    assert '"a+b+c.stacked"' in text and '"a+b+c.stacked.scales"' in text
    assert text.count("graph.quantized_matmul") == 1


@pytest.mark.parametrize("bits", ["int8", "int4"])
def test_zoo_llama_merges_qkv_and_gate_up(bits: str) -> None:
    from zoo.models import ZOO
    model, inputs = ZOO["llama"].make(batch=1)
    merged, separate = _compiled(model, bits, True), _compiled(model, bits, False)
    with torch.no_grad():
        got, want = merged(**inputs), separate(**inputs)
    torch.testing.assert_close(got.logits, want.logits, rtol=1e-5, atol=1e-5)
    layers = model.config.num_hidden_layers
    # per layer: q/k/v -> 1, o, gate/up -> 1, down; plus lm_head
    assert merged.irc_stats.extern_ops["graph.quantized_matmul"] == 4 * layers + 1
    assert separate.irc_stats.extern_ops["graph.quantized_matmul"] == 7 * layers + 1
