"""``cancel`` signals only processes proven to be the study's own, never a reused pid."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import optuna
import pytest

from wcd_hpc.queue import processes
from wcd_hpc.queue.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture
def bystander():
    """An unrelated process of the user, standing in for one that got a recorded pid."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


def _study(tmp_path: Path) -> tuple[optuna.Study, Path]:
    journal = tmp_path / "runs" / "stale" / "journal.log"
    journal.parent.mkdir(parents=True)
    study = optuna.create_study(study_name="stale", storage=open_storage(f"journal:{journal}"))
    study.set_user_attr("experiment", {})
    study.set_user_attr("budget", 2)
    return study, journal


def test_cancel_never_signals_a_recorded_pid_now_used_by_another_process(
    cli, tmp_path, bystander
) -> None:
    study, _ = _study(tmp_path)
    # A suspended trial whose worker exited long ago; its pid now belongs to the bystander.
    # The record is of the old process: the same host and pid, another start time.
    old = {**processes.record(bystander.pid), "pid_start": 1}
    trial = study.ask()
    for key, value in old.items():
        trial.set_user_attr(key, value)
    trial.set_user_attr("suspended", True)
    # And a local sweep that ended without clearing its record (an older wcd-hpc).
    study.set_user_attr("local_sweep", {"host": socket.gethostname(), "pid": bystander.pid})

    res = cli("cancel", "stale", "--runs-dir", "runs")
    assert res.code == 0, res.err
    assert "local workers stopped: 0" in res.out
    assert bystander.poll() is None  # still running: nothing of ours was there to stop
    reloaded = optuna.load_study(study_name="stale", storage=study._storage)
    assert not reloaded.user_attrs["local_sweep"]  # the stale record is cleared


def test_a_record_matches_only_the_very_process_it_was_taken_of(bystander) -> None:
    rec = processes.record(bystander.pid)
    assert processes.is_running(rec)
    assert not processes.is_running({**rec, "pid_start": rec["pid_start"] + 1})
    assert not processes.is_running({**rec, "boot_id": "another-boot"})
    assert not processes.is_running({**rec, "host": "another-host"})
    assert not processes.is_running({"host": rec["host"], "pid": bystander.pid})  # no proof
