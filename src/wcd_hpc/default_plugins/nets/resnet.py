"""The ``resnet`` network (see :mod:`wcd_hpc.default_plugins.resnet` for the model plugin)."""

from __future__ import annotations

import torch
from torch import nn

from wcd_hpc.default_plugins.nets.layers import AddChannel

__all__ = ["BasicBlock", "network"]


class BasicBlock(nn.Module):
    """Two 3×3 conv + batch-norm layers and an identity (or 1×1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.relu(self.body(x) + self.shortcut(x))
        return out


def network(
    in_ch: int, add_channel: bool, blocks: list[int], ch: list[int], classes: int
) -> nn.Module:
    layers: list[nn.Module] = [
        AddChannel(add_channel),
        nn.Conv2d(in_ch, ch[0], 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(ch[0]),
        nn.ReLU(inplace=True),
    ]
    cin = ch[0]
    for stage, (count, cout) in enumerate(zip(blocks, ch[1:], strict=True)):
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            layers.append(BasicBlock(cin, cout, stride))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)
