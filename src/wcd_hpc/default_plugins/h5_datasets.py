"""The ``footprint-h5`` and ``traces-h5`` datasets: event files in the SWGO/LIP HDF5 layout.

``footprint-h5`` reads the predecessor's CORSIKA footprint files exactly as they were written —
``data`` (N, 80, 80) float32 plus a pandas ``info`` table with ``Y_class`` (iron 0, proton 1) —
and the files of ``wcd-hpc simulate footprints`` (which name their classes in an attribute).
Either one file split by fractions (``path``), or a train file split into train / validation
plus a separate test file (``train`` + ``test``, like the predecessor's ``Train_….h5`` /
``Test_….h5`` pair). ``traces-h5`` does the same for station traces (N, n_pmt, n_samples).
Large files are read lazily in blocks (see :mod:`wcd_hpc.default_plugins.h5data`), so memory
stays bounded.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from wcd_hpc.api import Dataset, Splits
from wcd_hpc.default_plugins._params import (
    COMMON_DEFAULTS,
    build_splits,
    check_files,
    common,
    fail,
    unknown,
)
from wcd_hpc.default_plugins.h5data import FOOTPRINTS, TRACES, FileInfo, Layout, inspect
from wcd_hpc.hookspecs import hookimpl

__all__ = ["DEFAULTS", "check", "load", "register_datasets", "validate"]

DEFAULTS: dict[str, Any] = {
    "path": None,
    "train": None,
    "test": None,
    "classes": None,
    **COMMON_DEFAULTS,
}
LAYOUTS = {"footprint-h5": FOOTPRINTS, "traces-h5": TRACES}


def validate(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``params`` (merged over the defaults): one of ``path`` or ``train`` + ``test``."""
    unknown(name, params, DEFAULTS)
    p = {**DEFAULTS, **params}
    out = common(name, p)
    for key in ("path", "train", "test"):
        if p[key] is not None and (not isinstance(p[key], str) or not p[key]):
            raise fail(name, key, "a file path (string)", p[key])
    single, pair = p["path"] is not None, p["train"] is not None or p["test"] is not None
    if single == pair or (pair and (p["train"] is None or p["test"] is None)):
        raise ValueError(
            f"dataset '{name}': give either 'path' (one file, split by fractions) or both "
            f"'train' and 'test' (a train file and a test file), got "
            f"path={p['path']!r}, train={p['train']!r}, test={p['test']!r}"
        )
    classes = p["classes"]
    if classes is not None and (
        isinstance(classes, str)
        or not isinstance(classes, list)
        or len(classes) < 2
        or len(set(map(str, classes))) != len(classes)
    ):
        raise fail(name, "classes", "a list of at least 2 distinct class names", classes)
    out.update(path=p["path"], train=p["train"], test=p["test"], classes=classes)
    return out


def _files(name: str, p: Mapping[str, Any]) -> tuple[FileInfo, FileInfo | None]:
    layout: Layout = LAYOUTS[name]
    if p["path"] is not None:
        return inspect(p["path"], layout, p["classes"]), None
    return inspect(p["train"], layout, p["classes"]), inspect(p["test"], layout, p["classes"])


def check(name: str, params: Mapping[str, Any]) -> None:
    """Parameters plus every file's structure, info table, labels and split sizes (not the
    events themselves: a NaN in them is found when they are read)."""
    p = validate(name, params)
    check_files(name, p, *_files(name, p))


def load(name: str, params: Mapping[str, Any], seed: int, cache_dir: str) -> Splits:
    """Splits of the file(s); ``seed`` (the trial's) is unused: all trials see the same data."""
    del seed, cache_dir
    p = validate(name, params)
    train, test = _files(name, p)
    return build_splits(name, LAYOUTS[name], p, train, test)


@hookimpl
def register_datasets(register: Callable[[Dataset], None]) -> None:
    """Register ``footprint-h5`` and ``traces-h5``."""
    descriptions = {
        "footprint-h5": "WCD shower footprints from HDF5 files in the SWGO/LIP layout (data + "
        "pandas info table), one file with split fractions or a train/test pair; read lazily.",
        "traces-h5": "Multi-PMT WCD station traces (muon vs EM) from HDF5 files in the same "
        "layout; one file with split fractions or a train/test pair; read lazily.",
    }
    for name, text in descriptions.items():
        register(
            Dataset(
                name=name,
                load=partial(load, name),
                defaults=copy.deepcopy(DEFAULTS),
                description=text,
                check=partial(check, name),
                path_params=("path", "train", "test"),
            )
        )
