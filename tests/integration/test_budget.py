"""A budget in compute as well as in trials: ``budget: {trials: N, gpu_hours: H}``."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path

import optuna
import pytest

from wcd_hpc.errors import ConfigError
from wcd_hpc.experiment.config import load_experiment
from wcd_hpc.queue.accounting import SACCT_FIELDS, parse_sacct
from wcd_hpc.store.storage import open_storage

TOY = {"WCD_HPC_PLUGINS": "toy"}
BASE = "name: b\ndataset: footprint-sim\nmodel: lenet\nepochs: 2\n"


def _load(tmp_path: Path, extra: str, **kwargs) -> object:
    path = tmp_path / "b.yaml"
    path.write_text(BASE + extra)
    return load_experiment(path, **kwargs)


def test_the_budget_takes_trials_and_gpu_hours_in_either_spelling(tmp_path) -> None:
    exp = _load(tmp_path, "budget: {trials: 5, gpu_hours: 2}\n")
    assert (exp.trials, exp.gpu_hours) == (5, 2.0)
    exp = _load(tmp_path, "trials: 4\nbudget: {gpu_hours: 0.5}\n")
    assert (exp.trials, exp.gpu_hours) == (4, 0.5)
    assert _load(tmp_path, "trials: 4\n").gpu_hours is None
    flagged = _load(tmp_path, "budget: {trials: 5}\n", flags={"trials": ("--trials", 9)})
    assert flagged.trials == 9  # the flag, set later, wins


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        (
            "trials: 4\nbudget: {gpu_hours: -1}\n",
            "b.yaml:6: budget.gpu_hours: expected a positive number of GPU-hours, got -1",
        ),
        (
            "trials: 4\nbudget: {trials: 5}\n",
            "b.yaml:6: budget.trials: the trial budget is given twice",
        ),
        ("trials: 4\nbudget: {hours: 1}\n", "b.yaml:6: budget.hours: unknown key"),
    ],
    ids=["negative", "twice", "unknown-key"],
)
def test_a_bad_budget_is_one_precise_line(tmp_path, extra: str, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, extra)
    assert where in str(info.value)


def test_a_negative_gpu_budget_creates_no_study(cli, testplugins, toy_experiment, tmp_path) -> None:
    exp = toy_experiment(extra="budget: {gpu_hours: -1}\n")
    res = cli("sweep", str(exp), plugins=testplugins, env=TOY)
    assert res.code == 2 and "budget.gpu_hours: expected a positive number" in res.err
    assert not (tmp_path / "runs").exists()


def _gpu_seconds_at(records: list, when: datetime) -> float:
    total = 0.0
    for r in records:
        if r.start is None or r.start >= when:
            continue
        end = min(r.end or when, when)
        total += max(0.0, (end - r.start).total_seconds()) * r.gpus
    return total


@pytest.mark.slow
def test_a_spent_gpu_hour_budget_stops_claiming_and_the_sweep_ends_cleanly(
    cli, testplugins, toy_experiment, tmp_path, slurm_cluster
) -> None:
    budget_h = 0.05  # 180 GPU-seconds: 4 one-GPU tasks spend it in 45 s, start-up included
    exp = toy_experiment(name="capped", trials=200, workers=4)
    text = (
        exp.read_text().replace("model: toy-mlp", "model: sleep").replace("epochs: 2", "epochs: 1")
    )
    text = text.replace("dataset: {name: toy-blobs, params: {events: 300}}", "dataset: one-sample")
    exp.write_text(
        text + f"budget: {{gpu_hours: {budget_h}}}\n"
        "param_space: {seconds: 4}\nresources: {gpus: 1, cpus: 1, mem_gb: 1, time: '00:10:00'}\n"
    )
    args = ("sweep", str(exp), "--profile", "dev", "--set", "executor=slurm", "--wait", "--no-sync")
    env = {**TOY, "WCD_HPC_HEARTBEAT_S": "2"}  # sacct is asked at most once per interval
    res = cli(*args, plugins=testplugins, env=env, timeout=900)
    assert res.code == 0, res.err
    assert "GPU-hour budget spent" in res.out
    info = cli("status", "capped", "--json", plugins=testplugins, env=TOY).json()
    assert 0 < info["finished"] < 200 and info["counts"]["RUNNING"] == 0
    assert info["gpu_hours_budget"] == budget_h and info["gpu_hours_used"] >= budget_h
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(info["slurm"]["jobs"]), "-o", SACCT_FIELDS],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    records = parse_sacct(out)
    journal = tmp_path / "runs" / "capped" / "journal.log"
    trials = optuna.load_study(
        study_name="capped", storage=open_storage(f"journal:{journal}")
    ).trials
    # No claim after the budget was spent, give or take one cached sacct answer per task
    # (interval 2 s) and a claim in flight (2 s).
    allowance = 4 * (2 + 2)
    for t in trials:
        claimed = datetime.fromtimestamp(t.user_attrs["claimed"])
        assert _gpu_seconds_at(records, claimed) <= budget_h * 3600 + allowance, t.number
    assert json.dumps(info)  # the status document stays JSON


@pytest.mark.slow
def test_a_budget_lowered_below_the_finished_trials_never_shows_more_finished_than_budgeted(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    exp = toy_experiment(name="lowered", trials=2)
    assert cli("sweep", str(exp), "--no-sync", plugins=testplugins, env=TOY).code == 0
    res = cli("sweep", str(exp), "--trials", "1", "--no-sync", plugins=testplugins, env=TOY)
    assert res.code == 0, res.err
    status = cli("status", "lowered", plugins=testplugins, env=TOY)
    listing = cli("studies", plugins=testplugins, env=TOY)
    shown = res.out + res.err + status.out + listing.out
    assert "2/1" not in shown and "2 of 1" not in shown, shown
    assert "resuming study lowered: 2, more than the budget of 1, trials finished" in res.out
    assert "2 (budget 1) trials finished: 2 complete" in res.out
    assert "finished 2 (budget 1)" in status.out
    assert "lowered: done, 2 (budget 1) finished" in listing.out
