"""Read event files in the SWGO/LIP HDF5 layout lazily, in bounded memory, with precise errors.

A file holds ``data`` (N, …) float32 and an ``info`` table written by pandas
(``DataFrame.to_hdf(path, key="info")``) with one row per event and a ``Y_class`` column. The
predecessor loaded whole files into memory and needed 3.1–3.6 GiB for 60,000 footprints; here a
split is either materialised as a tensor (small files: the fast path of the training loop) or
kept as :class:`H5Inputs`, which reads contiguous runs of rows on demand, so memory is bounded by
the training loop's shuffle window instead of the file size.

Splits are made of whole 32-event blocks assigned at random (seeded by the dataset, never by the
trial): every split reads contiguous runs, yet a file whose events are sorted by class still
gives class-mixed splits. Every problem with a file — missing key, wrong shape, NaN, truncation,
labels out of range — is one ``ValueError`` line that names the file and the problem; the checks
themselves are :mod:`wcd_hpc.default_plugins.h5check`, which ``evaluate`` applies too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wcd_hpc.api import Split
from wcd_hpc.default_plugins.h5check import FileInfo, check_block, inspect_file
from wcd_hpc.errors import DataError
from wcd_hpc.sim import discriminants

if TYPE_CHECKING:  # h5py and torch load when a file is read, not when a dataset registers
    import h5py
    import torch

__all__ = [
    "BLOCK",
    "FOOTPRINTS",
    "TRACES",
    "FileInfo",
    "H5Inputs",
    "Layout",
    "assign_rows",
    "inspect",
    "make_split",
    "normaliser",
]

BLOCK = 32  # events per split block and per HDF5 chunk of our own files
NORMALISATIONS = ("log1p", "standard", "none")
_READ = 1024  # events per read while materialising or computing statistics (~26 MB footprints)

Transform = Callable[[np.ndarray], np.ndarray]
#: Per-event columns computed from the raw events of a block and the file's ``data`` attributes.
Features = Callable[[np.ndarray, Mapping[str, Any]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Layout:
    """What a kind of file looks like: sample rank, default class names, metadata columns.

    ``meta`` maps a metadata key (what metrics bin by) to the column names that may hold it, in
    order of preference: the predecessor wrote ``E0 (GeV)``, version 1 of our simulator ``E0``.
    ``features`` computes further per-event ``meta`` columns from the raw (un-normalised)
    events: the classical gamma/hadron discriminants of footprints, which the baseline of
    :mod:`wcd_hpc.results.baseline` cuts on.
    """

    kind: str
    sample_ndim: int
    classes: tuple[str, ...]
    add_channel: bool
    expected: str
    meta: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    features: Features | None = None


def footprint_features(raw: np.ndarray, attrs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Compactness and muon-like hits of raw footprints (VEM), in the file's tank layout."""
    half = float(attrs.get("half_width_m", discriminants.DEFAULT_HALF_WIDTH_M))
    return discriminants.features(raw, half)


#: SWGO/LIP footprints: the predecessor's files hold iron (class 0) and proton (class 1).
FOOTPRINTS = Layout(
    kind="footprint",
    sample_ndim=2,
    classes=("iron", "proton"),
    add_channel=True,
    expected="(N, H, W) float32 such as (N, 80, 80)",
    meta={
        "energy": ("E0 (GeV)", "E0"),
        "zenith": ("theta0 (deg)", "theta0"),
        "primary": ("primary",),
        "Nmuons": ("Nmuons",),
        "weight": ("weight",),
    },
    features=footprint_features,
)
#: Station traces: class 0 electromagnetic only, class 1 with at least one muon.
TRACES = Layout(
    kind="station-trace",
    sample_ndim=2,
    classes=("em", "muon"),
    add_channel=False,
    expected="(N, n_pmt, n_samples) float32",
    meta={"Nmuons": ("Nmuons",), "Nem": ("Nem",), "signal": ("S_total",), "npe": ("npe",)},
)


