"""Listing studies (``wcd-hpc studies``): read-only, whatever the storage.

Apart from the study-as-queue module because a listing must never create, reap or repair
anything; it reads the same budget and counts that :mod:`wcd_hpc.queue.study` defines.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileOpenLock
from optuna.trial import TrialState

from wcd_hpc.errors import StorageError, StudyNotFound
from wcd_hpc.queue.schema import (
    JOURNAL_FILE,
    STUDY_BUDGET,
    STUDY_EXPERIMENT,
    STUDY_METRIC,
    STUDY_RUN_DIR,
)
from wcd_hpc.queue.study import counts, finalists_left, finished, run_dir_of
from wcd_hpc.store.journal import CheckedJournalBackend, scan
from wcd_hpc.store.storage import Storage, chosen_storage

__all__ = ["StudyList", "StudyRow", "list_studies"]


@dataclass(frozen=True)
class StudyRow:
    """One study as a listing shows it: counts as recorded, nothing reaped or changed.

    ``state`` is ``done`` (the budget is met), ``running`` (a trial is recorded RUNNING; ``status
    NAME`` reaps one whose worker is gone), ``stopped`` (trials finished but fewer than the
    budget, none running), ``not started`` (no trial yet, as after ``render``) or ``foreign``
    (a study without a wcd-hpc budget, e.g. made by Optuna directly in a shared database).
    """

    name: str
    storage: str  # masked
    state: str
    budget: int | None
    finished: int
    complete: int
    pruned: int
    failed: int
    running: int
    best_value: float | None
    metric: str | None
    direction: str | None
    run_dir: Path | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``studies --json``): the fields by name, the run dir as text."""
        return {**asdict(self), STUDY_RUN_DIR: None if self.run_dir is None else str(self.run_dir)}


@dataclass(frozen=True)
class StudyList:
    """The studies found, and one line per journal that could not be read (none are fixed)."""

    where: str
    studies: list[StudyRow]
    damaged: list[str]


def list_studies(runs_dir: Path, given: Storage | None = None) -> StudyList:
    """Every study in ``given`` (the command's, else ``$WCD_HPC_STORAGE``), else in the journals
    ``runs_dir/*/journal.log``.

    Nothing is written, created or repaired: a missing runs directory lists nothing, a damaged
    journal is reported and skipped (``journal salvage`` is the user's call, not a listing's),
    and a file-backed storage that does not exist is :class:`StudyNotFound`, never a new file.
    """
    parsed = given or chosen_storage(None)
    if parsed is None:
        journals = sorted(runs_dir.glob(f"*/{JOURNAL_FILE}")) if runs_dir.is_dir() else []
        rows: list[StudyRow] = []
        damaged: list[str] = []
        for journal in journals:
            found, problem = _journal_rows(journal)
            rows += found
            damaged += [problem] if problem else []
        return StudyList(str(runs_dir), rows, damaged)
    path = parsed.path
    if path is not None and not path.is_file():
        raise StudyNotFound(f"no studies: {path} does not exist")
    if parsed.kind == "journal" and path is not None:
        found, problem = _journal_rows(path)
        return StudyList(parsed.masked, found, [problem] if problem else [])
    return StudyList(parsed.masked, _rows(parsed.open(), parsed), [])


def _journal_rows(path: Path) -> tuple[list[StudyRow], str | None]:
    """The studies of one journal, or why it cannot be read; the file is only read.

    Not :func:`~wcd_hpc.store.storage.open_storage`: that checks a damaged tail under the
    journal's lock, which creates a lock file, and a listing must leave the runs directory as
    it found it.
    """
    try:
        found = scan(path)
        if not found.ok:
            return [], found.message()
        backend = CheckedJournalBackend(path, JournalFileOpenLock(str(path)))
        return _rows(JournalStorage(backend), Storage.parse(f"journal:{path.resolve()}")), None
    except (StorageError, OSError, ValueError) as exc:
        return [], f"{path}: cannot read the journal: {exc}"


def _rows(storage: BaseStorage, where: Storage) -> list[StudyRow]:
    rows = []
    for frozen in sorted(storage.get_all_studies(), key=lambda s: s.study_name):
        study = optuna.load_study(study_name=frozen.study_name, storage=storage)
        rows.append(_row(study, where))
    return rows


def _row(study: optuna.Study, where: Storage) -> StudyRow:
    trials = study.get_trials(deepcopy=False)
    tally = counts(trials)
    done = finished(trials)
    attrs = study.user_attrs
    budget = int(attrs[STUDY_BUDGET]) if STUDY_BUDGET in attrs else None
    stored = attrs.get(STUDY_EXPERIMENT)
    metric = attrs.get(STUDY_METRIC) or (stored.get("metric") if isinstance(stored, dict) else None)
    direction = best = None
    if len(study.directions) == 1:
        direction = study.direction.name.lower()
        values = [t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        pick = min if direction == "minimize" else max
        best = pick(values) if values else None
    try:
        run_dir: Path | None = run_dir_of(study, where)
    except StorageError:
        run_dir = None
    if budget is None:
        state = "foreign"
    elif done >= budget and not finalists_left(study, trials):
        state = "done"
    elif tally["RUNNING"]:
        state = "running"
    else:
        state = "stopped" if done or tally["FAIL"] else "not started"
    return StudyRow(
        name=study.study_name,
        storage=where.masked,
        state=state,
        budget=budget,
        finished=done,
        complete=tally["COMPLETE"],
        pruned=tally["PRUNED"],
        failed=tally["FAIL"],
        running=tally["RUNNING"],
        best_value=best,
        metric=None if metric is None else str(metric),
        direction=direction,
        run_dir=run_dir,
    )
