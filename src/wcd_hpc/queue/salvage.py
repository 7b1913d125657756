"""``journal salvage``: the longest valid prefix of a damaged journal, as a study that can run.

A prefix of a journal is always a consistent study (what the study was at that moment), which is
why salvage keeps the longest valid prefix (:func:`wcd_hpc.store.journal.scan`) and drops
everything from the first bad line on. Two things make the copy safe to swap in: it appears whole
or not at all (a full disk must not leave an empty file that would empty the study), and the
trials running at the cut are failed in it, so the study does not wait for their workers, which
are gone by the time the copy is swapped in.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileOpenLock
from optuna.trial import TrialState

from wcd_hpc.errors import StorageError
from wcd_hpc.output.files import atomic
from wcd_hpc.output.masking import stored_text
from wcd_hpc.queue.schema import TRIAL_FAIL_REASON, TRIAL_SUSPENDED
from wcd_hpc.store.journal import CheckedJournalBackend, JournalUnwritable, scan, unwritable


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
    twice cannot destroy the first result. The new file appears whole or not at all (written
    beside it, then renamed): a full disk leaves no partial or empty file that could be taken
    for a salvaged journal. Trials RUNNING at the cut, other than suspended ones (which resume
    from their checkpoints), are failed in the copy with the reason: their workers are to be
    stopped before the swap, and a trial cut before its worker stamped it would otherwise wait
    for a worker that never comes.
    """
    if not path.is_file():
        raise StorageError(f"{path}: no such journal file")
    target = out or default_out(path)
    if target.exists():
        raise StorageError(f"{target}: already exists; choose another --out")
    found = scan(path)
    where = f"line {found.bad_line}: {found.problem}" if not found.ok else ""
    try:
        with atomic(target) as tmp:
            with path.open("rb") as src, tmp.open("wb") as dst:
                remaining = found.good_bytes
                while remaining:
                    chunk = src.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    dst.write(chunk)
                    remaining -= len(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            cut = f" ({where})" if where else ""
            _fail_orphans(tmp, f"running when {path.name} was salvaged{cut}")
            shutil.copymode(path, tmp)
    except JournalUnwritable as exc:
        raise JournalUnwritable(f"{target}: not written: {_cause(exc)}") from exc
    except OSError as exc:
        why = _cause(unwritable(target, exc))
        raise JournalUnwritable(f"{target}: not written: {why}") from exc
    dropped = 0 if found.ok else 1 + found.lines_after
    return Salvaged(path, target, found.good_lines, dropped, where)


def _cause(exc: JournalUnwritable) -> str:
    return str(exc).split(": cannot write to the journal: ", 1)[-1]


def _fail_orphans(journal: Path, reason: str) -> list[int]:
    """Fail the RUNNING, not suspended, trials of every study in ``journal`` with ``reason``."""
    lock = JournalFileOpenLock(str(journal))
    storage = JournalStorage(CheckedJournalBackend(journal, lock))
    failed = []
    for summary in storage.get_all_studies():
        for t in storage.get_all_trials(summary._study_id, states=(TrialState.RUNNING,)):
            if t.user_attrs.get(TRIAL_SUSPENDED):
                continue
            storage.set_trial_user_attr(t._trial_id, TRIAL_FAIL_REASON, stored_text(reason))
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            failed.append(t.number)
    return failed
