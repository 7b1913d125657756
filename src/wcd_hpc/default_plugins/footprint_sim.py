"""The ``footprint-sim`` dataset: simulated WCD shower footprints, cached and split.

Every trial of a sweep must see the same data, or trials compare models on different problems;
so the data depend only on the dataset's own ``seed`` parameter, never on the trial seed. Several
workers may start at once on a shared filesystem, so the simulation is cached under a hash of the
parameters that shape it and written atomically (temp file + ``os.replace``): concurrent workers
either find the complete file or each write an identical one, never a torn one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wcd_hpc.api import Dataset, DataSpec, Split, Splits
from wcd_hpc.hookspecs import hookimpl
from wcd_hpc.sim.footprints import PRIMARIES, SIM_VERSION, simulate

__all__ = ["DEFAULTS", "NAME", "cache_path", "load", "register_datasets", "validate"]

NAME = "footprint-sim"
NORMALISATIONS = ("log1p", "none", "standard")
DEFAULTS: dict[str, Any] = {
    "primaries": ["gamma", "proton"],
    "events": 2000,
    "grid": 80,
    "val_fraction": 0.15,
    "test_fraction": 0.15,
    "normalise": "log1p",
    "seed": 1234,
}
_MAX_GRID = 512  # 512² floats per event is already 1 MiB; larger is a typo, not a study


def _fail(key: str, expected: str, got: Any) -> ValueError:
    return ValueError(f"dataset '{NAME}': parameter '{key}' must be {expected}, got {got!r}")


def _int(params: Mapping[str, Any], key: str, lo: int, hi: int | None = None) -> int:
    value = params[key]
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise _fail(key, f"an integer {bound}", value)
    return int(value)


def _fraction(params: Mapping[str, Any], key: str) -> float:
    value = params[key]
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not 0.0 < float(value) < 1.0:
        raise _fail(key, "a number strictly between 0 and 1", value)
    return float(value)


def validate(params: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``params`` (merged over the defaults) and return them in canonical form.

    Errors name the parameter and what was expected, because they surface on a login node long
    before any worker runs and must be fixable from the message alone.
    """
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(
            f"dataset '{NAME}': unknown parameter(s) {unknown}; known: {sorted(DEFAULTS)}"
        )
    p = {**DEFAULTS, **params}
    prim = p["primaries"]
    if (
        isinstance(prim, str)
        or not isinstance(prim, Sequence)
        or len(prim) < 2
        or len(set(prim)) != len(prim)
        or any(x not in PRIMARIES for x in prim)
    ):
        raise _fail(
            "primaries", f"a list of at least 2 distinct names from {list(PRIMARIES)}", prim
        )
    out: dict[str, Any] = {
        "primaries": [str(x) for x in prim],
        "events": _int(p, "events", 1),
        "grid": _int(p, "grid", 4, _MAX_GRID),
        "val_fraction": _fraction(p, "val_fraction"),
        "test_fraction": _fraction(p, "test_fraction"),
        "seed": _int(p, "seed", 0),
    }
    if p["normalise"] not in NORMALISATIONS:
        raise _fail("normalise", f"one of {list(NORMALISATIONS)}", p["normalise"])
    out["normalise"] = p["normalise"]
    if out["val_fraction"] + out["test_fraction"] >= 1.0:
        raise _fail(
            "val_fraction + test_fraction",
            "below 1 so that training data remain",
            out["val_fraction"] + out["test_fraction"],
        )
    n_val, n_test = _split_sizes(out)
    if min(n_val, n_test, out["events"] - n_val - n_test) < 1:
        raise _fail(
            "events",
            f"large enough for non-empty train/val/test splits at fractions "
            f"{out['val_fraction']}/{out['test_fraction']}",
            out["events"],
        )
    return out


def _split_sizes(p: Mapping[str, Any]) -> tuple[int, int]:
    n = int(p["events"])
    return round(n * float(p["val_fraction"])), round(n * float(p["test_fraction"]))


def cache_path(params: Mapping[str, Any], cache_dir: str) -> Path:
    """Cache file for validated ``params``: a hash of what shapes the simulation only.

    Split fractions and normalisation are cheap to redo, so they are left out of the key and
    sweeps that vary them share one simulation. ``SIM_VERSION`` invalidates old physics.
    """
    key = {k: params[k] for k in ("primaries", "events", "grid", "seed")}
    blob = json.dumps({"sim_version": SIM_VERSION, **key}, sort_keys=True).encode()
    return Path(cache_dir) / f"{NAME}-{hashlib.sha256(blob).hexdigest()[:20]}.npz"


def _read_cache(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = npz["data"]
            info = {k[5:]: npz[k] for k in npz.files if k.startswith("info_")}
    except (FileNotFoundError, OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # absent or unreadable: simulate again and overwrite
    return data, info


def _write_cache(path: Path, data: np.ndarray, info: Mapping[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            arrays = {"data": data, **{f"info_{k}": v for k, v in info.items()}}
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _footprints(p: Mapping[str, Any], cache_dir: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    path = cache_path(p, cache_dir)
    cached = _read_cache(path)
    if cached is not None:
        return cached
    data, info = simulate(p["primaries"], p["events"], p["seed"], grid=p["grid"])
    _write_cache(path, data, info)
    return data, info


def _normaliser(kind: str, train: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """log1p tames the dynamic range (cores reach thousands of VEM, edges a fraction of one)."""
    if kind == "log1p":
        return lambda x: np.log1p(np.clip(x, 0.0, None))
    if kind == "standard":
        mean, std = float(train.mean()), float(train.std()) or 1.0
        return lambda x: (x - mean) / std
    return lambda x: x


def load(params: Mapping[str, Any], seed: int, cache_dir: str) -> Splits:
    """Simulate (or read the cache) and split; ``seed`` (the trial seed) is deliberately unused.

    Events come out of the simulator already shuffled, so contiguous train / val / test blocks are
    a random split that is the same for every trial.
    """
    del seed  # the data must not depend on the trial
    p = validate(params)
    data, info = _footprints(p, cache_dir)
    n_val, n_test = _split_sizes(p)
    n_train = p["events"] - n_val - n_test
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val)}
    bounds["test"] = (n_train + n_val, p["events"])
    norm = _normaliser(p["normalise"], data[:n_train])
    y = info["Y_class"].astype(np.int64)

    def split(name: str) -> Split:
        lo, hi = bounds[name]
        x = np.ascontiguousarray(norm(data[lo:hi]), dtype=np.float32)[:, None]
        meta = {
            "energy": info["E0"][lo:hi],
            "zenith": info["theta0"][lo:hi],
            "primary": info["primary"][lo:hi],
            "Nmuons": info["Nmuons"][lo:hi],
        }
        return Split(x=torch.from_numpy(x), y=torch.from_numpy(y[lo:hi].copy()), meta=meta)

    spec = DataSpec(
        input_shape=(1, p["grid"], p["grid"]),
        num_classes=len(p["primaries"]),
        class_names=tuple(p["primaries"]),
    )
    return Splits(train=split("train"), val=split("val"), test=split("test"), spec=spec)


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
                "muon numbers, clumpy hadrons) for gamma/proton/iron; cached by parameters."
            ),
        )
    )
