"""`wcd-hpc sweep` end to end with real worker processes: budget, resume, extend, storages."""

from __future__ import annotations

import json
import uuid

import optuna
import pytest
from conftest import dev_pg_password

from wcd_hpc.store.storage import open_storage

pytestmark = pytest.mark.slow
TOY = {"WCD_HPC_PLUGINS": "toy"}


def _status(cli, testplugins, name: str, *extra: str) -> dict:
    res = cli("status", name, "--json", *extra, plugins=testplugins, env=TOY)
    assert res.code == 0, res.err
    return res.json()


def test_sweep_finishes_exactly_the_budget_then_resumes_and_extends(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    exp = toy_experiment(trials=5, workers=2)
    res = cli("sweep", str(exp), plugins=testplugins, env=TOY)
    assert res.code == 0, res.err
    assert "created study toy with a budget of 5 trials" in res.out
    assert "best trial" in res.out
    info = _status(cli, testplugins, "toy")
    assert info["counts"]["COMPLETE"] + info["counts"]["PRUNED"] == 5
    assert info["counts"]["RUNNING"] == info["counts"]["FAIL"] == 0

    again = cli("sweep", str(exp), plugins=testplugins, env=TOY)
    assert again.code == 0, again.err
    assert "resuming study toy: 5 of 5 trials finished" in again.out
    assert _status(cli, testplugins, "toy")["finished"] == 5

    more = cli("sweep", str(exp), "--trials", "7", plugins=testplugins, env=TOY)
    assert more.code == 0, more.err
    assert "(budget was 5)" in more.out
    info = _status(cli, testplugins, "toy")
    assert (info["finished"], info["budget"]) == (7, 7)
    assert len({t for t in range(7)}) == len(list((tmp_path / "runs/toy/trials").iterdir()))


def test_each_trial_leaves_its_artifacts(cli, testplugins, toy_experiment, tmp_path) -> None:
    exp = toy_experiment(name="art", trials=2)
    assert cli("sweep", str(exp), plugins=testplugins, env=TOY).code == 0
    trial = tmp_path / "runs/art/trials/0"
    assert {p.name for p in trial.iterdir()} >= {
        "params.json",
        "metrics.jsonl",
        "checkpoint.pt",
        "model.pt",
        "result.json",
    }
    params = json.loads((trial / "params.json").read_text())
    assert params["seed"] == 0 and params["trial"] == 0 and params["params"]["optimizer"] == "adam"
    epochs = [json.loads(line) for line in (trial / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert "val_accuracy" in epochs[-1]
    result = json.loads((trial / "result.json").read_text())
    assert set(result["test"]) >= {"accuracy", "f1", "roc_auc"}
    assert (tmp_path / "runs/art/logs/worker-0.log").exists()


def test_four_workers_never_overshoot_the_budget(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    exp = toy_experiment(name="race", trials=6, workers=4)
    res = cli("sweep", str(exp), plugins=testplugins, env=TOY)
    assert res.code == 0, res.err
    storage = open_storage(f"journal:{tmp_path / 'runs/race/journal.log'}")
    trials = optuna.load_study(study_name="race", storage=storage).get_trials()
    assert len(trials) == 6
    assert [t.number for t in trials] == list(range(6))
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) >= 2


def test_a_worker_started_by_hand_joins_the_study(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    exp = toy_experiment(name="joined", trials=2)
    assert cli("sweep", str(exp), plugins=testplugins, env=TOY).code == 0
    assert (
        cli("sweep", str(exp), "--trials", "4", "--workers", "1", plugins=testplugins, env=TOY).code
        == 0
    )
    journal = tmp_path / "runs/joined/journal.log"
    # Raise the budget again, then let a hand-started worker do the work.
    storage = open_storage(f"journal:{journal}")
    optuna.load_study(study_name="joined", storage=storage).set_user_attr("budget", 6)
    res = cli(
        "worker",
        "--study",
        "joined",
        "--storage",
        f"journal:{journal}",
        "--worker-id",
        "by-hand",
        plugins=testplugins,
        env=TOY,
    )
    assert res.code == 0, res.err
    assert "2 complete" in res.err and "budget met" in res.err
    trials = optuna.load_study(study_name="joined", storage=storage).get_trials()
    assert [t.user_attrs["worker"] for t in trials[4:]] == ["by-hand", "by-hand"]


def test_sqlite_storage_url_works(cli, testplugins, toy_experiment, tmp_path) -> None:
    exp = toy_experiment(name="lite", trials=3, workers=2, storage=f"sqlite:///{tmp_path}/s.db")
    res = cli("sweep", str(exp), plugins=testplugins, env=TOY)
    assert res.code == 0, res.err
    info = _status(cli, testplugins, "lite", "--storage", f"sqlite:///{tmp_path}/s.db")
    assert info["finished"] == 3


def test_postgresql_sweep_completes_and_never_prints_the_password(
    cli, testplugins, toy_experiment, tmp_path, secret_pg_url
) -> None:
    name = f"pg-{uuid.uuid4().hex[:12]}"  # the database outlives test runs
    pg_url = secret_pg_url  # in the experiment file, as a user who ignores the advice writes it
    exp = toy_experiment(name=name, trials=3, workers=2, storage=pg_url)
    res = cli("sweep", str(exp), plugins=testplugins, env=TOY)
    assert res.code == 0, res.err
    assert dev_pg_password() not in res.out + res.err
    assert "postgresql://wcd@127.0.0.1" in res.out
    logs = "".join(p.read_text() for p in (tmp_path / f"runs/{name}/logs").iterdir())
    assert dev_pg_password() not in logs
    info = _status(cli, testplugins, name, "--storage", pg_url)
    assert info["finished"] == 3
    assert dev_pg_password() not in json.dumps(info)


def test_status_of_an_unknown_study_fails_and_creates_nothing(cli, tmp_path) -> None:
    res = cli("status", "nope")
    assert res.code != 0
    assert res.err.count("\n") == 1 and "no study 'nope'" in res.err
    assert not (tmp_path / "runs").exists()


def test_changing_the_experiment_of_an_existing_study_is_refused(
    cli, testplugins, toy_experiment
) -> None:
    exp = toy_experiment(name="fixed", trials=1)
    assert cli("sweep", str(exp), plugins=testplugins, env=TOY).code == 0
    res = cli("sweep", str(exp), "--set", "epochs=3", plugins=testplugins, env=TOY)
    assert res.code == 2
    assert "already exists with a different experiment (changed: epochs)" in res.err


def test_profile_sits_between_defaults_and_the_file_and_flags_win(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    profile = tmp_path / "site.toml"
    profile.write_text('runs_dir = "profile-runs"\nworkers = 3\nsampler = "random"\n')
    exp = toy_experiment(name="layered", trials=2, workers=1)
    res = cli(
        "sweep",
        str(exp),
        "--profile",
        str(profile),
        "--set",
        "epochs=1",
        plugins=testplugins,
        env=TOY,
    )
    assert res.code == 0, res.err
    storage = open_storage(f"journal:{tmp_path / 'profile-runs/layered/journal.log'}")
    stored = optuna.load_study(study_name="layered", storage=storage).user_attrs["experiment"]
    # profile beat the default runs_dir and sampler; the file beat the profile's workers;
    # the flag beat the file's epochs.
    assert (stored["sampler"], stored["workers"], stored["epochs"]) == ("random", 1, 1)


def test_a_trial_that_raises_is_failed_with_its_cause_and_the_worker_gives_up_after_three(
    cli, testplugins, toy_experiment
) -> None:
    # A model whose forward pass raises (an optimizer name no longer gets that far: parameter
    # domains refuse it before the study exists).
    exp = toy_experiment(name="doomed", trials=4)
    exp.write_text(exp.read_text().replace("model: toy-mlp", "model: toy-badforward"))
    env = {**TOY, "WCD_HPC_PLUGINS": "toy,badforward"}
    res = cli("sweep", str(exp), plugins=testplugins, env=env)
    assert res.code == 1, res.err
    assert res.err.strip().endswith("the worker logs in " + str(exp.parent / "runs/doomed/logs"))
    info = _status(cli, testplugins, "doomed")
    assert info["counts"]["FAIL"] == 3 and info["finished"] == 0
    causes = {f["cause"] for f in info["failures"]}
    assert len(causes) == 1 and "forward is broken on purpose" in next(iter(causes)), causes
    human = cli("status", "doomed", plugins=testplugins, env=env)
    assert "forward is broken on purpose" in human.out


def test_grid_sweep_visits_every_point_once(cli, testplugins, toy_experiment, tmp_path) -> None:
    exp = toy_experiment(
        name="grid",
        trials=4,
        workers=2,
        extra="sampler: grid\nparam_space:\n  lr: 0.01\n  batch_size: randint(16, 17)\n"
        "  hidden: choice([4, 8])\n",
    )
    res = cli("sweep", str(exp), plugins=testplugins, env=TOY)
    assert res.code == 0, res.err
    storage = open_storage(f"journal:{tmp_path / 'runs/grid/journal.log'}")
    trials = optuna.load_study(study_name="grid", storage=storage).get_trials()
    points = sorted((t.params["batch_size"], t.params["hidden"]) for t in trials)
    assert points == [(16, 4), (16, 8), (17, 4), (17, 8)]


def test_a_trial_whose_parameters_are_rejected_is_failed_and_the_worker_goes_on(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    exp = toy_experiment(
        name="rejected", trials=1, extra="param_space:\n  hidden: choice([4, 8])\n"
    )
    assert cli("sweep", str(exp), plugins=testplugins, env=TOY).code == 0
    journal = tmp_path / "runs/rejected/journal.log"
    study = optuna.load_study(study_name="rejected", storage=open_storage(f"journal:{journal}"))
    study.set_user_attr("budget", 2)  # a failed trial does not count towards it
    study.enqueue_trial({"hidden": 5}, skip_if_exists=False)  # not one of the choices
    res = cli(
        "worker", "--study", "rejected", "--storage", f"journal:{journal}", plugins=testplugins
    )
    assert res.code == 0, res.err
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert "not in (4, 8)" in trials[1].user_attrs["fail_reason"]
    assert "Traceback" in (tmp_path / "runs/rejected/trials/1/error.txt").read_text()
