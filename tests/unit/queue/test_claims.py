"""Claiming trials from the queue: the budget is exact even when the claim lock is lost."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from wcd_hpc.queue import claims
from wcd_hpc.queue.opened import OpenedStudy
from wcd_hpc.store.storage import Storage, open_storage

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _study(url: str) -> optuna.Study:
    study = optuna.load_study(study_name="s", storage=open_storage(url))
    return study


def _opened(study: optuna.Study, url: str) -> OpenedStudy:
    return OpenedStudy(study, Storage.parse(url), Path(url.removeprefix("journal:")).parent)


def test_two_claims_racing_without_the_lock_leave_exactly_the_budget_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a PostgreSQL restart does to the advisory lock: both workers count the trials as if
    # alone. Worker B claims while worker A is between counting and starting its trial.
    url = f"journal:{tmp_path / 'journal.log'}"
    created = optuna.create_study(study_name="s", storage=open_storage(url))
    created.set_user_attr("budget", 1)
    a, b = _study(url), _study(url)
    monkeypatch.setattr(OpenedStudy, "lock", lambda self: contextlib.nullcontext())
    real_ask = optuna.Study.ask
    raced: list[Any] = []

    def ask(self: optuna.Study, *args: Any, **kwargs: Any) -> optuna.Trial:
        if self is a and not raced:
            raced.append(
                claims.claim(_opened(b, url), "worker-b")
            )  # B counts before A's trial exists
        return real_ask(self, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "ask", ask)
    mine = claims.claim(_opened(a, url), "worker-a")
    assert raced[0] is not None and mine is None  # the later trial gives way
    trials = _study(url).get_trials()
    assert [t.state for t in trials] == [TrialState.RUNNING, TrialState.FAIL]
    assert trials[1].user_attrs["fail_reason"] == claims.OVER_BUDGET


def test_a_claim_within_the_budget_records_who_took_it(tmp_path: Path) -> None:
    url = f"journal:{tmp_path / 'journal.log'}"
    created = optuna.create_study(study_name="s", storage=open_storage(url))
    created.set_user_attr("budget", 1)
    study = _study(url)
    claimed = claims.claim(_opened(study, url), "w")
    assert claimed is not None and claimed[1] is False
    attrs = _study(url).trials[0].user_attrs
    assert attrs["worker"] == "w" and attrs["pid"] > 0 and attrs["pid_start"] is not None
    assert claims.claim(_opened(study, url), "w") is None  # the budget is taken
