"""A journal that cannot be written says why in one line and stays valid; salvage writes whole.

The full disk is the small tmpfs of tests/test_full_disk.py (root only: skipped outside CI
without it, a failure in CI).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from test_full_disk import fill
from test_full_disk import small_disk as small_disk  # the fixture

from wcd_hpc.queue.salvage import salvage
from wcd_hpc.store import journal
from wcd_hpc.store.journal import JournalUnwritable, scan
from wcd_hpc.store.storage import claim_lock, open_storage

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _study(where: Path, trials: int = 2) -> tuple[optuna.Study, Path]:
    path = where / "journal.log"
    study = optuna.create_study(study_name="s", storage=open_storage(f"journal:{path}"))
    for _ in range(trials):
        study.tell(study.ask(), 1.0)
    return study, path


def test_a_full_disk_under_a_journal_is_named_as_such_and_leaves_the_journal_valid(
    small_disk: Path,
) -> None:
    study, path = _study(small_disk)
    trial = study.ask()
    fill(small_disk, leave=3000)
    with pytest.raises(JournalUnwritable) as info:
        for i in range(1000):  # each append is larger than the last few bytes left
            trial.set_user_attr(f"k{i}", "x" * 500)
    text = str(info.value)
    assert "no space left" in text and str(path) in text and "corrupt" not in text
    assert info.value.exit_code == 69
    assert scan(path).ok  # no fragment left for the next reader to trip on
    (small_disk / "filler").unlink()
    reopened = optuna.load_study(study_name="s", storage=open_storage(f"journal:{path}"))
    assert len(reopened.get_trials()) == 3


def test_a_journal_whose_directory_is_read_only_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study, path = _study(tmp_path)
    real = os.open

    def read_only(file: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & (os.O_WRONLY | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real(file, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(JournalUnwritable, match="read-only"):
        study.ask()
    with (
        pytest.raises(JournalUnwritable, match="read-only"),
        claim_lock(f"journal:{path}", study._storage, "s"),
    ):
        pass


def _damaged(where: Path) -> Path:
    study, path = _study(where)
    running = study.ask()
    running.set_user_attr("heartbeat", 1.0)
    resumable = study.ask()
    resumable.set_user_attr("suspended", True)
    with path.open("ab") as fh:
        fh.write(b"garbage\n")
    return path


def test_salvage_on_a_full_disk_writes_nothing_and_says_the_disk_is_full(
    small_disk: Path,
) -> None:
    path = _damaged(small_disk)
    before = sorted(p.name for p in small_disk.iterdir())
    fill(small_disk, leave=200)
    with pytest.raises(JournalUnwritable) as info:
        salvage(path)
    assert "no space left" in str(info.value)
    after = sorted(p.name for p in small_disk.iterdir() if p.name != "filler")
    assert after == before  # no journal.log.salvaged, empty or partial, no temporary file


def test_a_salvaged_journal_fails_the_trials_running_at_the_cut_and_keeps_suspended_ones(
    tmp_path: Path,
) -> None:
    path = _damaged(tmp_path)
    done = salvage(path)
    assert done.kept == scan(path).good_lines
    storage = open_storage(f"journal:{done.out}")
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    states = [t.state for t in trials]
    assert states == [TrialState.COMPLETE] * 2 + [TrialState.FAIL, TrialState.RUNNING]
    assert "salvaged" in trials[2].user_attrs["fail_reason"]
    assert trials[3].user_attrs["suspended"] is True
    assert scan(done.out).ok
    assert journal.check_journal(done.out) is None


def test_a_partial_line_on_a_full_disk_is_reported_with_the_full_disk(small_disk: Path) -> None:
    _, path = _study(small_disk)
    with path.open("ab") as fh:
        fh.write(b'{"op_code": 5, "work')  # what a write cut off by a full disk leaves
    fill(small_disk)
    with pytest.raises(journal.JournalCorrupt) as info:
        journal.check_journal(path)
    assert "partial last line" in str(info.value) and "no space left" in str(info.value)


TOY = {"WCD_HPC_PLUGINS": "toy"}
SLOW = """\
name: ro
dataset: {name: toy-blobs, params: {events: 3000}}
model: toy-mlp
metric: {name: accuracy}
trials: 3
epochs: 12
pruner: none
storage: journal
workers: 2
executor: local
trial_plots: false
"""


@pytest.mark.slow
def test_a_journal_made_read_only_mid_sweep_ends_the_sweep_in_one_line_with_workers_stopped(
    cli, testplugins, tmp_path: Path
) -> None:
    import subprocess
    import threading
    import time

    exp = tmp_path / "ro.yaml"
    exp.write_text(SLOW)
    run_dir = tmp_path / "runs" / "ro"
    journal = run_dir / "journal.log"
    mounted: list[bool] = []

    def make_read_only() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if any(run_dir.glob("trials/*/metrics.jsonl")):
                # The journal file alone, bound onto itself and made read-only; the remount is
                # refused while a worker has it open to append, so it is tried until it takes.
                where = str(journal)
                subprocess.run(["mount", "--bind", where, where], check=True)
                mounted.append(True)
                for _ in range(200):
                    ro = ["mount", "-o", "remount,bind,ro", where]
                    if subprocess.run(ro, capture_output=True).returncode == 0:
                        return
                    time.sleep(0.02)
                raise AssertionError("the journal could not be made read-only")
            time.sleep(0.2)

    if os.geteuid() != 0:
        from conftest import need

        need("a read-only bind mount", "mount needs root")
    thread = threading.Thread(target=make_read_only)
    thread.start()
    try:
        res = cli("sweep", "--no-sync", str(exp), plugins=testplugins, env=TOY)
    finally:
        thread.join()
        if mounted:
            subprocess.run(["umount", "--lazy", str(journal)], check=False)
    assert mounted, "the run directory was never made read-only"
    errors = [line for line in res.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "read-only" in errors[0], res.err[-3000:]
    assert "workers stopped" in errors[0]
    assert "Traceback" not in res.err
    assert res.code == 69
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "--study ro " not in ps + " "
