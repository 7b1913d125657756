"""The local MLflow store (`runs/mlflow.db` + `runs/mlartifacts/`) follows a moved runs directory.

MLflow keeps artifact locations as absolute paths; after `mv runs moved`, `sync --runs-dir moved`
must write to `moved` and every run, logged model and model version synced before the move must
still resolve there.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import mlflow.pytorch
import optuna
import pytest
from mlflow.tracking import MlflowClient
from test_sync import TOY, _trial_runs

from wcd_hpc.results.mlflow_store import relocate
from wcd_hpc.store.storage import open_storage

LOCAL = {**TOY, "MLFLOW_TRACKING_URI": ""}  # the default store under --runs-dir


def _add_better_trial(runs: Path, name: str) -> int:
    """A copy of the best trial with a better value: a new trial that becomes the best."""
    study = optuna.load_study(
        study_name=name, storage=open_storage(f"journal:{runs}/{name}/journal.log")
    )
    best = study.best_trial
    study.add_trial(
        optuna.trial.create_trial(
            params=best.params,
            distributions=best.distributions,
            value=float(best.value or 0) + 1.0,
            user_attrs=best.user_attrs,
        )
    )
    number = len(study.trials) - 1
    shutil.copytree(runs / name / "trials" / str(best.number), runs / name / "trials" / str(number))
    return number


def _under(uri: str, root: Path) -> bool:
    return uri.startswith(root.resolve().as_uri() + "/")


@pytest.mark.slow
@pytest.mark.usefixtures("tempdir_in_tmp_path")
def test_a_moved_runs_directory_syncs_from_its_new_place_and_old_runs_still_resolve(
    cli, testplugins, toy_experiment, tmp_path, monkeypatch
) -> None:
    exp = toy_experiment(name="mover", trials=2)
    swept = cli("sweep", str(exp), "--no-sync", plugins=testplugins, env=TOY)
    assert swept.code == 0, swept.err
    # A process of its own: MLflow caches each run's artifact store per process, and the move
    # below changes it; a later sync in this process would write to the old place (a user's
    # sync is a process of its own each time).
    first = cli("sync", "mover", plugins=testplugins, env=LOCAL, subprocess=True)
    assert first.code == 0, first.err
    assert "2 new" in first.out and "model wcd-hpc-mover v1" in first.out
    shutil.move(tmp_path / "runs", tmp_path / "moved")
    moved = tmp_path / "moved"
    new = _add_better_trial(moved, "mover")

    res = cli("sync", "mover", "--runs-dir", "moved", plugins=testplugins, env=LOCAL)
    assert res.code == 0, res.err
    assert "1 new, 0 updated, 2 unchanged" in res.out
    assert "model wcd-hpc-mover v2" in res.out and "moved here for mover" in res.out
    assert not (tmp_path / "runs").exists()  # nothing recreated at the old place

    uri = f"sqlite:///{moved}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("mover")
    assert exp.artifact_location == (moved / "mlartifacts" / "mover").as_uri()
    runs = _trial_runs(client, "mover")
    assert sorted(runs) == [0, 1, new]
    for number, run in runs.items():
        assert _under(run.info.artifact_uri, moved / "mlartifacts"), number
        local = client.download_artifacts(run.info.run_id, "params.json", str(tmp_path / "dl"))
        assert Path(local).stat().st_size > 0
    run_dir = moved / "mlartifacts" / "mover" / runs[new].info.run_id / "artifacts"
    assert (run_dir / "model" / "model.pt").exists() and (run_dir / "tables").is_dir()

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for version in ("1", "2"):  # logged before and after the move
        assert _under(client.get_model_version_download_uri("wcd-hpc-mover", version), moved)
        model_id = client.get_model_version("wcd-hpc-mover", version).source.split("/")[-1]
        assert _under(client.get_logged_model(model_id).artifact_location, moved), version
        assert mlflow.pytorch.load_model(f"models:/wcd-hpc-mover/{version}") is not None
    best = client.get_model_version_by_alias("wcd-hpc-mover", "best")
    assert str(best.version) == "2" and best.run_id == runs[new].info.run_id

    again = cli("sync", "mover", "--runs-dir", "moved", plugins=testplugins, env=LOCAL)
    assert again.code == 0, again.err
    assert "0 new, 0 updated, 3 unchanged" in again.out and "moved here" not in again.out


def test_a_store_moved_without_its_artifacts_keeps_pointing_at_them(tmp_path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    uri = f"sqlite:///{old}/mlflow.db"
    old.mkdir()
    client = MlflowClient(uri)
    location = (old / "mlartifacts" / "s").as_uri()
    client.create_experiment("s", artifact_location=location, tags={"wcd_hpc.study": "s"})
    client.create_experiment("theirs", artifact_location=(old / "mlartifacts/theirs").as_uri())
    (old / "mlartifacts" / "s").mkdir(parents=True)
    new.mkdir()
    shutil.copy(old / "mlflow.db", new / "mlflow.db")

    assert relocate(f"sqlite:///{new}/mlflow.db") == []  # the artifacts are still at old/
    shutil.move(old / "mlartifacts", new / "mlartifacts")
    assert relocate(f"sqlite:///{new}/mlflow.db") == ["s"]  # now they moved too
    with sqlite3.connect(new / "mlflow.db") as con:
        stored = dict(con.execute("SELECT name, artifact_location FROM experiments"))
    assert stored["s"] == (new / "mlartifacts" / "s").as_uri()
    assert stored["theirs"] == (old / "mlartifacts/theirs").as_uri()  # not made by sync
    assert relocate(f"sqlite:///{new}/mlflow.db") == []
    assert relocate("http://127.0.0.1:5000") == []
