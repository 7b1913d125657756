"""A storage outage longer than the retry window: one line, no worker left unwatched, nothing lost.

The database is a private PostgreSQL cluster made for the test (initdb in a temporary directory,
its own port), so stopping it for a while disturbs no other test and no other user of the shared
server. The retry window is shortened through ``$WCD_HPC_STORAGE_RETRY_S`` so that the outage
(three windows) takes seconds, not minutes; the default window runs the same code.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest
from conftest import PRIVATE_PG_SECRET, PrivatePostgres
from optuna.trial import TrialState

from wcd_hpc.queue.schema import (
    OUTAGE_FILE,
    TRIAL_CLAIMED,
    TRIAL_RETRY_OF,
    TRIAL_SUSPENDED,
    TRIAL_SUSPENDED_BY,
    trial_dir,
)
from wcd_hpc.store.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.ERROR)
WINDOW_S = 4
OUTAGE_S = 3 * WINDOW_S
TOY = {"WCD_HPC_PLUGINS": "toy", "WCD_HPC_STORAGE_RETRY_S": str(WINDOW_S)}
EXPERIMENT = """\
name: {name}
dataset: {{name: toy-blobs, params: {{events: 1500}}}}
model: toy-mlp
metric: {{name: accuracy}}
trials: {trials}
epochs: 12
pruner: none
storage: {storage}
workers: 2
executor: local
trial_plots: false
"""


def _training(url: str, name: str) -> bool:
    """Whether a trial of the study is mid-training (has reported two epochs, not finished)."""
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(url))
    except Exception:
        return False  # not created yet
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return any(len(t.intermediate_values) >= 2 for t in running)


def _workers_of(name: str) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return [line for line in ps.stdout.splitlines() if f"--study {name}" in line]


@pytest.mark.slow
def test_a_storage_outage_longer_than_the_window_stops_the_sweep_in_one_line_and_loses_nothing(
    cli, testplugins, tmp_path: Path, private_pg: PrivatePostgres
) -> None:
    name = f"outage-{uuid.uuid4().hex[:8]}"
    budget = 3
    exp = tmp_path / "outage.yaml"
    exp.write_text(EXPERIMENT.format(name=name, trials=budget, storage=private_pg.url))
    stopped: list[int] = []

    def outage() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if _training(private_pg.url, name):
                private_pg.stop()
                stopped.append(1)
                time.sleep(OUTAGE_S)
                private_pg.start()
                return
            time.sleep(0.2)

    # The password reaches the sweep as the docs advise, through the environment; never shown.
    # Built before the watcher starts: both import SQLAlchemy, and two threads importing it at
    # once see a partly initialised module (an ImportError when this test runs alone).
    env = {**TOY, "WCD_HPC_STORAGE": private_pg.secret_url}
    thread = threading.Thread(target=outage)
    thread.start()
    res = cli("sweep", str(exp), "--no-sync", plugins=testplugins, env=env)
    thread.join()
    assert stopped, "the database was never stopped"
    errors = [line for line in res.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.err[-3000:]
    assert "unreachable" in errors[0] and "workers stopped" in errors[0], errors[0]
    assert PRIVATE_PG_SECRET not in res.err + res.out
    assert "Traceback" not in res.err
    assert res.code == 69
    assert _workers_of(name) == []

    run_dir = tmp_path / "runs" / name
    study = optuna.load_study(study_name=name, storage=open_storage(private_pg.url))
    held = [t for t in study.get_trials() if t.state in (TrialState.RUNNING, TrialState.FAIL)]
    assert held, "the outage hit no trial: nothing was tested"

    # A trial the outage caught inside Optuna's ask (its row written, the claim not yet
    # stamped) has trained nothing, and no worker knew its number to leave it a note: once the
    # storage is back the reaper fails it as never claimed, and its retry runs it.
    def noted(number: int) -> bool:
        return (trial_dir(run_dir, number) / OUTAGE_FILE).exists()

    unstamped = {
        t.number
        for t in held
        if t.state == TrialState.RUNNING
        and TRIAL_CLAIMED not in t.user_attrs
        and not noted(t.number)
    }
    for t in held:
        if t.number in unstamped:
            assert not t.intermediate_values, t
        elif t.state == TrialState.RUNNING:
            assert t.user_attrs.get(TRIAL_SUSPENDED) or noted(t.number), t.user_attrs
        else:
            assert "unreachable" in t.user_attrs.get("fail_reason", ""), t.user_attrs

    again = cli("sweep", str(exp), "--no-sync", plugins=testplugins, env=TOY)
    assert again.code == 0, again.err[-3000:]
    study = optuna.load_study(study_name=name, storage=open_storage(private_pg.url))
    trials = study.get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == budget
    # Nothing lost: a trial held at the outage finishes itself, or (failed as unreachable when
    # the loss caught it between epochs and the storage, or never claimed) through its retry.
    # Which a trial meets depends on where the outage fell, so each is accepted.
    by_number = {t.number: t for t in trials}
    retried = {t.user_attrs[TRIAL_RETRY_OF]: t for t in trials if TRIAL_RETRY_OF in t.user_attrs}
    for h in held:
        itself = h.state == TrialState.RUNNING and h.number not in unstamped
        done = by_number[h.number] if itself else retried.get(h.number)
        assert done is not None and done.state == TrialState.COMPLETE, (h.number, h.state)
    for number in unstamped:
        assert by_number[number].user_attrs["fail_reason"].startswith("never claimed")
    suspended = [
        by_number[h.number]
        for h in held
        if h.state == TrialState.RUNNING and h.number not in unstamped
    ]
    assert all(TRIAL_SUSPENDED_BY in t.user_attrs for t in suspended)
