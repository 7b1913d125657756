"""`wcd-hpc sync`: a study and its run directory land in a real `mlflow server`, idempotently."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import numpy as np
import optuna
import pytest
import torch
from mlflow.tracking import MlflowClient
from mlflow_server import free_port, start_server

from wcd_hpc.default_plugins.metrics import selection_curve
from wcd_hpc.results.sync import ENV_CRASH
from wcd_hpc.results.syncdata import clean, flatten, tracking_uri_for
from wcd_hpc.store.storage import open_storage

TOY = {"WCD_HPC_PLUGINS": "toy"}


def _sweep(cli, testplugins, toy_experiment, name: str, trials: int, plots: bool = False) -> None:
    """A toy sweep; its trials draw no figures (``trial_plots: false``) unless ``plots``."""
    exp = toy_experiment(name=name, trials=trials, workers=2, plots=plots)
    res = cli("sweep", str(exp), plugins=testplugins, env=TOY)
    assert res.code == 0, res.err


def _sync(cli, testplugins, name: str, uri: str, **env: str):
    return cli("sync", name, "--tracking-uri", uri, plugins=testplugins, env={**TOY, **env})


def _runs(client: MlflowClient, study: str) -> list:
    exp = client.get_experiment_by_name(study)
    return client.search_runs([exp.experiment_id], max_results=1000) if exp else []


def _trial_runs(client: MlflowClient, study: str) -> dict[int, object]:
    runs = [r for r in _runs(client, study) if r.data.tags.get("wcd_hpc.role") == "trial"]
    numbers = [int(r.data.tags["wcd_hpc.trial"]) for r in runs]
    assert len(numbers) == len(set(numbers)), f"duplicate trial runs: {sorted(numbers)}"
    return {int(r.data.tags["wcd_hpc.trial"]): r for r in runs}


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_nested_params_flatten_to_dotted_keys() -> None:
    flat = flatten({"channels": [4, 8], "dataset": {"params": {"events": 10}}, "lr": 0.1})
    assert flat == {"channels.0": 4, "channels.1": 8, "dataset.params.events": 10, "lr": 0.1}


def test_credentials_never_become_params_or_tags() -> None:
    values = flatten(
        {"storage": "postgresql://wcd:hunter2@db/x", "db_password": "hunter2", "note": "ok"}
    )
    values["source"] = "http://user:hunter2@host/x"
    cleaned = clean(values)
    assert "hunter2" not in json.dumps(cleaned)
    assert cleaned["note"] == "ok" and cleaned["source"] == "http://user@host/x"


def test_tracking_uri_flag_beats_env_beats_local_store(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri_for(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert tracking_uri_for(None, tmp_path) == "http://env:5000"
    assert tracking_uri_for("http://flag:5000", tmp_path) == "http://flag:5000"


def test_roc_points_separate_a_perfect_score_from_chance() -> None:
    # The one ROC implementation (trial plots, and sync's plots from predictions.npz).
    _, tpr, fpr = selection_curve(np.array([0, 0, 1, 1]) == 1, np.array([0.1, 0.2, 0.8, 0.9]))
    assert float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)) == pytest.approx(1.0)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)


@pytest.mark.slow
def test_sweep_then_sync_lands_everything_and_a_second_sync_adds_nothing(
    cli, testplugins, toy_experiment, tmp_path, mlflow_server
) -> None:
    _sweep(cli, testplugins, toy_experiment, "landed", 6, plots=True)
    res = _sync(cli, testplugins, "landed", mlflow_server.uri)
    assert res.code == 0, res.err
    assert "6 new, 0 updated, 0 unchanged" in res.out
    client = MlflowClient(mlflow_server.uri)
    runs = _runs(client, "landed")
    parents = [r for r in runs if r.data.tags.get("wcd_hpc.role") == "study"]
    assert len(runs) == 7 and len(parents) == 1
    parent = parents[0]
    trials = _trial_runs(client, "landed")
    assert sorted(trials) == list(range(6))
    assert parent.data.params["model"] == "toy-mlp"
    assert not any(k.startswith("storage") for k in parent.data.params)
    assert parent.data.metrics["trials_complete"] == 6.0

    study = optuna.load_study(
        study_name="landed", storage=open_storage(f"journal:{tmp_path}/runs/landed/journal.log")
    )
    for number, run in trials.items():
        trial = study.trials[number]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["host"] == trial.user_attrs["host"]
        assert run.info.status == "FINISHED"
        assert {"lr", "batch_size", "hidden", "optimizer", "seed"} <= set(run.data.params)
        assert float(run.data.params["lr"]) == pytest.approx(trial.params["lr"])
        for key in ("train_loss", "val_accuracy"):
            history = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == [1, 2]
        result = json.loads((tmp_path / f"runs/landed/trials/{number}/result.json").read_text())
        assert run.data.metrics["test_accuracy"] == pytest.approx(result["test"]["accuracy"])

    best = trials[study.best_trial.number]
    folder = tmp_path / "download"
    client.download_artifacts(best.info.run_id, "", str(folder))
    plots = {p.name for p in (folder / "plots").glob("*.png")}
    assert plots >= {"confusion.png", "learning_curves.png", "roc.png"}
    client.download_artifacts(parent.info.run_id, "plots", str(folder / "study"))
    assert {p.name for p in (folder / "study/plots").glob("*.png")} == {
        "optimization_history.png",
        "param_importances.png",
        "parallel_coordinates.png",
    }
    for png in [*(folder / "plots").glob("*.png"), *(folder / "study/plots").glob("*.png")]:
        assert matplotlib.image.imread(png).shape[0] > 50
    weights = torch.load(folder / "model/model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in weights.values())
    assert json.loads((folder / "params.json").read_text())["trial"] == study.best_trial.number

    version = client.get_model_version_by_alias("wcd-hpc-landed", "best")
    assert version.run_id == best.info.run_id
    assert version.tags["wcd_hpc.trial"] == str(study.best_trial.number)

    again = _sync(cli, testplugins, "landed", mlflow_server.uri)
    assert again.code == 0, again.err
    assert "0 new, 0 updated, 6 unchanged" in again.out
    assert {r.info.run_id for r in _runs(client, "landed")} == {r.info.run_id for r in runs}
    assert len(client.search_model_versions("name = 'wcd-hpc-landed'")) == 1
    exp_id = client.get_experiment_by_name("landed").experiment_id
    assert len(client.search_logged_models([exp_id])) == 1  # the best model, logged once


@pytest.mark.slow
def test_a_sync_killed_half_way_completes_on_rerun_without_duplicates(
    cli, testplugins, toy_experiment, tmp_path, mlflow_server
) -> None:
    _sweep(cli, testplugins, toy_experiment, "killed", 6)
    crash = {**TOY, ENV_CRASH: "3"}  # os._exit(137) half way: it needs a process of its own
    args = ("sync", "killed", "--tracking-uri", mlflow_server.uri)
    dead = cli(*args, plugins=testplugins, env=crash, subprocess=True)
    assert dead.code == 137
    client = MlflowClient(mlflow_server.uri)
    half = _trial_runs(client, "killed")
    assert sorted(half) == [0, 1, 2, 3]
    assert "wcd_hpc.fingerprint" not in half[3].data.tags

    res = _sync(cli, testplugins, "killed", mlflow_server.uri)
    assert res.code == 0, res.err
    assert "2 new, 1 updated, 3 unchanged" in res.out
    done = _trial_runs(client, "killed")
    assert sorted(done) == list(range(6))
    assert done[3].info.run_id == half[3].info.run_id
    assert len(client.get_metric_history(done[3].info.run_id, "train_loss")) == 2
    assert len(_runs(client, "killed")) == 7
    # trial_plots: false: the trials drew no figures, and sync drew none for them either.
    assert not (tmp_path / "runs/killed/trials/3/plots").exists()
    assert [a.path for a in client.list_artifacts(done[3].info.run_id, "plots")] == []


@pytest.mark.slow
def test_server_down_is_one_line_and_changes_nothing_then_rerun_succeeds(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    _sweep(cli, testplugins, toy_experiment, "down", 2)
    port = free_port()
    before = _snapshot(tmp_path / "runs")
    res = _sync(cli, testplugins, "down", f"http://wcd:hunter2@127.0.0.1:{port}")
    assert res.code != 0
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert len(lines) == 1, res.err
    assert "cannot reach MLflow at http://wcd@127.0.0.1" in lines[0]
    assert "hunter2" not in res.err + res.out
    assert _snapshot(tmp_path / "runs") == before

    server = start_server(tmp_path / "late-server", port)
    try:
        again = _sync(cli, testplugins, "down", server.uri)
        assert again.code == 0, again.err
        assert "2 new" in again.out
    finally:
        server.stop()

    local = cli("sync", "down", plugins=testplugins, env={**TOY, "MLFLOW_TRACKING_URI": ""})
    assert local.code == 0, local.err
    assert (tmp_path / "runs/mlflow.db").exists()
    assert len(_trial_runs(MlflowClient(f"sqlite:///{tmp_path}/runs/mlflow.db"), "down")) == 2


@pytest.mark.slow
def test_sync_carries_trials_without_params_as_runs_and_goes_on(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    """A worker that cannot load its data leaves a FAIL trial without parameters; an early
    prune or plain Optuna leaves trials with some or foreign ones. Sync carries each as a run
    with its state and masked cause, and the sweep's own sync goes on with new trials."""
    from wcd_hpc.engine.worker import _report_unusable_data
    from wcd_hpc.errors import DataError
    from wcd_hpc.queue.opened import OpenedStudy
    from wcd_hpc.store.storage import Storage

    exp = toy_experiment(name="holes", trials=1)
    first = cli("sweep", str(exp), "--no-sync", plugins=testplugins, env=TOY)
    assert first.code == 0, first.err
    url = f"journal:{tmp_path}/runs/holes/journal.log"
    study = optuna.load_study(study_name="holes", storage=open_storage(url))
    study.set_user_attr("budget", 2)  # room for the worker's claim, as on a resumed sweep
    bad = DataError("cannot open postgresql://u:s3cret-pw@db/x: no such table")
    opened = OpenedStudy(study, Storage.parse(url), tmp_path / "runs" / "holes")
    _report_unusable_data(opened, "w1", bad)
    early = study.ask()
    early.suggest_float("lr", 1e-3, 1e-1, log=True)
    study.tell(early, state=optuna.trial.TrialState.PRUNED)
    plain = study.ask()
    plain.suggest_int("foreign", 1, 3)
    study.tell(plain, state=optuna.trial.TrialState.FAIL)
    nothing = study.ask()
    study.tell(nothing, -1.0)  # COMPLETE without any parameter (worse than any accuracy)

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    res = _sync(cli, testplugins, "holes", uri)
    assert res.code == 0, res.err
    assert "5 new, 0 updated, 0 unchanged" in res.out
    client = MlflowClient(uri)
    runs = _trial_runs(client, "holes")
    assert {n: r.info.status for n, r in runs.items()} == {
        0: "FINISHED", 1: "FAILED", 2: "KILLED", 3: "FAILED", 4: "FINISHED"
    }  # fmt: skip
    reason = runs[1].data.tags["fail_reason"]
    assert (
        "cannot load its data" in reason and "postgresql://u@db" in reason and ":***@" not in reason
    )
    assert "s3cret-pw" not in json.dumps([r.data.tags for r in runs.values()]) + res.out + res.err
    assert "lr" in runs[2].data.params and "foreign" in runs[3].data.params
    assert not runs[1].data.params and not runs[4].data.params
    assert "wcd-hpc-holes v1" in res.out  # the best trial is still registered

    again = _sync(cli, testplugins, "holes", uri)
    assert again.code == 0, again.err
    assert "0 new, 0 updated, 5 unchanged" in again.out

    resumed = cli("sweep", str(toy_experiment(name="holes", trials=4)), plugins=testplugins,
                  env={**TOY, "MLFLOW_TRACKING_URI": uri})  # fmt: skip
    assert resumed.code == 0, resumed.err
    assert "synced study holes" in resumed.out, resumed.out + resumed.err
    assert sorted(_trial_runs(client, "holes")) == [0, 1, 2, 3, 4, 5]
