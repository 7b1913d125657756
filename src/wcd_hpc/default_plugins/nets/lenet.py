"""The ``lenet`` network (see :mod:`wcd_hpc.default_plugins.lenet` for the model plugin)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["LeNet"]


class LeNet(nn.Module):
    """Two conv blocks and three dense layers; 2-D inputs (H, W) get a channel axis added."""

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, channels: Sequence[int], dropout: float
    ) -> None:
        super().__init__()
        shape = tuple(int(d) for d in input_shape)
        self.add_channel = len(shape) == 2
        in_ch = 1 if self.add_channel else shape[0]
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_ch, c1, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        with torch.no_grad():
            dummy = torch.zeros(1, in_ch, *shape[-2:])
            flat = int(self.features(dummy).shape[1])
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(flat, 120),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.add_channel:
            x = x.unsqueeze(1)
        out: torch.Tensor = self.classifier(self.features(x))
        return out
