"""Parameter checks and split building shared by the built-in HDF5-backed datasets.

Errors name the dataset, the parameter and what was expected, because they surface on a login
node long before any worker runs and must be fixable from the message alone.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from wcd_hpc.api import DataSpec, Splits
from wcd_hpc.default_plugins.h5check import check_classes
from wcd_hpc.default_plugins.h5data import (
    NORMALISATIONS,
    FileInfo,
    Layout,
    assign_rows,
    inspect,
    make_split,
    normaliser,
)
from wcd_hpc.errors import DataError
from wcd_hpc.sim.h5io import MAX_SEED

__all__ = [
    "COMMON_DEFAULTS",
    "build_splits",
    "cached",
    "common",
    "fail",
    "fraction",
    "integer",
    "unknown",
]

#: Parameters every HDF5-backed dataset takes. ``in_memory: auto`` keeps splits whose inputs
#: fit in 256 MiB as tensors (the fast path) and reads bigger ones lazily from the file.
COMMON_DEFAULTS: dict[str, Any] = {
    "val_fraction": 0.15,
    "test_fraction": 0.15,
    "normalise": "log1p",
    "in_memory": "auto",
    "seed": 1234,
}
AUTO_LIMIT_BYTES = 256 * 2**20  # ~10,000 footprints: keeps a training process under 1 GiB
#: How long a worker waits for another one simulating the same cache before it simulates too.
SIMULATION_WAIT_S = 900.0
log = logging.getLogger("wcd_hpc.data")


def fail(name: str, key: str, expected: str, got: Any) -> ValueError:
    return ValueError(f"dataset '{name}': parameter '{key}' must be {expected}, got {got!r}")


def unknown(name: str, params: Mapping[str, Any], known: Mapping[str, Any]) -> None:
    extra = sorted(set(params) - set(known))
    if extra:
        raise ValueError(f"dataset '{name}': unknown parameter(s) {extra}; known: {sorted(known)}")


def integer(name: str, params: Mapping[str, Any], key: str, lo: int, hi: int | None = None) -> int:
    value = params[key]
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise fail(name, key, f"an integer {bound}", value)
    return int(value)


def fraction(name: str, params: Mapping[str, Any], key: str) -> float:
    value = params[key]
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not 0.0 < float(value) < 1.0:
        raise fail(name, key, "a number strictly between 0 and 1", value)
    return float(value)


def common(name: str, p: Mapping[str, Any]) -> dict[str, Any]:
    """Check the shared parameters of ``p`` (already merged over the defaults)."""
    out: dict[str, Any] = {
        "val_fraction": fraction(name, p, "val_fraction"),
        "test_fraction": fraction(name, p, "test_fraction"),
        "seed": integer(name, p, "seed", 0, MAX_SEED),
    }
    if p["normalise"] not in NORMALISATIONS:
        raise fail(name, "normalise", f"one of {list(NORMALISATIONS)}", p["normalise"])
    if p["in_memory"] not in ("auto", True, False):
        raise fail(name, "in_memory", "auto, true or false", p["in_memory"])
    out["normalise"], out["in_memory"] = p["normalise"], p["in_memory"]
    if out["val_fraction"] + out["test_fraction"] >= 1.0:
        raise fail(
            name,
            "val_fraction + test_fraction",
            "below 1 so that training data remain",
            out["val_fraction"] + out["test_fraction"],
        )
    return out


def cached(
    path: Path,
    layout: Layout,
    write: Callable[[Path], object],
    *,
    wait_s: float = SIMULATION_WAIT_S,
) -> FileInfo:
    """A simulator's cache file, (re)written by ``write(path)`` when absent or unreadable.

    Workers that start together on a cold cache take turns on a lock file beside it: the first
    simulates, the others wait and then read its file, so a sweep pays for one simulation and
    not one per worker (on a shared node or a laptop those are the same cores the first one
    needs). Where the filesystem refuses locks (some NFS mounts), or the wait passes ``wait_s``,
    a worker simulates as before: the atomic write keeps concurrent writers safe.
    """
    try:
        return inspect(path, layout)
    except ValueError:
        pass  # absent or unreadable: simulate again and overwrite (atomically)
    with _turn(path.with_name(path.name + ".lock"), wait_s):
        try:
            return inspect(path, layout)  # written while this worker waited
        except ValueError:
            pass
        write(path)
    return inspect(path, layout)


@contextmanager
def _turn(lock: Path, wait_s: float) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock`` for the block; bounded by ``wait_s``.

    The kernel drops the lock when its holder dies, so a killed worker never blocks the others.
    """
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield  # read-only or vanished cache directory: the write itself will say what is wrong
        return
    try:
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    break  # no locks on this filesystem: simulate side by side, as before
            if time.monotonic() >= deadline:
                log.warning("%s: still locked after %.0f s; simulating here too", lock, wait_s)
                break
            if not told:
                log.info("%s: another worker is simulating this data set; waiting for it", lock)
                told = True
            time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def split_sizes(events: int, fractions: Sequence[float]) -> list[int]:
    sizes = [round(events * f) for f in fractions]
    return [events - sum(sizes), *sizes]


def check_files(
    name: str, p: Mapping[str, Any], train: FileInfo, test: FileInfo | None
) -> list[float]:
    """Refuse files that cannot give the splits asked for (too few events, a single class in
    the training file); returns the split fractions.

    Part of a dataset's ``check`` as well as of ``load``, so that ``sweep`` refuses such files
    on the login node instead of every worker failing the same way on a compute node.
    """
    fractions = [p["val_fraction"]] + ([] if test is not None else [p["test_fraction"]])
    check_classes(train, "training")
    if min(split_sizes(train.events, fractions)) < 1:
        raise DataError(
            f"{train.path}: {train.events} events are too few for non-empty splits at "
            f"fractions {fractions} (dataset '{name}')"
        )
    if test is not None and (
        test.sample_shape != train.sample_shape or test.classes != train.classes
    ):
        raise DataError(
            f"{test.path}: test file has samples {test.sample_shape} and classes "
            f"{list(test.classes)}, but the train file {train.path} has "
            f"{train.sample_shape} and {list(train.classes)}"
        )
    return fractions


def build_splits(
    name: str, layout: Layout, p: Mapping[str, Any], train: FileInfo, test: FileInfo | None
) -> Splits:
    """Train / val / test from one file (split fractions) or a train file plus a test file."""
    fractions = check_files(name, p, train, test)
    parts = assign_rows(train.events, fractions, p["seed"])
    sources = {"train": (train, parts[0]), "val": (train, parts[1])}
    if test is None:
        sources["test"] = (train, parts[2])
    else:
        sources["test"] = (test, np.arange(test.events))
    transform = normaliser(p["normalise"], train.path, parts[0])
    total = sum(rows.size for _, rows in sources.values()) * 4 * int(np.prod(train.sample_shape))
    in_memory = total <= AUTO_LIMIT_BYTES if p["in_memory"] == "auto" else bool(p["in_memory"])
    built = {
        key: make_split(src, rows, layout, transform, in_memory)
        for key, (src, rows) in sources.items()
    }
    shape = ((1,) if layout.add_channel else ()) + train.sample_shape
    spec = DataSpec(input_shape=shape, num_classes=len(train.classes), class_names=train.classes)
    return Splits(
        train=built["train"],
        val=built["val"],
        test=built["test"],
        spec=spec,
        # and the events' layout in the file, which a user of the trained model has in hand
        transform={**transform.record(), "raw_shape": [int(d) for d in train.sample_shape]},
    )
