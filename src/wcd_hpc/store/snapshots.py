"""Journal snapshots: a 10,000-trial journal opens in about a second instead of a dozen.

Opening a journal replays every line of it: a sweep of 10,000 trials of 15 epochs writes about
640,000 (a trial's parameters, its ~30 attributes, a heartbeat every 30 s, its epochs), and
replaying them took 12 s per process on the development machine, for every worker's start-up,
every ``status`` and every ``sync``. Optuna's journal storage can start from a snapshot (a pickle
of its replayed state) when its backend offers one, and then reads only the lines after it; it
asks the backend to save one every 100 trials it creates. Its file backend offers none, so
:class:`~wcd_hpc.store.journal.CheckedJournalBackend` does, through this module.

A snapshot is only ever a shortcut, never the record: the journal stays the one source of truth,
and a snapshot that does not provably belong to it is ignored (the journal is replayed in full);
deleting one is always safe.
The file ``<journal>.snapshot`` holds one JSON header line, then the pickle. The header names the
Optuna version that pickled it, how many journal lines and bytes it covers, a digest of the last
64 KiB of those bytes (a journal replaced by another one, or salvaged to a shorter prefix, no
longer matches) and a digest of the pickle (a snapshot cut short by a full disk is not loaded).
It is written to a temporary file and renamed into place, so readers see a whole one or the
previous one. Like the checkpoints in the run directory, it is a pickle: whoever can write the
run directory can already change what workers load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import optuna

from wcd_hpc.store.schema import JOURNAL_SNAPSHOT_SUFFIX

log = logging.getLogger("wcd_hpc.store.journal")
_FORMAT = "wcd-hpc journal snapshot 1"
_TAIL = 1 << 16  # how many bytes before the snapshot's end of journal are digested


def path_of(journal: Path) -> Path:
    """Where the snapshot of ``journal`` is kept: beside it."""
    return journal.with_name(journal.name + JOURNAL_SNAPSHOT_SUFFIX)


def _tail_digest(journal: Path, offset: int) -> str:
    with journal.open("rb") as fh:
        fh.seek(max(0, offset - _TAIL))
        return hashlib.sha256(fh.read(offset - max(0, offset - _TAIL))).hexdigest()


def save(journal: Path, lines: int, offset: int, payload: bytes) -> None:
    """Keep ``payload``, the replayed state of the first ``lines`` lines (``offset`` bytes).

    A snapshot that cannot be written is logged and skipped: workers then replay the journal.
    """
    header = {
        "format": _FORMAT,
        "optuna": optuna.__version__,
        "lines": lines,
        "offset": offset,
        "tail_sha256": _tail_digest(journal, offset),
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    target = path_of(journal)
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        with partial.open("wb") as fh:
            fh.write(json.dumps(header).encode() + b"\n")
            fh.write(payload)
        os.replace(partial, target)
    except OSError as exc:
        log.warning("journal snapshot not written (%s); opening will replay the journal", exc)
        partial.unlink(missing_ok=True)


def load(journal: Path) -> tuple[int, int, bytes] | None:
    """(lines, offset, pickle) of the snapshot of ``journal``, or None when there is no
    snapshot that provably belongs to it (see the module docstring)."""
    try:
        with path_of(journal).open("rb") as fh:
            header: Any = json.loads(fh.readline())
            payload = fh.read()
        size = journal.stat().st_size
    except (OSError, ValueError):
        return None
    try:
        lines, offset = int(header["lines"]), int(header["offset"])
        fits = (
            header["format"] == _FORMAT
            and header["optuna"] == optuna.__version__
            and 0 < offset <= size
            and header["size"] == len(payload)
            and header["sha256"] == hashlib.sha256(payload).hexdigest()
            and header["tail_sha256"] == _tail_digest(journal, offset)
        )
    except (KeyError, TypeError, ValueError, OSError):
        return None
    return (lines, offset, payload) if fits else None
