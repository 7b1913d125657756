"""The ``cae`` network (see :mod:`wcd_hpc.default_plugins.cae` for the model plugin)."""

from __future__ import annotations

import torch
from torch import nn

from wcd_hpc.api import DataSpec
from wcd_hpc.default_plugins.common import check_image
from wcd_hpc.default_plugins.nets.layers import AutoencoderOutput

NAME = "cae"


__all__ = ["ConvAutoencoder"]


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
