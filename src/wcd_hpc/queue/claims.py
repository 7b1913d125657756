"""Taking work from the queue: claiming a trial, giving it back suspended, failing it.

A claim is "count finished and running trials, and start one more if that is still under the
budget", done under :func:`~wcd_hpc.store.storage.claim_lock` so that however many workers race,
the budget is met exactly and never overshot. Suspended trials (a worker stopped by a signal after
checkpointing) are claimed first: their finished epochs are already paid for.

The lock can be lost without the claimer noticing: PostgreSQL's advisory lock lives in a database
session, and a server restart ends the session while the claim is under way. Two workers may then
both see room for one trial and both start one. So after starting a trial a claim counts again,
and the claimer whose new trial is not among the lowest-numbered ones that fit the budget gives
it up (failed, with the reason); trial numbers give every worker the same answer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import optuna
from optuna.trial import FrozenTrial, TrialState

from wcd_hpc.errors import SlurmError, StorageUnavailable
from wcd_hpc.output.masking import stored_text
from wcd_hpc.queue import accounting, processes
from wcd_hpc.queue import study as studies
from wcd_hpc.queue.opened import OpenedStudy
from wcd_hpc.queue.reaper import heartbeat_interval, reap
from wcd_hpc.queue.schema import (
    PLACEMENT_ENV,
    STUDY_GPU_HOURS,
    TRIAL_CLAIMED,
    TRIAL_CLAIMED_AT,
    TRIAL_FAIL_REASON,
    TRIAL_HEARTBEAT,
    TRIAL_SUSPENDED,
    TRIAL_SUSPENDED_BY,
    TRIAL_WORKER,
)
from wcd_hpc.store import journal

log = logging.getLogger("wcd_hpc.claims")
#: Per study, when sacct was last asked (monotonic s) and the GPU-hours it reported.
_USED: dict[str, tuple[float, float]] = {}
OVER_BUDGET = "claimed beyond the budget while the claim lock was lost (database restart?)"
Claim = tuple[optuna.Trial, bool]
Sample = Callable[[optuna.Trial], object]
#: How often a lingering worker looks whether the study is done (seconds, jittered).
LOOK_S = 1.0


def iso_utc(stamp: float) -> str:
    """An epoch time as ISO 8601 in UTC, to the second (for people, not for comparisons)."""
    return datetime.fromtimestamp(stamp, tz=timezone.utc).isoformat(timespec="seconds")


def placement() -> dict[str, str]:
    """This worker's Slurm ids, node, GPU and image digest, as far as the environment tells."""
    return {attr: os.environ[var] for attr, var in PLACEMENT_ENV.items() if os.environ.get(var)}


def _is_suspended(t: FrozenTrial) -> bool:
    return t.state == TrialState.RUNNING and bool(t.user_attrs.get(TRIAL_SUSPENDED))


def _over_budget(study: optuna.Study, number: int) -> bool:
    """Whether a just-started trial ``number`` would take the study past its budget.

    The running trials that fit are the lowest-numbered ones; every claimer computes the same.
    """
    trials = study.get_trials(deepcopy=False)
    room = studies.budget_of(study) - studies.finished(trials)
    running = sorted(
        t.number
        for t in trials
        if t.state == TrialState.RUNNING and not studies.is_finalist(t)  # apart from the budget
    )
    return number not in running[: max(room, 0)]


def gpu_hours_used(study: optuna.Study) -> float | None:
    """GPU-hours allocated to the study's Slurm jobs, None when it has no GPU-hour budget.

    Asked of ``sacct`` at most once per heartbeat interval (30 s by default) per process: with
    hundreds of workers claiming, slurmdbd must not answer one query per claim.
    """
    if study.user_attrs.get(STUDY_GPU_HOURS) is None:
        return None
    now = time.monotonic()
    cached = _USED.get(study.study_name)
    if cached is None or now - cached[0] > min(heartbeat_interval(study), 30.0):
        jobs = accounting.jobs_of(studies.slurm_jobs(study), study.get_trials(deepcopy=False))
        try:
            used = accounting.gpu_hours(jobs) if jobs else 0.0
        except SlurmError as exc:  # no accounting now: judge by the last answer, or go on
            log.warning("GPU-hour budget: cannot ask sacct (%s)", exc)
            used = cached[1] if cached else 0.0
        cached = _USED[study.study_name] = (now, used)
    return cached[1]


def gpu_budget_spent(study: optuna.Study) -> bool:
    """Whether the study's GPU-hour budget (``budget.gpu_hours``) is used up."""
    used = gpu_hours_used(study)
    return used is not None and used >= float(study.user_attrs[STUDY_GPU_HOURS])


