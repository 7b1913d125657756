"""The reaper's decisions: stale heartbeats, dead Slurm jobs, suspended trials, retry budget."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from wcd_hpc.queue.accounting import TaskRecord
from wcd_hpc.queue.opened import OpenedStudy
from wcd_hpc.queue.reaper import cause_of_death, reap
from wcd_hpc.store.storage import Storage, open_storage


def _study(tmp_path: Path) -> tuple[optuna.Study, str]:
    url = f"journal:{tmp_path / 'j.log'}"
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    study.set_user_attr("heartbeat_s", 10.0)
    return study, url


def _opened(study: optuna.Study, url: str) -> OpenedStudy:
    return OpenedStudy(study, Storage.parse(url), Path(url.removeprefix("journal:")).parent)


def _running(study: optuna.Study, **attrs: object) -> optuna.Trial:
    trial = study.ask()
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return trial


def _record(job: str, state: str) -> TaskRecord:
    return TaskRecord(job, state, None, None, None, 0, 1, "vm", "0:0")


def test_a_stale_heartbeat_fails_the_trial_and_enqueues_its_parameters(tmp_path) -> None:
    study, url = _study(tmp_path)
    dead = _running(study, heartbeat=1000.0, worker="w1", host="n1", pid=7)
    alive = _running(study, heartbeat=1014.0)
    reaped = reap(_opened(study, url), now=1016.0, sacct=lambda jobs: [])
    assert [(r.number, r.retried_as) for r in reaped] == [(dead.number, True)]
    trials = study.get_trials()
    assert trials[dead.number].state == TrialState.FAIL
    cause = trials[dead.number].user_attrs["fail_reason"]
    assert cause == "heartbeat stale for 16s (worker w1 on n1, pid 7)"
    assert trials[alive.number].state == TrialState.RUNNING
    retry = trials[-1]
    assert retry.state == TrialState.WAITING
    assert retry.user_attrs == {"retry": 1, "retry_of": dead.number}
    assert retry.system_attrs["fixed_params"] == {"lr": trials[dead.number].params["lr"]}


def test_sacct_out_of_memory_is_named_as_such(tmp_path) -> None:
    study, url = _study(tmp_path)
    trial = _running(
        study, heartbeat=1000.0, slurm_job_id="41", slurm_array_job_id="40", slurm_array_task_id="1"
    )
    reaped = reap(
        _opened(study, url), now=1001.0, sacct=lambda jobs: [_record("40_1", "OUT_OF_MEMORY")]
    )
    assert reaped[0].cause == "slurm job 41 ended OUT_OF_MEMORY (out of memory)"
    assert study.get_trials()[trial.number].state == TrialState.FAIL


def test_suspended_trials_and_live_jobs_are_left_alone(tmp_path) -> None:
    study, url = _study(tmp_path)
    _running(study, heartbeat=0.0, suspended=True)
    _running(study, heartbeat=999.0, slurm_job_id="9")
    assert reap(_opened(study, url), now=1000.0, sacct=lambda jobs: [_record("9", "RUNNING")]) == []


def test_retries_stop_at_the_budget(tmp_path) -> None:
    study, url = _study(tmp_path)
    study.set_user_attr("max_retries", 1)
    _running(study, heartbeat=0.0, retry=1)
    reaped = reap(_opened(study, url), now=1000.0, sacct=lambda jobs: [])
    assert reaped[0].retried_as is False
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL]


def test_cause_of_death_falls_back_to_the_claim_time(tmp_path) -> None:
    study, _ = _study(tmp_path)
    trial = _running(study, claimed=100.0)
    frozen = study.get_trials()[trial.number]
    assert cause_of_death(frozen, now=200.0, interval=10.0, states={}) is not None
    assert cause_of_death(frozen, now=110.0, interval=10.0, states={}) is None


def test_a_running_trial_without_claim_stamps_is_reaped_after_the_claim_grace_period(
    tmp_path,
) -> None:
    # Plain Optuna (`study.ask()` then nothing), a claimer killed between creating and stamping
    # its trial, a journal cut after a create-trial line: RUNNING with no heartbeat and no claim.
    study, url = _study(tmp_path)
    orphan = study.ask()
    junk = _running(study, heartbeat="soon")  # a stamp that is no time counts as none
    created = study.get_trials()[orphan.number].datetime_start.timestamp()
    frozen = study.get_trials()[orphan.number]
    assert cause_of_death(frozen, now=created + 5.0, interval=10.0, states={}) is None
    assert reap(_opened(study, url), now=created + 5.0, ask_slurm=False) == []
    reaped = reap(_opened(study, url), now=created + 60.0, ask_slurm=False)
    assert sorted(r.number for r in reaped) == [orphan.number, junk.number]
    trials = study.get_trials()
    assert trials[orphan.number].state == TrialState.FAIL
    assert trials[orphan.number].user_attrs["fail_reason"].startswith("never claimed:")
    assert [t.state for t in trials[2:]] == [TrialState.WAITING, TrialState.WAITING]
