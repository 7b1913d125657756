"""The ``footprint-sim`` dataset: simulated WCD shower footprints, cached as HDF5 and split.

Every trial of a sweep must see the same data, or trials compare models on different problems;
so the data depend only on the dataset's own ``seed`` parameter, never on the trial seed. Several
workers may start at once on a shared filesystem, so the simulation is cached under a hash of the
parameters that shape it, in the same SWGO/LIP layout ``footprint-h5`` reads, and written
atomically (temp file + ``os.replace``). Workers take turns on a lock beside the cache, so one
simulates while the others wait for its file; where locks fail they each write an identical
file, never a torn one. Large caches are read lazily like any HDF5 file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from wcd_hpc.api import Dataset
from wcd_hpc.default_plugins._params import COMMON_DEFAULTS, common, fail, integer, unknown
from wcd_hpc.default_plugins.h5data import FOOTPRINTS
from wcd_hpc.default_plugins.simulated import Simulated, require_splits
from wcd_hpc.hookspecs import hookimpl
from wcd_hpc.sim.footprints import PRIMARIES, SIM_VERSION, write_footprints
from wcd_hpc.sim.h5io import MAX_EVENTS

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
        "events": integer(NAME, p, "events", 1, MAX_EVENTS),
        "grid": integer(NAME, p, "grid", 4, _MAX_GRID),
        **common(NAME, p),
    }
    require_splits(NAME, out)
    return out


def _write(path: Path, p: Mapping[str, Any]) -> object:
    return write_footprints(path, p["primaries"], p["events"], p["seed"], grid=p["grid"])


SIMULATED = Simulated(
    NAME,
    FOOTPRINTS,
    SIM_VERSION,
    ("primaries", "events", "grid", "seed"),
    DEFAULTS,
    validate,
    _write,
)
cache_path = SIMULATED.cache_path
cached_file = SIMULATED.cached_file
check = SIMULATED.check
load = SIMULATED.load


@hookimpl
def register_datasets(register: Callable[[Dataset], None]) -> None:
    """Register ``footprint-sim``."""
    register(
        SIMULATED.dataset(
            "Simulated 80x80 WCD shower footprints (NKG EM + Greisen muons, Heitler-Matthews "
            "muon numbers, clumpy hadrons) for gamma/proton/iron; cached as HDF5."
        )
    )
