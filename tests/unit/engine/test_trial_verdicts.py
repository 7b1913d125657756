"""What stops a trial before its pruner: a loss or outputs that are not finite, outputs of the
wrong shape, and a network at chance level (issues 22 items 3-4, 24 point 1)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from torch import nn

from wcd_hpc.api import Model
from wcd_hpc.default_plugins.metrics import accuracy, f1, q_factor, roc_auc
from wcd_hpc.engine.trial import ModelOutputError, run_trial
from wcd_hpc.engine.verdicts import ChanceRule, at_chance, auc_with_error, chance_rule

optuna.logging.set_verbosity(optuna.logging.ERROR)


class Scaled(nn.Module):
    """A linear classifier whose outputs are multiplied by ``factor`` (NaN: a diverged net)."""

    def __init__(self, classes: int = 2, factor: float = 1.0, eval_factor: float | None = None):
        super().__init__()
        self.linear = nn.Linear(8, classes)
        self.factor, self.eval_factor = factor, eval_factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = self.factor if self.training or self.eval_factor is None else self.eval_factor
        return self.linear(x) * factor


class Constant(nn.Module):
    """Predicts the same class probabilities for every event: a collapsed network."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([0.3, -0.2]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(x.shape[0], 2) + 0 * x[:, :2]


def _with_model(ctx: Any, build: Any) -> Any:
    model = Model("mlp", lambda params, spec: build(), {"lr": 0.01})
    return dataclasses.replace(ctx, model=model)


def _study() -> tuple[optuna.Study, optuna.Trial]:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    return study, study.ask()


def test_a_nan_loss_prunes_the_trial_with_reason_nan_before_a_step(mlp_context) -> None:
    ctx = _with_model(mlp_context(epochs=2), lambda: Scaled(factor=float("nan")))
    study, trial = _study()
    with pytest.raises(optuna.TrialPruned, match="training loss is nan on the first batch"):
        run_trial(ctx, trial)
    assert study.trials[0].user_attrs["pruned_because"] == "nan"
    assert study.trials[0].user_attrs["pruned_detail"] == "training loss is nan on the first batch"
    assert not (ctx.run_dir / "trials/0/model.pt").exists()


def test_nan_outputs_on_validation_are_pruned_and_never_scored(mlp_context) -> None:
    # Trains finitely, predicts NaN: argmax of NaN is class 0, which once scored F1 0.80 and won.
    ctx = _with_model(mlp_context(epochs=2), lambda: Scaled(eval_factor=float("nan")))
    study, trial = _study()
    with pytest.raises(optuna.TrialPruned, match="predictions are NaN or inf at epoch 1"):
        run_trial(ctx, trial)
    assert study.trials[0].user_attrs["pruned_because"] == "nan"
    assert study.trials[0].intermediate_values == {}  # no NaN value entered the study


@pytest.mark.parametrize("metric", [f1, accuracy, roc_auc, q_factor])
def test_a_metric_refuses_scores_that_hold_nan_or_inf(metric: Any) -> None:
    y = np.array([0, 1, 0, 1])
    for bad in (np.nan, np.inf):
        scores = np.array([[0.5, 0.5], [bad, 0.1], [0.9, 0.1], [0.2, 0.8]])
        with pytest.raises(ValueError, match="NaN or inf"):
            metric(y, scores, {})


def test_outputs_of_the_wrong_shape_fail_the_trial_naming_the_model_and_its_plugin(
    mlp_context,
) -> None:
    ctx = _with_model(mlp_context(epochs=1), lambda: Scaled(classes=7))
    _, trial = _study()
    with pytest.raises(ModelOutputError) as info:
        run_trial(ctx, trial)
    message = str(info.value)
    assert "plugin '" in message and "model 'mlp'" in message
    assert "class logits must have shape (32, 2) (batch, classes), got (32, 7)" in message
    assert "2 classes (a, b)" in message and "\n" not in message
    assert not (ctx.run_dir / "trials/0/metrics.jsonl").exists()  # failed before an epoch


def test_constant_predictions_are_pruned_at_chance_before_they_are_reported(mlp_context) -> None:
    ctx = _with_model(mlp_context(epochs=3, prune_chance=True), Constant)
    study, trial = _study()
    with pytest.raises(optuna.TrialPruned, match="epoch 1: constant validation predictions"):
        run_trial(ctx, trial)
    frozen = study.trials[0]
    assert frozen.user_attrs["pruned_because"] == "chance"
    # Which test fired is kept on the trial, not only in the worker's log.
    detail = frozen.user_attrs["pruned_detail"]
    assert detail.startswith("at chance level at epoch 1: constant validation predictions")
    assert frozen.intermediate_values == {}  # never counted in the median or ASHA's rungs


