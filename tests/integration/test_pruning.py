"""Pruning across a parallel array: the pruners and their knobs, what is judged and when, and
samplers that do not hand two workers the same parameters."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState

from wcd_hpc.engine.fit import Interrupted
from wcd_hpc.engine.search import DistinctSampler, make_pruner, make_sampler
from wcd_hpc.engine.trial import run_trial
from wcd_hpc.errors import ConfigError
from wcd_hpc.experiment.config import Experiment, load_experiment
from wcd_hpc.experiment.pruning import median_warmup
from wcd_hpc.experiment.space import Space
from wcd_hpc.store.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.ERROR)
TOY = {"WCD_HPC_PLUGINS": "toy"}
BASE = "name: p\ndataset: footprint-sim\nmodel: lenet\ntrials: 4\nepochs: 6\n"


def _load(tmp_path: Path, extra: str) -> Experiment:
    path = tmp_path / "p.yaml"
    path.write_text(BASE + extra)
    return load_experiment(path)


def test_every_pruner_takes_its_knobs_in_the_short_or_the_long_form(tmp_path) -> None:
    assert (
        _load(tmp_path, "pruner: asha\n").pruner,
        _load(tmp_path, "pruner: asha\n").pruner_options,
    ) == ("asha", {})
    exp = _load(tmp_path, "pruner: {name: asha, min_epochs: 2, reduction_factor: 4}\n")
    assert (exp.pruner, exp.pruner_options) == ("asha", {"min_epochs": 2, "reduction_factor": 4})
    asha = make_pruner(exp.pruner, exp.epochs, exp.pruner_options)
    assert isinstance(asha, optuna.pruners.SuccessiveHalvingPruner)
    assert (asha._min_resource, asha._reduction_factor) == (2, 4)
    band = make_pruner("hyperband", 6, {"reduction_factor": 2})
    assert isinstance(band, optuna.pruners.HyperbandPruner) and band._reduction_factor == 2
    assert isinstance(make_pruner("none", 6), optuna.pruners.NopPruner)
    assert _load(tmp_path, "pruner: null\n").pruner == "none"


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        (
            "pruner: {name: asha, reduction_factor: 1}\n",
            "p.yaml:6: pruner.reduction_factor: expected an integer >= 2, got 1",
        ),
        (
            "pruner: ashaa\n",
            "p.yaml:6: pruner: expected one of asha, hyperband, median, none, got 'ashaa'; "
            "did you mean 'asha'?",
        ),
        (
            "pruner: {name: median, reduction_factor: 3}\n",
            "p.yaml:6: pruner.reduction_factor: unknown knob of pruner 'median'",
        ),
        ("pruner: {min_epochs: 1}\n", "p.yaml:6: pruner.name: expected one of"),
    ],
    ids=["factor-one", "unknown-pruner", "knob-of-another", "no-name"],
)
def test_a_bad_pruner_is_one_precise_line(tmp_path, extra: str, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, extra)
    assert where in str(info.value) and "\n" not in str(info.value)


def test_a_bad_pruner_creates_no_study(cli, testplugins, toy_experiment, tmp_path) -> None:
    exp = toy_experiment(extra="")
    exp.write_text(
        exp.read_text().replace("pruner: none", "pruner: {name: asha, reduction_factor: 1}")
    )
    res = cli("sweep", str(exp), plugins=testplugins, env=TOY)
    assert res.code == 2 and "pruner.reduction_factor: expected an integer >= 2" in res.err
    assert not (tmp_path / "runs").exists()


def test_the_median_pruner_never_judges_the_first_third_of_the_epochs() -> None:
    # Optuna prunes from step >= n_warmup_steps; epochs are counted from 1.
    assert [median_warmup(e) for e in (1, 3, 4, 6, 9)] == [1, 2, 2, 3, 4]
    assert make_pruner("median", 4)._n_warmup_steps == 2


class Recording(optuna.pruners.BasePruner):
    """Prunes nothing (or everything) and remembers which epochs it was asked about."""

    def __init__(self, verdict: bool = False) -> None:
        self.verdict, self.asked = verdict, []

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        self.asked.append(trial.last_step)
        return self.verdict


def test_the_last_epoch_is_reported_but_never_judged(tmp_path, mlp_context) -> None:
    ctx = mlp_context(epochs=2)
    pruner = Recording(verdict=True)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match="epoch 1"):
        run_trial(ctx, trial)  # judged (and pruned) at epoch 1
    one = optuna.create_study(direction="maximize", pruner=Recording(verdict=True))
    last = one.ask()
    run_trial(mlp_context(epochs=1, where=tmp_path / "one"), last)  # its only epoch is its last
    assert one.trials[0].intermediate_values.keys() == {1}


def test_a_resumed_trial_is_not_judged_twice_on_the_epoch_it_redoes(tmp_path, mlp_context) -> None:
    ctx = mlp_context(epochs=4)
    pruner = Recording()
    study = optuna.create_study(direction="maximize", pruner=pruner)
    trial = study.ask()
    history = tmp_path / "trials" / "0" / "metrics.jsonl"

    def stop_in_epoch_3() -> bool:
        return history.exists() and len(history.read_text().splitlines()) >= 2

    with pytest.raises(Interrupted):
        run_trial(ctx, trial, stop_in_epoch_3)
    assert pruner.asked == [1, 2]
    # The checkpoint lagged the report: it holds epoch 1, the pruner has judged epoch 2 already.
    checkpoint = torch.load(tmp_path / "trials/0/checkpoint.pt", weights_only=False)
    checkpoint["epoch"] = 1
    torch.save(checkpoint, tmp_path / "trials/0/checkpoint.pt")
    reported = dict(study.trials[0].intermediate_values)
    run_trial(ctx, optuna.Trial(study, trial._trial_id), resume=True)
    assert pruner.asked == [1, 2, 3]  # epoch 2 redone but not judged again; 4 is the last
    assert study.trials[0].intermediate_values[2] == reported[2]
    assert sorted(study.trials[0].intermediate_values) == [1, 2, 3, 4]


def _discrete_space() -> Space:
    return Space.from_mapping(
        {"a": "choice([1, 2, 3])", "b": "choice(['x', 'y'])", "c": "randint(1, 3)"}
    )  # 18 points


@pytest.mark.parametrize("sampler", ["tpe", "tpe-independent", "random", "qmc"])
def test_concurrent_claims_never_get_a_parameter_set_another_trial_has(sampler: str) -> None:
    space = _discrete_space()
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, direction="maximize")
    # Eight workers, each with its own sampler, take turns while every trial is still running.
    workers = [optuna.load_study(study_name=study.study_name, storage=storage) for _ in range(8)]
    for n, w in enumerate(workers):
        w.sampler = make_sampler(sampler, space, seed=0, worker=f"w{n}", workers=8)
    seen = []
    for w in itertools.islice(itertools.cycle(workers), 16):
        trial = w.ask()
        seen.append(tuple(sorted(space.suggest(trial).items())))
    assert len(set(seen)) == len(seen) == 16
    assert all(isinstance(w.sampler, DistinctSampler) for w in workers)


@pytest.mark.parametrize(("sampler", "joint"), [("tpe", True), ("tpe-independent", False)])
def test_tpe_models_the_parameters_jointly_unless_told_independent(
    tmp_path, sampler: str, joint: bool
) -> None:
    exp = _load(tmp_path, f"sampler: {sampler}\n")
    wrapped = make_sampler(exp.sampler, _discrete_space(), workers=4)
    assert isinstance(wrapped, DistinctSampler)
    base = wrapped.base
    assert isinstance(base, optuna.samplers.TPESampler)
    # Both keep the constant liar and the start-up trials: only the modelling differs.
    assert (base._multivariate, base._group) == (joint, joint)
    assert base._constant_liar and base._n_startup_trials == 10


def test_independent_tpe_proposes_the_set_parameter_by_parameter(monkeypatch) -> None:
    space = _discrete_space()
    study = optuna.create_study(direction="maximize")
    study.sampler = make_sampler("tpe-independent", space, workers=1)
    for n in range(12):  # past the ten start-up trials
        trial = study.ask()
        study.tell(trial, float(space.suggest(trial)["c"] + n / 100))
    asked: list[str] = []
    base = study.sampler.base  # type: ignore[attr-defined]
    original = base.sample_independent

    def spy(study: Any, trial: Any, name: str, dist: Any) -> Any:
        asked.append(name)
        return original(study, trial, name, dist)

    monkeypatch.setattr(base, "sample_independent", spy)
    trial = study.ask()
    space.suggest(trial)
    # TPE, not the random fallback, proposed each parameter (redraws may ask again).
    assert set(asked) == {"a", "b", "c"}


def test_a_failed_trials_parameters_may_be_drawn_again() -> None:
    space = Space.from_mapping({"a": "choice([1, 2])"})
    study = optuna.create_study()
    study.sampler = make_sampler("random", space)
    first = study.ask()
    space.suggest(first)
    study.tell(first, state=TrialState.FAIL)
    values: list[Any] = []
    for _ in range(2):
        t = study.ask()
        values.append(space.suggest(t)["a"])
    assert sorted(values) == [1, 2]


@pytest.mark.slow
def test_asha_prunes_at_its_rungs_across_a_four_task_array_and_the_sweep_meets_its_budget(
    cli, testplugins, toy_experiment, tmp_path, slurm_cluster
) -> None:
    exp = toy_experiment(name="rungs", trials=12, workers=4)
    asha = "pruner: {name: asha, min_epochs: 1, reduction_factor: 2}"
    text = exp.read_text().replace("pruner: none", asha).replace("epochs: 2", "epochs: 4")
    exp.write_text(text + "param_space: {lr: 'loguniform(1e-4, 1e-1)'}\n")
    args = ("sweep", str(exp), "--profile", "dev", "--set", "executor=slurm", "--wait", "--no-sync")
    res = cli(*args, plugins=testplugins, env=TOY, timeout=900)
    assert res.code == 0, res.err
    info = cli("status", "rungs", "--json", plugins=testplugins, env=TOY).json()
    assert info["finished"] == 12 and info["counts"]["RUNNING"] == 0
    assert len({t["slurm_array_task_id"] for t in info["trials"]}) > 1  # shared by the array
    journal = tmp_path / "runs" / "rungs" / "journal.log"
    trials = optuna.load_study(
        study_name="rungs", storage=open_storage(f"journal:{journal}")
    ).trials
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, "asha pruned nothing"
    assert {t.last_step for t in pruned} <= {1, 2}  # rungs at 1·2^k epochs, never the last


def test_a_resumed_trial_whose_checkpoint_was_deleted_says_so_in_one_line(
    tmp_path, mlp_context, caplog
) -> None:
    ctx = mlp_context(epochs=3)
    study = optuna.create_study(direction="maximize", pruner=Recording())
    trial = study.ask()
    history = tmp_path / "trials" / "0" / "metrics.jsonl"

    def stop_in_epoch_3() -> bool:
        return history.exists() and len(history.read_text().splitlines()) >= 2

    with pytest.raises(Interrupted):
        run_trial(ctx, trial, stop_in_epoch_3)
    (tmp_path / "trials/0/checkpoint.pt").unlink()
    with caplog.at_level("WARNING", logger="wcd_hpc.trial"):
        run_trial(ctx, optuna.Trial(study, trial._trial_id), resume=True)
    said = study.trials[0].user_attrs["checkpoint_missing"]
    assert "checkpoint" in said and "reached epoch 2" in said and "epoch 1" in said
    assert [r.getMessage() for r in caplog.records if "checkpoint" in r.getMessage()] == [said]


def test_a_resumed_trial_that_never_reached_a_checkpoint_starts_without_a_warning(
    tmp_path, mlp_context
) -> None:
    ctx = mlp_context(epochs=1)
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    ctx.space.suggest(trial)  # claimed, sampled, stopped before its first epoch ended
    run_trial(ctx, optuna.Trial(study, trial._trial_id), resume=True)
    assert "checkpoint_missing" not in study.trials[0].user_attrs
