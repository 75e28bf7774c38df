"""irc.optim.compile_step: the fused multi-tensor optimizer step against torch.optim.

Parameters of assorted shapes (hypothesis draws them and the hyperparameters)
get the same random gradients in both; after the steps the parameters and
the optimizer state agree within float32 rounding, each step is one kernel
launch per parameter group, and updates happen in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import irc
import irc.optim
from irc.errors import IrcError
from irc.backends.llvm.jit import optimized_ir
from irc.optim.cpu import llvm_ir
from irc.optim.rules import adam_rule, sgd_rule
from irc.optim.triton import triton_source

TARGETS = ["cpu", "cuda"]  # cuda: Triton's interpreter on CPU tensors in CI

Make = Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]

OPTIMIZERS: dict[str, Make] = {
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2),
    "adam_l2": lambda ps: torch.optim.Adam(ps, lr=3e-3, betas=(0.8, 0.95), weight_decay=0.1, eps=1e-6),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.05),
    "adam_max": lambda ps: torch.optim.Adam(ps, lr=1e-3, maximize=True),
    "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9),
    "sgd_nesterov": lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9, nesterov=True, weight_decay=1e-2),
    "sgd_dampening": lambda ps: torch.optim.SGD(ps, lr=5e-2, momentum=0.5, dampening=0.3),
    "sgd_plain": lambda ps: torch.optim.SGD(ps, lr=1e-1),
}

SHAPES = [(7,), (33, 5), (1000,), (4, 4, 3), (1,), (0, 3), (2048, 3)]


def _params(shapes: list[tuple[int, ...]], seed: int = 0) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]


def _run(make: Make, target: str, shapes: list[tuple[int, ...]], steps: int,
         grad_every: Callable[[int, int], bool] = lambda step, i: True
         ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.optim.Optimizer, Any]:
    ref_params, params = _params(shapes), _params(shapes)
    ref, opt = make(ref_params), make(params)
    step = irc.optim.compile_step(opt, target=target, interpret=True if target == "cuda" else None)
    gen = torch.Generator().manual_seed(1)
    for k in range(steps):
        for i, (a, b) in enumerate(zip(ref_params, params)):
            grad = torch.randn(a.shape, generator=gen)
            has = grad_every(k, i)
            a.grad = grad.clone() if has else None
            b.grad = grad.clone() if has else None
        ref.step()
        step()
    return ref_params, params, ref, step


def _assert_close_state(ref: torch.optim.Optimizer, opt: torch.optim.Optimizer) -> None:
    for (_, ref_state), (_, state) in zip(ref.state.items(), opt.state.items()):
        assert ref_state.keys() == state.keys()
        for key in ref_state:
            if ref_state[key] is None:
                assert state[key] is None
            else:
                torch.testing.assert_close(state[key], ref_state[key], rtol=1e-5, atol=1e-6)


# Triton's interpreter runs each program in NumPy: three optimizers cover every rule's code path there
CASES = [(name, "cpu") for name in OPTIMIZERS] + [(name, "cuda") for name in ("adam_l2", "adamw", "sgd_nesterov")]


@pytest.mark.parametrize("name, target", CASES)
def test_matches_torch_optim_over_100_steps(name: str, target: str) -> None:
    ref_params, params, ref, step = _run(OPTIMIZERS[name], target, SHAPES, steps=100)
    for a, b in zip(ref_params, params):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    _assert_close_state(ref, step.optimizer)
    assert step.launches == 100  # one fused launch per step for all 7 parameters


@settings(max_examples=12, deadline=None)
@given(shapes=st.lists(st.lists(st.integers(1, 40), min_size=1, max_size=3).map(tuple), min_size=1, max_size=6),
       lr=st.floats(1e-4, 1e-1), wd=st.sampled_from([0.0, 0.01, 0.3]), adam=st.booleans(),
       beta1=st.sampled_from([0.0, 0.3, 0.9]), momentum=st.sampled_from([0.0, 0.5, 0.9]),
       nesterov=st.booleans())
def test_random_hyperparameters_cpu(shapes: list[tuple[int, ...]], lr: float, wd: float, adam: bool,
                                    beta1: float, momentum: float, nesterov: bool) -> None:
    if adam:
        def make(ps: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
            return torch.optim.AdamW(ps, lr=lr, betas=(beta1, 0.99), weight_decay=wd)
    else:
        def make(ps: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
            return torch.optim.SGD(ps, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                                   weight_decay=wd)
    ref_params, params, ref, step = _run(make, "cpu", shapes, steps=10)
    for a, b in zip(ref_params, params):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    _assert_close_state(ref, step.optimizer)


@pytest.mark.parametrize("target", TARGETS)
def test_parameters_without_gradients_are_skipped(target: str) -> None:
    """Parameter 1 has a gradient only on even steps: its Adam step count and
    SGD buffer lag, so a step launches once per distinct step count."""
    for name in ("adamw", "sgd_momentum"):
        ref_params, params, ref, step = _run(OPTIMIZERS[name], target, SHAPES[:3], steps=6,
                                             grad_every=lambda k, i: i != 1 or k % 2 == 0)
        for a, b in zip(ref_params, params):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
        _assert_close_state(ref, step.optimizer)


def test_in_place_and_interchangeable_with_torch_optim() -> None:
    """The step writes the parameters and the optimizer's own state tensors in
    place; torch.optim's step continues from the state it left (and back)."""
    ref_params, params = _params(SHAPES), _params(SHAPES)
    ref, opt = torch.optim.Adam(ref_params, lr=1e-2), torch.optim.Adam(params, lr=1e-2)
    step = irc.compile(opt.step)
    assert isinstance(step, irc.optim.CompiledStep)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    ref_sched = torch.optim.lr_scheduler.StepLR(ref, step_size=2, gamma=0.5)
    addresses = [p.data_ptr() for p in params]
    gen = torch.Generator().manual_seed(3)
    for k in range(8):
        for a, b in zip(ref_params, params):
            a.grad = torch.randn(a.shape, generator=gen)
            b.grad = a.grad.clone()
        ref.step()
        step() if k % 3 != 2 else opt.step()
        ref_sched.step()
        sched.step()
        if k == 0:
            moments = [opt.state[p]["exp_avg"] for p in params]
    assert [p.data_ptr() for p in params] == addresses
    versions = [p._version for p in params]
    for p in params:
        p.grad = torch.ones_like(p)
    step()
    assert all(p._version > v for p, v in zip(params, versions))  # in-place writes are announced
    for a, b in zip(ref_params, params):
        a.grad = torch.ones_like(a)
    ref.step()
    assert all(opt.state[p]["exp_avg"] is m for p, m in zip(params, moments))
    for a, b in zip(ref_params, params):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    _assert_close_state(ref, opt)
    assert float(opt.state[params[0]]["step"]) == 9


