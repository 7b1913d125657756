"""The ``vae`` model: dense variational autoencoder + classifier (predecessor: test F1 0.982).

The flattened input goes through dense ReLU layers ``layers[0] → … → layers[-2]`` to the mean
and log-variance of a ``layers[-1]``-dimensional Gaussian code (Kingma & Welling 2014); the
decoder mirrors the encoder from a sample of the code (the reparameterisation trick), and a
classifier reads the code's *mean*, so predictions are deterministic. Training minimises the
negative ELBO per input element plus the classification loss:

    loss = recon_weight · MSE(reconstruction, input) + beta · KL(q(z|x) ‖ N(0, 1)) / n_inputs
           + cross-entropy(logits, label)

Dividing the KL term (a sum over the code) by the number of inputs puts it on the same per-element
scale as the mean squared error, so ``beta = 1`` is the usual ELBO up to a constant factor and
neither term swamps the other whatever the grid size. In evaluation mode the code is its mean.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from wcd_hpc.api import DataSpec, Model
from wcd_hpc.default_plugins.common import (
    AutoencoderOutput,
    autoencoder_logits,
    autoencoder_loss,
    flat_size,
    int_list,
    recon_weight,
    space_with,
)
from wcd_hpc.hookspecs import hookimpl

__all__ = ["SPACE", "VariationalAutoencoder", "build", "register_models"]

NAME = "vae"
#: The predecessor's search space (SCIENCE.md): three hidden widths and the code size.
SPACE: dict[str, Any] = space_with(
    layers=["randint(500, 1000)", "randint(100, 500)", "randint(50, 100)", "randint(10, 50)"]
)


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


def build(params: Mapping[str, Any], spec: DataSpec) -> nn.Module:
    """A fresh VAE; defaults (512, 256, 64 → 16) when nothing is sampled."""
    layers = int_list(NAME, params, "layers", [512, 256, 64, 16], None)
    if len(layers) < 2:
        raise ValueError(
            f"model '{NAME}': 'layers' needs at least one hidden width and the code size, "
            f"got {layers!r}"
        )
    beta = params.get("beta", 1.0)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta < 0:
        raise ValueError(f"model '{NAME}': 'beta' must be a number >= 0, got {beta!r}")
    return VariationalAutoencoder(spec, layers, float(beta), recon_weight(NAME, params))


@hookimpl
def register_models(register: Callable[[Model], None]) -> None:
    """Register ``vae``."""
    register(
        Model(
            name=NAME,
            build=build,
            space=space_with(**SPACE),
            description="dense variational autoencoder + classifier on the code mean; ELBO + CE",
            loss=autoencoder_loss,
            logits=autoencoder_logits,
        )
    )
