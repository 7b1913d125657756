"""wcd-hpc: hyper-parameter sweeps of PyTorch classifiers for Water Cherenkov Detector data."""

from __future__ import annotations

from wcd_hpc.api import Dataset, DataSpec, Metric, Model, Split, Splits
from wcd_hpc.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "DataSpec",
    "Dataset",
    "Metric",
    "Model",
    "Split",
    "Splits",
    "__version__",
    "hookimpl",
]
