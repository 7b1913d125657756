"""A worker whose trial was reaped while it trained drops its result in one line, not a crash."""

from __future__ import annotations

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from wcd_hpc.engine.worker import _finished_elsewhere, tell

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _reaped() -> tuple[optuna.Study, optuna.Trial]:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    # What the reaper does from another process while this worker is not heard from.
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    return study, trial


@pytest.mark.parametrize("outcome", [{"value": 0.9}, {"state": TrialState.PRUNED}])
def test_telling_a_trial_the_reaper_failed_meanwhile_is_a_trial_finished_elsewhere(
    outcome: dict[str, object],
) -> None:
    study, trial = _reaped()
    with pytest.raises(UpdateFinishedTrialError, match="already FAIL") as caught:
        tell(study, trial, **outcome)  # type: ignore[arg-type]
    assert _finished_elsewhere(caught.value)
    assert study.trials[0].state == TrialState.FAIL  # the reaper's verdict stands


def test_a_wrong_tell_of_a_running_trial_stays_a_bug() -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    with pytest.raises(ValueError) as caught:
        tell(study, trial, state=TrialState.WAITING)  # not a state a trial can end in
    assert not isinstance(caught.value, UpdateFinishedTrialError)
    assert study.trials[0].state == TrialState.RUNNING
