"""Write simulated events to HDF5 in the SWGO/LIP layout, chunk by chunk and atomically.

The predecessor's files hold ``data`` (N, …) float32 and an ``info`` table written by
``DataFrame.to_hdf(path, key="info")``; our simulators write the same layout so that one reader
and the predecessor's notebooks open both. Events arrive in chunks and go straight to disk, so a
100,000-event footprint file (2.5 GB of float32) never sits in memory; only the ``info`` columns
(a few floats per event) are kept until the end, when pandas writes the table.

The file is written to a temporary name in the target directory and moved into place with
``os.replace``: several workers that start at once on a shared filesystem either find a complete
file or each write an identical one, never a torn one. :func:`publish` is that last step, and can
also refuse to replace a file (``wcd-hpc simulate`` without ``--force``).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CHUNK_EVENTS", "publish", "write_events"]

#: Events per HDF5 chunk: 32 footprints of 80×80 float32 are 0.8 MB, inside h5py's 1 MiB chunk
#: cache, and match the block size the reader shuffles by (wcd_hpc.default_plugins.h5data).
CHUNK_EVENTS = 32

Chunk = tuple[np.ndarray, Mapping[str, np.ndarray]]
#: ``os.link`` errors of a filesystem without hard links (FAT, some FUSE and SMB mounts).
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})


def publish(finished: str | Path, target: str | Path, *, replace: bool = True) -> None:
    """Move the complete file ``finished`` to ``target`` in one step (same directory).

    With ``replace=False`` an existing ``target`` is left exactly as it is and
    :class:`FileExistsError` raised, even when it appeared while ``finished`` was being written:
    ``os.link`` creates the name only if it is free, atomically. Where the filesystem has no hard
    links, an existence check followed by ``os.replace`` narrows that window to an instant.
    """
    if replace:
        os.replace(finished, target)
        return
    try:
        os.link(finished, target)
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:  # FileExistsError included
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target)) from None
        os.replace(finished, target)
        return
    os.unlink(finished)


def write_events(
    path: str | Path,
    chunks: Iterable[Chunk],
    *,
    events: int,
    sample_shape: tuple[int, ...],
    attrs: Mapping[str, Any],
    progress: Callable[[int], None] = lambda n: None,
) -> Path:
    """Write ``events`` events from ``chunks`` (data block, info columns) to ``path``.

    ``data`` is gzip-1 compressed: footprints are mostly empty tanks, so the file shrinks several
    fold and gzip is readable by every HDF5 build (unlike lzf). ``attrs`` land on ``data``
    (simulator name, version, class names, parameters). ``progress(n)`` is told each chunk's size.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        columns: dict[str, list[np.ndarray]] = {}
        import h5py  # here, not at import: the CLI and plugin loading stay light

        with h5py.File(tmp, "w") as fh:
            dset = fh.create_dataset(
                "data",
                shape=(events, *sample_shape),
                dtype=np.float32,
                chunks=(max(1, min(CHUNK_EVENTS, events)), *sample_shape) if events else None,
                compression="gzip" if events else None,
                compression_opts=1 if events else None,
                shuffle=bool(events),
            )
            for key, value in attrs.items():
                dset.attrs[key] = value
            done = 0
            for data, info in chunks:
                dset[done : done + data.shape[0]] = data
                done += data.shape[0]
                for key, col in info.items():
                    columns.setdefault(key, []).append(np.asarray(col))
                progress(data.shape[0])
            if done != events:
                raise RuntimeError(f"simulator produced {done} events, expected {events}")
        import pandas as pd  # slow to import; only needed when a file is finished

        frame = pd.DataFrame({k: np.concatenate(v) for k, v in columns.items()})
        frame.to_hdf(tmp, key="info", mode="a", format="fixed")
        publish(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
