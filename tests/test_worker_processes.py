"""Workers as processes: signals, deaths and what the study records about them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from wcd_hpc.launch.local import reap_dead
from wcd_hpc.storage import open_storage

pytestmark = pytest.mark.slow
TOY = {"WCD_HPC_PLUGINS": "toy"}
SLOW = "dataset: {name: toy-blobs, params: {events: 20000}}\n"


def _wait_for_running(journal: Path, name: str, timeout: float = 120) -> optuna.trial.FrozenTrial:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal.exists():
            study = optuna.load_study(study_name=name, storage=open_storage(f"journal:{journal}"))
            running = study.get_trials(states=(TrialState.RUNNING,))
            if running and "pid" in running[0].user_attrs and running[0].last_step is not None:
                return running[0]
        time.sleep(0.2)
    raise AssertionError("no trial started running")


def _env(testplugins: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WCD_HPC_")}
    return {**env, **TOY, "PYTHONPATH": str(testplugins)}


def _slow_experiment(toy_experiment, name: str, trials: int) -> Path:
    """A toy experiment whose trials last seconds, long enough to be hit mid-training."""
    exp = toy_experiment(name=name, trials=trials)
    text = exp.read_text().replace("dataset: {name: toy-blobs, params: {events: 300}}\n", SLOW)
    exp.write_text(text.replace("epochs: 2\n", "epochs: 3\n"))
    return exp


def _start_sweep(exp: Path, cwd: Path, testplugins: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "wcd_hpc", "sweep", str(exp)],
        cwd=cwd,
        env=_env(testplugins),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkilled_worker_is_reaped_replaced_and_the_budget_still_met(
    testplugins, toy_experiment, tmp_path
) -> None:
    exp = _slow_experiment(toy_experiment, "killed", trials=2)
    sweep = _start_sweep(exp, tmp_path, testplugins)
    journal = tmp_path / "runs/killed/journal.log"
    victim = _wait_for_running(journal, "killed")
    os.kill(victim.user_attrs["pid"], signal.SIGKILL)
    _, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, err
    study = optuna.load_study(study_name="killed", storage=open_storage(f"journal:{journal}"))
    trials = study.get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.number for t in failed] == [victim.number]
    assert "killed by SIGKILL" in failed[0].user_attrs["fail_reason"]
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 2


def test_sigterm_stops_a_worker_and_marks_its_trial_failed_with_the_cause(
    testplugins, toy_experiment, tmp_path
) -> None:
    exp = _slow_experiment(toy_experiment, "termed", trials=3)
    sweep = _start_sweep(exp, tmp_path, testplugins)
    journal = tmp_path / "runs/termed/journal.log"
    victim = _wait_for_running(journal, "termed")
    os.kill(victim.user_attrs["pid"], signal.SIGTERM)
    _, err = sweep.communicate(timeout=300)
    # A worker stopped on purpose is not restarted, so the sweep reports the shortfall.
    assert sweep.returncode == 1
    assert "error: sweep ended with 0 of 3 trials finished" in err
    study = optuna.load_study(study_name="termed", storage=open_storage(f"journal:{journal}"))
    trial = study.trials[victim.number]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["fail_reason"] == "worker local-0 stopped by SIGTERM"
    log = (tmp_path / "runs/termed/logs/worker-0.log").read_text()
    assert "stopped by SIGTERM" in log


def test_reap_dead_only_touches_the_dead_workers_trials(tmp_path) -> None:
    storage = open_storage(f"journal:{tmp_path / 'j.log'}")
    study = optuna.create_study(study_name="s", storage=storage)
    mine, other = study.ask(), study.ask()
    mine.set_user_attr("pid", 4242)
    mine.set_user_attr("host", socket.gethostname())
    other.set_user_attr("pid", 4343)
    other.set_user_attr("host", socket.gethostname())
    assert reap_dead(study, 4242, -9) == [mine.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {mine.number: TrialState.FAIL, other.number: TrialState.RUNNING}
    assert (
        study.trials[mine.number].user_attrs["fail_reason"]
        == "worker process 4242 died (killed by SIGKILL)"
    )
