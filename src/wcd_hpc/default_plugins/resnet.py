"""The ``resnet`` model: the predecessor's residual network (test F1 0.987, iron/proton).

Layout (He et al. 2016, basic blocks): a 3×3 stem with stride 2 to ``channels[0]`` maps, then four
stages of ``blocks[i]`` residual blocks with ``channels[i + 1]`` maps (strides 1, 2, 2, 2), global
average pooling and one dense layer. An 80×80 footprint therefore shrinks 80 → 40 → 40 → 20 → 10
→ 5: the stem's stride 2 halves the cost of every later layer, which is what keeps small widths
trainable on a CPU, while the 5×5 last map still covers the ±160 m array at 64 m per cell. The
global pooling makes any input of at least 8×8 work without flatten arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from wcd_hpc.api import DataSpec, Domain, Model
from wcd_hpc.default_plugins.common import WIDTH, check_image, int_list, space_with, spaces_with
from wcd_hpc.hookspecs import hookimpl

if TYPE_CHECKING:
    from torch import nn

__all__ = ["SPACE", "build", "register_models"]

NAME = "resnet"
#: The predecessor's search space (SCIENCE.md): blocks per stage and maps per stage.
SPACE: dict[str, Any] = space_with(
    blocks=["randint(2, 6)"] * 4,
    channels=[
        "randint(8, 32)",
        "randint(32, 64)",
        "randint(64, 128)",
        "randint(128, 256)",
        "randint(256, 512)",
    ],
)


def build(params: Mapping[str, Any], spec: DataSpec) -> nn.Module:
    """A fresh ResNet; without sampled values it is ResNet-18's depth at a quarter of its width."""
    blocks = int_list(NAME, params, "blocks", [2, 2, 2, 2], 4)
    channels = int_list(NAME, params, "channels", [16, 16, 32, 64, 128], 5)
    in_ch, _, _ = check_image(NAME, spec, 8)
    add = len(spec.input_shape) == 2
    from wcd_hpc.default_plugins.nets.resnet import network

    return network(in_ch, add, blocks, channels, spec.num_classes)


@hookimpl
def register_models(register: Callable[[Model], None]) -> None:
    """Register ``resnet``."""
    register(
        Model(
            name=NAME,
            build=build,
            space=space_with(**SPACE),
            domains={
                "blocks": Domain.list_of(Domain.integer(1, 64), min_items=4, max_items=4),
                "channels": Domain.list_of(WIDTH, min_items=5, max_items=5),
            },
            spaces=spaces_with(**SPACE),
            description="ResNet: stride-2 stem + 4 stages of basic residual blocks + global pool",
        )
    )
