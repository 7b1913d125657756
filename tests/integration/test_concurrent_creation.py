"""Two ``sweep``s creating the same new study at the same moment: one creates it, the other
joins it, and the budget is the one both asked for; on an empty PostgreSQL database the schema
is created once.

The race is made certain rather than hoped for: the first creator is held up half-way through
writing the study (after creating it, or after its experiment but before its budget) while the
second one starts.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
from conftest import need

from wcd_hpc.experiment.config import Experiment
from wcd_hpc.experiment.space import Space
from wcd_hpc.launch import sweep
from wcd_hpc.queue import study as studies
from wcd_hpc.store.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.ERROR)
ADMIN = os.environ.get("WCD_HPC_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _plan(tmp_path: Path, name: str, url: str, trials: int = 5) -> sweep.Plan:
    exp = Experiment(
        name=name, dataset="x", dataset_params={}, model="mlp", metric="accuracy",
        direction="maximize", trials=trials, epochs=1, param_space={}, storage=url,
    )  # fmt: skip
    space = Space.from_mapping({"lr": "loguniform(1e-3, 1e-1)"})
    return sweep.Plan(exp, space, tmp_path / "runs" / name, url)


def _race(monkeypatch, pause_in: str, plans: list[sweep.Plan]) -> list[Any]:
    """``start`` the plans in threads; the first one pauses in ``studies.<pause_in>`` until the
    second has started. Returns what each returned or raised."""
    original: Callable[..., Any] = getattr(studies, pause_in)
    paused = threading.Event()

    def held(*args: Any, **kwargs: Any) -> Any:
        if not paused.is_set():
            paused.set()
            time.sleep(1.0)  # the second sweep runs into the half-written study meanwhile
        return original(*args, **kwargs)

    monkeypatch.setattr(studies, pause_in, held)
    results: list[Any] = [None] * len(plans)

    def run(i: int) -> None:
        try:
            results[i] = sweep.start(plans[i])[1]
        except Exception as exc:  # reported by the test, not lost in a thread
            results[i] = exc

    first = threading.Thread(target=run, args=(0,))
    first.start()
    assert paused.wait(30)
    others = [threading.Thread(target=run, args=(i,)) for i in range(1, len(plans))]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(60)
    return results


def _one_created_the_other_joined(results: list[Any], url: str, name: str) -> None:
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, repr(errors[0])
    assert sorted(r.created for r in results) == [False, True]
    assert all(r.budget == 5 and r.previous_budget in (None, 5) for r in results)
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    assert studies.budget_of(study) == 5
    assert studies.experiment_of(study).name == name


@pytest.mark.parametrize("pause_in", ["stored_experiment", "_name_for_people"])
def test_two_sweeps_creating_one_journal_study_at_once_one_creates_the_other_joins(
    tmp_path, monkeypatch, pause_in
) -> None:
    # Paused before the experiment is written, the loser saw a study "not created by wcd-hpc";
    # paused before the budget, it failed with KeyError: 'budget'.
    url = f"journal:{tmp_path / 'runs/twin/journal.log'}"
    results = _race(monkeypatch, pause_in, [_plan(tmp_path, "twin", url) for _ in range(2)])
    _one_created_the_other_joined(results, url, "twin")


def test_a_study_left_half_created_by_a_killed_sweep_is_finished_by_the_next(tmp_path) -> None:
    url = f"journal:{tmp_path / 'runs/half/journal.log'}"
    optuna.create_study(study_name="half", storage=open_storage(url), direction="maximize")
    prepared = sweep.start(_plan(tmp_path, "half", url))[1]
    assert prepared.created
    study = optuna.load_study(study_name="half", storage=open_storage(url))
    assert studies.budget_of(study) == 5


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (dropped afterwards); its URL."""
    try:
        admin = sqlalchemy.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except Exception as exc:
        need("PostgreSQL", f"{type(exc).__name__} at {ADMIN} (set WCD_HPC_TEST_PG_ADMIN)")
    name = f"wcd_empty_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield str(sqlalchemy.make_url(ADMIN).set(database=name).render_as_string(False))
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_two_sweeps_on_an_empty_postgresql_database_create_its_schema_and_study_once(
    tmp_path, monkeypatch, empty_database
) -> None:
    # Optuna writes its version row after creating the tables; holding every opener there
    # made all but one fail with an IntegrityError on a database nobody had used yet.
    from optuna.storages._rdb import storage as rdb

    original = rdb._VersionManager._init_version_info_model

    def slow(self: Any) -> None:
        time.sleep(0.5)
        original(self)

    monkeypatch.setattr(rdb._VersionManager, "_init_version_info_model", slow)
    url = empty_database
    plans = [_plan(tmp_path, "twin", url) for _ in range(2)]
    results: list[Any] = [None, None]

    def run(i: int) -> None:
        try:
            results[i] = sweep.start(plans[i])[1]
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    _one_created_the_other_joined(results, url, "twin")
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text("SELECT count(*) FROM version_info")).scalar()
    engine.dispose()
    assert rows == 1


def test_two_sweeps_creating_one_postgresql_study_at_once_one_creates_the_other_joins(
    tmp_path, monkeypatch, empty_database
) -> None:
    open_storage(empty_database)  # the schema exists: only the study is raced for
    plans = [_plan(tmp_path, "twin", empty_database) for _ in range(2)]
    results = _race(monkeypatch, "_name_for_people", plans)
    _one_created_the_other_joined(results, empty_database, "twin")
