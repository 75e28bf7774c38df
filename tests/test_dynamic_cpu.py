"""The cpu backend compiles a module with symbolic sizes once: one native
compile serves every binding (irc.backends.llvm.symbolic), checked against
eager at every size, with the number of backend compiles asserted."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import irc
from irc.driver import SymbolicFallbackWarning


def test_llama_block_compiles_once_at_the_backend_for_every_shape() -> None:
    from bench.bench_dynamic import LlamaBlock
    torch.manual_seed(0)
    block = LlamaBlock(dim=64, heads=4, kv_heads=2, ffn=96, max_seq=128).eval()
    compiled = irc.compile(block, target="cpu", strict=True, dynamic=True)
    shapes = [(2, 16), (3, 17), (2, 31), (4, 100), (2, 64), (3, 5)]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", SymbolicFallbackWarning)
        for batch, seq in shapes:
            x = torch.randn(batch, seq, 64)
            torch.testing.assert_close(compiled(x), block(x), rtol=1e-4, atol=1e-4)
        stats = compiled.irc_stats
        assert stats.graphs == 1 and stats.backend_compiles == 1
        assert stats.specializations == 0 and not stats.symbolic_fallbacks
        # batch 1 and sequence 1: dynamo specialises them, one graph each; still right
        for batch, seq in [(1, 17), (2, 1), (1, 40)]:
            x = torch.randn(batch, seq, 64)
            torch.testing.assert_close(compiled(x), block(x), rtol=1e-4, atol=1e-4)
        assert stats.graphs == 3 and stats.backend_compiles == 3


def _program(kind: str, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    if kind == "softmax":
        return (x * 0.5).softmax(-1)
    if kind == "layernorm":
        return F.layer_norm(x, x.shape[-1:]) * w
    if kind == "rmsnorm":
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w
    if kind == "rope":
        half = x.shape[-1] // 2
        return x * w + torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    if kind == "heads":  # split heads, permute, elementwise, merge back
        b, s, d = x.shape
        h = x.reshape(b, s, 2, d // 2).transpose(1, 2)
        return torch.tanh(h).transpose(1, 2).reshape(b, s, d) + w
    if kind == "silu":
        return F.silu(x) * x + w
    raise AssertionError(kind)


@settings(max_examples=8, deadline=None)
@given(kind=st.sampled_from(["softmax", "layernorm", "rmsnorm", "rope", "heads", "silu"]),
       cols=st.sampled_from([8, 12]),
       # (batch == seq would be duck-shaped into one symbol: dynamo's choice, a recompile)
       sizes=st.lists(st.tuples(st.integers(2, 6), st.integers(7, 40)), min_size=3, max_size=5,
                      unique=True))
def test_transformer_kernels_compile_once_for_random_sizes(
        kind: str, cols: int, sizes: list[tuple[int, int]]) -> None:
    w = torch.randn(cols)

    def f(x: torch.Tensor) -> torch.Tensor:
        return _program(kind, x, w)

    # batch and sequence symbolic from the first call (mark_dynamic), features static
    compiled = irc.compile(f, target="cpu", strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SymbolicFallbackWarning)
        for batch, seq in sizes:
            x = torch.randn(batch, seq, cols)
            torch._dynamo.mark_dynamic(x, 0)
            torch._dynamo.mark_dynamic(x, 1)
            torch.testing.assert_close(compiled(x), f(x), rtol=1e-4, atol=1e-4)
    stats = compiled.irc_stats
    assert stats.graphs == 1 and stats.backend_compiles == 1 and not stats.symbolic_fallbacks


def test_a_column_sum_gets_a_heap_scratch_buffer_of_symbolic_size() -> None:
    def f(x: torch.Tensor) -> torch.Tensor:
        return x - x.sum(0, keepdim=True)  # materialised first: a scratch buffer of s0*s1... sizes

    compiled = irc.compile(f, target="cpu", strict=True, dynamic=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SymbolicFallbackWarning)
        for n, m in [(3, 7), (5, 9), (40, 2000)]:
            x = torch.randn(n, m)
            torch.testing.assert_close(compiled(x), f(x), rtol=1e-4, atol=1e-4)
    assert compiled.irc_stats.backend_compiles == 1
    assert "memref.alloc" in compiled.irc_stats._executables[0].loops_ir


def test_what_cannot_compile_symbolically_falls_back_per_binding_and_says_why() -> None:
    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) * 2

    # the generated C host schedule needs static sizes: per binding, said so
    compiled = irc.compile(f, target="cpu", strict=True, dynamic=True,
                           options={"host_schedule": "native"})
    with pytest.warns(SymbolicFallbackWarning, match="host_schedule='native' needs static sizes"):
        for n in (3, 5, 9):
            x = torch.randn(n, 7)
            torch.testing.assert_close(compiled(x), f(x))
    stats = compiled.irc_stats
    assert len(stats.symbolic_fallbacks) == 1 and "native" in stats.symbolic_fallbacks[0]
    assert stats.backend_compiles == 3 and stats.specializations == 3  # one per binding


@pytest.mark.parametrize("runtime", ["openmp", "pool"])
def test_parallel_kernels_split_by_the_runtime_trip_count(runtime: str) -> None:
    from irc.driver import compile_program
    from irc.frontends.program import Program
    from irc.ir.text import parse_module
    text = """
    func.func @main(%x: tensor<?x?xf32, ["s0", "s1"]>) -> tensor<?x?xf32, ["s0", "s1"]> {
      %m = graph.amax %x {dims = array<i64: 1>, keepdim = true} : tensor<?x?xf32, ["s0", "s1"]> -> tensor<?x1xf32, ["s0"]>
      %d = graph.sub %x, %m : (tensor<?x?xf32, ["s0", "s1"]>, tensor<?x1xf32, ["s0"]>) -> tensor<?x?xf32, ["s0", "s1"]>
      %e = graph.exp %d : tensor<?x?xf32, ["s0", "s1"]> -> tensor<?x?xf32, ["s0", "s1"]>
      func.return %e : tensor<?x?xf32, ["s0", "s1"]>
    }"""
    module, _ = parse_module(text)
    run = compile_program(Program(module), "cpu", {"min_parallel_work": 1, "threads": 2,
                                                   "parallel_runtime": runtime})
    assert run.backend_compiles == 1
    for rows, cols in [(1, 5), (2, 3), (7, 33), (64, 17), (3, 1)]:
        x = torch.randn(rows, cols)
        want = (x - x.amax(1, keepdim=True)).exp()
        torch.testing.assert_close(run(x)[0], want)
    assert run.bindings == 5
    launches = run.stats.launches
    assert launches["openmp"] + launches["pool"] > 0  # the large bindings ran split
