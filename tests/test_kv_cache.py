"""Compiled generation with ``transformers``' static KV cache.

``model.forward = irc.compile(model.forward)`` and ``generate(...,
cache_implementation="static")``: greedy tokens equal eager's, one decode
graph serves every cache position, and the decode step writes only the new
positions into the caller's cache tensors (``graph.cache_update``; no copy
of the cache, asserted from the kernel-level IR and its memory plan).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from xdsl.dialects.builtin import ModuleOp

import irc
from irc.ir import graph as g
from irc.ir.interpreter import interpret
from irc.ir.kernel import find_main, kernels_by_name
from irc.ir.types import numel, shape_of
from irc.passes.memory_plan import nbytes, plan_memory
from irc.ir.text import parse_module, verify_module

NO_CACHE = {"cache.enabled": False}


def _generate(model: torch.nn.Module, ids: torch.Tensor, new: int, cache: Any = None
              ) -> torch.Tensor:
    """Greedy ``new`` tokens with a static cache (``cache``: a ``StaticCache`` to use)."""
    kwargs: dict[str, Any] = {"cache": cache} if cache is not None else {
        "cache_implementation": "static"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                              pad_token_id=0, **kwargs)


def _layers(model: torch.nn.Module) -> int:
    config = getattr(model, "config")
    return int(getattr(config, "num_hidden_layers", None) or config.n_layer)


@pytest.mark.parametrize("name", [
    "llama", "qwen2",  # qwen2: grouped-query attention (2 KV heads for 4)
    pytest.param("gpt2", marks=pytest.mark.slow), pytest.param("phi", marks=pytest.mark.slow)])
def test_greedy_generation_with_static_cache_equals_eager(name: str) -> None:
    from zoo.models import ZOO
    model, _ = ZOO[name].make(batch=1)
    ids = ZOO[name].fresh_inputs(model, seed=3, batch=1, seq=7)["input_ids"]
    expected = _generate(model, ids, 6)
    compiled = irc.compile(model.forward, strict=True, options=NO_CACHE)
    model.forward = compiled  # type: ignore[method-assign]
    got = _generate(model, ids, 6)
    assert torch.equal(got, expected), (got, expected)
    stats = compiled.irc_stats
    # prefill + ONE decode graph for the five decode steps (positions 7..11)
    assert stats.graphs == 2, stats
    assert stats.compiled_runs == 6 and not stats.eager_ops
    assert stats.extern_ops["graph.cache_update"] == 2 * _layers(model)  # K and V per layer


def test_generation_with_a_new_cache_length_stays_compiled_and_equal() -> None:
    """A second ``generate`` with a longer static cache: dynamo recompiles
    with the cache length symbolic (``dynamic=None``). That graph creates the
    cache inside the call (the cache's lazy ``torch.full`` + ``index_copy_``
    into it, symbolic sizes) and adds a symbolic ``kv_length`` to a tensor;
    every graph must compile (strict) and give eager's tokens."""
    from transformers import StaticCache
    from zoo.models import ZOO
    model, _ = ZOO["llama"].make(batch=1)
    ids = ZOO["llama"].fresh_inputs(model, seed=5, batch=1, seq=7)["input_ids"]
    lengths = (16, 24)
    expected = [_generate(model, ids, 6, StaticCache(config=model.config, max_cache_len=n))
                for n in lengths]
    compiled = irc.compile(model.forward, strict=True, options=NO_CACHE)
    model.forward = compiled  # type: ignore[method-assign]
    for want, n in zip(expected, lengths):
        got = _generate(model, ids, 6, StaticCache(config=model.config, max_cache_len=n))
        assert torch.equal(got, want), (n, got, want)
    stats = compiled.irc_stats
    assert stats.symbolic_programs >= 1, stats  # the recompiled graphs are symbolic
    assert stats.eager_calls == 0 and not stats.eager_ops, stats


def _kernel_level_modules(monkeypatch: pytest.MonkeyPatch) -> list[ModuleOp]:
    """Every compiled program's module as the kernel stage leaves it (after
    ``memory-plan``), recorded through the driver's print-after hook."""
    import irc.driver
    from irc.ir.text import print_module
    seen: list[ModuleOp] = []

    def record(p: Any, module: ModuleOp) -> None:
        if p.name == "memory-plan":
            seen.append(parse_module(print_module(module))[0])
    monkeypatch.setattr(irc.driver, "_print_after", record)
    return seen


