"""The ``trace-cnn`` network (see :mod:`wcd_hpc.default_plugins.trace_cnn` for the model plugin)."""

from __future__ import annotations

import torch
from torch import nn

from wcd_hpc.api import DataSpec

__all__ = ["TraceCNN"]


class TraceCNN(nn.Module):
    """Conv1d blocks over time with PMTs as channels, global max + mean pooling, dense head."""

    def __init__(
        self, spec: DataSpec, channels: list[int], kernel: int, hidden: int, dropout: float
    ) -> None:
        super().__init__()
        shape = tuple(int(d) for d in spec.input_shape)
        self.in_ch = 1
        for d in shape[:-1]:
            self.in_ch *= d
        blocks: list[nn.Module] = []
        cin = self.in_ch
        for c in channels:
            blocks += [nn.Conv1d(cin, c, kernel, padding=kernel // 2), nn.ReLU(), nn.MaxPool1d(2)]
            cin = c
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Linear(2 * cin, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, spec.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.features(x.reshape(x.shape[0], self.in_ch, x.shape[-1]))
        pooled = torch.cat([maps.amax(dim=2), maps.mean(dim=2)], dim=1)
        out: torch.Tensor = self.head(pooled)
        return out
