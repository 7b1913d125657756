"""The best trial as an MLflow PyTorch model, and what an MLflow user sees around it.

`mlflow.pytorch.load_model("models:/wcd-hpc-<study>@best")` must give a module that predicts
what the trial predicted; the experiment opens in the classic-ML view; runs carry version and
source tags and per-energy-bin metrics. The slow test syncs to a real `mlflow server`.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import mlflow.pytorch
import numpy as np
import optuna
import pytest
import torch
from mlflow.tracking import MlflowClient
from test_sync import TOY, _sweep, _sync, _trial_runs

from wcd_hpc.plugins import Registry
from wcd_hpc.results import mlflow_model
from wcd_hpc.results.mlflow_model import Probabilities, Unavailable, rebuild
from wcd_hpc.store.storage import open_storage

TOY_PARAMS = {"events": 300, "separation": 1.5, "seed": 0}  # conftest's toy experiment


def _toy_test_inputs(testplugins: Path, monkeypatch: pytest.MonkeyPatch) -> torch.Tensor:
    """The toy dataset's test split, rebuilt in-process: it is deterministic in its params."""
    monkeypatch.syspath_prepend(str(testplugins))
    from wcd_hpc_testplugins import toy

    return toy._load(TOY_PARAMS, 0, "").test.x


def _study(tmp_path: Path, name: str) -> optuna.Study:
    url = f"journal:{tmp_path}/runs/{name}/journal.log"
    return optuna.load_study(study_name=name, storage=open_storage(url))


@pytest.mark.slow
@pytest.mark.usefixtures("tempdir_in_tmp_path")
def test_the_registered_best_model_loads_with_mlflow_and_predicts_what_the_trial_did(
    cli, testplugins, toy_experiment, tmp_path, mlflow_server, monkeypatch
) -> None:
    _sweep(cli, testplugins, toy_experiment, "loadable", 3, plots=True)
    res = _sync(cli, testplugins, "loadable", mlflow_server.uri)
    assert res.code == 0, res.err
    assert "model wcd-hpc-loadable v1" in res.out
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    client = MlflowClient(mlflow_server.uri)
    best = _study(tmp_path, "loadable").best_trial.number

    uri = "models:/wcd-hpc-loadable@best"
    module = mlflow.pytorch.load_model(uri)
    assert isinstance(module, Probabilities)
    with np.load(tmp_path / f"runs/loadable/trials/{best}/predictions.npz") as saved:
        expected = saved["y_score"]
    with torch.no_grad():
        predicted = module(_toy_test_inputs(testplugins, monkeypatch)).numpy()
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-6)

    info = mlflow.models.get_model_info(uri)
    assert info.signature is not None and info.saved_input_example_info is not None
    assert list(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 8]
    assert info.metadata["wcd_hpc"]["class_names"] == ["a", "b"]
    version = client.get_model_version_by_alias("wcd-hpc-loadable", "best")
    assert version.source == f"models:/{info.model_id}"
    assert version.tags["wcd_hpc.trial"] == str(best)

    exp = client.get_experiment_by_name("loadable")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = _trial_runs(client, "loadable")
    tags = runs[best].data.tags
    assert tags["mlflow.source.type"] == "JOB" and tags["mlflow.source.name"] == "wcd-hpc worker"
    for package in ("wcd_hpc", "torch", "optuna", "python", "mlflow"):
        assert tags[f"versions.{package}"]
    assert tags["versions.torch"] == torch.__version__
    run_id = runs[best].info.run_id
    metrics = runs[best].data.metrics
    assert not any(k.startswith("bin_") for k in metrics)  # no bin index as a step axis
    per_bin = [k for k in metrics if k.startswith("test_accuracy_lgE_")]
    assert "test_accuracy_lgE_3.0_3.5" in per_bin  # 1 TeV upwards
    assert not any(k.startswith("test_f1_lgE_") for k in metrics)  # the objective only
    table = client.load_table(exp.experiment_id, "tables/energy_bins.json", [run_id])
    assert list(table["events_a"] + table["events_b"]) == list(table["events"])
    assert len(table) == len(per_bin)
    artifacts = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert {"plots/confusion.png", "plots/confusion.pdf"} <= artifacts

    again = _sync(cli, testplugins, "loadable", mlflow_server.uri)
    assert again.code == 0, again.err
    assert "0 new, 0 updated, 3 unchanged" in again.out and "v1" in again.out
    assert len(client.search_logged_models([exp.experiment_id])) == 1
    assert len(client.search_model_versions("name = 'wcd-hpc-loadable'")) == 1


