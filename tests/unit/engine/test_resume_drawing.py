"""A resumed trial whose parameters were cut short by an outage draws the rest, never fails.

An outage between two of a trial's suggestions leaves it RUNNING with some parameters stored;
the outage note makes it resumable (:mod:`wcd_hpc.queue.outage`). Its resumption once failed
with ``batch_size: missing from the trial's parameters`` (caught by the storage-outage test).
"""

from __future__ import annotations

from typing import Any

import optuna

from wcd_hpc.engine.trial import run_trial


def test_a_resumed_trial_with_some_parameters_draws_the_others_and_keeps_the_stored_ones(
    mlp_context: Any,
) -> None:
    ctx = mlp_context(epochs=1)
    sampled = ctx.space.missing({})
    assert len(sampled) >= 2  # the space must have something left to draw
    study = optuna.create_study(direction="maximize")
    cut = study.ask()
    first = sampled[0]
    stored = ctx.space.params[first].suggest(cut, first)  # then the storage went away
    resumed = optuna.Trial(study, cut._trial_id)
    run_trial(ctx, resumed, resume=True)
    done = study.trials[0]
    assert done.state == optuna.trial.TrialState.RUNNING  # run_trial reports; the worker tells
    assert done.params[first] == stored
    assert ctx.space.missing(done.params) == []


def test_a_resumed_trial_with_every_parameter_reads_them_back_unchanged(mlp_context: Any) -> None:
    ctx = mlp_context(epochs=1)
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    params = ctx.space.suggest(trial)
    run_trial(ctx, optuna.Trial(study, trial._trial_id), resume=True)
    assert ctx.space.rebuild(study.trials[0].params) == params