@pytest.mark.parametrize("name", ["llama", "qwen2"])
def test_decode_step_writes_only_the_new_positions(name: str, monkeypatch: pytest.MonkeyPatch
                                                   ) -> None:
    """The decode step's kernel-level IR: K and V of each layer are written by
    a ``graph.cache_update`` of one position into an ``@main`` argument,
    attention reads those caches themselves (with grouped-query attention too:
    qwen2's ``repeat_kv`` copies fold into the attention call), no kernel or
    library call makes a cache-sized tensor, and the memory plan gives the
    updated caches no memory (they are the caller's tensors)."""
    from transformers import StaticCache

    from zoo.models import ZOO
    model, _ = ZOO[name].make(batch=1)
    ids = ZOO[name].fresh_inputs(model, seed=5, batch=1, seq=6)["input_ids"]
    modules = _kernel_level_modules(monkeypatch)
    model.forward = irc.compile(model.forward, strict=True,  # type: ignore[method-assign]
                                options={**NO_CACHE, "logging.print_ir_after_all": True})
    cache = StaticCache(config=model.config, max_cache_len=96)  # long: cache >> any activation
    _generate(model, ids, 3, cache)
    assert len(modules) == 2  # prefill, decode
    decode = modules[1]
    main = find_main(decode)
    ops = list(main.body.block.ops)
    updates = [op for op in ops if isinstance(op, g.CacheUpdateOp)]
    assert len(updates) == 2 * _layers(model)
    args = set(main.body.block.args)
    cache_shape = shape_of(updates[0].cache.type)
    cache_elems = numel(cache_shape)
    assert cache_shape[2] == 96
    for op in updates:
        assert op.cache in args and shape_of(op.values.type)[op.dim.value.data] == 1
    attention = [op for op in ops if isinstance(op, g.AttentionOp)]
    assert len(attention) == _layers(model)
    assert all(isinstance(op.key.owner, g.CacheUpdateOp) and isinstance(op.value.owner,
               g.CacheUpdateOp) for op in attention)
    # nothing else in the step makes a tensor as large as one cache layer
    made = [r for op in ops if not isinstance(op, g.CacheUpdateOp) for r in op.results
            if hasattr(r.type, "get_shape")]
    for kernel in kernels_by_name(decode).values():
        made += [v for op in kernel.walk() for v in op.results if hasattr(v.type, "get_shape")]
    largest = max(numel(shape_of(v.type)) for v in made)
    assert largest < cache_elems, f"a tensor of {largest} elements (a cache has {cache_elems})"
    plan = plan_memory(decode)
    assert all(plan.views.get(op.result) is op.cache for op in updates)
    assert not any(nbytes(v) >= nbytes(updates[0].cache) for v in plan.assignment)
    assert plan.peak_bytes < nbytes(updates[0].cache)


def _parse(text: str) -> ModuleOp:
    module = parse_module(text)[0]
    verify_module(module)
    return module


def _update_module() -> ModuleOp:
    return _parse("""
func.func @main(%c: tensor<1x2x8x4xf32>, %i: tensor<2xi64>, %v: tensor<1x2x2x4xf32>)
    -> tensor<1x2x8x4xf32> {
  %u = graph.cache_update %c, %i, %v {dim = 2 : i64} : (tensor<1x2x8x4xf32>, tensor<2xi64>, tensor<1x2x2x4xf32>) -> tensor<1x2x8x4xf32>
  %s = graph.neg %u : tensor<1x2x8x4xf32> -> tensor<1x2x8x4xf32>
  func.return %s : tensor<1x2x8x4xf32>
}
""")


@pytest.mark.parametrize("target", ["reference", "cpu", "cuda"])
def test_cache_update_writes_the_argument_in_place(target: str) -> None:
    """Interpreter, cpu and Triton (interpreted) backends: the argument holds the new positions after
    the call, every other position is untouched, and later ops read the update."""
    from irc.frontends.program import Program
    from irc.driver import compile_program
    torch.manual_seed(0)
    cache, values = torch.randn(1, 2, 8, 4), torch.randn(1, 2, 2, 4)
    index = torch.tensor([5, 2])
    expected = cache.clone().index_copy_(2, index, values)
    module = _update_module()
    if target == "reference":
        (got,) = interpret(module, [cache, index, values])
    else:
        run = compile_program(Program(module, {}, ["c", "i", "v"], ["s"]), "cpu", NO_CACHE)
        (got,) = run(cache, index, values)
    assert torch.equal(cache, expected)
    torch.testing.assert_close(got, -expected)


