"""Write simulated events to HDF5 in the SWGO/LIP layout, chunk by chunk and atomically.

The predecessor's files hold ``data`` (N, …) float32 and an ``info`` table written by
``DataFrame.to_hdf(path, key="info")``; our simulators write the same layout so that one reader
and the predecessor's notebooks open both. Events arrive in chunks and go straight to disk, so a
100,000-event footprint file (2.5 GB of float32) never sits in memory; only the ``info`` columns
(a few floats per event) are kept until the end, when pandas writes the table.

The file is written to a temporary name in the target directory and moved into place with
``os.replace``: several workers that start at once on a shared filesystem either find a complete
file or each write an identical one, never a torn one. :func:`publish` is that last step, and can
also refuse to replace a file (``wcd-hpc simulate`` without ``--force``); the file gets the mode
of any file the user writes, not the owner-only mode of a temporary file.

A full disk must end in one ``OSError`` (ENOSPC) and no file, but HDF5 does not survive a failed
write: the close after it fails too, and the interpreter then crashes when h5py frees its objects
(a segfault, seen with h5py 3.16 on a full tmpfs). So h5py writes through :class:`_Sink`, which
keeps the first failed write's error, takes every later write into memory so that HDF5 closes
cleanly, and lets :func:`write_events` raise that error afterwards.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wcd_hpc.output.files import temporary_beside, user_mode

__all__ = ["CHUNK_EVENTS", "MAX_EVENTS", "MAX_SEED", "publish", "write_events"]

#: Events per HDF5 chunk: 32 footprints of 80×80 float32 are 0.8 MB, inside h5py's 1 MiB chunk
#: cache, and match the block size the reader shuffles by (wcd_hpc.default_plugins.h5data).
CHUNK_EVENTS = 32
#: Most events one simulated file holds (``simulate --events``, a simulated dataset's
#: ``events``): 10**8 footprints are some 2.5 TB, far above any real training set and far below
#: the sizes HDF5 cannot even describe (a number too large is a typo, said in one line).
MAX_EVENTS = 100_000_000
#: Largest seed: numpy's generators take any, but a seed above 2**32 is a typo, and the
#: experiment's own ``seed`` key has the same bound.
MAX_SEED = 2**32 - 1

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
    os.chmod(finished, user_mode())
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
    tmp = temporary_beside(target)
    try:
        columns: dict[str, list[np.ndarray]] = {}
        import h5py  # here, not at import: the CLI and plugin loading stay light

        with _Sink(tmp) as sink, h5py.File(sink, "w") as fh:
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
                if sink.failed is not None:
                    break
                done += data.shape[0]
                for key, col in info.items():
                    columns.setdefault(key, []).append(np.asarray(col))
                progress(data.shape[0])
        if sink.failed is not None:
            raise sink.failed
        if done != events:
            raise RuntimeError(f"simulator produced {done} events, expected {events}")
        import pandas as pd  # slow to import; only needed when a file is finished

        frame = pd.DataFrame({k: np.concatenate(v) for k, v in columns.items()})
        _check_room(tmp, 2 * int(frame.memory_usage(index=True).sum()))  # PyTables crashes too
        frame.to_hdf(tmp, key="info", mode="a", format="fixed")
        publish(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


#: Room kept free for what a table's writer adds beyond its data (HDF5 metadata, B-trees).
_TABLE_SLACK = 4 * 2**20


def _check_room(path: Path, size: int) -> None:
    """Raise ENOSPC before writing ``size`` bytes to ``path`` where they do not fit."""
    free = shutil.disk_usage(path.parent).free
    if free < size + _TABLE_SLACK:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


class _Sink(io.RawIOBase):
    """The file object h5py writes through (its ``fileobj`` driver): after the first failed
    write it keeps the error in :attr:`failed` and takes later writes into memory, which reads
    then see, so that HDF5 can finish and close the file without ever seeing a failure."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = open(path, "r+b", buffering=0)  # noqa: SIM115 (closed in close())
        self._pos = 0
        self._held: dict[int, bytes] = {}
        self.failed: OSError | None = None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_END:
            held = max((at + len(b) for at, b in self._held.items()), default=0)
            offset += max(os.fstat(self._file.fileno()).st_size, held)
        elif whence == os.SEEK_CUR:
            offset += self._pos
        self._pos = offset
        return offset

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        self._file.seek(self._pos)
        got = self._file.readinto(view) or 0
        view[got:] = bytes(len(view) - got)
        for at, data in self._held.items():
            lo, hi = max(at, self._pos), min(at + len(data), self._pos + len(view))
            if lo < hi:
                view[lo - self._pos : hi - self._pos] = data[lo - at : hi - at]
        self._pos += len(view)
        return len(view)

    def write(self, data: Any) -> int:
        block = bytes(data)
        if self.failed is None:
            try:
                self._file.seek(self._pos)
                done = 0
                while done < len(block):
                    done += self._file.write(block[done:]) or 0
            except OSError as exc:
                self.failed = exc
        if self.failed is not None:
            self._held[self._pos] = block
        self._pos += len(block)
        return len(block)

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        if self.failed is None:
            try:
                self._file.truncate(size)
            except OSError as exc:
                self.failed = exc
        return size

    def close(self) -> None:
        self._file.close()
        super().close()
