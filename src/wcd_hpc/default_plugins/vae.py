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
    int_list,
    space_with,
    spaces_with,
)
from wcd_hpc.hookspecs import hookimpl

if TYPE_CHECKING:
    from torch import nn

__all__ = ["SPACE", "build", "register_models"]

NAME = "vae"
#: The predecessor's search space (SCIENCE.md): three hidden widths and the code size.
SPACE: dict[str, Any] = space_with(
    layers=["randint(500, 1000)", "randint(100, 500)", "randint(50, 100)", "randint(10, 50)"]
)


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
    from wcd_hpc.default_plugins.nets.vae import VariationalAutoencoder

    return VariationalAutoencoder(spec, layers, float(beta), recon_weight(NAME, params))


@hookimpl
def register_models(register: Callable[[Model], None]) -> None:
    """Register ``vae``."""
    register(
        Model(
            name=NAME,
            build=build,
            space=space_with(**SPACE),
            spaces=spaces_with(**SPACE),
            description="dense variational autoencoder + classifier on the code mean; ELBO + CE",
            extra_params=("beta", "recon_weight"),
            domains={
                "layers": Domain.list_of(WIDTH, min_items=2),
                "beta": Domain.number(0, 1e6),
                "recon_weight": RECON_WEIGHT,
            },
            loss=autoencoder_loss,
            logits=autoencoder_logits,
        )
    )
