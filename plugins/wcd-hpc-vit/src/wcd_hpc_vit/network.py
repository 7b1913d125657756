"""The Vision Transformer network of the ``vit`` model (see :mod:`wcd_hpc_vit.model`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["VisionTransformer"]


class VisionTransformer(nn.Module):
    """Patch embedding, class token, position embeddings, encoder, class head."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        *,
        patch: int,
        width: int,
        depth: int,
        heads: int,
        dropout: float,
        mlp_ratio: int = 2,
    ) -> None:
        super().__init__()
        shape = tuple(int(d) for d in input_shape)
        self.add_channel = len(shape) == 2
        channels = 1 if self.add_channel else shape[0]
        height, width_px = shape[-2:]
        self.patch = patch
        self.pad = (0, (-width_px) % patch, 0, (-height) % patch)  # F.pad order: W then H
        tokens = math.ceil(height / patch) * math.ceil(width_px / patch)
        self.embed = nn.Conv2d(channels, width, kernel_size=patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, width) * 0.02)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            d_model=width,
            nhead=heads,
            dim_feedforward=mlp_ratio * width,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.add_channel:
            x = x.unsqueeze(1)
        if any(self.pad):
            x = nn.functional.pad(x, self.pad)
        tokens = self.embed(x).flatten(2).transpose(1, 2)  # (batch, patches, width)
        cls = self.cls.expand(tokens.shape[0], -1, -1)
        h = self.drop(torch.cat([cls, tokens], dim=1) + self.pos)
        h = self.encoder(h)
        out: torch.Tensor = self.head(self.norm(h[:, 0]))
        return out