def test_prune_chance_false_lets_a_constant_network_finish(mlp_context) -> None:
    ctx = _with_model(mlp_context(epochs=1, prune_chance=False), Constant)
    study, trial = _study()
    run_trial(ctx, trial)
    assert "pruned_because" not in study.trials[0].user_attrs


def test_a_learning_network_is_not_at_chance(mlp_context) -> None:
    study, trial = _study()
    run_trial(mlp_context(epochs=2, prune_chance=True), trial)
    assert "pruned_because" not in study.trials[0].user_attrs


def test_a_one_class_validation_set_is_never_judged_at_chance() -> None:
    # One event (the scheduling benchmarks' data set): constant by construction, AUC undefined.
    probs = np.array([[0.5, 0.5]])
    assert at_chance(probs, np.array([0]), 1, ChanceRule(), 1) is None


def test_small_outputs_that_rank_events_well_are_learning_not_constant() -> None:
    # After one short epoch every output sits within 0.003 of 0.5, yet ranks gammas above
    # protons (the race's trial that reached ROC AUC 0.78 and was pruned as "constant").
    rng = np.random.default_rng(2)
    y = np.arange(300) % 2
    score = 0.5 + 0.001 * (y + rng.normal(scale=0.8, size=300))
    small = np.stack([1 - score, score], axis=1)
    assert float(np.ptp(small, axis=0).max()) < 0.01
    assert at_chance(small, y, 1, ChanceRule(), 1) is None
    # The same spread that ranks nothing (a decayed network's float noise) is constant.
    noise = 0.5 + 0.001 * rng.normal(size=300)
    message = at_chance(np.stack([1 - noise, noise], axis=1), y, 1, ChanceRule(), 1)
    assert message is not None and message.startswith("constant validation predictions")


def test_after_delays_the_constant_test_too_so_slow_starters_get_their_next_report() -> None:
    # After 4-8 optimizer steps a slow starter's outputs still sit within 0.01 of each other:
    # in the races of 2026-12-06 every trial pruned at chance was pruned as constant, so an
    # `after` that delayed only the AUC interval changed nothing (benchmarks.md).
    rng = np.random.default_rng(4)
    y = np.arange(300) % 2
    noise = 0.5 + 0.001 * rng.normal(size=300)
    collapsed = np.stack([1 - noise, noise], axis=1)
    assert at_chance(collapsed, y, 1, ChanceRule(after=2), 1) is None
    message = at_chance(collapsed, y, 1, ChanceRule(after=2), 2)
    assert message is not None and message.startswith("constant validation predictions")


def _quartered(ctx: Any, rule: Any) -> Any:
    """Four reports an epoch: 200 training events in batches of 32 (7 optimizer steps an
    epoch), reports at 50, 100 and 150 samples (2, 4 and 5 steps) and at the epoch's end."""
    ctx.exp.extras.update(report_every=0.25, prune_chance=rule)
    return ctx


def test_a_constant_network_is_pruned_at_the_first_report_inside_its_first_epoch(
    mlp_context,
) -> None:
    # On a large training set an epoch is hours: a dead network must not hold its GPU for one.
    ctx = _quartered(_with_model(mlp_context(epochs=3), Constant), True)
    study, trial = _study()
    with pytest.raises(optuna.TrialPruned, match="after 50 samples in epoch 1: constant"):
        run_trial(ctx, trial)
    frozen = study.trials[0]
    assert frozen.user_attrs["pruned_because"] == "chance"
    assert frozen.intermediate_values == {}  # judged before it is reported


def test_min_steps_holds_the_chance_judgement_until_the_trial_has_taken_that_many_steps(
    mlp_context,
) -> None:
    rule = {"after": 1, "auc_margin": 0.0, "min_steps": 5}
    ctx = _quartered(_with_model(mlp_context(epochs=3), Constant), rule)
    study, trial = _study()
    with pytest.raises(optuna.TrialPruned, match="after 150 samples in epoch 1: constant"):
        run_trial(ctx, trial)
    # The reports before it (2 and 4 steps) went to the pruner as any other trial's.
    assert sorted(study.trials[0].intermediate_values) == [50, 100]
    # One report an epoch: the first judged is the epoch's end with 10 steps or more (14).
    ctx = _with_model(mlp_context(epochs=3, prune_chance={**rule, "min_steps": 10}), Constant)
    study, trial = _study()
    with pytest.raises(optuna.TrialPruned, match="at chance level at epoch 2: constant"):
        run_trial(ctx, trial)


def test_the_clock_counts_every_report_and_the_optimizer_steps() -> None:
    from wcd_hpc.engine.subepoch import Clock

    clock = Clock((250, 500, 750), train=1000, batch=100)
    assert clock.at(1, 250) == (1, 3)
    assert clock.at(1) == (4, 10)
    assert clock.at(2, 500) == (6, 15)
    assert Clock((), train=1000, batch=300).at(2) == (2, 8)  # a last, partial batch is a step


