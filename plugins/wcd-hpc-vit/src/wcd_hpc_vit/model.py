"""The ``vit`` model: a small Vision Transformer for WCD footprint images.

Layout (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"): the image is cut into
``patch`` x ``patch`` patches, each linearly embedded (a strided convolution) to ``width``
features; a learned class token and learned position embeddings are added; ``depth`` pre-norm
transformer encoder layers with ``heads`` attention heads follow; the class token's final state
goes through a layer norm and a linear head to the class logits.

Footprints are small and mostly empty, so the network is small too: the default space keeps a
trial to seconds per epoch on a CPU. Patch sizes in the default space divide 80 (the default grid);
for other grids the image is zero-padded on the right and bottom up to a multiple of the patch
size, which adds only empty tanks. The network itself is in :mod:`wcd_hpc_vit.network`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from wcd_hpc import DataSpec, Model, hookimpl

if TYPE_CHECKING:
    from torch import nn

__all__ = ["SPACE", "build", "divisors", "register_models"]


def divisors(n: int, low: int = 4, high: int = 20) -> list[int]:
    """Divisors of ``n`` between ``low`` and ``high``: patch sizes that tile an n x n grid."""
    return [d for d in range(low, high + 1) if n % d == 0]


#: Default search space. Widths are multiples of every head count, so any sample is valid.
SPACE: dict[str, Any] = {
    "lr": "loguniform(3e-4, 3e-3)",
    "batch_size": "choice([32, 64, 128])",
    "optimizer": "adamw",
    "reg": "loguniform(1e-4, 1e-1)",
    "depth": "randint(1, 4)",
    "width": "choice([32, 64, 96, 128])",
    "heads": "choice([2, 4])",
    "patch": f"choice({divisors(80)})",
    "dropout": "uniform(0.0, 0.3)",
}


def _positive_int(params: Mapping[str, Any], key: str, default: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"model 'vit': '{key}' must be a positive integer, got {value!r}")
    return value


def build(params: Mapping[str, Any], spec: DataSpec) -> nn.Module:
    """Build a fresh ViT for ``spec``; errors name the parameter, since trials fail far away."""
    if len(spec.input_shape) not in (2, 3):
        raise ValueError(
            f"model 'vit': needs input_shape (C, H, W) or (H, W), got {spec.input_shape}"
        )
    patch = _positive_int(params, "patch", 10)
    width = _positive_int(params, "width", 64)
    heads = _positive_int(params, "heads", 4)
    depth = _positive_int(params, "depth", 2)
    if width % heads:
        raise ValueError(f"model 'vit': 'width' ({width}) must be a multiple of 'heads' ({heads})")
    if patch > min(spec.input_shape[-2:]):
        raise ValueError(
            f"model 'vit': 'patch' ({patch}) is larger than the image {spec.input_shape[-2:]}"
        )
    dropout = params.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
        raise ValueError(f"model 'vit': 'dropout' must be a number in [0, 1), got {dropout!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"model 'vit': 'dropout' must be a number in [0, 1), got {dropout!r}")
    # torch is imported here, not at module level: wcd-hpc loads every plugin for each command
    # on the login node (sweep, status, plugins), and only workers build models.
    from wcd_hpc_vit.network import VisionTransformer

    return VisionTransformer(
        spec.input_shape,
        spec.num_classes,
        patch=patch,
        width=width,
        depth=depth,
        heads=heads,
        dropout=float(dropout),
    )


@hookimpl
def register_models(register: Callable[[Model], None]) -> None:
    """Register ``vit``."""
    register(
        Model(
            name="vit",
            build=build,
            space=dict(SPACE),
            description="Vision Transformer: patch embedding + pre-norm encoder + class token",
        )
    )
