"""What the two autoencoder + classifier models (``cae``, ``vae``) share on the plugin side.

Their loss and logits hooks (``Model.loss``, ``Model.logits``) live here rather than in
:mod:`.common`, because the loss's torch code is in :mod:`.nets.layers` and the networks
themselves import :mod:`.common`: keeping this apart keeps the imports acyclic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wcd_hpc.api import Domain

if TYPE_CHECKING:
    import torch


def autoencoder_loss(outputs: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``Model.loss`` of the autoencoder models; the torch code lives in :mod:`.nets.layers`
    and is imported on the first training step, not when the plugin registers."""
    from wcd_hpc.default_plugins.nets import layers

    return layers.autoencoder_loss(outputs, x, y)


def autoencoder_logits(outputs: Any) -> torch.Tensor:
    """``Model.logits`` of the autoencoder models: the classifier head's logits."""
    logits: torch.Tensor = outputs.logits
    return logits


#: The domain of ``recon_weight`` (:attr:`wcd_hpc.api.Model.domains`).
RECON_WEIGHT = Domain.number(0, 1e6)


def recon_weight(model: str, params: Mapping[str, Any]) -> float:
    """``params['recon_weight']`` (default 1): how much reconstruction counts against labels."""
    value = params.get("recon_weight", 1.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"model '{model}': 'recon_weight' must be a number >= 0, got {value!r}")
    return float(value)
