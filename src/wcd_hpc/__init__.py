"""wcd-hpc: hyper-parameter sweeps of PyTorch classifiers for Water Cherenkov Detector data.

The plugin API (``from wcd_hpc import Model, hookimpl``) is re-exported lazily: importing a
submodule such as ``wcd_hpc.launch.slurm`` (what every Slurm array task unpickles first) must not
import torch before the worker has paused the garbage collector (see :mod:`wcd_hpc.engine.startup`).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "DataSpec": "wcd_hpc.api",
    "Dataset": "wcd_hpc.api",
    "Domain": "wcd_hpc.api",
    "Metric": "wcd_hpc.api",
    "Model": "wcd_hpc.api",
    "Split": "wcd_hpc.api",
    "Splits": "wcd_hpc.api",
    "hookimpl": "wcd_hpc.hookspecs",
}

__all__ = [
    "DataSpec",
    "Dataset",
    "Domain",
    "Metric",
    "Model",
    "Split",
    "Splits",
    "__version__",
    "hookimpl",
]

if TYPE_CHECKING:
    from wcd_hpc.api import Dataset, DataSpec, Domain, Metric, Model, Split, Splits
    from wcd_hpc.hookspecs import hookimpl


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'wcd_hpc' has no attribute {name!r}")
