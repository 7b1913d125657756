"""The ``lenet`` model: the predecessor's best footprint classifier (test F1 0.991, iron/proton).

LeNet-5 layout (LeCun et al. 1998): two 5×5 convolution + ReLU + 2×2 max-pool blocks, then dense
layers 120 → 84 → classes. Convolutions are padded ("same") so that any input of at least 4×4
works, and the flatten size is found with a dummy forward pass rather than hand arithmetic, so a
new grid size never needs code changes. Only ``channels`` and ``dropout`` shape the network;
``lr``, ``batch_size``, ``optimizer`` and ``reg`` belong to the training loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from wcd_hpc.api import DataSpec, Domain, Model
from wcd_hpc.default_plugins.common import DROPOUT, WIDTH, space_with, spaces_with
from wcd_hpc.hookspecs import hookimpl

if TYPE_CHECKING:
    from torch import nn

__all__ = ["SPACE", "build", "register_models"]

#: The default search space: the shared training ranges and the predecessor's channel widths.
#: The predecessor's own space (SCIENCE.md) is the ``predecessor`` variant
#: (``model: {name: lenet, space: predecessor}``).
SPACE: dict[str, Any] = space_with(channels=["randint(2, 20)", "randint(2, 20)"])


def build(params: Mapping[str, Any], spec: DataSpec) -> nn.Module:
    """Build a fresh LeNet for ``spec``; errors name the parameter: trials fail far from users."""
    channels = params.get("channels", [6, 16])  # LeNet-5's own widths when nothing is sampled
    if (
        isinstance(channels, (str, bytes))
        or not isinstance(channels, Sequence)
        or len(channels) != 2
        or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in channels)
    ):
        raise ValueError(
            f"model 'lenet': 'channels' must be two positive integers, got {channels!r}"
        )
    dropout = params.get("dropout", 0.0)
    if not isinstance(dropout, (int, float)) or not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"model 'lenet': 'dropout' must be a number in [0, 1), got {dropout!r}")
    if len(spec.input_shape) not in (2, 3) or min(spec.input_shape[-2:]) < 4:
        raise ValueError(
            f"model 'lenet': needs input_shape (C, H, W) or (H, W) with H, W >= 4, "
            f"got {spec.input_shape}"
        )
    from wcd_hpc.default_plugins.nets.lenet import LeNet

    return LeNet(spec.input_shape, spec.num_classes, list(channels), float(dropout))


@hookimpl
def register_models(register: Callable[[Model], None]) -> None:
    """Register ``lenet``."""
    register(
        Model(
            name="lenet",
            build=build,
            space=dict(SPACE, channels=list(SPACE["channels"])),
            spaces=spaces_with(**SPACE),
            description="LeNet-5 style CNN: 2x(conv5x5+ReLU+maxpool) + dense 120-84-classes",
            extra_params=("dropout",),
            domains={
                "channels": Domain.list_of(WIDTH, min_items=2, max_items=2),
                "dropout": DROPOUT,
            },
        )
    )
