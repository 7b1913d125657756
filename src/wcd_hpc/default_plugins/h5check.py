"""The one check of an event file, for training and for ``evaluate`` alike.

A file in the SWGO/LIP layout holds ``data`` (N, …) and a pandas ``info`` table with one row per
event and a ``Y_class`` column. Training (:func:`wcd_hpc.default_plugins.h5data.inspect`) and
``wcd-hpc evaluate`` (:mod:`wcd_hpc.engine.evaluate`) read such files, and a file one of them
refuses must not pass the other: an evaluation would score events training was never allowed to
see, or print NaN metrics for a file that holds no events. So both call :func:`inspect_file`
for the structure (headers and the ``info`` table, not the contents) and :func:`check_block` for
each block of values they read. Every problem is one :class:`~wcd_hpc.errors.DataError` line that
names the file and what is wrong; what is suspicious but usable (negative data, which ``log1p``
clips to 0) is a warning, once per file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wcd_hpc.errors import DataError
from wcd_hpc.output.files import not_a_file

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FileInfo", "check_block", "check_classes", "inspect_file"]

log = logging.getLogger("wcd_hpc.data")

#: Kinds of dtype whose values are numbers a model can take: float, signed and unsigned int.
#: Booleans and complex numbers are refused (a complex file cast to float32 loses its imaginary
#: part without a word).
NUMERIC_KINDS = "fiu"
#: Files already warned about (negative values), so that a warning comes once per file.
_WARNED: set[str] = set()


@dataclass(frozen=True)
class FileInfo:
    """What a split or an evaluation needs of a checked file."""

    path: Path
    events: int
    sample_shape: tuple[int, ...]
    classes: tuple[str, ...]
    info: pd.DataFrame
    #: Attributes of ``data`` (our simulators write ``half_width_m``, ``class_names`` …).
    attrs: Mapping[str, Any] = field(default_factory=dict)


def _fail(path: Path, problem: str) -> DataError:
    return DataError(f"{path}: {problem}")


def inspect_file(
    path: str | Path,
    *,
    kind: str,
    expected: str,
    default_classes: Sequence[str],
    meta: Mapping[str, tuple[str, ...]],
    data_key: str = "data",
    sample_ndim: int | None = None,
    sample_shapes: Sequence[tuple[int, ...]] = (),
    classes: Sequence[str] | None = None,
    hint: str = "",
    match_classes: bool = False,
) -> FileInfo:
    """Check the structure of an event file and its ``info`` table; return what a reader needs.

    ``sample_ndim`` (training: the layout's rank) or ``sample_shapes`` (evaluate: the shapes the
    model takes) say what one event must look like; ``classes`` (else the file's ``class_names``
    attribute, else ``default_classes``) what ``Y_class`` may hold, and with ``match_classes``
    (evaluate) a ``class_names`` attribute must name the same classes; ``meta`` the columns whose
    values are checked (finite; an energy not negative). Reads the info table and the last event
    (a truncated file fails there), not the whole data set: values are checked block by block
    as they are read (:func:`check_block`).
    """
    p = Path(path)
    problem = not_a_file(p)
    if problem is not None:
        where = f" (expected a {kind} file: {expected})" if problem == "file not found" else ""
        raise _fail(p, problem + where)
    import h5py

    try:
        fh = h5py.File(p, "r")
    except OSError as err:
        raise _fail(p, f"not a readable HDF5 file (truncated or corrupt?): {err}") from None
    with fh:
        if data_key not in fh:
            found = f"found keys {list(fh)}{hint}"
            raise _fail(p, f"missing dataset '{data_key}' ({expected}); {found}")
        dset = fh[data_key]
        if not isinstance(dset, h5py.Dataset):
            what = "a group" if isinstance(dset, h5py.Group) else type(dset).__name__
            raise _fail(p, f"'{data_key}' is {what}, expected a dataset {expected}{hint}")
        shape = tuple(int(s) for s in dset.shape)
        if not shape or shape[0] < 1:
            raise _fail(p, f"'{data_key}' holds no events (shape {shape}); expected {expected}")
        if sample_ndim is not None and len(shape) != 1 + sample_ndim:
            raise _fail(p, f"'{data_key}' has shape {shape}, expected {expected}")
        if sample_shapes and shape[1:] not in [tuple(s) for s in sample_shapes]:
            raise _fail(
                p,
                f"'{data_key}' has events of shape {shape[1:]}, but the model takes "
                f"{tuple(sample_shapes[0])}: a different layout, not reshaped",
            )
        if dset.dtype.kind not in NUMERIC_KINDS:
            raise _fail(p, f"'{data_key}' has dtype {dset.dtype}, expected float32")
        try:
            dset[shape[0] - 1]
        except (OSError, RuntimeError) as err:
            raise _fail(p, f"'{data_key}' cannot be read to the end (truncated?): {err}") from None
        attr = dset.attrs.get("class_names")
        attrs = {str(k): v for k, v in dset.attrs.items()}
    info = _info_table(p, shape[0])
    named = _class_names(p, None, attr, ()) if attr is not None else None
    names = _class_names(p, classes, attr, default_classes)
    if match_classes and named is not None and named != names:
        raise _fail(p, f"class_names {list(named)} differ from the model's {list(names)}")
    _check_labels(p, info, names)
    _check_meta(p, info, meta)
    return FileInfo(p, shape[0], shape[1:], names, info, attrs)


def _info_table(p: Path, events: int) -> pd.DataFrame:
    try:
        import pandas as pd  # slow to import: only when a file is opened

        info = pd.read_hdf(p, "info")
    except KeyError:
        raise _fail(p, "missing table 'info' (a pandas DataFrame.to_hdf(key='info'))") from None
    except (OSError, ValueError, TypeError, ImportError) as err:
        raise _fail(p, f"cannot read table 'info': {err}") from None
    if not isinstance(info, pd.DataFrame):
        raise _fail(p, "'info' is not a pandas DataFrame table")
    if len(info) != events:
        raise _fail(p, f"'info' has {len(info)} rows but 'data' has {events} events")
    return info


def _class_names(
    p: Path, given: Sequence[str] | None, attr: object, default: Sequence[str]
) -> tuple[str, ...]:
    if given:
        raw: list[object] = list(given)
    elif attr is not None:
        raw = list(np.atleast_1d(np.asarray(attr)))
    else:
        raw = list(default)
    names = tuple(v.decode() if isinstance(v, bytes) else str(v) for v in raw)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        where = "the dataset's classes" if given else "class_names"
        raise _fail(p, f"{where} {list(names)} name {twice[0]!r} twice; each class once")
    return names


def _check_labels(p: Path, info: pd.DataFrame, names: tuple[str, ...]) -> None:
    if "Y_class" not in info.columns:
        raise _fail(p, f"'info' has no 'Y_class' column; columns: {list(info.columns)}")
    column = info["Y_class"]
    if column.dtype.kind not in NUMERIC_KINDS:
        first = column.iloc[0] if len(column) else None
        raise _fail(
            p,
            f"'Y_class' must hold integers 0..{len(names) - 1} (classes {list(names)}), "
            f"got dtype {column.dtype} ({first!r} at row 0)",
        )
    y = column.to_numpy(dtype=np.float64)
    ok = np.isfinite(y) & (y == np.round(y)) & (y >= 0) & (y < len(names))
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        raise _fail(
            p,
            f"'Y_class' must be an integer 0..{len(names) - 1} (classes {list(names)}), "
            f"got {column.iloc[row]} at row {row}",
        )


def _check_meta(p: Path, info: pd.DataFrame, meta: Mapping[str, tuple[str, ...]]) -> None:
    for key, columns in meta.items():
        col = next((c for c in columns if c in info.columns), None)
        if col is None or info[col].dtype.kind not in "fiu":
            continue
        values = info[col].to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise _fail(p, f"column '{col}' of 'info' is NaN at row {int(bad[0])}")
        if key == "energy":  # zero stands for "unknown" in some files; the bins leave it out
            bad = np.flatnonzero(values < 0)
            if bad.size:
                row = int(bad[0])
                raise _fail(
                    p,
                    f"column '{col}' of 'info' is a negative energy ({values[row]:g}) at row "
                    f"{row}; a primary's energy is never negative",
                )


def check_classes(info: FileInfo, what: str) -> None:
    """Refuse a file whose ``Y_class`` holds a single class: nothing to tell apart (training)."""
    present = np.unique(info.info["Y_class"].to_numpy(dtype=np.float64)).astype(int)
    if present.size < 2:
        only = info.classes[int(present[0])] if present.size else "none"
        raise _fail(
            info.path,
            f"every event is of class {only!r}: {what} needs at least two classes "
            f"(classes {list(info.classes)})",
        )


def check_block(path: Path, block: np.ndarray, rows: np.ndarray, key: str = "data") -> None:
    """Refuse NaN or inf in ``block`` (the events ``rows`` of the file), naming the first such
    event; warn once per file about negative values, which a ``log1p`` normalisation clips to 0
    and no counting detector (VEM, photoelectrons) records."""
    if not block.size:
        return
    flat = block.reshape(block.shape[0], -1)
    if not np.isfinite(flat).all():
        row = int(rows[np.flatnonzero(~np.isfinite(flat).all(axis=1))[0]])
        raise _fail(path, f"'{key}' holds NaN or inf in event {row}")
    if str(path) not in _WARNED and float(flat.min()) < 0:
        _WARNED.add(str(path))
        row = int(rows[np.flatnonzero((flat < 0).any(axis=1))[0]])
        log.warning(
            "%s: '%s' holds negative values (first in event %d): signals in VEM or "
            "photoelectrons are never negative; log1p normalisation clips them to 0",
            path,
            key,
            row,
        )
