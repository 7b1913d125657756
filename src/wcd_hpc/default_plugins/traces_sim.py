"""The ``traces-sim`` dataset: simulated multi-PMT station traces (muon vs EM), cached as HDF5.

Like ``footprint-sim``: the data depend only on the dataset's own ``seed``, the simulation is
cached under a hash of the parameters that shape it (written atomically, so concurrent workers
never see a torn file), and the cache is an ordinary ``traces-h5`` file.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

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
from wcd_hpc.default_plugins.h5data import TRACES, FileInfo
from wcd_hpc.hookspecs import hookimpl
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
        "events": integer(NAME, p, "events", 1),
        "n_pmt": integer(NAME, p, "n_pmt", 1, 16),
        "dt_ns": _positive(p, "dt_ns", 0.5, 10.0),
        "window_ns": _positive(p, "window_ns", 50.0, 1000.0),
        **common(NAME, p),
    }
    if out["window_ns"] / out["dt_ns"] < 8:
        raise fail(NAME, "window_ns / dt_ns", "at least 8 samples", out["window_ns"] / out["dt_ns"])
    if min(split_sizes(out["events"], [out["val_fraction"], out["test_fraction"]])) < 1:
        raise fail(NAME, "events", "large enough for non-empty train/val/test splits", p["events"])
    return out


def cache_path(params: Mapping[str, Any], cache_dir: str) -> Path:
    """Cache file keyed by what shapes the simulation (not split fractions or normalisation)."""
    key = {k: params[k] for k in ("events", "n_pmt", "dt_ns", "window_ns", "seed")}
    blob = json.dumps({"sim_version": TRACES_VERSION, **key}, sort_keys=True).encode()
    return Path(cache_dir) / f"{NAME}-{hashlib.sha256(blob).hexdigest()[:20]}.h5"


def _cached_file(p: Mapping[str, Any], cache_dir: str) -> FileInfo:
    cfg = TraceConfig(n_pmt=p["n_pmt"], dt_ns=p["dt_ns"], window_ns=p["window_ns"])
    return cached(
        cache_path(p, cache_dir),
        TRACES,
        lambda path: write_traces(path, p["events"], p["seed"], config=cfg),
    )


def check(params: Mapping[str, Any]) -> None:
    """Parameters only: the file is this plugin's own cache, made on first use."""
    validate(params)


def load(params: Mapping[str, Any], seed: int, cache_dir: str) -> Splits:
    """Simulate (or read the cache) and split; the trial ``seed`` is deliberately unused."""
    del seed
    p = validate(params)
    return build_splits(NAME, TRACES, p, _cached_file(p, cache_dir), None)


@hookimpl
def register_datasets(register: Callable[[Dataset], None]) -> None:
    """Register ``traces-sim``."""
    register(
        Dataset(
            name=NAME,
            load=load,
            defaults=copy.deepcopy(DEFAULTS),
            description=(
                "Simulated 4-PMT WCD station traces (2 ns over 200 ns), muon present vs EM only; "
                "cached as HDF5."
            ),
            check=check,
        )
    )
