"""The four test models (tests/models.py) compiled end to end == eager,
including a change of batch size (a recompilation).

Nothing may run in eager: ``strict=True`` turns an op irc cannot compile into
an error, and each call must reach irc as exactly one graph (a graph break or a
frame dynamo skips would leave code running in eager between or instead of
the graphs)."""

from __future__ import annotations

import pytest
import torch

import irc
from irc.frontends import capture
from models import BATCHED_FACTORIES, MODELS

TARGETS = ["reference", "cpu"]


def _graphs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The targets of the graphs irc compiles from now on, one entry per graph."""
    seen: list[str] = []
    original = capture.compile_program_once

    def counting(program, target, options):  # type: ignore[no-untyped-def]
        seen.append(target)
        return original(program, target, options)

    monkeypatch.setattr(capture, "compile_program_once", counting)
    return seen


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_matches_eager(name: str, target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    graphs = _graphs(monkeypatch)
    model, inputs = MODELS[name]()
    compiled = irc.compile(model, target=target, strict=True)
    with torch.no_grad():
        got, want = compiled(*inputs), model(*inputs)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert graphs == [target]  # the whole forward as one compiled graph


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", ["MLP", "GPTDecoderBlock"])
def test_model_batch_size_change(name: str, target: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    graphs = _graphs(monkeypatch)
    model, inputs = BATCHED_FACTORIES[name](2)
    compiled = irc.compile(model, target=target, strict=True)
    with torch.no_grad():
        for batch in (2, 3):
            _, inputs = BATCHED_FACTORIES[name](batch)
            torch.testing.assert_close(compiled(*inputs), model(*inputs), atol=1e-4, rtol=1e-4)
    assert graphs == [target, target]  # one graph per batch size, nothing in eager


def test_resnet_half_precision_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    graphs = _graphs(monkeypatch)
    model, (x,) = MODELS["ResNetCNN"]()
    model = model.to(torch.bfloat16)
    compiled = irc.compile(model, target="reference", strict=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x.bfloat16()), model(x.bfloat16()), atol=2e-2, rtol=2e-2)
    assert graphs == ["reference"]
