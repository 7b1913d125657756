"""One rule decides whether a sweep trial's figures are drawn, asked by the worker that trains
the trial and by ``sync`` that uploads it; a disagreement would draw figures the experiment
turned off, or leave a finalist without them."""

from __future__ import annotations

import pytest

from wcd_hpc.queue.schema import TRIAL_FINALIST, draws_trial_figures


@pytest.mark.parametrize("setting", [None, True])
def test_a_trial_draws_its_figures_unless_the_experiment_turns_them_off(setting) -> None:
    assert draws_trial_figures(setting, {}) is True


def test_trial_plots_false_leaves_an_ordinary_trial_without_figures() -> None:
    assert draws_trial_figures(False, {"worker": "local-0"}) is False


def test_a_finalist_draws_its_figures_even_with_trial_plots_false() -> None:
    assert draws_trial_figures(False, {TRIAL_FINALIST: 3}) is True
