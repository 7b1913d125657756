"""Where a number came from: the software that computed it and the data it was computed on.

A figure or a ``result.json`` that leaves the run directory must say which wcd-hpc made it
(version, and the git commit when running from a checkout) and which data: for a file, its
SHA-256 — unless the file itself says it came from one of our simulators (the ``simulator`` and
``seed`` attributes on ``data``), in which case the simulator and its seed identify it better
than a hash; for a simulated dataset plugin (``footprint-sim``, ``traces-sim``), the plugin and
its seed. Simulated data are labelled "simulated (order-of-magnitude physics)" (SCIENCE.md: our
simulators get orders of magnitude right, not CORSIKA's detail), so that nobody quotes them as
a detector's performance.

Hashing reads the whole file once per process (results cached by path, size and modification
time): a worker running many trials on the same file pays it once.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wcd_hpc import __version__
from wcd_hpc.default_plugins import footprint_sim, traces_sim

__all__ = [
    "SIMULATED",
    "SIMULATED_DATASETS",
    "data_provenance",
    "describe",
    "file_provenance",
    "git_commit",
    "software",
    "software_text",
]

SIMULATED = "simulated (order-of-magnitude physics)"
#: The dataset plugins that simulate their data with wcd-hpc's simulators, and their defaults.
SIMULATED_DEFAULTS: dict[str, Mapping[str, Any]] = {
    footprint_sim.NAME: footprint_sim.DEFAULTS,
    traces_sim.NAME: traces_sim.DEFAULTS,
}
SIMULATED_DATASETS = tuple(SIMULATED_DEFAULTS)
#: Dataset parameters that name data files (the HDF5 plugins' ``path_params``).
FILE_PARAMS = ("path", "train", "test")


@functools.cache
def git_commit() -> str | None:
    """The commit of the checkout wcd-hpc runs from, when it is one (an editable install)."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(Path(__file__).parent), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def software() -> dict[str, Any]:
    """``{"wcd_hpc": version, "commit": commit or None}``."""
    return {"wcd_hpc": __version__, "commit": git_commit()}


@functools.lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime: float) -> str:
    del size, mtime  # the cache key: a rewritten file is hashed again
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _simulator(path: Path) -> dict[str, Any] | None:
    """The ``simulator`` and ``seed`` attributes our simulators put on ``data``, if any."""
    try:
        import h5py

        with h5py.File(path, "r") as handle:
            attrs = handle["data"].attrs if "data" in handle else {}
            if "simulator" not in attrs:
                return None
            seed = attrs.get("seed")
            return {
                "simulator": str(attrs["simulator"]),
                "seed": None if seed is None else int(seed),
            }
    except (OSError, KeyError, ValueError, TypeError):
        return None


def file_provenance(path: Path) -> dict[str, Any]:
    """One data file: simulator and seed when it says so, else its SHA-256."""
    found = _simulator(path)
    if found is not None:
        return {"file": path.name, **found, "kind": SIMULATED}
    try:
        stat = path.stat()
        return {
            "file": path.name,
            "sha256": _sha256(str(path.resolve()), stat.st_size, stat.st_mtime),
        }
    except OSError as exc:
        return {"file": path.name, "sha256": None, "reason": f"not readable ({exc.strerror})"}


def data_provenance(
    dataset: str, params: Mapping[str, Any], files: Sequence[Path] = ()
) -> dict[str, Any]:
    """The data of a run: ``files`` (or the dataset's file parameters), or a simulated plugin."""
    paths = list(files) or [Path(str(params[k])) for k in FILE_PARAMS if params.get(k)]
    if paths:
        parts = [file_provenance(p) for p in paths]
        out: dict[str, Any] = {"dataset": dataset, "files": parts}
        if any(p.get("kind") == SIMULATED for p in parts):
            out["kind"] = SIMULATED
        return out
    if dataset in SIMULATED_DATASETS:
        seed = params.get("seed")
        seed = SIMULATED_DEFAULTS[dataset].get("seed") if seed is None else seed
        return {"dataset": dataset, "simulator": dataset, "seed": seed, "kind": SIMULATED}
    return {"dataset": dataset}


def describe(data: Mapping[str, Any]) -> str:
    """One line for a figure: ``simulated (order-of-magnitude physics): footprint-sim seed 0``
    or ``data sha256 3f2a…`` per file."""
    bits = []
    if "simulator" in data:
        bits.append(f"{data['simulator']} seed {data.get('seed')}")
    for part in data.get("files", []):
        if "simulator" in part:
            bits.append(f"{part['file']}: {part['simulator']} seed {part.get('seed')}")
        elif part.get("sha256"):
            bits.append(f"{part['file']} sha256 {str(part['sha256'])[:12]}")
    text = ", ".join(bits)
    if data.get("kind") == SIMULATED:
        return f"{SIMULATED}: {text}" if text else SIMULATED
    return text


def software_text(info: Mapping[str, Any]) -> str:
    """``wcd-hpc 0.1.0 (commit 3f2a…)`` for a figure."""
    commit = info.get("commit")
    return f"wcd-hpc {info.get('wcd_hpc')}" + (f" (commit {commit})" if commit else "")
