"""The ``mlp`` model: a dense baseline on the flattened input (footprints or traces).

Not one of the predecessor's models: it is the yardstick that tells whether the convolutional
models' inductive bias (neighbouring tanks, neighbouring samples) earns its cost. ``hidden`` lists
the widths of the ReLU layers; ``dropout`` follows each of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from wcd_hpc.api import DataSpec, Domain, Model
from wcd_hpc.default_plugins.common import (
    DROPOUT,
    WIDTH,
    flat_size,
    int_list,
    space_with,
    spaces_with,
    unit_float,
)
from wcd_hpc.hookspecs import hookimpl

if TYPE_CHECKING:
    from torch import nn

__all__ = ["SPACE", "build", "register_models"]

NAME = "mlp"
SPACE: dict[str, Any] = space_with(
    hidden=["randint(64, 512)", "randint(16, 128)"], dropout="uniform(0.0, 0.5)"
)


def build(params: Mapping[str, Any], spec: DataSpec) -> nn.Module:
    """A fresh MLP; defaults (256, 64; no dropout) when nothing is sampled."""
    hidden = int_list(NAME, params, "hidden", [256, 64], None)
    dropout = unit_float(NAME, params, "dropout", 0.0)
    from torch import nn

    layers: list[nn.Module] = [nn.Flatten()]
    width = flat_size(spec)
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, spec.num_classes))
    return nn.Sequential(*layers)


@hookimpl
def register_models(register: Callable[[Model], None]) -> None:
    """Register ``mlp``."""
    register(
        Model(
            name=NAME,
            build=build,
            space=space_with(**SPACE),
            spaces=spaces_with(**SPACE),
            description="dense ReLU layers on the flattened input (a baseline)",
            domains={"hidden": Domain.list_of(WIDTH), "dropout": DROPOUT},
        )
    )
