"""The four test models (tests/models.py) compiled end to end == eager,
including a change of batch size (a recompilation)."""

from __future__ import annotations

import pytest
import torch

import irc
from models import BATCHED_FACTORIES, MODELS

TARGETS = ["reference", "cpu"]


def _need(target: str) -> None:
    if target == "cpu":
        pytest.importorskip("irc.backends.llvm.backend")


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_matches_eager(name: str, target: str) -> None:
    _need(target)
    model, inputs = MODELS[name]()
    compiled = irc.compile(model, target=target, strict=True)
    with torch.no_grad():
        got, want = compiled(*inputs), model(*inputs)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", ["MLP", "GPTDecoderBlock"])
def test_model_batch_size_change(name: str, target: str) -> None:
    _need(target)
    model, inputs = BATCHED_FACTORIES[name](2)
    compiled = irc.compile(model, target=target, strict=True)
    with torch.no_grad():
        for batch in (2, 3):
            _, inputs = BATCHED_FACTORIES[name](batch)
            torch.testing.assert_close(compiled(*inputs), model(*inputs), atol=1e-4, rtol=1e-4)


def test_resnet_half_precision_reference() -> None:
    model, (x,) = MODELS["ResNetCNN"]()
    model = model.to(torch.bfloat16)
    compiled = irc.compile(model, target="reference", strict=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x.bfloat16()), model(x.bfloat16()), atol=2e-2, rtol=2e-2)
