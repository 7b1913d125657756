"""``trial_plots``: an ordinary trial of a sweep may skip its figures; a finalist never does."""

from __future__ import annotations

import optuna
import pytest

from wcd_hpc.engine.trial import run_trial
from wcd_hpc.errors import ConfigError
from wcd_hpc.experiment.config import load_experiment
from wcd_hpc.queue.schema import PREDICTIONS_FILE, TRIAL_FINALIST, trial_dir


def test_a_trial_draws_its_figures_by_default(mlp_context) -> None:
    ctx = mlp_context(epochs=1)
    run_trial(ctx, optuna.create_study(direction="maximize").ask())
    plots = trial_dir(ctx.run_dir, 0) / "plots"
    assert {"confusion.png", "confusion.pdf", "roc.png"} <= {p.name for p in plots.iterdir()}


def test_trial_plots_false_keeps_the_predictions_but_draws_nothing_except_for_a_finalist(
    mlp_context,
) -> None:
    ctx = mlp_context(epochs=1)
    ctx.exp.extras["trial_plots"] = False
    study = optuna.create_study(direction="maximize")
    run_trial(ctx, study.ask())
    ordinary = trial_dir(ctx.run_dir, 0)
    assert not (ordinary / "plots").exists()
    # What evaluate and sync would draw from is still there.
    assert (ordinary / PREDICTIONS_FILE).exists()

    study.enqueue_trial({}, user_attrs={TRIAL_FINALIST: 0})
    run_trial(ctx, study.ask())  # a finalist is a configuration somebody will look at
    assert (trial_dir(ctx.run_dir, 1) / "plots/confusion.png").exists()


def test_trial_plots_defaults_to_true_and_takes_only_a_boolean(tmp_path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("name: e\ndataset: footprint-sim\nmodel: lenet\ntrials: 1\n")
    assert load_experiment(path).setting("trial_plots") is True
    assert load_experiment(path, overrides=["trial_plots=false"]).setting("trial_plots") is False
    with pytest.raises(ConfigError, match="trial_plots: expected true or false, got 'some'"):
        load_experiment(path, overrides=["trial_plots=some"])
