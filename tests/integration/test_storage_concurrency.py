"""32 concurrent workers on one study: exactly the budget, no lost or duplicate trials, no damage.

Honest scope: starting 32 ``wcd-hpc worker`` processes (each importing torch) does not fit a
2-core CI machine, so the "workers" here are 32 threads, each with its own storage object (own
journal reader, own connection pool), doing exactly what a worker's claim does: count finished plus
running trials under ``claim_lock``, ask, then tell a trivial result. The real worker loop around
that claim is covered by the sweep tests with fewer workers.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from wcd_hpc.store.journal import check_journal
from wcd_hpc.store.storage import claim_lock, open_storage

optuna.logging.set_verbosity(optuna.logging.ERROR)
WORKERS = 32
BUDGET = 96


def _work(url: str, name: str, numbers: list[int], errors: list[BaseException]) -> None:
    try:
        study = optuna.load_study(
            study_name=name, storage=open_storage(url), sampler=optuna.samplers.RandomSampler()
        )
        while True:
            with claim_lock(url, study._storage, name):
                trials = study.get_trials(deepcopy=False)
                busy = sum(t.state in (TrialState.COMPLETE, TrialState.RUNNING) for t in trials)
                if busy >= BUDGET:
                    return
                trial = study.ask()
            x = trial.suggest_float("x", 0.0, 1.0)
            study.tell(trial, x)
            numbers.append(trial.number)
    except BaseException as exc:  # reported by the test, not lost in a thread
        errors.append(exc)


def _sweep(url: str, name: str) -> list[int]:
    optuna.create_study(study_name=name, storage=open_storage(url))
    numbers: list[int] = []
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_work, args=(url, name, numbers, errors)) for _ in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]
    return numbers


def _check(url: str, name: str, numbers: list[int]) -> None:
    trials = optuna.load_study(study_name=name, storage=open_storage(url)).get_trials()
    assert sorted(numbers) == list(range(BUDGET))  # each trial told by exactly one worker
    assert len(trials) == BUDGET
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.params["x"] for t in trials}) == BUDGET


@pytest.mark.slow
def test_32_workers_on_a_journal_file_meet_the_budget_exactly(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    url = f"journal:{path}"
    numbers = _sweep(url, "s")
    _check(url, "s", numbers)
    check_journal(path)
    assert not list(tmp_path.glob("*.lock"))  # every lock released


@pytest.mark.slow
def test_32_workers_on_postgresql_meet_the_budget_exactly(pg_url: str) -> None:
    name = f"c32-{uuid.uuid4().hex[:12]}"
    numbers = _sweep(pg_url, name)
    _check(pg_url, name, numbers)
