"""The ``cae`` model: convolutional autoencoder + classifier (predecessor: test F1 0.988).

The encoder has ``depth`` stride-2 3×3 convolutions with ``channels · 2^i`` maps, then a dense
layer to a ``latent``-dimensional code; the decoder mirrors it with transposed convolutions and
crops to the input size (so odd grids work). A small classifier reads the code. Training minimises

    loss = recon_weight · MSE(reconstruction, input) + cross-entropy(logits, label)

so the code must both describe the footprint and separate the classes: reconstruction acts as a
regulariser learned from the data themselves, which is why the predecessor tried it.
``recon_weight`` (default 1) is an ordinary parameter; put it in ``param_space`` to tune it.
The module returns an :class:`AutoencoderOutput`; ``Model.loss`` and ``Model.logits`` tell the
engine how to train and evaluate it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from wcd_hpc.api import DataSpec, Model
from wcd_hpc.default_plugins.common import (
    AutoencoderOutput,
    autoencoder_logits,
    autoencoder_loss,
    check_image,
    positive_int,
    recon_weight,
    space_with,
)
from wcd_hpc.hookspecs import hookimpl

__all__ = ["SPACE", "ConvAutoencoder", "build", "register_models"]

NAME = "cae"
#: The predecessor's search space (SCIENCE.md).
SPACE: dict[str, Any] = space_with(
    depth="randint(2, 4)", latent="randint(10, 100)", channels="randint(1, 10)"
)


class ConvAutoencoder(nn.Module):
    """Conv encoder → code → (transposed-conv decoder, classifier)."""

    def __init__(
        self, spec: DataSpec, depth: int, latent: int, channels: int, weight: float
    ) -> None:
        super().__init__()
        in_ch, height, width = check_image(NAME, spec, 2**depth)
        self.add_channel = len(spec.input_shape) == 2
        self.size = (height, width)
        self.recon_weight = weight
        widths = [channels * 2**i for i in range(depth)]
        enc: list[nn.Module] = []
        dec: list[nn.Module] = []
        cin = in_ch
        for w in widths:
            enc += [nn.Conv2d(cin, w, 3, stride=2, padding=1), nn.ReLU()]
            cin = w
        self.encoder = nn.Sequential(*enc)
        with torch.no_grad():
            self.map_shape = tuple(self.encoder(torch.zeros(1, in_ch, height, width)).shape[1:])
        flat = int(torch.Size(self.map_shape).numel())
        self.to_code = nn.Linear(flat, latent)
        self.from_code = nn.Sequential(nn.Linear(latent, flat), nn.ReLU())
        outs = [*reversed(widths[:-1]), in_ch]
        for i, w in enumerate(outs):
            dec.append(nn.ConvTranspose2d(cin, w, 3, stride=2, padding=1, output_padding=1))
            if i < len(outs) - 1:
                dec.append(nn.ReLU())
            cin = w
        self.decoder = nn.Sequential(*dec)
        self.classifier = nn.Sequential(
            nn.ReLU(), nn.Linear(latent, latent), nn.ReLU(), nn.Linear(latent, spec.num_classes)
        )

    def forward(self, x: torch.Tensor) -> AutoencoderOutput:
        image = x.unsqueeze(1) if self.add_channel else x
        code = self.to_code(self.encoder(image).flatten(1))
        maps = self.from_code(code).view(-1, *self.map_shape)
        recon = self.decoder(maps)[..., : self.size[0], : self.size[1]]
        if self.add_channel:
            recon = recon.squeeze(1)
        zero = torch.zeros((), device=x.device)
        return AutoencoderOutput(recon, self.classifier(code), zero, self.recon_weight)


def build(params: Mapping[str, Any], spec: DataSpec) -> nn.Module:
    """A fresh autoencoder; defaults (depth 3, latent 64, 8 maps) when nothing is sampled."""
    depth = positive_int(NAME, params, "depth", 3)
    latent = positive_int(NAME, params, "latent", 64)
    channels = positive_int(NAME, params, "channels", 8)
    return ConvAutoencoder(spec, depth, latent, channels, recon_weight(NAME, params))


@hookimpl
def register_models(register: Callable[[Model], None]) -> None:
    """Register ``cae``."""
    register(
        Model(
            name=NAME,
            build=build,
            space=space_with(**SPACE),
            description="convolutional autoencoder + classifier on the code; loss MSE + CE",
            loss=autoencoder_loss,
            logits=autoencoder_logits,
        )
    )