def test_small_outputs_that_rank_events_faintly_are_constant() -> None:
    # Decayed weights (quickstart with reg 0.5) keep a faint ranking: significant on 1,000
    # events (AUC about 0.63, five standard errors) yet never a classifier.
    rng = np.random.default_rng(3)
    y = np.arange(1000) % 2
    score = 0.5 + 0.001 * (0.5 * y + rng.normal(size=1000))
    faint = np.stack([1 - score, score], axis=1)
    auc, error = auc_with_error(y == 1, score)
    assert 0.55 < auc < 0.72 and abs(auc - 0.5) > 3 * error
    message = at_chance(faint, y, 1, ChanceRule(), 1)
    assert message is not None and message.startswith("constant validation predictions")


def test_the_auc_interval_is_hanley_mcneil_and_judges_from_report_after() -> None:
    rng = np.random.default_rng(1)
    y = np.arange(400) % 2
    auc, error = auc_with_error(y == 1, rng.uniform(size=400))
    # Hanley-McNeil at A = 0.5 with 200 + 200 events: sqrt((0.25 + 199·(1/3-1/4)·2)/40000)
    assert error == pytest.approx(0.0289, abs=0.002) and abs(auc - 0.5) < 0.1
    noise = np.stack([1 - (p := rng.uniform(size=400)), p], axis=1)
    assert at_chance(noise, y, 1, ChanceRule(after=1), 1) is not None
    assert at_chance(noise, y, 1, ChanceRule(after=2), 1) is None  # not judged yet
    good = np.stack([1 - (q := 0.3 * y + 0.7 * p), q], axis=1)
    assert at_chance(good, y, 1, ChanceRule(), 1) is None
    assert at_chance(good, y, 1, ChanceRule(auc_margin=0.5), 1) is not None
    assert chance_rule(False) is None and chance_rule(True) == ChanceRule(1, 0.0)
    assert chance_rule({"after": 2, "auc_margin": 0.05}) == ChanceRule(2, 0.05)
    assert chance_rule({"after": 1, "auc_margin": 0.0, "min_steps": 16}) == ChanceRule(1, 0.0, 16)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ("{after: 0}", "prune_chance.after: expected a report number >= 1, got 0"),
        ("{auc_margin: 2}", "prune_chance.auc_margin: expected a number from 0 to 0.5, got 2"),
        ("{margin: 0.1}", "prune_chance.margin: unknown knob of prune_chance"),
        ("{min_steps: -1}", "prune_chance.min_steps: expected a number of optimizer steps >= 0"),
        ("sometimes", "prune_chance: expected true, false or {after, auc_margin, min_steps}"),
    ],
)
def test_a_bad_prune_chance_is_one_precise_line(tmp_path, value: str, where: str) -> None:
    from wcd_hpc.errors import ConfigError
    from wcd_hpc.experiment.config import load_experiment

    path, head = tmp_path / "p.yaml", "name: p\ndataset: footprint-sim\nmodel: lenet\ntrials: 4\n"
    path.write_text(f"{head}prune_chance: {value}\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert f"p.yaml:5: {where}" in str(info.value) and "\n" not in str(info.value)
    path.write_text(f"{head}prune_chance: false\n")
    assert load_experiment(path).setting("prune_chance") is False
    path.write_text(head)  # one knob from the command line, as MLflow spells the parameter
    exp = load_experiment(path, overrides=["prune_chance.after=2"])
    assert exp.setting("prune_chance") == {"after": 2, "auc_margin": 0.0, "min_steps": 16}


def test_status_shows_why_each_trial_was_pruned_in_text_and_json(tmp_path) -> None:
    from rich.console import Console

    from wcd_hpc.cli.status import render
    from wcd_hpc.queue.status import summarize

    study = optuna.create_study(direction="maximize")
    for because in ("chance", "chance", "nan", "pruner", None):
        trial = study.ask()
        if because is not None:
            trial.set_user_attr("pruned_because", because)
            trial.set_user_attr("pruned_detail", f"the {because} line")
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    done = study.ask()
    done.set_user_attr("kept_epoch", 2)
    study.tell(done, 0.9)
    info = summarize(study, tmp_path)
    assert info["pruned_because"] == {"chance": 2, "nan": 1, "pruner": 1, "unknown": 1}
    assert [r["pruned_because"] for r in info["trials"]][:3] == ["chance", "chance", "nan"]
    assert [r["pruned_detail"] for r in info["trials"]][3:] == ["the pruner line", None, None]
    assert info["best"]["kept_epoch"] == 2 and info["trials"][-1]["kept_epoch"] == 2
    console = Console(width=200, record=True)
    console.print(render(info))
    text = console.export_text()
    assert "pruned because: chance 2, nan 1, pruner 1, unknown 1" in text
    # (a value without an interval is shown as it is; with one, rounded to its precision)
    assert "best trial 5: None=0.9 (epoch 2)" in text
