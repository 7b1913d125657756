"""`wcd-hpc train` numbers its runs: two runs started together never share a directory."""

from __future__ import annotations

from pathlib import Path

from wcd_hpc.engine import train


def test_train_runs_get_consecutive_numbers_and_their_own_new_directory(tmp_path: Path) -> None:
    first = train._claim_number(tmp_path)
    second = train._claim_number(tmp_path)
    assert (first[0], second[0]) == (0, 1)
    assert first[1].is_dir() and second[1].is_dir() and first[1] != second[1]


def test_a_run_that_saw_the_same_highest_number_as_another_takes_the_next_one(
    tmp_path: Path, monkeypatch
) -> None:
    number, taken = train._claim_number(tmp_path)
    # The second run listed the trials before the first created its directory.
    monkeypatch.setattr(Path, "glob", lambda self, pattern: iter(()))
    again, mine = train._claim_number(tmp_path)
    assert (number, again) == (0, 1) and mine != taken