def _open(path: Path) -> h5py.File:
    """``path`` opened read-only. h5py is imported here, when a file is read, so that
    registering the datasets (every command does) does not import it."""
    import h5py

    return h5py.File(path, "r")


def _fail(path: Path, problem: str) -> DataError:
    """A file that cannot be used: the same file fails the same way for every trial."""
    return DataError(f"{path}: {problem}")


def inspect(path: str | Path, layout: Layout, classes: Sequence[str] | None = None) -> FileInfo:
    """Open ``path``, check its structure and ``info`` table, and return what a split needs.

    The one check of :mod:`~wcd_hpc.default_plugins.h5check`, which ``evaluate`` applies too;
    it reads the info table and the last event, not the whole data set: the NaN scan of
    ``data`` happens as events are read.
    """
    return inspect_file(
        path,
        kind=layout.kind,
        expected=layout.expected,
        default_classes=layout.classes,
        meta=layout.meta,
        sample_ndim=layout.sample_ndim,
        classes=classes,
    )


def assign_rows(events: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split ``range(events)`` into parts of the given fractions (the rest is the first part).

    Blocks of 32 consecutive rows are shuffled with ``seed`` and the parts are cut from that
    order, so sizes are exact (``round(events · f)``) and each part reads whole runs of rows.
    """
    n_blocks = -(-events // BLOCK)
    order = np.random.default_rng(seed).permutation(n_blocks)
    rows = (order[:, None] * BLOCK + np.arange(BLOCK)[None, :]).ravel()
    rows = rows[rows < events]
    sizes = [round(events * f) for f in fractions]
    cuts = np.cumsum([events - sum(sizes), *sizes])[:-1]
    return [np.sort(part) for part in np.split(rows, cuts)]


def _read_rows(dset: h5py.Dataset, path: Path, rows: np.ndarray) -> np.ndarray:
    """Rows (sorted) of ``dset`` as float32, one read per contiguous run; NaN/inf are errors."""
    out = np.empty((rows.size, *dset.shape[1:]), dtype=np.float32)
    if not rows.size:
        return out
    starts = np.concatenate([[0], np.flatnonzero(np.diff(rows) != 1) + 1, [rows.size]])
    for a, b in itertools.pairwise(starts):
        lo = int(rows[a])
        try:
            out[a:b] = dset[lo : lo + (b - a)]
        except (OSError, RuntimeError) as err:
            raise _fail(path, f"cannot read 'data' events {lo}–{lo + b - a - 1}: {err}") from None
    check_block(path, out, rows)
    return out


class H5Inputs:
    """Inputs of one split read from an HDF5 file on demand: ``x[a:b]`` → float32 tensor.

    Only contiguous slices are supported (what the training loop and ``predict`` ask for); the
    file is opened on first use and kept open, and reopened after a fork or unpickling.
    """

    def __init__(self, path: Path, rows: np.ndarray, transform: Transform, channel: bool) -> None:
        self.path, self.rows, self.transform, self.channel = path, rows, transform, channel
        self.block = BLOCK
        with _open(path) as fh:
            sample = tuple(int(s) for s in fh["data"].shape[1:])
        self.shape: tuple[int, ...] = (rows.size, *((1,) if channel else ()), *sample)
        self._file: h5py.File | None = None

    def __len__(self) -> int:
        return int(self.rows.size)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None}

    def _dataset(self) -> h5py.Dataset:
        if self._file is None:
            self._file = _open(self.path)
        return self._file["data"]

    def raw(self, start: int, stop: int) -> np.ndarray:
        """Events ``start…stop−1`` of the split as stored (no normalisation, no channel)."""
        return _read_rows(self._dataset(), self.path, self.rows[start:stop])

    def _tensor(self, raw: np.ndarray) -> torch.Tensor:
        x = self.transform(raw)
        if self.channel:
            x = x[:, None]
        import torch

        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def __getitem__(self, key: slice) -> torch.Tensor:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("H5Inputs supports contiguous slices x[a:b] only")
        start, stop, _ = key.indices(len(self))
        return self._tensor(self.raw(start, stop))

    def materialise(
        self, features: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None
    ) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
        """The whole split as one tensor, read in bounded pieces, and ``features`` of its raw
        events computed in the same pass (empty without ``features``)."""
        import torch

        out = torch.empty(self.shape, dtype=torch.float32)
        parts: list[dict[str, np.ndarray]] = []
        for a in range(0, len(self), _READ):
            raw = self.raw(a, a + _READ)
            out[a : a + _READ] = self._tensor(raw)
            if features is not None:
                parts.append(features(raw))
        return out, _joined(parts)

    def scan(
        self, features: Callable[[np.ndarray], dict[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        """``features`` of every raw event, read in bounded pieces (the split stays lazy)."""
        return _joined([features(self.raw(a, a + _READ)) for a in range(0, len(self), _READ)])


def _joined(parts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}


@dataclass(frozen=True)
class Normalise:
    """An input transform that can say what it is (``record``), so the logged model applies it."""

    kind: str
    mean: float = 0.0
    std: float = 1.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "log1p":
            out: np.ndarray = np.log1p(np.clip(x, 0.0, None))
            return out
        if self.kind == "standard":
            return ((x - self.mean) / self.std).astype(np.float32)
        return x

    def record(self) -> dict[str, Any]:
        if self.kind == "standard":
            return {"kind": self.kind, "mean": self.mean, "std": self.std}
        return {"kind": self.kind}


def normaliser(kind: str, path: Path, rows: np.ndarray) -> Normalise:
    """log1p tames the dynamic range (cores reach thousands of VEM, edges a fraction of one);
    ``standard`` is the predecessor's global mean/std over the training events (one read pass).
    """
    if kind == "log1p":
        return Normalise("log1p")
    if kind == "standard":
        total = total_sq = 0.0
        count = 0
        with _open(path) as fh:
            dset = fh["data"]
            for a in range(0, rows.size, _READ):
                block = _read_rows(dset, path, rows[a : a + _READ]).astype(np.float64)
                total += float(block.sum())
                total_sq += float(np.square(block).sum())
                count += block.size
        mean = total / max(count, 1)
        std = float(np.sqrt(max(total_sq / max(count, 1) - mean**2, 0.0))) or 1.0
        return Normalise("standard", mean, std)
    return Normalise("none")


def _bound(
    features: Features, attrs: Mapping[str, Any]
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    def compute(raw: np.ndarray) -> dict[str, np.ndarray]:
        return features(raw, attrs)

    return compute


def make_split(
    src: FileInfo, rows: np.ndarray, layout: Layout, transform: Transform, in_memory: bool
) -> Split:
    """A :class:`Split` of ``rows`` of ``src``: labels and metadata in memory, inputs maybe lazy."""
    import torch

    info = src.info.iloc[rows]
    y = torch.from_numpy(info["Y_class"].to_numpy(dtype=np.float64).astype(np.int64))
    meta: dict[str, np.ndarray] = {}
    for key, columns in layout.meta.items():
        col = next((c for c in columns if c in info.columns), None)
        if col is not None:
            meta[key] = info[col].to_numpy()
    if "primary" in layout.meta and "primary" not in meta:
        meta["primary"] = np.asarray(src.classes, dtype=str)[y.numpy()]
    elif "primary" in meta:
        meta["primary"] = meta["primary"].astype(str)
    lazy = H5Inputs(src.path, rows, transform, layout.add_channel)
    extra = None if layout.features is None else _bound(layout.features, src.attrs)
    x: torch.Tensor | H5Inputs = lazy
    if in_memory:
        x, computed = lazy.materialise(extra)
    else:
        computed = lazy.scan(extra) if extra is not None else {}
    if computed:  # an empty split has no rows to compute from
        meta.update(computed)
    return Split(x=x, y=y, meta=meta)
