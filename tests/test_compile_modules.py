"""``irc.compile`` on every kind of callable compiles something, or says why not.

Built-in ``torch.nn`` modules, containers, a module wrapped in another and a
plain function: strict compiles that match eager on two calls, counted by the
compiled callable's :class:`irc.stats.CompileStats`. A callable whose call
runs nothing compiled (no graph reached irc, or dynamo's recompile limit)
warns once, naming the model and why; with ``strict=True`` it raises.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import irc
from irc.frontends.capture import IrcWarning


class Wrapped(nn.Module):
    """A user module whose work is all inside built-in modules."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.LayerNorm(64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def _block(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.relu(x @ w).softmax(-1)


CASES = {
    "sequential": (lambda: nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 16)),
                   lambda: (torch.randn(4, 32),)),
    "layer_norm": (lambda: nn.LayerNorm(32), lambda: (torch.randn(4, 8, 32),)),
    "transformer_encoder_layer": (
        lambda: nn.TransformerEncoderLayer(32, 4, 64, batch_first=True).eval(),
        lambda: (torch.randn(2, 6, 32),)),
    "wrapped": (Wrapped, lambda: (torch.randn(4, 32),)),
    "function": (lambda: _block, lambda: (torch.randn(4, 32), torch.randn(32, 16))),
}


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_kind_of_callable_compiles(case: str, grad: bool) -> None:
    make, inputs = CASES[case]
    model = make()
    compiled = irc.compile(model, target="cpu", strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IrcWarning)
        with torch.set_grad_enabled(grad):
            for _ in range(2):  # the second call: fresh inputs, no recompile
                args = inputs()
                torch.testing.assert_close(compiled(*args), model(*args), rtol=1e-4, atol=1e-4)
    stats = compiled.irc_stats
    assert stats.graphs == 1 and stats.programs == 1 and stats.kernels >= 1
    assert stats.eager_ops == [] and stats.calls == 2 and stats.eager_calls == 0
    assert stats.compiled_runs == 2


def _no_tensor_op(x: torch.Tensor) -> int:
    return x.dim()


def test_nothing_compiled_warns_once_naming_the_function() -> None:
    compiled = irc.compile(_no_tensor_op, target="reference")
    with pytest.warns(IrcWarning, match=r"irc.compile\(_no_tensor_op\) ran nothing compiled: "
                                        r"no graph reached irc") as record:
        assert compiled(torch.randn(3)) == 1
        assert compiled(torch.randn(3)) == 1
    assert len([w for w in record if issubclass(w.category, IrcWarning)]) == 1
    assert compiled.irc_stats.eager_calls == 2 and compiled.irc_stats.graphs == 0


def test_nothing_compiled_is_an_error_when_strict() -> None:
    compiled = irc.compile(_no_tensor_op, target="reference", strict=True)
    with pytest.raises(irc.NothingCompiledError, match="no graph reached irc"):
        compiled(torch.randn(3))


def _double(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@pytest.mark.parametrize("strict", [False, True])
def test_recompile_limit_is_reported(strict: bool) -> None:
    """New shapes recompile (dynamic=False) until dynamo's limit; the first call
    past it runs in eager, and says so."""
    compiled = irc.compile(_double, target="reference", strict=strict, dynamic=False)
    with torch._dynamo.config.patch(recompile_limit=2), warnings.catch_warnings():
        warnings.simplefilter("error", IrcWarning)
        for n in (1, 2):
            compiled(torch.randn(n))
        assert compiled.irc_stats.graphs == 2
        if strict:
            with pytest.raises(irc.NothingCompiledError, match="recompile limit"):
                compiled(torch.randn(3))
        else:
            x = torch.randn(3)
            with pytest.warns(IrcWarning, match=r"_double\) ran nothing compiled: dynamo "
                                                r"stopped .* recompile limit"):
                torch.testing.assert_close(compiled(x), x * 2)  # right, in eager
            compiled(torch.randn(4))  # said once: no second warning (an error here)
    assert compiled.irc_stats.eager_calls >= 1


def test_each_compile_of_a_function_has_its_own_recompile_budget() -> None:
    """Compiling one function again (a test per example, a closure per layer)
    does not use up the versions the earlier compiles made."""
    with torch._dynamo.config.patch(recompile_limit=2), warnings.catch_warnings():
        warnings.simplefilter("error", IrcWarning)
        for n in range(1, 5):
            compiled = irc.compile(_double, target="reference")
            torch.testing.assert_close(compiled(torch.randn(n)).shape, torch.Size([n]))
            assert compiled.irc_stats.compiled_runs == 1


def test_stats_are_per_callable() -> None:
    a = irc.compile(_double, target="reference")
    b = irc.compile(_double, target="reference")
    a(torch.randn(2))
    assert a.irc_stats.graphs == 1 and b.irc_stats.graphs == 0 and b.irc_stats.calls == 0
