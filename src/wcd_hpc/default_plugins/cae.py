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
from typing import TYPE_CHECKING, Any

from wcd_hpc.api import DataSpec, Domain, Model
from wcd_hpc.default_plugins.autoencoder import (
    RECON_WEIGHT,
    autoencoder_logits,
    autoencoder_loss,
    recon_weight,
)
from wcd_hpc.default_plugins.common import (
    WIDTH,
    positive_int,
    space_with,
    spaces_with,
)
from wcd_hpc.hookspecs import hookimpl

if TYPE_CHECKING:
    from torch import nn

__all__ = ["SPACE", "build", "register_models"]

NAME = "cae"
#: The predecessor's search space (SCIENCE.md).
SPACE: dict[str, Any] = space_with(
    depth="randint(2, 4)", latent="randint(10, 100)", channels="randint(1, 10)"
)


def build(params: Mapping[str, Any], spec: DataSpec) -> nn.Module:
    """A fresh autoencoder; defaults (depth 3, latent 64, 8 maps) when nothing is sampled."""
    depth = positive_int(NAME, params, "depth", 3)
    latent = positive_int(NAME, params, "latent", 64)
    channels = positive_int(NAME, params, "channels", 8)
    from wcd_hpc.default_plugins.nets.cae import ConvAutoencoder

    return ConvAutoencoder(spec, depth, latent, channels, recon_weight(NAME, params))


@hookimpl
def register_models(register: Callable[[Model], None]) -> None:
    """Register ``cae``."""
    register(
        Model(
            name=NAME,
            build=build,
            space=space_with(**SPACE),
            spaces=spaces_with(**SPACE),
            description="convolutional autoencoder + classifier on the code; loss MSE + CE",
            extra_params=("recon_weight",),
            domains={
                "depth": Domain.integer(1, 64),
                "latent": WIDTH,
                "channels": WIDTH,
                "recon_weight": RECON_WEIGHT,
            },
            loss=autoencoder_loss,
            logits=autoencoder_logits,
        )
    )
