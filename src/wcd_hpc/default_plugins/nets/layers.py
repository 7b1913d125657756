"""Layers and losses shared by the built-in networks (the torch side of :mod:`..common`)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

__all__ = ["AddChannel", "AutoencoderOutput", "autoencoder_loss"]


class AddChannel(nn.Module):
    """Give (N, H, W) images a channel axis so one network serves (H, W) and (C, H, W) specs."""

    def __init__(self, needed: bool) -> None:
        super().__init__()
        self.needed = needed

    def forward(self, x: Any) -> Any:
        return x.unsqueeze(1) if self.needed else x


class AutoencoderOutput(NamedTuple):
    """What the autoencoder + classifier models return; the engine sees it only through
    :func:`autoencoder_loss` and ``common.autoencoder_logits`` (``Model.loss`` / ``Model.logits``).

    ``penalty`` is any extra loss term the model computes itself (the VAE's weighted KL
    divergence; zero for the plain autoencoder), so one loss function serves both models.
    """

    recon: torch.Tensor
    logits: torch.Tensor
    penalty: torch.Tensor
    recon_weight: float


def autoencoder_loss(outputs: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """recon_weight · MSE(reconstruction, input) + penalty + cross-entropy(logits, label)."""
    out: AutoencoderOutput = outputs
    mse = nn.functional.mse_loss(out.recon.float(), x.float())
    ce = nn.functional.cross_entropy(out.logits, y)
    return out.recon_weight * mse + out.penalty.float() + ce
