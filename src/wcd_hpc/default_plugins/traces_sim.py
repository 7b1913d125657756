"""The ``traces-sim`` dataset: simulated multi-PMT station traces (muon vs EM), cached as HDF5.

Like ``footprint-sim``: the data depend only on the dataset's own ``seed``, the simulation is
cached under a hash of the parameters that shape it (written atomically, so concurrent workers
never see a torn file), and the cache is an ordinary ``traces-h5`` file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wcd_hpc.api import Dataset
from wcd_hpc.default_plugins._params import COMMON_DEFAULTS, common, fail, integer, unknown
from wcd_hpc.default_plugins.h5data import TRACES
from wcd_hpc.default_plugins.simulated import Simulated, require_splits
from wcd_hpc.hookspecs import hookimpl
from wcd_hpc.sim.h5io import MAX_EVENTS
from wcd_hpc.sim.traces import TRACES_VERSION, TraceConfig, write_traces

__all__ = ["DEFAULTS", "NAME", "cache_path", "check", "load", "register_datasets", "validate"]

NAME = "traces-sim"
DEFAULTS: dict[str, Any] = {
    "events": 4000,
    "n_pmt": 4,
    "dt_ns": 2.0,
    "window_ns": 200.0,
    **COMMON_DEFAULTS,
}


def _positive(p: Mapping[str, Any], key: str, lo: float, hi: float) -> float:
    value = p[key]
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not lo <= float(value) <= hi:
        raise fail(NAME, key, f"a number between {lo} and {hi}", value)
    return float(value)


def validate(params: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``params``; sampling 1–4 ns over 100–200 ns is what the multi-PMT studies use, the
    bounds here are looser (0.5–10 ns, 50–1000 ns) but keep at least 8 samples."""
    unknown(NAME, params, DEFAULTS)
    p = {**DEFAULTS, **params}
    out: dict[str, Any] = {
        "events": integer(NAME, p, "events", 1, MAX_EVENTS),
        "n_pmt": integer(NAME, p, "n_pmt", 1, 16),
        "dt_ns": _positive(p, "dt_ns", 0.5, 10.0),
        "window_ns": _positive(p, "window_ns", 50.0, 1000.0),
        **common(NAME, p),
    }
    if out["window_ns"] / out["dt_ns"] < 8:
        raise fail(NAME, "window_ns / dt_ns", "at least 8 samples", out["window_ns"] / out["dt_ns"])
    require_splits(NAME, out)
    return out


def _write(path: Path, p: Mapping[str, Any]) -> object:
    cfg = TraceConfig(n_pmt=p["n_pmt"], dt_ns=p["dt_ns"], window_ns=p["window_ns"])
    return write_traces(path, p["events"], p["seed"], config=cfg)


SIMULATED = Simulated(
    NAME,
    TRACES,
    TRACES_VERSION,
    ("events", "n_pmt", "dt_ns", "window_ns", "seed"),
    DEFAULTS,
    validate,
    _write,
)
cache_path = SIMULATED.cache_path
check = SIMULATED.check
load = SIMULATED.load


@hookimpl
def register_datasets(register: Callable[[Dataset], None]) -> None:
    """Register ``traces-sim``."""
    register(
        SIMULATED.dataset(
            "Simulated 4-PMT WCD station traces (2 ns over 200 ns), muon present vs EM only; "
            "cached as HDF5."
        )
    )