@pytest.mark.slow
def test_without_the_model_plugin_sync_lands_the_runs_and_says_the_model_was_not_logged(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    exp = toy_experiment(name="plugless", trials=2)
    swept = cli("sweep", str(exp), "--no-sync", plugins=testplugins, env=TOY)
    assert swept.code == 0, swept.err
    local = {**TOY, "MLFLOW_TRACKING_URI": ""}
    res = cli("sync", "plugless", env=local)  # no test plugins on the path
    assert res.code == 0, res.err
    assert "2 new" in res.out
    assert "not logged as an MLflow model: model plugin 'toy-mlp' is not installed" in res.out
    client = MlflowClient(f"sqlite:///{tmp_path}/runs/mlflow.db")
    assert sorted(_trial_runs(client, "plugless")) == [0, 1]
    assert not client.search_registered_models("name = 'wcd-hpc-plugless'")

    # What an older sync registered: bare weights, which MLflow cannot load.
    best = _study(tmp_path, "plugless").best_trial.number
    run_id = _trial_runs(client, "plugless")[best].info.run_id
    client.create_registered_model("wcd-hpc-plugless")
    client.create_model_version("wcd-hpc-plugless", f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias("wcd-hpc-plugless", "best", "1")

    later = cli("sync", "plugless", plugins=testplugins, env=local)
    assert later.code == 0, later.err
    assert "0 new, 0 updated, 2 unchanged" in later.out
    assert "model wcd-hpc-plugless v2" in later.out and "not logged" not in later.out
    version = client.get_model_version_by_alias("wcd-hpc-plugless", "best")
    assert str(version.version) == "2" and version.source.startswith("models:/m-")


def test_rebuilding_says_why_when_the_plugin_is_missing_or_the_weights_do_not_fit(
    tmp_path, monkeypatch
) -> None:
    from wcd_hpc.api import Model
    from wcd_hpc.plugins import Entry, Source

    folder = tmp_path / "trial"
    folder.mkdir()
    (folder / "data_spec.json").write_text(
        json.dumps({"input_shape": [3], "num_classes": 2, "class_names": ["g", "h"]})
    )
    torch.save(torch.nn.Linear(4, 2).state_dict(), folder / "model.pt")
    with pytest.raises(Unavailable, match="model plugin 'lin' is not installed"):
        rebuild(Registry(), "lin", {}, folder)

    source = Source("lin", "lin-plugin", "1.2")
    model = Model(name="lin", build=lambda params, spec: torch.nn.Linear(spec.input_shape[0], 2))
    registry = Registry(models={"lin": Entry("model", "lin", model, source)})
    with pytest.raises(Unavailable, match=r"cannot rebuild model 'lin' from model\.pt"):
        rebuild(registry, "lin", {}, folder)  # trained on 4 inputs, the spec now says 3

    torch.save(torch.nn.Linear(3, 2).state_dict(), folder / "model.pt")
    rebuilt = rebuild(registry, "lin", {}, folder)
    assert "lin-plugin==1.2" in rebuilt.requirements
    assert rebuilt.module(torch.zeros(5, 3)).sum(dim=1).allclose(torch.ones(5))
    assert not rebuilt.module.training
    assert mlflow_model.LOGGED_MODEL_NAME == "model"
