"""The ``vae`` network (see :mod:`wcd_hpc.default_plugins.vae` for the model plugin)."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from wcd_hpc.api import DataSpec
from wcd_hpc.default_plugins.common import flat_size
from wcd_hpc.default_plugins.nets.layers import AutoencoderOutput

__all__ = ["VariationalAutoencoder"]


def _dense(sizes: list[int]) -> list[nn.Module]:
    out: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        out += [nn.Linear(a, b), nn.ReLU()]
    return out


class VariationalAutoencoder(nn.Module):
    """Dense encoder → Gaussian code → (dense decoder, classifier on the code mean)."""

    def __init__(self, spec: DataSpec, layers: list[int], beta: float, weight: float) -> None:
        super().__init__()
        self.shape = tuple(int(d) for d in spec.input_shape)
        self.n_inputs = flat_size(spec)
        self.beta = beta
        self.recon_weight = weight
        hidden, latent = layers[:-1], layers[-1]
        self.encoder = nn.Sequential(nn.Flatten(), *_dense([self.n_inputs, *hidden]))
        self.mean = nn.Linear(hidden[-1], latent)
        self.log_var = nn.Linear(hidden[-1], latent)
        self.decoder = nn.Sequential(
            *_dense([latent, *reversed(hidden)]), nn.Linear(hidden[0], self.n_inputs)
        )
        self.classifier = nn.Sequential(
            nn.Linear(latent, latent), nn.ReLU(), nn.Linear(latent, spec.num_classes)
        )

    def forward(self, x: torch.Tensor) -> AutoencoderOutput:
        h = self.encoder(x)
        mean, log_var = self.mean(h), self.log_var(h).clamp(-20.0, 20.0)
        z = mean
        if self.training:
            z = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)
        recon = self.decoder(z).view(-1, *self.shape)
        kl = -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp(), dim=1).mean()
        penalty = self.beta * kl / self.n_inputs
        return AutoencoderOutput(recon, self.classifier(mean), penalty, self.recon_weight)
