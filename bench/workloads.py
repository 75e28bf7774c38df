"""The benchmark workloads: micro kernels and the test models at bench sizes.

Each factory returns ``(callable, inputs)``; callables are nn.Modules in eval
mode or plain functions of tensors.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import models  # noqa: E402  (the models the tests check for correctness)

Factory = Callable[[], tuple[Callable[..., Tensor], tuple[Tensor, ...]]]


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str  # "micro" | "model"
    factory: Factory
    bytes_moved: int = 0  # for micro kernels: minimum bytes read + written


def chain4(x: Tensor) -> Tensor:
    """A chain of 4 elementwise ops: eager makes 4 passes and 4 allocations."""
    return ((x * 2.0 + 1.0).relu() * 3.0)


def softmax(x: Tensor) -> Tensor:
    return torch.softmax(x, dim=-1)


def layer_norm(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    return F.layer_norm(x, (x.shape[-1],), w, b)


def gelu(x: Tensor) -> Tensor:
    return F.gelu(x)


def copy(x: Tensor) -> Tensor:
    return x.clone()


N16M = 16 * 1024 * 1024
SQ = 4096


def _micro() -> list[Workload]:
    f4 = 4
    return [
        Workload("copy_16M", "micro", lambda: (copy, (torch.randn(N16M),)), 2 * N16M * f4),
        Workload("chain4_16M", "micro", lambda: (chain4, (torch.randn(N16M),)), 2 * N16M * f4),
        Workload("softmax_4096", "micro", lambda: (softmax, (torch.randn(SQ, SQ),)), 2 * SQ * SQ * f4),
        Workload("layernorm_4096", "micro",
                 lambda: (layer_norm, (torch.randn(SQ, SQ), torch.randn(SQ), torch.randn(SQ))),
                 2 * SQ * SQ * f4),
        Workload("gelu_4096", "micro", lambda: (gelu, (torch.randn(SQ, SQ),)), 2 * SQ * SQ * f4),
    ]


def _seeded(make: Callable[[], nn.Module], *inputs: Callable[[], Tensor]) -> Factory:
    def factory() -> tuple[Callable[..., Tensor], tuple[Tensor, ...]]:
        torch.manual_seed(0)
        model = make().eval()
        return model, tuple(i() for i in inputs)
    return factory


def _bert_inputs() -> tuple[Tensor, Tensor]:
    x = torch.randn(4, 128, 256)
    pad = torch.zeros(4, 128, dtype=torch.bool)
    pad[:, 120:] = True
    return x, pad


def _models() -> list[Workload]:
    bert = _bert_inputs
    return [
        Workload("MLP", "model", _seeded(lambda: models.MLP(1024, 4096, 1024),
                                         lambda: torch.randn(64, 1024))),
        Workload("ResNetCNN", "model", _seeded(lambda: models.ResNetCNN(3, 64, 100),
                                               lambda: torch.randn(8, 3, 64, 64))),
        Workload("GPTDecoderBlock", "model",
                 _seeded(lambda: models.GPTDecoderBlock(vocab=1000, dim=256, heads=8, max_seq=512),
                         lambda: torch.randint(0, 1000, (4, 128)))),
        Workload("BERTEncoderBlock", "model",
                 lambda: (_seeded(lambda: models.BERTEncoderBlock(dim=256, heads=8))()[0], bert())),
    ]


WORKLOADS: dict[str, Workload] = {w.name: w for w in (*_micro(), *_models())}
