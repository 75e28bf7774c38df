"""Convolution nets for bench.zoo beside the zoo's: a torchvision-style ResNet-18.

torchvision does not load here, so :class:`ResNet18` is its architecture
written out (``BasicBlock`` x [2, 2, 2, 2], 7x7 stride-2 stem, max pooling,
batch norm after every convolution, a 1x1 convolution + batch norm on the
shortcut where the shape changes, global average pooling, a linear head).
:data:`BENCH_MODELS` holds it as a :class:`~tests.zoo.models.ZooModel`, so
``python -m bench.zoo --models resnet18`` measures it like any zoo model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tests.zoo.models import ZooModel


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """torchvision's ``resnet18`` architecture (random weights)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.config = None  # ZooModel.fresh_inputs reads it
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers: list[nn.Module] = []
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():  # batch norm statistics as a trained net has them
            if isinstance(m, nn.BatchNorm2d):
                nn.init.uniform_(m.weight, 0.5, 1.5)
                nn.init.normal_(m.bias, 0.0, 0.1)
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(pixel_values))))
        x = self.avgpool(self.layers(x))
        return self.fc(torch.flatten(x, 1))


def _pixels(size: int) -> Any:
    def make(config: Any, batch: int, seq: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.randn(batch, 3, size, size)}
    return make


BENCH_MODELS: dict[str, ZooModel] = {
    "resnet18": ZooModel("resnet18", "vision", lambda: (None, lambda _: ResNet18()),
                         _pixels(224), batch=1),
}
"""Models bench.zoo measures beside the zoo's (``--models resnet18``)."""