def test_closure_and_param_groups() -> None:
    ref_params, params = _params(SHAPES[:4]), _params(SHAPES[:4])
    groups = lambda ps: [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.1, "momentum": 0.0}]  # noqa: E731
    ref = torch.optim.SGD(groups(ref_params), lr=1e-2, momentum=0.9)
    step = irc.optim.compile_step(torch.optim.SGD(groups(params), lr=1e-2, momentum=0.9))
    for _ in range(3):
        def closure(ps: list[torch.nn.Parameter] = params) -> torch.Tensor:
            loss = sum((p * p).sum() for p in ps)
            for p in ps:
                p.grad = None
            loss.backward()
            return loss
        ref_loss = closure(ref_params)
        ref.step()
        assert float(step(closure)) == pytest.approx(float(ref_loss), rel=1e-6)
    for a, b in zip(ref_params, params):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)
    assert step.launches == 3 * 2  # one per group per step


@pytest.mark.parametrize("make, message", [
    (lambda ps: torch.optim.Adam(ps, amsgrad=True), "amsgrad"),
    (lambda ps: torch.optim.RMSprop(ps), "RMSprop"),
])
def test_unsupported_options_are_named(make: Make, message: str) -> None:
    with pytest.raises(IrcError, match=message):
        irc.optim.compile_step(make(_params([(3,)])))


def test_unsupported_dtype_is_named() -> None:
    p = torch.nn.Parameter(torch.randn(3, dtype=torch.float64))
    step = irc.optim.compile_step(torch.optim.SGD([p], lr=0.1))
    p.grad = torch.ones_like(p)
    with pytest.raises(IrcError, match="parameter 0 is torch.float64"):
        step()


def test_generated_code_is_one_pass_per_tensor() -> None:
    """Golden checks: the LLVM kernel loads p, g, m, v once and stores p, m, v
    once per element, through noalias pointers; the Triton kernel too."""
    text = llvm_ir(adam_rule(True, True, False))
    one = text.split('define void @"adamw_wd.one"')[1].split("define")[0]
    loop = one.split("loop:")[1].split("done:")[0]
    assert loop.count(" load float") == 4 and loop.count("store float") == 3
    assert one.split("\n")[0].count("noalias") == 4
    assert "x float>" in optimized_ir(text)  # the element loop is vectorised
    source = triton_source(sgd_rule(True, False, True, False))
    assert source.count("tl.load(ptr_") == 3 and source.count("tl.store(") == 2
    assert source.count("@triton.jit") == 1
