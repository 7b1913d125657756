"""``cancel`` signals only processes proven to be the study's own, never a reused pid."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import optuna
import pytest

from wcd_hpc.queue import processes
from wcd_hpc.queue.opened import OpenedStudy
from wcd_hpc.store.storage import Storage, open_storage

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


def _fake_proc(root: Path, self_pid: int, *pids: int) -> Path:
    """A /proc with the real stat of ``pids`` and boot id, whose ``self`` names ``self_pid``."""
    proc = root / "proc"
    boot = "sys/kernel/random/boot_id"
    (proc / boot).parent.mkdir(parents=True)
    (proc / boot).write_text((Path("/proc") / boot).read_text())
    for pid in pids:
        (proc / str(pid)).mkdir()
        (proc / str(pid) / "stat").write_text(Path(f"/proc/{pid}/stat").read_text())
    (proc / "self").symlink_to(str(self_pid))
    return proc


def test_cancel_signals_nothing_when_proc_is_another_pid_namespaces(
    tmp_path, bystander, monkeypatch
) -> None:
    """A sweep in a PID namespace without its own /proc: /proc/<pid> is a host process."""
    from wcd_hpc.queue import control

    study, journal = _study(tmp_path)
    # Seen through the host's /proc, the bystander's pid and start time look like a record.
    trial = study.ask()
    for key, value in processes.record(bystander.pid).items():
        trial.set_user_attr(key, value)
    foreign = _fake_proc(tmp_path, os.getpid() + 100_000, bystander.pid)
    monkeypatch.setattr(processes, "PROC", foreign, raising=False)
    where = Storage.parse(f"journal:{journal}")
    result = control.cancel(OpenedStudy(study, where, journal.parent))
    assert bystander.poll() is None  # not signalled
    assert result.local_pids == [] and result.unverified == [bystander.pid]
    assert "PID namespace" in result.why_unverified


def test_a_record_taken_where_proc_is_another_namespaces_says_so_and_never_matches(
    tmp_path, bystander
) -> None:
    foreign = _fake_proc(tmp_path, os.getpid() + 100_000, bystander.pid, os.getpid())
    rec = processes.record(bystander.pid, proc=foreign)
    assert rec["pid_start"] is None
    assert "PID namespace" in rec["pid_unverified"]
    assert not processes.is_running(rec, proc=foreign)
    genuine = processes.record(bystander.pid)  # taken where /proc is this namespace's
    assert processes.is_running(genuine)
    assert not processes.is_running(genuine, proc=foreign)  # read where it is not


def test_a_proc_of_this_namespace_is_trusted(tmp_path, bystander) -> None:
    own = _fake_proc(tmp_path, os.getpid(), bystander.pid)
    rec = processes.record(bystander.pid, proc=own)
    assert "pid_unverified" not in rec and rec["pid_start"] is not None
    assert processes.is_running(rec, proc=own)


def test_a_zombie_has_exited_and_a_live_process_has_not() -> None:
    child = subprocess.Popen(["sleep", "300"])
    try:
        assert not processes.has_exited(child.pid)
        child.terminate()
        deadline = time.monotonic() + 10  # until the kernel marks it a zombie (not yet reaped)
        while not processes.has_exited(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes.has_exited(child.pid)
    finally:
        child.wait()
    assert processes.has_exited(child.pid)  # reaped: gone
