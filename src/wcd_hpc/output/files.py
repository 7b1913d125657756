"""Files written whole or not at all, with the permissions the user's own files get.

A file a worker or a command writes may be read by another process at any moment (``sync``
while workers run, a notebook, a second worker on a shared filesystem), and the disk may fill
up half-way through: a torn or 0-byte plot, model or data file would then be taken for a real
one. So such files are written under a temporary name beside their target and renamed into
place in one step (:func:`atomic`); a failure removes the temporary file and leaves the target as
it was. ``tempfile.mkstemp`` creates files readable by their owner only; what it made becomes
the mode any file the user writes gets (``0666`` less the umask, :func:`user_mode`), so a
simulated data set can be shared like the rest of a group's files.

This module sits at the bottom of the import layers and imports nothing of wcd-hpc.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Suffix of the temporary files (``sync`` skips files with it in a trial's plots).
TMP_SUFFIX = ".tmp"
_STATUS = Path("/proc/self/status")


def umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    current = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(current)
    return current


def user_mode() -> int:
    """The mode ``open()`` gives a new file: ``0666`` less the umask."""
    return 0o666 & ~umask()


def temporary_beside(path: Path) -> Path:
    """A new empty hidden file in ``path``'s directory to write ``path``'s content into."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    os.close(fd)
    return Path(name)


@contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; if the block succeeds it becomes ``path`` in one
    rename, with :func:`user_mode`; if anything fails it is removed and ``path`` is untouched.

    The temporary name does not end like ``path``: writers that pick a format by the file
    name (matplotlib) must be told the format.
    """
    tmp = temporary_beside(path)
    try:
        yield tmp
        os.chmod(tmp, user_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        full = disk_full_in(exc)
        if full is not None and full is not exc:  # a writer's own error while it cleaned up
            raise full from exc
        raise


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the filesystem (or the user's quota on it) is full."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_in(exc: BaseException) -> OSError | None:
    """The full-disk error behind ``exc``, if any: a writer that fails to clean up after one
    (matplotlib's PDF backend raises AttributeError then) hides it in the exception's context."""
    seen: BaseException | None = exc
    while seen is not None:
        if is_disk_full(seen):
            assert isinstance(seen, OSError)
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def free_bytes(path: Path) -> int | None:
    """Bytes free to an unprivileged user on the filesystem of ``path`` (or of its nearest
    existing parent); None where that cannot be asked."""
    for where in (path, *path.absolute().parents):
        if where.exists():
            try:
                return shutil.disk_usage(where).free
            except OSError:
                return None
    return None


def size_text(n: float) -> str:
    """``n`` bytes for people: ``512 B``, ``3.2 MiB``, ``1.5 TiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def disk_full_text(path: Path) -> str:
    """The one line that says the disk under ``path`` is full and how much is left."""
    free = free_bytes(path)
    left = "" if free is None else f" ({size_text(free)} free)"
    return f"no space left on the filesystem of {path}{left}"


def not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file (missing, a directory, a FIFO …), or ``None``.

    Said before anything opens it: reading a FIFO blocks until a writer comes, forever if none
    does, and "file not found" for a directory sends the user looking for the wrong mistake.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "file not found"
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, expected a file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe), expected a file"
    if stat.S_ISSOCK(mode):
        return "is a socket, expected a file"
    return "is a device, expected a file"
