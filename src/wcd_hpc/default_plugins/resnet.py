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
from typing import Any

import torch
from torch import nn

from wcd_hpc.api import DataSpec, Model
from wcd_hpc.default_plugins.common import AddChannel, check_image, int_list, space_with
from wcd_hpc.hookspecs import hookimpl

__all__ = ["SPACE", "BasicBlock", "build", "register_models"]

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


class BasicBlock(nn.Module):
    """Two 3×3 conv + batch-norm layers and an identity (or 1×1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.relu(self.body(x) + self.shortcut(x))
        return out


def _network(
    in_ch: int, add_channel: bool, blocks: list[int], ch: list[int], classes: int
) -> nn.Module:
    layers: list[nn.Module] = [
        AddChannel(add_channel),
        nn.Conv2d(in_ch, ch[0], 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(ch[0]),
        nn.ReLU(inplace=True),
    ]
    cin = ch[0]
    for stage, (count, cout) in enumerate(zip(blocks, ch[1:], strict=True)):
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            layers.append(BasicBlock(cin, cout, stride))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def build(params: Mapping[str, Any], spec: DataSpec) -> nn.Module:
    """A fresh ResNet; without sampled values it is ResNet-18's depth at a quarter of its width."""
    blocks = int_list(NAME, params, "blocks", [2, 2, 2, 2], 4)
    channels = int_list(NAME, params, "channels", [16, 16, 32, 64, 128], 5)
    in_ch, _, _ = check_image(NAME, spec, 8)
    add = len(spec.input_shape) == 2
    return _network(in_ch, add, blocks, channels, spec.num_classes)


@hookimpl
def register_models(register: Callable[[Model], None]) -> None:
    """Register ``resnet``."""
    register(
        Model(
            name=NAME,
            build=build,
            space=space_with(**SPACE),
            description="ResNet: stride-2 stem + 4 stages of basic residual blocks + global pool",
        )
    )