def claim(opened: OpenedStudy, worker: str, sample: Sample | None = None) -> Claim | None:
    """Resume a suspended trial, else start a new one while finished + running < budget.

    ``sample(trial)`` draws a new trial's parameters while the lock is still held, so that the
    sampler sees every trial claimed before it (see :mod:`wcd_hpc.engine.search`). Returns the
    trial and whether it is a resumption, or None when there is nothing to do (the budget in
    trials is taken, or the one in GPU-hours is spent: then not even a suspended trial resumes).
    """
    study = opened.study
    if gpu_budget_spent(study):
        return None
    with opened.lock():
        # One read for every count: two reads filtered by state would each catch up with the
        # storage, and a trial a peer finishes in between would be counted in both.
        trials = study.get_trials(deepcopy=False)
        suspended = [t for t in trials if _is_suspended(t)]
        if suspended:
            frozen = suspended[0]
            study._storage.set_trial_user_attr(frozen._trial_id, TRIAL_SUSPENDED, False)
            trial, resume = optuna.Trial(study, frozen._trial_id), True
        else:
            done = studies.finished(trials)
            running = sum(
                1 for t in trials if t.state == TrialState.RUNNING and not studies.is_finalist(t)
            )
            if done + running >= studies.budget_of(study):
                return None
            trial, resume = study.ask(), False
            with _named(trial):  # created: an outage from here on leaves it its note
                if _over_budget(study, trial.number):
                    fail(study, trial, OVER_BUDGET)
                    return None
                if sample is not None:
                    # Parameters the space rejects (an enqueued value outside a choice) fail
                    # the same way when the trial runs, which fails it with its cause; raised
                    # here, it would take the worker down while it holds the lock.
                    with contextlib.suppress(Exception):
                        sample(trial)
        stamp(trial, worker)
    return trial, resume


@contextlib.contextmanager
def _named(trial: optuna.Trial) -> Iterator[None]:
    """Name ``trial`` in a :class:`StorageUnavailable` raised inside (the worker notes it)."""
    try:
        yield
    except StorageUnavailable as exc:
        if exc.trial is None:
            exc.trial = trial.number
        raise


def stamp(trial: optuna.Trial, worker: str) -> None:
    """Mark ``trial`` as claimed by ``worker`` now: heartbeat, process, placement.

    An outage in the middle leaves the trial created but half-stamped: the exception names it
    (:attr:`StorageUnavailable.trial`) so that the worker leaves it its outage note."""
    now = time.time()
    stamps = {
        TRIAL_HEARTBEAT: now,
        **processes.record(),
        TRIAL_WORKER: worker,
        TRIAL_CLAIMED: now,
        TRIAL_CLAIMED_AT: iso_utc(now),
        **placement(),
    }
    with _named(trial):
        journal.set_user_attrs(trial, stamps)


def linger(
    opened: OpenedStudy, worker: str, stop: Callable[[], bool], sample: Sample | None = None
) -> Claim | None:
    """Before leaving, make sure the trials still running belong to live workers.

    The budget counts running trials, so a worker may find nothing to claim while a peer that
    died a moment ago still holds a trial. Waiting until every running trial has beaten since
    (or been reaped, which re-enqueues it) takes at most ~1.5 heartbeat intervals and keeps a
    sweep from ending short; if something becomes claimable meanwhile, it is returned. The
    study is looked at about every second, so the workers leave within a second or so of the
    last trial's end; reaping and claiming happen every half interval (at most 5 s).
    """
    study = opened.study
    since = time.time()
    interval = heartbeat_interval(study)
    pace = min(interval / 2, 5.0)
    last_try = time.monotonic()
    while not stop():
        trials = study.get_trials(deepcopy=False)
        if studies.finished(trials) >= studies.budget_of(study) or gpu_budget_spent(study):
            return None
        running = [t for t in trials if t.state == TrialState.RUNNING]
        beats = [t.user_attrs.get(TRIAL_HEARTBEAT, 0.0) for t in running]
        if all(isinstance(b, (int, float)) and b > since for b in beats):
            return None
        # Looking is cheap and tells at once when the last trials end (every worker of a sweep
        # lingers at its end, so each second here is a second of every worker's allocation);
        # reaping and claiming take the claim lock and keep their slower pace.
        time.sleep(LOOK_S * random.uniform(0.5, 1.0))
        if time.monotonic() - last_try < pace:
            continue
        last_try = time.monotonic()
        reap(opened, ask_slurm=False)
        claimed = claim(opened, worker, sample)
        if claimed is not None:
            return claimed
    return None


def suspend(study: optuna.Study, trial: optuna.Trial, why: str) -> None:
    """Leave the trial RUNNING but marked suspended: the next claim resumes it from its last
    checkpoint."""
    storage = study._storage
    storage.set_trial_user_attr(trial._trial_id, TRIAL_SUSPENDED, True)
    storage.set_trial_user_attr(trial._trial_id, TRIAL_SUSPENDED_BY, stored_text(why))


def fail(study: optuna.Study, trial: optuna.Trial, cause: str) -> None:
    """Mark the trial FAIL with its one-line cause (what ``status`` shows), as it may be kept
    (:func:`~wcd_hpc.output.masking.stored_text`: no secret, no password-shaped userinfo)."""
    study._storage.set_trial_user_attr(trial._trial_id, TRIAL_FAIL_REASON, stored_text(cause))
    study.tell(trial, state=TrialState.FAIL)
