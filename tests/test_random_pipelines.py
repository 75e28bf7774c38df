"""Every pass is correct on its own: random pipelines on random programs.

Hypothesis draws pipelines -- random subsets and orders of the registered
passes, each legal at the level the IR is at when it runs, as the passes
declare it (:mod:`irc.passes.levels`): graph passes in any order, ``fuse``
(again) and the graph passes on the host schedule, ``memory-plan`` after
``fuse``, ``lower-to-loops`` last -- and runs them, verifying after every
pass, on random programs (``graph_strategies``, ``fuse_programs``) and on zoo
models. The result must mean what the program meant: the reference
interpreter on the output (graph and kernel level) and the cpu backend (every
level, the pipeline completed down to loops) agree with the interpreter on
the input. A pass correct only after some other pass would fail here.
"""

from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import ModuleOp

from fuse_programs import random_programs
from graph_strategies import graph_programs
from irc.driver import compile_program
from irc.frontends.program import Program
from irc.ir.interpreter import interpret
from irc.passes.levels import BUILTIN_LEVELS, GRAPH, LOOPS, ir_levels
from irc.passes.pipeline import run_pipeline
from irc.passes.registry import _BUILTIN
from zoo.models import ZOO

NO_CACHE = {"cache.enabled": False}
MAX_PASSES = 9


def test_every_registered_pass_declares_its_levels() -> None:
    assert set(_BUILTIN) == set(BUILTIN_LEVELS)


@st.composite
def pipelines(draw: st.DrawFn, start: str = GRAPH) -> list[str]:
    """Pass names, each legal at the level the previous ones leave (passes
    that approximate on purpose, like quantize-weights, have tests of their own)."""
    level, names = start, []
    for _ in range(draw(st.integers(0, MAX_PASSES))):
        legal = sorted(n for n, spec in BUILTIN_LEVELS.items()
                       if level in spec.levels and not spec.approximates)
        if not legal:
            break
        name = draw(st.sampled_from(legal))
        names.append(name)
        level = BUILTIN_LEVELS[name].produces or level
    return names


def _level_after(names: list[str], start: str = GRAPH) -> str:
    level = start
    for name in names:
        level = BUILTIN_LEVELS[name].produces or level
    return level


def _to_loops(level: str) -> list[str]:
    return {"graph": ["fuse", "lower-to-loops"], "kernel": ["lower-to-loops"], "loops": []}[level]


def assert_close(got: list[torch.Tensor], want: list[torch.Tensor], tol: float, what: str) -> None:
    assert len(got) == len(want), what
    for i, (a, e) in enumerate(zip(got, want)):
        assert a.dtype == e.dtype and a.shape == e.shape, (what, i, a.dtype, e.dtype, a.shape, e.shape)
        if e.is_floating_point():
            t = max(tol, {torch.float16: 1e-2, torch.bfloat16: 2e-2}.get(e.dtype, 0.0))
            ok = torch.allclose(a.double(), e.double(), rtol=t, atol=t, equal_nan=True)
            assert ok, f"{what}: output {i} differs by {float((a.double() - e.double()).abs().max())}"
        else:
            assert torch.equal(a, e), f"{what}: output {i} differs"


def check_pipeline(module: ModuleOp, inputs: list[torch.Tensor], weights: dict[str, torch.Tensor],
                   names: list[str], tol: float, cpu: bool = True) -> None:
    """``names`` keeps the meaning of ``module`` (interpreter and cpu backend)."""
    expected = interpret(module, inputs, weights)
    text = ",".join(names)
    out = module.clone()
    store = dict(weights)
    if names:
        run_pipeline(out, text, verify_each=True, weights=store)
    level = _level_after(names)
    assert level in ir_levels(out) or (level == GRAPH and not names), (text, ir_levels(out))
    if level != LOOPS:
        assert_close(interpret(out, inputs, store), expected, tol, f"interpreter after '{text}'")
    if cpu:
        full = ",".join(names + _to_loops(level))
        executable = compile_program(Program(module.clone(), dict(weights)), "cpu", NO_CACHE,
                                     pipeline=full, verify_each=True)
        assert_close(list(executable(*inputs)), expected, tol, f"cpu after '{full}'")


def _loose(module: ModuleOp) -> bool:
    text = str(module)
    return "f16" in text or "bf16" in text


PROGRAMS = st.one_of(graph_programs(max_ops=8), random_programs(max_steps=10))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.data_too_large])
@given(program=PROGRAMS, names=pipelines())
def test_random_pipelines_keep_the_meaning_of_random_programs(program, names: list[str]) -> None:
    module, inputs = program
    check_pipeline(module, list(inputs), {}, names, 1e-2 if _loose(module) else 1e-4)


# ----------------------------------------------------------------------------
# zoo models: the graph irc.compile captures, under random pipelines


@functools.lru_cache(maxsize=None)
def _captured(name: str) -> tuple[Program, tuple[torch.Tensor, ...]]:
    from irc.debug.capture import capture_model
    model, inputs = ZOO[name].make()
    graph = capture_model(model, inputs).graphs[0]
    return graph.program, tuple(graph.inputs)


@pytest.mark.parametrize("name", [
    "bert", pytest.param("t5", marks=pytest.mark.slow), pytest.param("llama", marks=pytest.mark.slow),
])
def test_random_pipelines_keep_the_meaning_of_zoo_models(name: str) -> None:
    program, inputs = _captured(name)
    examples = 3 if name == "bert" else 8

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(names=pipelines())
    def run(names: list[str]) -> None:
        check_pipeline(program.module, list(inputs), program.weights, names, 1e-4)

    run()


@pytest.mark.parametrize("names", [
    ["dce"],  # the pipeline.graph="dce" (T5 was NaN with it)
    ["dce", "channels-last", "swap-skinny-matmul", "fuse", "memory-plan"],
    ["swap-skinny-matmul", "fuse", "cse", "memory-plan", "lower-to-loops"],
])
@pytest.mark.slow
def test_t5_under_partial_pipelines(names: list[str]) -> None:
    program, inputs = _captured("t5")
    check_pipeline(program.module, list(inputs), program.weights, names, 1e-4)
