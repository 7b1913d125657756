"""Two studies with one name never mix in MLflow: sync matches by the study's identity."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState, create_trial
from test_sync import TOY

from wcd_hpc.plugins import Registry
from wcd_hpc.queue import identity
from wcd_hpc.queue.schema import STUDY_EXPERIMENT, STUDY_ID, STUDY_ID_ADOPTED
from wcd_hpc.results.identity import TAG_STUDY_ID
from wcd_hpc.results.sync import sync_study
from wcd_hpc.results.syncdata import fingerprint
from wcd_hpc.store.storage import open_storage

QUICK = """\
name: quickstart
dataset: {{name: toy-blobs, params: {{events: 200, separation: {separation}}}}}
model: toy-mlp
metric: {{name: accuracy}}
trials: 3
epochs: 1
pruner: none
prune_chance: false
trial_plots: false
storage: journal
workers: 1
executor: local
"""


def _study(runs: Path, name: str = "quickstart") -> optuna.Study:
    url = f"journal:{runs}/{name}/journal.log"
    return optuna.load_study(study_name=name, storage=open_storage(url))


def _experiment_runs(client: MlflowClient, exp_id: str) -> list:
    return client.search_runs([exp_id], max_results=1000)


@pytest.mark.slow
def test_two_studies_with_one_name_sync_apart_and_best_of_each_is_its_own(
    cli, testplugins, tmp_path, mlflow_server
) -> None:
    uri = mlflow_server.uri
    for folder, separation in (("runs-a", 3.0), ("runs-b", 0.1)):
        path = tmp_path / f"{folder}.yaml"
        path.write_text(QUICK.format(separation=separation))
        res = cli("sweep", str(path), "--runs-dir", folder, "--no-sync", plugins=testplugins,
                  env=TOY)  # fmt: skip
        assert res.code == 0, res.err

    def sync(folder: str):
        return cli("sync", "quickstart", "--runs-dir", folder, "--tracking-uri", uri,
                   plugins=testplugins, env=TOY)  # fmt: skip

    first, second = sync("runs-a"), sync("runs-b")
    assert first.code == 0 and second.code == 0, first.err + second.err
    assert "3 new" in first.out and "3 new" in second.out
    assert "runs dir" in second.out  # the second study's experiment names its runs dir

    client = MlflowClient(uri)
    studies = {f: _study(tmp_path / f) for f in ("runs-a", "runs-b")}
    idents = {f: s.user_attrs[STUDY_ID] for f, s in studies.items()}
    assert idents["runs-a"] != idents["runs-b"]
    seen_runs: set[str] = set()
    for folder, study in studies.items():
        ident = idents[folder]
        (exp,) = client.search_experiments(filter_string=f"tags.`{TAG_STUDY_ID}` = '{ident}'")
        runs = _experiment_runs(client, exp.experiment_id)
        assert len(runs) == 4  # the parent and three trials, none of the other study's
        for run in runs:
            assert run.data.tags[TAG_STUDY_ID] == ident
            if run.data.tags["wcd_hpc.role"] != "trial":
                continue
            trial = study.trials[int(run.data.tags["wcd_hpc.trial"])]
            assert run.data.metrics["objective"] == pytest.approx(trial.value)
            assert float(run.data.params["lr"]) == pytest.approx(trial.params["lr"])
            assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) == 1
            saved = tmp_path / folder / "quickstart/trials" / str(trial.number) / "params.json"
            assert json.loads(saved.read_text())[STUDY_ID] == ident
        seen_runs |= {r.info.run_id for r in runs}
        best_run = next(r for r in runs if r.data.tags.get("wcd_hpc.trial") ==
                        str(study.best_trial.number))  # fmt: skip
        model = "wcd-hpc-quickstart" if exp.name == "quickstart" else (
            f"wcd-hpc-quickstart-{ident[:8]}")  # fmt: skip
        version = client.get_model_version_by_alias(model, "best")
        assert version.run_id == best_run.info.run_id
        assert version.tags[TAG_STUDY_ID] == ident
    assert studies["runs-a"].best_value != studies["runs-b"].best_value

    before = {
        r.info.run_id: (r.data.metrics, r.data.params, r.info.end_time)
        for r in client.search_runs(
            [e.experiment_id for e in client.search_experiments()], max_results=1000
        )
    }
    for folder in ("runs-a", "runs-b"):
        again = sync(folder)
        assert again.code == 0, again.err
        assert "0 new, 0 updated, 3 unchanged" in again.out and "v1" in again.out
    after = {
        r.info.run_id: (r.data.metrics, r.data.params, r.info.end_time)
        for r in client.search_runs(
            [e.experiment_id for e in client.search_experiments()], max_results=1000
        )
    }
    assert after == before and seen_runs <= set(after)


def test_a_study_from_before_identities_keeps_its_runs_and_a_new_namesake_goes_apart(
    tmp_path,
) -> None:
    """What an older sync left (runs tagged by name only) is adopted, not duplicated."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = tmp_path / "runs"
    (runs / "old").mkdir(parents=True)
    study = optuna.create_study(
        study_name="old",
        storage=open_storage(f"journal:{runs}/old/journal.log"),
        direction="maximize",
    )
    study.set_user_attr(STUDY_EXPERIMENT, {"metric": "accuracy", "model": "gone"})
    for value in (0.5, 0.7):
        study.add_trial(
            create_trial(state=TrialState.COMPLETE, value=value, params={"lr": value},
                         distributions={"lr": optuna.distributions.FloatDistribution(0, 1)})
        )  # fmt: skip
    client = MlflowClient(uri)
    where = (tmp_path / "mlartifacts/old").as_uri()  # MLflow's default would be ./mlruns
    exp_id = client.create_experiment("old", artifact_location=where, tags={"wcd_hpc.study": "old"})
    old_tags = {"wcd_hpc.study": "old"}
    client.create_run(exp_id, tags={**old_tags, "wcd_hpc.role": "study"}, run_name="old")
    for trial in study.trials:
        folder = runs / "old/trials" / str(trial.number)
        tags = {**old_tags, "wcd_hpc.role": "trial", "wcd_hpc.trial": str(trial.number),
                "wcd_hpc.fingerprint": fingerprint(trial, folder)}  # fmt: skip
        client.create_run(exp_id, tags=tags)

    report = sync_study(study, runs / "old", uri, registry=Registry())
    assert (report.created, report.updated, report.unchanged) == ([], [], [0, 1])
    ident = study.user_attrs[STUDY_ID]
    assert study.user_attrs[STUDY_ID_ADOPTED] is True and identity.created_of(study)
    assert client.get_experiment(exp_id).tags[TAG_STUDY_ID] == ident
    assert all(r.data.tags[TAG_STUDY_ID] == ident for r in _experiment_runs(client, exp_id))

    # A new study of the same name (a fresh identity) gets an experiment of its own.
    namesake = optuna.create_study(study_name="old", direction="maximize")
    identity.stamp_new(namesake)
    namesake.set_user_attr(STUDY_EXPERIMENT, {"metric": "accuracy", "model": "gone"})
    namesake.add_trial(study.trials[0])
    other = sync_study(namesake, tmp_path / "elsewhere/old", uri, registry=Registry())
    assert other.experiment_id != exp_id and other.created == [0]
    assert "runs dir" in other.experiment_name and "(experiment" in other.line()
    assert len(_experiment_runs(client, exp_id)) == 3
