"""The README's quickstart, exactly as a new user runs it: built-in plugins, real training."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"
# The file names no executor; where sbatch is installed (the dev cluster) it would go to Slurm.
HERE = ("--profile", "local")
#: A value in the status table: rounded to its 68 % interval where it has one.
VALUE = r"\d(\.\d+)?( \(\+\d(\.\d+)? −\d(\.\d+)?\))?"


def test_quickstart_meets_its_budget_resumes_idle_and_extends_by_two(cli, tmp_path) -> None:
    # End to end in a real process, as the README shows it (the later calls run in this one).
    first = cli("sweep", str(QUICKSTART), *HERE, subprocess=True)
    assert first.code == 0, first.err
    assert "8/8 trials finished" in first.out
    best = next(line for line in first.out.splitlines() if line.startswith("best trial"))
    assert "channels=[" in best
    # The first sync creates the MLflow store; mlflow announces that at INFO unless told not to.
    assert "INFO mlflow" not in first.err + first.out

    status = cli("status", "quickstart", "--json")
    info = json.loads(status.out)
    assert info["counts"]["COMPLETE"] + info["counts"]["PRUNED"] == 8
    # Gamma vs proton is far from a coin toss even in this tiny sweep.
    assert info["best"]["value"] > 0.75
    # The first look: every trial in the terminal, with its state and value.
    table = cli("status", "quickstart").out
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if len(cells) >= 5 and cells[0].isdigit():
            rows[int(cells[0])] = cells
    assert sorted(rows) == list(range(8))
    for cells in rows.values():
        assert cells[1] in ("COMPLETE", "PRUNED")
        assert cells[1] == "PRUNED" or re.fullmatch(VALUE, cells[2])

    again = cli("sweep", str(QUICKSTART), *HERE)
    assert again.code == 0 and "resuming study quickstart: 8 of 8 trials finished" in again.out
    assert json.loads(cli("status", "quickstart", "--json").out)["finished"] == 8

    more = cli("sweep", str(QUICKSTART), *HERE, "--trials", "10")
    assert more.code == 0, more.err
    info = json.loads(cli("status", "quickstart", "--json").out)
    assert (info["finished"], info["budget"]) == (10, 10)
    assert len(list((tmp_path / "runs/quickstart/trials").iterdir())) == 10


def test_status_watch_on_a_finished_study_prints_once_and_returns(cli, tmp_path) -> None:
    # One epoch may leave the trial at chance level: kept, so that there is a best trial to show.
    one = ("--trials", "1", "--set", "epochs=1", "--set", "prune_chance=false")
    assert cli("sweep", str(QUICKSTART), *HERE, *one).code == 0
    # A narrow terminal: the live view would crop the long best-trial line to 60 columns.
    # A process: a watch that never returned would be ended by the timeout.
    narrow = {"COLUMNS": "60"}
    res = cli(
        "status",
        "quickstart",
        "--watch",
        "--interval",
        "0.2",
        env=narrow,
        timeout=60,
        subprocess=True,
    )
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert sum(line.startswith("finished 1/1") for line in lines) == 1
    best = next(line for line in lines if line.startswith("best trial"))
    assert "channels=[" in best
    assert lines[-1].startswith("storage: journal:")
