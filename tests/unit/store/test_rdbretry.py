"""Lost database connections: retried with backoff, never writing a trial twice, never the password.

The retry logic is exercised on a real sqlite database with a connection loss injected *after* the
write committed (the hardest case: the write happened, its answer did not arrive); the real
PostgreSQL restart is in tests/integration/test_pg_resilience.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy.exc import OperationalError

from wcd_hpc.errors import StorageUnreachable
from wcd_hpc.store import rdb as rdbretry
from wcd_hpc.store.rdb import RetryingRDBStorage, connection_lost

optuna.logging.set_verbosity(optuna.logging.ERROR)
SECRET_URL = "postgresql://wcd:s3cret@db.example:5432/x"


def _lost() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RetryingRDBStorage:
    monkeypatch.setattr(rdbretry, "FIRST_DELAY", 0.01)
    monkeypatch.setattr(rdbretry, "UNREACHABLE", {})
    return RetryingRDBStorage(
        f"sqlite:///{tmp_path / 'db.sqlite'}", masked="postgresql://wcd@db.example:5432/x"
    )


def _fail_after(monkeypatch: pytest.MonkeyPatch, name: str, times: int = 1) -> list[int]:
    """Make RDBStorage.<name> do its work, then report a lost connection ``times`` times."""
    real = getattr(RDBStorage, name)
    calls: list[int] = []

    def flaky(self: RDBStorage, *args: Any, **kwargs: Any) -> Any:
        result = real(self, *args, **kwargs)
        calls.append(1)
        if len(calls) <= times:
            raise optuna.exceptions.StorageInternalError("commit failed") from _lost()
        return result

    monkeypatch.setattr(RDBStorage, name, flaky)
    return calls


def test_a_trial_whose_insert_committed_before_the_connection_dropped_is_not_created_twice(
    storage: RetryingRDBStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = optuna.create_study(study_name="s", storage=storage)
    _fail_after(monkeypatch, "_create_new_trial")
    trial = study.ask()
    study.tell(trial, 1.0)
    trials = study.get_trials()
    assert [t.number for t in trials] == [0]
    assert trials[0].state == TrialState.COMPLETE


def test_telling_a_result_whose_commit_answer_was_lost_succeeds_once(
    storage: RetryingRDBStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    _fail_after(monkeypatch, "set_trial_state_values")
    study.tell(trial, 2.0)
    assert [(t.state, t.value) for t in study.get_trials()] == [(TrialState.COMPLETE, 2.0)]


def test_reads_and_attribute_writes_are_retried_and_logged_once_per_retry_with_masked_url(
    storage: RetryingRDBStorage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    study = optuna.create_study(study_name="s", storage=storage)
    calls = _fail_after(monkeypatch, "_get_trials", times=2)
    with caplog.at_level(logging.WARNING, logger="wcd_hpc.store.storage"):
        assert study.get_trials() == []
    retries = [r.getMessage() for r in caplog.records]
    assert len(calls) == 3 and len(retries) == 2
    assert all("postgresql://wcd@db.example" in line for line in retries)
    assert all("s3cret" not in line and "\n" not in line for line in retries)


def test_retries_give_up_after_the_time_budget(
    storage: RetryingRDBStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rdbretry, "RETRY_SECONDS", 0.05)
    study = optuna.create_study(study_name="s", storage=storage)
    _fail_after(monkeypatch, "_get_trials", times=1000)
    with pytest.raises(StorageUnreachable, match=r"unreachable for 0\.05 s"):
        study.get_trials()


def test_errors_that_are_not_lost_connections_are_raised_at_once(
    storage: RetryingRDBStorage,
) -> None:
    with pytest.raises(KeyError):
        storage.get_study_id_from_name("missing")
    assert not connection_lost(ValueError("x"))
    try:
        raise optuna.exceptions.StorageInternalError("commit failed") from _lost()
    except optuna.exceptions.StorageInternalError as wrapped:
        assert connection_lost(wrapped)