def test_cache_update_verifier() -> None:
    """The cache must be an argument, read by nothing after the update."""
    from irc.errors import IrcError
    with pytest.raises((IrcError, Exception), match="reads the cache after"):
        _parse("""
func.func @main(%c: tensor<4x3xf32>, %i: tensor<1xi64>, %v: tensor<1x3xf32>) -> tensor<4x3xf32> {
  %u = graph.cache_update %c, %i, %v {dim = 0 : i64} : (tensor<4x3xf32>, tensor<1xi64>, tensor<1x3xf32>) -> tensor<4x3xf32>
  %n = graph.neg %c : tensor<4x3xf32> -> tensor<4x3xf32>
  func.return %n : tensor<4x3xf32>
}
""")
    with pytest.raises((IrcError, Exception), match="argument of the enclosing function"):
        _parse("""
func.func @main(%c: tensor<4x3xf32>, %i: tensor<1xi64>, %v: tensor<1x3xf32>) -> tensor<4x3xf32> {
  %n = graph.neg %c : tensor<4x3xf32> -> tensor<4x3xf32>
  %u = graph.cache_update %n, %i, %v {dim = 0 : i64} : (tensor<4x3xf32>, tensor<1xi64>, tensor<1x3xf32>) -> tensor<4x3xf32>
  func.return %u : tensor<4x3xf32>
}
""")


def test_other_input_writes_are_copied_back() -> None:
    """An inference graph that writes an input in some other way (a running
    counter, a scaled buffer) still gives eager's results and eager's inputs."""
    def step(buf: torch.Tensor, count: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        buf.mul_(0.5).add_(x)
        count += 1
        return buf.sum() + count

    fn = irc.compile(step, strict=True, options=NO_CACHE)
    buf, count, x = torch.randn(5, 3), torch.zeros((), dtype=torch.int64), torch.randn(5, 3)
    eb, ec = buf.clone(), count.clone()
    for _ in range(3):
        with torch.no_grad():
            got = fn(buf, count, x)
            want = step(eb, ec, x)
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(buf, eb)
    assert int(count) == int(ec) == 3
    assert fn.irc_stats.graphs == 1 and not fn.irc_stats.eager_ops


def test_sliding_window_generation_compiles_a_bounded_number_of_graphs() -> None:
    """Mistral with a window shorter than the generation: transformers' sliding
    cache keeps a python int of the length (dynamo makes it symbolic after one
    recompile) and rolls the cache once it is full. Tokens equal eager's, every
    call compiled, and the graphs are prefill, decode before the window is
    full (one for all positions), decode once it is full: not one per step."""
    from zoo.models import ZOO
    model, _ = ZOO["mistral"].make(batch=1)
    model.config.sliding_window = 10
    ids = ZOO["mistral"].fresh_inputs(model, seed=5, batch=1, seq=7)["input_ids"]
    expected = _generate(model, ids, 9)
    compiled = irc.compile(model.forward, strict=True, options=NO_CACHE)
    model.forward = compiled  # type: ignore[method-assign]
    got = _generate(model, ids, 9)
    assert torch.equal(got, expected), (got, expected)
    stats = compiled.irc_stats
    assert stats.graphs <= 3 and stats.eager_calls == 0 and not stats.eager_ops, stats


def test_prompts_of_new_lengths_share_one_symbolic_prefill_graph() -> None:
    """Five prompt lengths into one static cache: dynamo compiles the first
    prefill static, the second with the prompt length symbolic, and no more
    (graphs: static prefill, decode, symbolic prefill); tokens equal eager's."""
    from transformers import StaticCache
    from zoo.models import ZOO
    model, _ = ZOO["llama"].make(batch=1)
    eager_forward = model.forward
    compiled = irc.compile(model.forward, strict=True, options=NO_CACHE)
    for seq in (7, 11, 5, 16, 9):
        ids = ZOO["llama"].fresh_inputs(model, seed=seq, batch=1, seq=seq)["input_ids"]
        model.forward = eager_forward  # type: ignore[method-assign]
        want = _generate(model, ids, 4, StaticCache(config=model.config, max_cache_len=32))
        model.forward = compiled  # type: ignore[method-assign]
        got = _generate(model, ids, 4, StaticCache(config=model.config, max_cache_len=32))
        assert torch.equal(got, want), (seq, got, want)
    stats = compiled.irc_stats
    assert stats.graphs == 3 and stats.symbolic_programs == 1, stats
    assert stats.eager_calls == 0 and not stats.eager_ops, stats
