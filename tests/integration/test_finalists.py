"""Finalists (issue 23 point 5): the K best configurations retrained with S new seeds after the
budget, apart from it, resumable; the pick by mean validation objective."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import trials_once_created
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from wcd_hpc.errors import ConfigError
from wcd_hpc.queue import finalists
from wcd_hpc.queue import study as studies
from wcd_hpc.queue.opened import OpenedStudy
from wcd_hpc.queue.reaper import fail_and_retry
from wcd_hpc.queue.schema import (
    STUDY_BUDGET,
    STUDY_EXPERIMENT,
    STUDY_FINALISTS,
    TRIAL_FINALIST,
    TRIAL_TEST,
)
from wcd_hpc.store.storage import Storage, open_storage

TOY = {"WCD_HPC_PLUGINS": "toy"}


def _study(tmp_path: Path, values: list[float], top: int = 2, seeds: int = 2) -> tuple:
    url = f"journal:{tmp_path / 'journal.log'}"
    study = optuna.create_study(study_name="fin", storage=open_storage(url), direction="maximize")
    exp = {"metric": "accuracy", "finalists": {"top": top, "seeds": seeds}}
    study.set_user_attr(STUDY_EXPERIMENT, exp)
    study.set_user_attr(STUDY_BUDGET, len(values))
    dist = {"lr": FloatDistribution(1e-4, 1.0)}
    for i, value in enumerate(values):
        study.add_trial(
            create_trial(params={"lr": 0.01 * (i + 1)}, distributions=dist, value=value)
        )
    return study, url


def _opened(study: optuna.Study, url: str) -> OpenedStudy:
    return OpenedStudy(study, Storage.parse(url), Path(url.removeprefix("journal:")).parent)


def test_finalists_are_enqueued_once_for_the_best_configurations(tmp_path: Path) -> None:
    study, _ = _study(tmp_path, [0.5, 0.9, 0.7, 0.8])
    assert finalists.enqueue_once(study) == [1, 3]
    assert finalists.enqueue_once(study) == [1, 3]  # idempotent: the study attribute says so
    waiting = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert sorted(t.user_attrs[TRIAL_FINALIST] for t in waiting) == [1, 1, 3, 3]
    assert study.user_attrs[STUDY_FINALISTS] == [1, 3]
    # Apart from the budget: 4 ordinary trials finished, whatever the finalists do.
    assert studies.finished(study.get_trials()) == 4


def test_a_finalist_claim_takes_a_waiting_finalist_with_its_parameters(tmp_path: Path) -> None:
    study, url = _study(tmp_path, [0.5, 0.9])
    claimed = finalists.claim(_opened(study, url), "w0", lambda t: t.suggest_float("lr", 1e-4, 1.0))
    assert claimed is not None
    trial, resume = claimed
    frozen = study.get_trials()[trial.number]
    assert not resume and frozen.state == TrialState.RUNNING
    assert frozen.user_attrs[TRIAL_FINALIST] == 1 and frozen.params["lr"] == pytest.approx(0.02)


def test_no_finalist_before_the_budget_is_met_or_when_off(tmp_path: Path) -> None:
    study, url = _study(tmp_path, [0.5, 0.9])
    study.set_user_attr(STUDY_BUDGET, 3)
    assert finalists.claim(_opened(study, url), "w0") is None
    assert STUDY_FINALISTS not in study.user_attrs
    study.set_user_attr(STUDY_BUDGET, 2)
    study.set_user_attr(STUDY_EXPERIMENT, {"metric": "accuracy", "finalists": None})
    assert finalists.claim(_opened(study, url), "w0") is None


def test_a_reaped_finalist_is_re_enqueued_as_a_finalist(tmp_path: Path) -> None:
    study, url = _study(tmp_path, [0.5, 0.9], top=1, seeds=1)
    trial, _ = finalists.claim(_opened(study, url), "w0") or (None, None)
    assert trial is not None
    fail_and_retry(study, study.get_trials()[trial.number], "worker gone", 3)
    again = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert [t.user_attrs[TRIAL_FINALIST] for t in again] == [1]
    assert studies.finalists_left(study, study.get_trials()) == 1


def test_the_pick_is_the_best_mean_on_validation_with_its_spread(tmp_path: Path) -> None:
    study, url = _study(tmp_path, [0.5, 0.9, 0.8])
    finalists.enqueue_once(study)  # configurations of trials 1 (0.9) and 2 (0.8)
    # Trial 1's luck does not last; trial 2's configuration is better on average.
    results = {1: [0.70, 0.72], 2: [0.78, 0.80]}
    for t in sorted(study.get_trials(), key=lambda t: t.number):
        if t.state != TrialState.WAITING:
            continue
        claimed = finalists.claim(_opened(study, url), "w0")
        assert claimed is not None
        trial, _ = claimed
        source = study.get_trials()[trial.number].user_attrs[TRIAL_FINALIST]
        value = results[source].pop(0)
        trial.set_user_attr(TRIAL_TEST, {"accuracy": value - 0.01})
        study.tell(trial, value)
    final = finalists.report(study)
    assert final is not None and final["complete"]
    assert final["pick"] == 2
    assert final["val"]["mean"] == pytest.approx(0.79) and final["val"]["n"] == 2
    assert final["val"]["std"] == pytest.approx(0.0141421, rel=1e-4)
    assert final["test"]["mean"] == pytest.approx(0.78)
    best_seed = max(
        (t for t in study.get_trials() if t.user_attrs.get(TRIAL_FINALIST) == 2),
        key=lambda t: t.value,
    )
    assert final["model_trial"] == best_seed.number
    assert "final pick: configuration of trial 2" in finalists.line(final)
    assert studies.finished(study.get_trials()) == 3


@pytest.mark.parametrize(
    "value", [{"top": 0, "seeds": 2}, {"top": 2}, {"top": 2, "seeds": True}, "yes"]
)
def test_finalists_setting_is_checked(value: object) -> None:
    from wcd_hpc.experiment.budget import finalists as check

    def fail(key: str, why: str) -> ConfigError:
        return ConfigError("f.yaml", key, 3, why)

    with pytest.raises(ConfigError, match="finalists"):
        check(value, "finalists", fail)
    assert check({"top": 2, "seeds": 3}, "finalists", fail) == {"top": 2, "seeds": 3}
    assert check(None, "finalists", fail) is None


# --- end to end: real workers --------------------------------------------------------------


def _status(cli, testplugins, name: str) -> dict:
    res = cli("status", name, "--json", plugins=testplugins, env=TOY)
    assert res.code == 0, res.err
    return res.json()


@pytest.mark.slow
def test_a_local_sweep_with_finalists_retrains_the_two_best_twice_and_registers_the_pick(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    exp = toy_experiment(name="fin", trials=4, workers=2, extra="finalists: {top: 2, seeds: 2}\n")
    res = cli("sweep", str(exp), plugins=testplugins, env=TOY)
    assert res.code == 0, res.err
    assert "final pick: configuration of trial" in res.out
    info = _status(cli, testplugins, "fin")
    assert info["finished"] == 4 and info["budget"] == 4  # the budget of ordinary trials
    assert info["counts"]["COMPLETE"] + info["counts"]["PRUNED"] == 8
    assert len(info["finalists"]["trials"]) == 4 and info["finalists"]["left"] == 0
    final = info["final"]
    assert final["complete"] and final["pick"] in info["finalists"]["of"]
    assert final["val"]["n"] == 2 and final["val"]["std"] is not None
    assert final["test"]["mean"] is not None
    storage = open_storage(f"journal:{tmp_path / 'runs/fin/journal.log'}")
    trials = optuna.load_study(study_name="fin", storage=storage).get_trials()
    tagged = [t for t in trials if TRIAL_FINALIST in t.user_attrs]
    assert len(tagged) == 4
    assert len({json.loads((tmp_path / f"runs/fin/trials/{t.number}/params.json").read_text())[
        "seed"] for t in tagged}) == 4  # fmt: skip
    # The registered model is the pick's best seed on validation.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'runs/mlflow.db'}")
    version = client.get_model_version_by_alias("wcd-hpc-fin", "best")
    run = client.get_run(version.run_id)
    assert run.data.tags["wcd_hpc.trial"] == str(final["model_trial"])
    model = client.get_registered_model("wcd-hpc-fin")
    assert "final pick" in (model.description or "")


@pytest.mark.slow
def test_a_finalist_killed_mid_way_is_redone_when_the_sweep_resumes(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    exp = toy_experiment(name="kill", trials=2, workers=1, extra="finalists: {top: 1, seeds: 2}\n")
    text = exp.read_text().replace("model: toy-mlp", "model: sleep")
    text = text.replace("epochs: 2", "epochs: 1").replace(
        "dataset: {name: toy-blobs, params: {events: 300}}", "dataset: one-sample"
    )
    exp.write_text(text + "param_space: {seconds: 3}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WCD_HPC_")}
    env.update(TOY, PYTHONPATH=str(testplugins), WCD_HPC_HEARTBEAT_S="2")
    sweep = subprocess.Popen(
        [sys.executable, "-m", "wcd_hpc", "sweep", str(exp)],
        cwd=tmp_path,
        env=env,
        stdout=(tmp_path / "sweep.out").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    journal = tmp_path / "runs/kill/journal.log"
    deadline = time.monotonic() + 120
    running_finalist = None
    while running_finalist is None and time.monotonic() < deadline:
        time.sleep(0.5)
        found = [
            t
            for t in trials_once_created(journal, "kill")
            if t.state == TrialState.RUNNING and TRIAL_FINALIST in t.user_attrs
        ]
        if found:
            running_finalist = found[0].number
            # The worker (its own process group) and the sweep, mid-way in a finalist.
            os.kill(int(found[0].user_attrs["pid"]), signal.SIGKILL)
    os.killpg(sweep.pid, signal.SIGKILL)
    sweep.wait()
    assert running_finalist is not None, (tmp_path / "sweep.out").read_text()

    again = cli("sweep", str(exp), plugins=testplugins, env={**TOY, "WCD_HPC_HEARTBEAT_S": "2"})
    assert again.code == 0, again.err
    info = _status(cli, testplugins, "kill")
    assert info["finished"] == 2  # the budget of ordinary trials is unchanged
    done = [
        t
        for t in optuna.load_study(
            study_name="kill", storage=open_storage(f"journal:{journal}")
        ).get_trials()
        if TRIAL_FINALIST in t.user_attrs and t.state == TrialState.COMPLETE
    ]
    assert len(done) == 2 and info["finalists"]["left"] == 0
    # The killed one failed (reaped) and its rerun, a finalist too, finished in its place.
    assert running_finalist not in {t.number for t in done}
    assert any(t.user_attrs.get("retry_of") == running_finalist for t in done)
    assert info["final"]["val"]["n"] == 2
