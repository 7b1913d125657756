"""Workers as processes: signals, deaths and what the study records about them."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import trials_once_created
from optuna.trial import TrialState

from wcd_hpc.launch.local import reap_dead
from wcd_hpc.store.storage import open_storage

pytestmark = pytest.mark.slow
TOY = {"WCD_HPC_PLUGINS": "toy"}
SLOW = "dataset: {name: toy-blobs, params: {events: 20000}}\n"


def _wait_for_running(journal: Path, name: str, timeout: float = 120) -> optuna.trial.FrozenTrial:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        trials = trials_once_created(journal, name)
        running = [t for t in trials if t.state == TrialState.RUNNING]
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


def _start_sweep(exp: Path, cwd: Path, testplugins: Path, *extra: str) -> subprocess.Popen[str]:
    """A sweep in a process of its own, running while the test signals its workers or cancels
    it (``cancel`` stops the launcher's pid too)."""
    return subprocess.Popen(
        [sys.executable, "-m", "wcd_hpc", "sweep", str(exp), *extra],
        cwd=cwd,
        env=_env(testplugins),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _study(journal: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(f"journal:{journal}"))


def _epochs(tmp_path: Path, name: str, number: int) -> list[int]:
    lines = (tmp_path / f"runs/{name}/trials/{number}/metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines]


def test_sigkilled_worker_is_reaped_its_parameters_retried_and_the_budget_still_met(
    testplugins, toy_experiment, tmp_path
) -> None:
    exp = _slow_experiment(toy_experiment, "killed", trials=2)
    sweep = _start_sweep(exp, tmp_path, testplugins)
    journal = tmp_path / "runs/killed/journal.log"
    victim = _wait_for_running(journal, "killed")
    os.kill(victim.user_attrs["pid"], signal.SIGKILL)
    _, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, err
    trials = _study(journal, "killed").get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.number for t in failed] == [victim.number]
    assert "killed by SIGKILL" in failed[0].user_attrs["fail_reason"]
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 2
    retry = next(t for t in finished if t.user_attrs.get("retry_of") == victim.number)
    assert retry.params == victim.params and retry.user_attrs["retry"] == 1


@pytest.mark.parametrize("sig", [signal.SIGUSR2, signal.SIGTERM])
def test_a_signalled_worker_suspends_and_its_trial_resumes_from_the_checkpoint(
    testplugins, toy_experiment, tmp_path, sig
) -> None:
    exp = _slow_experiment(toy_experiment, "paused", trials=1)
    exp.write_text(exp.read_text().replace("epochs: 3\n", "epochs: 5\n"))
    sweep = _start_sweep(exp, tmp_path, testplugins)
    journal = tmp_path / "runs/paused/journal.log"
    victim = _wait_for_running(journal, "paused")
    os.kill(victim.user_attrs["pid"], sig)
    _, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, err
    trials = _study(journal, "paused").get_trials()
    assert len(trials) == 1  # the same trial, not a new one
    trial = trials[0]
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs["resumed_from_epoch"] >= victim.last_step
    assert trial.user_attrs["pid"] != victim.user_attrs["pid"]
    assert _epochs(tmp_path, "paused", 0) == [1, 2, 3, 4, 5]  # no gap, no repeat
    assert sorted(trial.intermediate_values) == [1, 2, 3, 4, 5]
    assert f"suspended by {sig.name}" in (tmp_path / "runs/paused/logs/worker-0.log").read_text()


def test_a_dead_workers_trial_is_reaped_by_a_live_peer_via_its_stale_heartbeat(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    exp = _slow_experiment(toy_experiment, "stale", trials=3)
    short = {**TOY, "WCD_HPC_HEARTBEAT_S": "2"}  # stored in the study by render
    assert cli("render", str(exp), "--out", "scripts", plugins=testplugins, env=short).code == 0
    journal = tmp_path / "runs/stale/journal.log"
    env = {**_env(testplugins), "WCD_HPC_STORAGE": f"journal:{journal}"}
    doomed = subprocess.Popen(  # a process: it is killed mid-trial
        [sys.executable, "-m", "wcd_hpc", "worker", "--study", "stale", "--worker-id", "doomed"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    victim = _wait_for_running(journal, "stale")
    doomed.kill()  # SIGKILL: no launcher watches it, only the heartbeats tell
    doomed.wait()
    storage = {**TOY, "WCD_HPC_STORAGE": f"journal:{journal}"}
    peer = cli(
        "worker", "--study", "stale", "--worker-id", "peer", plugins=testplugins, env=storage
    )
    assert peer.code == 0, peer.err
    trials = _study(journal, "stale").get_trials()
    dead = trials[victim.number]
    assert dead.state == TrialState.FAIL
    assert dead.user_attrs["fail_reason"].startswith("heartbeat stale for ")
    assert "worker doomed" in dead.user_attrs["fail_reason"]
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 3
    assert [t.params for t in finished].count(victim.params) == 1


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
    retry = max(states)  # the dead worker's parameters, enqueued again
    assert states == {
        mine.number: TrialState.FAIL,
        other.number: TrialState.RUNNING,
        retry: TrialState.WAITING,
    }
    assert (
        study.trials[mine.number].user_attrs["fail_reason"]
        == "worker process 4242 died (killed by SIGKILL)"
    )


def test_cancel_stops_local_workers_and_retry_reenqueues_the_failed_trials(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    exp = _slow_experiment(toy_experiment, "stopped", trials=3)
    exp.write_text(exp.read_text().replace("epochs: 3\n", "epochs: 30\n"))  # still running
    sweep = _start_sweep(exp, tmp_path, testplugins)
    journal = tmp_path / "runs/stopped/journal.log"
    victim = _wait_for_running(journal, "stopped")
    res = cli("cancel", "stopped", plugins=testplugins, env=TOY)
    assert res.code == 0, res.err
    assert "local workers stopped: 1" in res.out and "running trials marked failed: 1" in res.out
    sweep.communicate(timeout=120)
    assert sweep.returncode == 130  # the launcher stopped too, and started no replacement
    trials = _study(journal, "stopped").get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL]
    assert trials[victim.number].user_attrs["fail_reason"] == "cancelled by wcd-hpc cancel"
    again = cli("retry", "stopped", plugins=testplugins, env=TOY)
    assert again.code == 0 and f"re-enqueued 1 failed trial(s): {victim.number}" in again.out
    assert cli("retry", "stopped", plugins=testplugins, env=TOY).out.startswith("re-enqueued 0")
    waiting = [t for t in _study(journal, "stopped").get_trials() if t.state == TrialState.WAITING]
    assert [t.user_attrs["retry_of"] for t in waiting] == [victim.number]


def test_a_worker_that_wakes_after_its_trial_was_reaped_says_so_in_one_line_and_goes_on(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    exp = _slow_experiment(toy_experiment, "woke", trials=1)
    exp.write_text(exp.read_text().replace("epochs: 3\n", "epochs: 2\n"))
    short = {**TOY, "WCD_HPC_HEARTBEAT_S": "2"}  # stored in the study by render
    assert cli("render", str(exp), "--out", "scripts", plugins=testplugins, env=short).code == 0
    journal = tmp_path / "runs/woke/journal.log"
    env = {**_env(testplugins), "WCD_HPC_STORAGE": f"journal:{journal}"}
    log = (tmp_path / "worker.log").open("w")
    sleeper = subprocess.Popen(  # a process: it is stopped and woken by signals
        [sys.executable, "-m", "wcd_hpc", "worker", "--study", "woke"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        victim = _wait_for_running(journal, "woke")
        sleeper.send_signal(signal.SIGSTOP)  # a laptop lid closed, a node frozen
        time.sleep(4)  # past the 3 s a heartbeat of 2 s may go stale
        reaped = cli("status", "woke", plugins=testplugins, env=short)
        assert reaped.code == 0 and "heartbeat stale" in reaped.out, reaped.out + reaped.err
    finally:
        sleeper.send_signal(signal.SIGCONT)
    assert sleeper.wait(timeout=300) == 0  # it went on with the re-enqueued parameters
    text = (tmp_path / "worker.log").read_text()
    assert "Traceback" not in text and "UpdateFinishedTrialError" not in text, text
    dropped = [line for line in text.splitlines() if "finished by another process" in line]
    assert len(dropped) == 1 and f"trial {victim.number} " in dropped[0], text
    assert "heartbeat stale" in dropped[0]
    trials = _study(journal, "woke").get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].user_attrs["retry_of"] == victim.number


def test_cancel_counts_the_local_workers_it_stopped_and_its_retry_hint_finds_the_study(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    # Workers that are still loading their data hold no trial: cancel stopped them all the same
    # and said "local workers stopped: 0". Its retry hint lacked the --runs-dir it was given.
    exp = _slow_experiment(toy_experiment, "early", trials=2)
    exp.write_text(exp.read_text().replace("workers: 1\n", "workers: 2\n"))
    runs = tmp_path / "elsewhere"
    sweep = _start_sweep(exp, tmp_path, testplugins, "--runs-dir", str(runs))
    logs = runs / "early/logs"
    deadline = time.monotonic() + 120
    while len(list(logs.glob("worker-*.log"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)  # both spawned and recorded; still importing torch, no trial claimed
    res = cli("cancel", "early", "--runs-dir", str(runs), plugins=testplugins, env=TOY)
    sweep.communicate(timeout=120)
    assert res.code == 0, res.err
    assert "local workers stopped: 2" in res.out, res.out
    hint = res.out.split("retry the failed ones: ", 1)[1].strip().rstrip(")")
    assert shlex.split(hint) == ["wcd-hpc", "retry", "early", "--runs-dir", str(runs)]
    assert cli(*shlex.split(hint)[1:], plugins=testplugins, env=TOY).code == 0
