"""The first look at a sweep: every trial in ``status``, how to open the results, a readable
progress line."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest
from rich.console import Console

from wcd_hpc.cli import progress
from wcd_hpc.cli.status import render
from wcd_hpc.queue.schema import (
    STUDY_BUDGET,
    STUDY_EXPERIMENT,
    STUDY_RUN_DIR,
    TRIAL_OBJECTIVE_INTERVAL,
)
from wcd_hpc.results.viewing import closing_lines, experiment_url

TOY = {"WCD_HPC_PLUGINS": "toy"}


def _rows(text: str) -> dict[int, str]:
    """Trial lines of the status table, by trial number."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if len(cells) >= 5 and cells[0].isdigit():
            rows[int(cells[0])] = line
    return rows


@pytest.mark.slow
def test_status_after_a_local_sweep_lists_every_trial_with_state_and_value(
    cli, testplugins, toy_experiment
) -> None:
    exp = toy_experiment(name="looked", trials=4, workers=2)
    swept = cli("sweep", str(exp), plugins=testplugins, env=TOY)
    assert swept.code == 0, swept.err
    assert "MLflow UI: mlflow ui --backend-store-uri sqlite:///" in swept.out
    assert "#/experiments/" in swept.out and "workflowType=machine_learning" in swept.out
    assert "optuna-dashboard: optuna-dashboard " in swept.out and "journal.log" in swept.out

    res = cli("status", "looked", plugins=testplugins, env={**TOY, "COLUMNS": "160"})
    assert res.code == 0, res.err
    rows = _rows(res.out)
    assert sorted(rows) == [0, 1, 2, 3]
    for line in rows.values():
        assert "COMPLETE" in line and re.search(r"│ \d(\.\d+)?[ (]", line)  # state and value
        assert re.search(r"local-\d", line)  # the worker
    assert "epochs" in res.out and "pruned because" in res.out
    listed = cli("status", "looked", "--json", plugins=testplugins, env=TOY).json()["trials"]
    assert all(r["value_lo"] <= r["value"] <= r["value_hi"] for r in listed)  # its interval


def test_status_lists_the_last_trials_and_all_of_them_with_all() -> None:
    trials = [
        {"number": n, "state": "PRUNED", "value": None, "worker": "local-0", "epochs": 1,
         "seconds": 2.0, "pruned_because": "below the median at epoch 1"}
        for n in range(60)
    ]  # fmt: skip
    info = {
        "study": "s", "model": "m", "dataset": "d", "metric": "f1", "direction": "maximize",
        "finished": 60, "budget": 60, "throughput_per_h": None, "best": None, "running": [],
        "failures": [], "slurm": None, "trials": trials,
        "counts": {"COMPLETE": 0, "PRUNED": 60, "FAIL": 0, "RUNNING": 0, "WAITING": 0},
    }  # fmt: skip
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(render(info))
    last = console.export_text()
    assert sorted(_rows(last)) == list(range(10, 60))
    assert "10 earlier trials not shown (status --all" in last
    assert "below the median at epoch 1" in last
    console.print(render(info, None))
    assert sorted(_rows(console.export_text())) == list(range(60))


def test_status_shows_each_trials_value_with_its_interval_rounded_to_it(cli, tmp_path) -> None:
    """A trial with an interval reads ``0.843 (+0.013 −0.031)``; one without keeps its plain
    value; the JSON rows carry the ends, null where there are none."""
    storage = f"sqlite:///{tmp_path / 'looked.db'}"
    study = optuna.create_study(study_name="looked", storage=storage, direction="maximize")
    study.set_user_attr(STUDY_BUDGET, 3)
    study.set_user_attr(STUDY_RUN_DIR, str(tmp_path / "runs" / "looked"))
    study.set_user_attr(STUDY_EXPERIMENT, {"metric": "f1", "model": "m", "dataset": "d"})
    with_interval = study.ask()
    with_interval.set_user_attr(TRIAL_OBJECTIVE_INTERVAL, [0.8123, 0.8567])
    study.tell(with_interval, 0.84321)
    study.tell(study.ask(), 0.7)  # a trial from before intervals were recorded
    open_ends = study.ask()
    open_ends.set_user_attr(TRIAL_OBJECTIVE_INTERVAL, [None, None])  # none could be drawn
    study.tell(open_ends, 0.55555)

    rows = _rows(cli("status", "looked", "--storage", storage).out)
    assert "0.843 (+0.013 −0.031)" in rows[0]
    assert "0.7 " in rows[1] and "(+" not in rows[1]
    assert "0.556 " in rows[2] and "(+" not in rows[2]

    listed = cli("status", "looked", "--storage", storage, "--json").json()["trials"]
    ends = [(r["value"], r["value_lo"], r["value_hi"]) for r in listed]
    assert ends == [(0.84321, 0.8123, 0.8567), (0.7, None, None), (0.55555, None, None)]


def test_the_progress_line_keeps_its_time_at_80_columns(monkeypatch) -> None:
    console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    monkeypatch.setattr(progress, "err", console)
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(STUDY_BUDGET, 8)
    with progress.sweep_progress(study, "gamma_eff_at_1e-3_hadrons", "maximize") as tick:
        tick("2 workers, ")
    line = next(x for x in console.export_text().splitlines() if x.startswith("trials"))
    assert re.search(r"0/8 +\d:\d\d:\d\d ", line), line
    assert len(line.rstrip()) <= 80


def test_the_closing_lines_name_the_commands_and_the_experiment_address(tmp_path: Path) -> None:
    lines = closing_lines(
        "sqlite:////x/runs/mlflow.db", "3", "journal:/x/runs/q/journal.log", tmp_path
    )
    assert lines[0].startswith("MLflow UI: mlflow ui --backend-store-uri sqlite:////x/runs/")
    assert "http://127.0.0.1:5000/#/experiments/3?workflowType=machine_learning" in lines[1]
    assert "optuna-dashboard /x/runs/q/journal.log" in lines[2]
    assert "ssh -N -L 5000:127.0.0.1:5000" in lines[3]
    server = closing_lines("http://u:pw@mlflow:5000/", "7", "postgresql://u:pw@db/x", tmp_path)
    assert "pw" not in "".join(server)
    assert experiment_url("http://mlflow:5000", "7").startswith("http://mlflow:5000/#/exp")
