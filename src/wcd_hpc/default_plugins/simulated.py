"""What the two simulator datasets share: a cache keyed by what shapes the simulation, loading.

``footprint-sim`` and ``traces-sim`` differ only in their parameters and their simulator; both
simulate on first use into the shared cache directory, under a file name hashed from the
parameters that change the events (split fractions and normalisation are cheap to redo, so
sweeps that vary them share one simulation), and split the cached file like any HDF5 dataset.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wcd_hpc.api import Dataset, Splits
from wcd_hpc.default_plugins._params import build_splits, cached, fail, split_sizes
from wcd_hpc.default_plugins.h5data import FileInfo, Layout


def require_splits(name: str, out: Mapping[str, Any]) -> None:
    """Refuse an event count too small for non-empty train/val/test splits."""
    fractions = [out["val_fraction"], out["test_fraction"]]
    if min(split_sizes(out["events"], fractions)) < 1:
        raise fail(
            name,
            "events",
            f"large enough for non-empty train/val/test splits at fractions "
            f"{out['val_fraction']}/{out['test_fraction']}",
            out["events"],
        )


@dataclass(frozen=True)
class Simulated:
    """A dataset whose file a simulator writes into the cache the first time it is needed."""

    name: str
    layout: Layout
    #: The simulator's version: a new one invalidates every cached file of the old physics.
    version: int | str
    #: The parameters that change the simulated events, hence the cache key.
    shape_keys: Sequence[str]
    defaults: Mapping[str, Any]
    validate: Callable[[Mapping[str, Any]], dict[str, Any]]
    #: ``write(path, validated params)`` simulates into ``path``.
    write: Callable[[Path, Mapping[str, Any]], object]

    def cache_path(self, params: Mapping[str, Any], cache_dir: str) -> Path:
        """The cache file of validated ``params``."""
        key = {k: params[k] for k in self.shape_keys}
        blob = json.dumps({"sim_version": self.version, **key}, sort_keys=True).encode()
        return Path(cache_dir) / f"{self.name}-{hashlib.sha256(blob).hexdigest()[:20]}.h5"

    def cached_file(self, params: Mapping[str, Any], cache_dir: str) -> FileInfo:
        """The cached simulation, simulated first when absent or unreadable."""
        path = self.cache_path(params, cache_dir)
        return cached(path, self.layout, lambda target: self.write(target, params))

    def check(self, params: Mapping[str, Any]) -> None:
        """Parameters only: the file is this plugin's own cache, made on first use."""
        self.validate(params)

    def load(self, params: Mapping[str, Any], seed: int, cache_dir: str) -> Splits:
        """Simulate (or read the cache) and split; the trial ``seed`` is deliberately unused:
        the data must not depend on the trial."""
        del seed
        p = self.validate(params)
        return build_splits(self.name, self.layout, p, self.cached_file(p, cache_dir), None)

    def dataset(self, description: str) -> Dataset:
        return Dataset(
            name=self.name,
            load=self.load,
            defaults=copy.deepcopy(dict(self.defaults)),
            description=description,
            check=self.check,
        )
