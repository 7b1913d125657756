"""Journal snapshots: a large journal opens from its snapshot, and only from its own."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import optuna
import pytest

from wcd_hpc.store import journal, snapshots
from wcd_hpc.store.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _fill(path: Path, trials: int, offset: int = 0) -> optuna.Study:
    study = optuna.create_study(study_name="s", storage=open_storage(f"journal:{path}"))
    for i in range(trials):
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr("n", i + offset)
        study.tell(trial, float(i))
    return study


def _seen(path: Path) -> list[Any]:
    study = optuna.load_study(study_name="s", storage=open_storage(f"journal:{path}"))
    return [(t.number, t.params, t.user_attrs, t.value, t.state) for t in study.get_trials()]


def _replayed_lines(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the journal lines each open replays."""
    counts: list[int] = []
    real = journal.CheckedJournalBackend.read_logs

    def read_logs(self: Any, log_number_from: int) -> Any:
        counts.append(0)
        for record in real(self, log_number_from):
            counts[-1] += 1
            yield record

    monkeypatch.setattr(journal.CheckedJournalBackend, "read_logs", read_logs)
    return counts


def test_a_journal_opens_from_its_snapshot_with_every_trial_as_a_full_replay_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "journal.log"
    written = _fill(path, 230)  # Optuna asks for a snapshot at trials 100 and 200
    assert snapshots.path_of(path).is_file()
    expected = [(t.number, t.params, t.user_attrs, t.value, t.state) for t in written.trials]
    total = sum(1 for _ in path.open("rb"))
    counts = _replayed_lines(monkeypatch)
    assert _seen(path) == expected
    assert 0 < counts[0] < total / 4  # only the lines after the snapshot were replayed
    trial = optuna.load_study(study_name="s", storage=open_storage(f"journal:{path}")).ask()
    assert trial.number == 230  # and the study goes on from there


@pytest.mark.parametrize("change", ["another journal", "salvaged shorter", "cut short"])
def test_a_snapshot_that_is_not_its_journals_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    path = tmp_path / "journal.log"
    other = tmp_path / "other" / "journal.log"
    other.parent.mkdir()
    _fill(path, 230)
    _fill(other, 230, offset=1000)
    expected: list[Any] | None = _seen(path)
    if change == "another journal":
        shutil.copy(snapshots.path_of(other), snapshots.path_of(path))
    elif change == "salvaged shorter":
        lines = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join(lines[: len(lines) // 3]))
        expected = None  # whatever that prefix holds, read from the file itself
    else:
        snap = snapshots.path_of(path)
        snap.write_bytes(snap.read_bytes()[:-100])
    counts = _replayed_lines(monkeypatch)
    seen = _seen(path)
    assert counts[0] == sum(1 for _ in path.open("rb"))  # replayed in full
    if expected is not None:
        assert seen == expected
    else:
        assert [t[2]["n"] for t in seen] == list(range(len(seen)))
