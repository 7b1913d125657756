"""What a person sees of a study in optuna-dashboard: named objective, readable attributes."""

from __future__ import annotations

from datetime import datetime

import optuna
import pytest

from wcd_hpc.store.storage import open_storage

TOY = {"WCD_HPC_PLUGINS": "toy"}


def _study(tmp_path, name: str) -> optuna.Study:
    journal = tmp_path / "runs" / name / "journal.log"
    return optuna.load_study(study_name=name, storage=open_storage(f"journal:{journal}"))


def test_a_new_study_names_its_objective_and_its_headline(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    exp = toy_experiment(name="named", metric="toy-score")
    assert cli("render", str(exp), "--out", "s", plugins=testplugins, env=TOY).code == 0
    study = _study(tmp_path, "named")
    assert study.metric_names == ["toy-score"]  # not "Objective 0"
    attrs = study.user_attrs
    assert (attrs["model"], attrs["dataset"], attrs["metric"]) == (
        "toy-mlp",
        "toy-blobs",
        "toy-score",
    )


@pytest.mark.slow
def test_a_claimed_trial_says_when_in_words_as_well_as_in_seconds(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    exp = toy_experiment(name="stamped", trials=1)
    assert cli("sweep", str(exp), "--no-sync", plugins=testplugins, env=TOY).code == 0
    attrs = _study(tmp_path, "stamped").trials[0].user_attrs
    when = datetime.fromisoformat(attrs["claimed_at"])
    assert when.utcoffset() is not None and abs(when.timestamp() - attrs["claimed"]) < 1
