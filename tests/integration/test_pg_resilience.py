"""PostgreSQL at scale: schema made by ``sweep``, and a database restart mid-sweep loses nothing.

The restart is done to a private server (``private_pg``), never to the shared one.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
from conftest import PRIVATE_PG_SECRET, PrivatePostgres
from optuna.trial import TrialState

from wcd_hpc.store.storage import open_storage

TOY = {"WCD_HPC_PLUGINS": "toy"}
SCHEMA_WORDS = ("CREATE ", "ALTER ", "DROP ")


def test_a_worker_opening_a_prepared_database_does_no_schema_work(pg_url: str) -> None:
    name = f"schema-{uuid.uuid4().hex[:12]}"
    optuna.create_study(study_name=name, storage=open_storage(pg_url))  # what sweep does
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement)

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", record)
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(pg_url))  # a worker
        study.tell(study.ask(), 1.0)
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", record)
    assert statements, "the listener saw no statements at all"
    ddl = [s for s in statements if s.lstrip().upper().startswith(SCHEMA_WORDS)]
    assert ddl == []


def test_a_worker_keeps_one_connection_and_never_opens_more_than_three(pg_url: str) -> None:
    storage = open_storage(pg_url)
    pool = storage.engine.pool  # type: ignore[attr-defined]
    assert (pool.size(), pool._max_overflow) == (1, 2)


def _finished(url: str, name: str) -> int:
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(url))
        return sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
    except Exception:
        return -1  # not created yet, or the database is restarting


@pytest.mark.slow
def test_a_postgresql_restart_mid_sweep_loses_and_duplicates_nothing(
    cli, testplugins, toy_experiment, tmp_path: Path, private_pg: PrivatePostgres
) -> None:
    pg_url = private_pg.url  # a server of the test's own: the restart disturbs nobody else
    name = f"restart-{uuid.uuid4().hex[:12]}"
    budget = 16
    exp = toy_experiment(name=name, trials=budget, workers=2, storage=pg_url)
    restarted_at: list[int] = []

    def chaos() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            done = _finished(pg_url, name)
            if done >= 3:
                private_pg.stop()
                private_pg.start()
                restarted_at.append(done)
                return
            time.sleep(0.2)

    thread = threading.Thread(target=chaos)
    thread.start()
    res = cli("sweep", str(exp), plugins=testplugins, env=TOY)
    thread.join()
    assert res.code == 0, res.err[-2000:]
    assert restarted_at and restarted_at[0] < budget, "the restart did not happen mid-sweep"
    study = optuna.load_study(study_name=name, storage=open_storage(pg_url))
    complete = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(complete) == budget
    params = [json.dumps(t.params, sort_keys=True) for t in complete]
    assert len(set(params)) == budget
    logs = res.out + res.err
    logs += "".join(p.read_text() for p in (tmp_path / f"runs/{name}/logs").iterdir())
    assert PRIVATE_PG_SECRET not in logs
