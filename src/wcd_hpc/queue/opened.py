"""The handle every queue operation takes: an opened study, its parsed storage, its run directory.

A study used to travel as two values, the ``optuna.Study`` and the storage URL it came from, and
every claim, reap, heartbeat, cancel and retry re-derived the storage's family from the URL to
find its claim lock, while the run directory (where outage notes and Slurm logs are) was passed
as a third, optional value. One frozen value holds all three: the URL is parsed once per process
(:class:`~wcd_hpc.store.storage.Storage`), and nothing in ``queue`` outside the storage layer
takes a URL string. It is built by :func:`wcd_hpc.queue.study.open_existing` (commands) and
:func:`wcd_hpc.queue.study.open_study` (workers).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import optuna

from wcd_hpc.store.storage import Storage


@dataclass(frozen=True)
class OpenedStudy:
    """An existing study, the storage it was opened from, and where its trial files are."""

    study: optuna.Study
    storage: Storage
    run_dir: Path

    @property
    def name(self) -> str:
        return self.study.study_name

    def lock(self) -> AbstractContextManager[None]:
        """The claim lock: "count the trials, then start one" runs under it in every worker."""
        return self.storage.lock(self.study._storage, self.study.study_name)
