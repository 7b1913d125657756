"""Built-in models, datasets and metrics, registered by the plugin manager like third-party ones.

They are listed as import paths, not imported here, so that ``wcd_hpc.plugins`` loads them the
same way it loads entry points and a broken built-in is reported like any other plugin.
"""

from __future__ import annotations

__all__ = ["BUILTIN_PLUGINS"]

BUILTIN_PLUGINS: list[str] = [
    "wcd_hpc.default_plugins.footprint_sim",
    "wcd_hpc.default_plugins.h5_datasets",
    "wcd_hpc.default_plugins.traces_sim",
    "wcd_hpc.default_plugins.lenet",
    "wcd_hpc.default_plugins.resnet",
    "wcd_hpc.default_plugins.cae",
    "wcd_hpc.default_plugins.vae",
    "wcd_hpc.default_plugins.mlp",
    "wcd_hpc.default_plugins.trace_cnn",
    "wcd_hpc.default_plugins.metrics",
]
