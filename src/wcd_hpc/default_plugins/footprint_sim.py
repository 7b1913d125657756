"""The ``footprint-sim`` dataset: simulated WCD shower footprints, cached as HDF5 and split.

Every trial of a sweep must see the same data, or trials compare models on different problems;
so the data depend only on the dataset's own ``seed`` parameter, never on the trial seed. Several
workers may start at once on a shared filesystem, so the simulation is cached under a hash of the
parameters that shape it, in the same SWGO/LIP layout ``footprint-h5`` reads, and written
atomically (temp file + ``os.replace``): concurrent workers either find the complete file or each
write an identical one, never a torn one. Large caches are read lazily like any HDF5 file.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from wcd_hpc.api import Dataset, Splits
from wcd_hpc.default_plugins._params import (
    COMMON_DEFAULTS,
    build_splits,
    cached,
    common,
    fail,
    integer,
    split_sizes,
    unknown,
)
from wcd_hpc.default_plugins.h5data import FOOTPRINTS, FileInfo
from wcd_hpc.hookspecs import hookimpl
from wcd_hpc.sim.footprints import PRIMARIES, SIM_VERSION, write_footprints

__all__ = ["DEFAULTS", "NAME", "cache_path", "check", "load", "register_datasets", "validate"]

NAME = "footprint-sim"
DEFAULTS: dict[str, Any] = {
    "primaries": ["gamma", "proton"],
    "events": 2000,
    "grid": 80,
    **COMMON_DEFAULTS,
}
_MAX_GRID = 512  # 512² floats per event is already 1 MiB; larger is a typo, not a study


def validate(params: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``params`` (merged over the defaults) and return them in canonical form."""
    unknown(NAME, params, DEFAULTS)
    p = {**DEFAULTS, **params}
    prim = p["primaries"]
    if (
        isinstance(prim, str)
        or not isinstance(prim, Sequence)
        or len(prim) < 2
        or len(set(prim)) != len(prim)
        or any(x not in PRIMARIES for x in prim)
    ):
        raise fail(
            NAME, "primaries", f"a list of at least 2 distinct names from {list(PRIMARIES)}", prim
        )
    out: dict[str, Any] = {
        "primaries": [str(x) for x in prim],
        "events": integer(NAME, p, "events", 1),
        "grid": integer(NAME, p, "grid", 4, _MAX_GRID),
        **common(NAME, p),
    }
    if min(split_sizes(out["events"], [out["val_fraction"], out["test_fraction"]])) < 1:
        raise fail(
            NAME,
            "events",
            f"large enough for non-empty train/val/test splits at fractions "
            f"{out['val_fraction']}/{out['test_fraction']}",
            out["events"],
        )
    return out


def cache_path(params: Mapping[str, Any], cache_dir: str) -> Path:
    """Cache file for validated ``params``: a hash of what shapes the simulation only.

    Split fractions and normalisation are cheap to redo, so they are left out of the key and
    sweeps that vary them share one simulation. ``SIM_VERSION`` invalidates old physics.
    """
    key = {k: params[k] for k in ("primaries", "events", "grid", "seed")}
    blob = json.dumps({"sim_version": SIM_VERSION, **key}, sort_keys=True).encode()
    return Path(cache_dir) / f"{NAME}-{hashlib.sha256(blob).hexdigest()[:20]}.h5"


def cached_file(p: Mapping[str, Any], cache_dir: str) -> FileInfo:
    """The cached simulation, simulated first when absent or unreadable."""
    return cached(
        cache_path(p, cache_dir),
        FOOTPRINTS,
        lambda path: write_footprints(path, p["primaries"], p["events"], p["seed"], grid=p["grid"]),
    )


def check(params: Mapping[str, Any]) -> None:
    """Parameters only: the file is this plugin's own cache, made on first use."""
    validate(params)


def load(params: Mapping[str, Any], seed: int, cache_dir: str) -> Splits:
    """Simulate (or read the cache) and split; ``seed`` (the trial seed) is deliberately unused."""
    del seed  # the data must not depend on the trial
    p = validate(params)
    return build_splits(NAME, FOOTPRINTS, p, cached_file(p, cache_dir), None)


@hookimpl
def register_datasets(register: Callable[[Dataset], None]) -> None:
    """Register ``footprint-sim``."""
    register(
        Dataset(
            name=NAME,
            load=load,
            defaults=copy.deepcopy(DEFAULTS),
            description=(
                "Simulated 80x80 WCD shower footprints (NKG EM + Greisen muons, Heitler-Matthews "
                "muon numbers, clumpy hadrons) for gamma/proton/iron; cached as HDF5."
            ),
            check=check,
        )
    )
