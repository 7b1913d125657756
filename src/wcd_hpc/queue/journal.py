"""Journal-file integrity: find exactly where a log went bad, and salvage its valid prefix.

Optuna's ``JournalFileBackend`` stores a study as one JSON operation per line, appended under a
lock. How it reacts to damage (checked with Optuna 5.0 on real files, see tests/test_journal.py):

- a *partial last line* (no newline: a write cut off by a full disk, a quota, a node crash) is
  skipped on read, so the study still opens; but the next append is glued onto that fragment and
  from then on every read raises ``JSONDecodeError`` for every worker;
- a bad line followed by any other line (garbage in the middle) makes every read raise;
- a bad *complete* last line is skipped until something is appended after it, then the same.

So a bad last line is a log about to break, and a bad line in the middle is a broken one. This
module turns both into one line naming the file, the line number and what is wrong, with the
salvage command, instead of a traceback from deep inside Optuna, and it refuses to append after a
fragment (the one write that would turn a recoverable log into a broken one). A prefix of a journal
is always a consistent study (it is what the study was at that moment), which is why salvage keeps
the longest valid prefix and drops everything from the first bad line on.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from wcd_hpc.errors import StorageError

_TAIL = 1 << 16  # how much of the end of the file the cheap tail check reads


class JournalCorrupt(StorageError):
    """A journal file with a bad line; the message is one line with the salvage command."""


@dataclass(frozen=True)
class Scan:
    """The result of reading a journal: how much of it is valid and the first problem, if any."""

    path: Path
    good_lines: int
    good_bytes: int
    bad_line: int | None = None  # 1-based number of the first bad line
    problem: str = ""
    lines_after: int = 0  # lines after the bad one (lost by a salvage)

    @property
    def ok(self) -> bool:
        return self.bad_line is None

    def message(self) -> str:
        after = f" ({self.lines_after} more line(s) follow it)" if self.lines_after else ""
        return (
            f"{self.path}:{self.bad_line}: corrupt journal: {self.problem}{after}; keep the "
            f"{self.good_lines} valid line(s) before it with: wcd-hpc journal salvage {self.path}"
        )


def _problem(line: bytes) -> str:
    """Why ``line`` is not a journal record, or "" when it is one."""
    if not line.endswith(b"\n"):
        return f"partial last line ({len(line)} bytes, no newline): a write was cut off"
    try:
        record = json.loads(line)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        return f"not JSON ({str(exc).splitlines()[0]})"
    if not isinstance(record, dict) or "op_code" not in record:
        return "JSON but not an Optuna journal record (no op_code)"
    return ""


def scan(path: Path) -> Scan:
    """Stream through the whole file once and stop at the first bad line (counting the rest)."""
    good_lines = good_bytes = 0
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            problem = _problem(line)
            if problem:
                rest = sum(1 for _ in fh)
                return Scan(path, good_lines, good_bytes, number, problem, rest)
            good_lines += 1
            good_bytes += len(line)
    return Scan(path, good_lines, good_bytes)


def check_journal(path: Path) -> None:
    """Raise :class:`JournalCorrupt` if ``path`` has a bad line; a missing file is fine.

    A problem on the last line is re-checked while holding the journal's own lock, because a
    reader without it may see another worker's append half-way; a fragment that is still there
    with the lock held was left by a writer that died.
    """
    if not path.exists():
        return
    found = scan(path)
    if found.ok:
        return
    if found.lines_after == 0:
        lock = JournalFileOpenLock(str(path))
        lock.acquire()
        try:
            found = scan(path)
        finally:
            lock.release()
        if found.ok:
            return
    raise JournalCorrupt(found.message())


def check_tail(path: Path) -> None:
    """The cheap check run whenever a journal is opened: is the last line complete and valid?

    Bad lines in the middle need no separate pass: Optuna's replay on open raises for them, and
    :class:`CheckedJournalBackend` turns that into the precise message with a full scan.
    """
    if not path.exists() or _tail_ok(path):
        return
    check_journal(path)


def _tail_ok(path: Path) -> bool:
    size = path.stat().st_size
    if size == 0:
        return True
    with path.open("rb") as fh:
        fh.seek(max(0, size - _TAIL))
        tail = fh.read()
    if not tail.endswith(b"\n"):
        return False
    start = tail.rfind(b"\n", 0, len(tail) - 1)
    if start < 0 and size > len(tail):
        return True  # a last line longer than the window: its newline is all we can check cheaply
    return not _problem(tail[start + 1 :])


class CheckedJournalBackend(JournalFileBackend):
    """Optuna's journal backend with precise corruption errors and no append after a fragment."""

    def __init__(self, path: Path, lock: JournalFileOpenLock) -> None:
        super().__init__(str(path), lock_obj=lock)
        self._path = path
        self._file_lock = lock

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        try:
            yield from super().read_logs(log_number_from)
        except ValueError:
            found = scan(self._path)
            if found.ok:
                raise
            raise JournalCorrupt(found.message()) from None

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append under the lock, refusing to glue a record onto a fragment.

        If our own write fails part-way (disk full, quota), the bytes it did write are cut off
        again while the lock is still held, so the log stays valid for the other workers.
        """
        data = ("\n".join(json.dumps(r, separators=(",", ":")) for r in logs) + "\n").encode()
        self._file_lock.acquire()
        try:
            if self._path.exists() and not _tail_ok(self._path):
                raise JournalCorrupt(scan(self._path).message())
            with self._path.open("ab") as fh:
                start = fh.tell()
                try:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                except OSError:
                    fh.truncate(start)
                    raise
        finally:
            self._file_lock.release()


@dataclass(frozen=True)
class Salvaged:
    """What :func:`salvage` wrote."""

    source: Path
    out: Path
    kept: int
    dropped: int
    problem: str


def default_out(path: Path) -> Path:
    return path.with_name(f"{path.name}.salvaged")


def salvage(path: Path, out: Path | None = None) -> Salvaged:
    """Copy the longest valid prefix of ``path`` (complete JSON records only) to a new file.

    The original is never touched; an existing ``out`` is never overwritten, so running salvage
    twice cannot destroy the first result.
    """
    if not path.is_file():
        raise StorageError(f"{path}: no such journal file")
    target = out or default_out(path)
    if target.exists():
        raise StorageError(f"{target}: already exists; choose another --out")
    found = scan(path)
    with path.open("rb") as src, target.open("xb") as dst:
        remaining = found.good_bytes
        while remaining:
            chunk = src.read(min(remaining, 1 << 20))
            if not chunk:
                break
            dst.write(chunk)
            remaining -= len(chunk)
    shutil.copymode(path, target)
    dropped = 0 if found.ok else 1 + found.lines_after
    where = f"line {found.bad_line}: {found.problem}" if not found.ok else ""
    return Salvaged(path, target, found.good_lines, dropped, where)
