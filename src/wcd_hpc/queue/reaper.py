"""Heartbeats and the reaper: finding trials whose worker is gone, failing and re-enqueuing them.

Optuna's own heartbeat only works inside ``study.optimize`` and only on RDB storages, so every
worker runs a small thread that stamps its running trial's ``heartbeat`` user attribute, on any
storage. The reaper — run by every worker before it claims a trial, by that heartbeat thread, and
by ``status`` — marks a RUNNING trial FAIL with its cause when its heartbeat is stale or Slurm
says its job died (FAILED, OUT_OF_MEMORY, NODE_FAIL, TIMEOUT, CANCELLED), or when it never got
a claim stamp at all within :func:`claim_grace_s` of its creation, and enqueues the same
parameters again, at most ``max_retries`` times per parameter set. Suspended trials (a worker
stopped by a signal after saving a checkpoint) are left alone: they are waiting to be resumed;
so is a trial whose worker gave it up when the storage went away (:mod:`wcd_hpc.queue.outage`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from wcd_hpc.errors import SlurmError
from wcd_hpc.output.masking import stored_text
from wcd_hpc.queue import accounting, outage
from wcd_hpc.queue.opened import OpenedStudy
from wcd_hpc.queue.schema import (
    SLURM_DIR,
    STUDY_HEARTBEAT_S,
    STUDY_MAX_RETRIES,
    TRIAL_CLAIMED,
    TRIAL_FAIL_REASON,
    TRIAL_FINALIST,
    TRIAL_HEARTBEAT,
    TRIAL_HOST,
    TRIAL_PID,
    TRIAL_RETRY,
    TRIAL_RETRY_OF,
    TRIAL_SLURM_ARRAY_JOB_ID,
    TRIAL_SLURM_ARRAY_TASK_ID,
    TRIAL_SLURM_JOB_ID,
    TRIAL_SUSPENDED,
    TRIAL_WORKER,
)
from wcd_hpc.queue.study import DEFAULT_HEARTBEAT_S, ENV_HEARTBEAT

log = logging.getLogger("wcd_hpc.reaper")
DEFAULT_MAX_RETRIES = 2
# A heartbeat older than this many intervals means the worker is gone: after one missed beat and
# a margin, so that the trial is failed within two intervals of the worker's death.
STALE_AFTER = 1.5
DEAD_STATES = ("FAILED", "OUT_OF_MEMORY", "NODE_FAIL", "TIMEOUT", "CANCELLED", "BOOT_FAIL")
SacctFn = Callable[[Sequence[str]], list[accounting.TaskRecord]]


@dataclass(frozen=True)
class Reaped:
    number: int
    cause: str
    retried_as: bool


def heartbeat_interval(study: optuna.Study) -> float:
    value = study.user_attrs.get(STUDY_HEARTBEAT_S)
    if value is None:
        value = os.environ.get(ENV_HEARTBEAT) or DEFAULT_HEARTBEAT_S
    return max(0.5, float(value))


def claim_grace_s(interval: float) -> float:
    """How long a RUNNING trial may go without any claim stamp before it counts as dead.

    A wcd-hpc claim creates a trial and stamps it (``claimed``, ``heartbeat``) under the claim
    lock, so a trial seen unstamped outside the lock was made by a claimer that died in between,
    by a journal cut after its create-trial line (or salvaged there), or by plain Optuna
    (``study.ask()``). It gets the time a stale heartbeat gets, counted from its creation.
    """
    return STALE_AFTER * interval


def _stamp(t: FrozenTrial) -> float | None:
    """The trial's last sign of life written by a worker: heartbeat, else claim time."""
    for key in (TRIAL_HEARTBEAT, TRIAL_CLAIMED):
        value = t.user_attrs.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _created(t: FrozenTrial) -> float | None:
    return t.datetime_start.timestamp() if t.datetime_start is not None else None


def _missed_beat(t: FrozenTrial, now: float, interval: float) -> bool:
    beat = _stamp(t)
    return beat is None or now - beat > interval


def _slurm_states(trials: list[FrozenTrial], sacct: SacctFn) -> dict[str, str]:
    jobs = sorted(
        {
            str(t.user_attrs[TRIAL_SLURM_JOB_ID])
            for t in trials
            if t.user_attrs.get(TRIAL_SLURM_JOB_ID)
        }
    )
    if not jobs:
        return {}
    try:
        records = sacct(jobs)
    except SlurmError as exc:
        log.warning("reaper: cannot ask sacct (%s); relying on heartbeats", exc)
        return {}
    states: dict[str, str] = {}
    for r in records:
        states[r.job_id] = r.state
    return states


def _job_state(t: FrozenTrial, states: dict[str, str]) -> str | None:
    a = t.user_attrs
    keys = [str(a.get(TRIAL_SLURM_JOB_ID))]
    if a.get(TRIAL_SLURM_ARRAY_JOB_ID) is not None:
        keys.insert(0, f"{a[TRIAL_SLURM_ARRAY_JOB_ID]}_{a.get(TRIAL_SLURM_ARRAY_TASK_ID)}")
    return next((states[k] for k in keys if k in states), None)


OOM_MARKERS = ("exceeded job memory limit", "exceeded memory limit", "oom-kill", "out of memory")


def _oom_logged(t: FrozenTrial, run_dir: Path | None) -> bool:
    """Whether the task's Slurm log says it was killed for memory.

    Clusters that enforce ``--mem`` with cgroups report OUT_OF_MEMORY in sacct; those that
    enforce it through accounting (``JobAcctGatherParams=OverMemoryKill``) report FAILED and
    only slurmstepd's line in the job's log tells why.
    """
    a = t.user_attrs
    if run_dir is None or not a.get(TRIAL_SLURM_JOB_ID):
        return False
    job = a.get(TRIAL_SLURM_ARRAY_JOB_ID)
    stem = f"{job}_{a.get(TRIAL_SLURM_ARRAY_TASK_ID)}" if job else str(a[TRIAL_SLURM_JOB_ID])
    for log_file in (run_dir / SLURM_DIR).glob(f"**/{stem}*.out"):
        try:
            text = log_file.read_text(errors="replace")[-20000:].lower()
        except OSError:
            continue
        if any(marker in text for marker in OOM_MARKERS):
            return True
    return False


def cause_of_death(
    t: FrozenTrial,
    now: float,
    interval: float,
    states: dict[str, str],
    run_dir: Path | None = None,
) -> str | None:
    """Why trial ``t`` should be reaped, or None while its worker looks alive."""
    a = t.user_attrs
    if a.get(TRIAL_SUSPENDED):
        return None
    state = _job_state(t, states)
    if state in DEAD_STATES:
        oom = state == "OUT_OF_MEMORY" or _oom_logged(t, run_dir)
        what = "out of memory" if oom else state.lower().replace("_", " ")
        return f"slurm job {a.get(TRIAL_SLURM_JOB_ID)} ended {state} ({what})"
    beat = _stamp(t)
    if beat is not None:
        if now - beat > STALE_AFTER * interval:
            return (
                f"heartbeat stale for {now - beat:.0f}s (worker {a.get(TRIAL_WORKER)} "
                f"on {a.get(TRIAL_HOST)}, pid {a.get(TRIAL_PID)})"
            )
        return None
    created = _created(t)
    if created is None or now - created > claim_grace_s(interval):
        age = "" if created is None else f" {now - created:.0f}s after its creation"
        return (
            f"never claimed: no heartbeat or claim stamp{age} (its worker died before "
            "claiming it, its journal was cut, or it was made outside wcd-hpc)"
        )
    return None


def fail_and_retry(study: optuna.Study, t: FrozenTrial, cause: str, max_retries: int) -> bool:
    """Mark ``t`` FAIL with ``cause``; enqueue its parameters again unless retries are used up."""
    storage = study._storage
    storage.set_trial_user_attr(t._trial_id, TRIAL_FAIL_REASON, stored_text(cause))
    storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    retry = int(t.user_attrs.get(TRIAL_RETRY, 0))
    if retry >= max_retries:
        return False
    attrs: dict[str, Any] = {TRIAL_RETRY: retry + 1, TRIAL_RETRY_OF: t.number}
    if TRIAL_FINALIST in t.user_attrs:  # a finalist's rerun is a finalist, apart from the budget
        attrs[TRIAL_FINALIST] = t.user_attrs[TRIAL_FINALIST]
    study.enqueue_trial(dict(t.params), user_attrs=attrs)
    return True


def max_retries(study: optuna.Study) -> int:
    return int(study.user_attrs.get(STUDY_MAX_RETRIES, DEFAULT_MAX_RETRIES))


def _anyone_missed_a_beat(study: optuna.Study, now: float | None, interval: float) -> bool:
    """Whether a RUNNING trial missed a heartbeat, looked at without the claim lock (suspended
    trials wait for a worker to resume them and are never reaped).

    A worker's routine pass reaps only such trials (a stale heartbeat has missed several), and
    almost always there is none: without this look, every pass of every worker (one per claim
    and one per heartbeat) took the claim lock that all claims wait for.
    """
    clock = time.time() if now is None else now
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return any(
        _missed_beat(t, clock, interval) and not t.user_attrs.get(TRIAL_SUSPENDED) for t in running
    )


def reap(
    opened: OpenedStudy,
    *,
    now: float | None = None,
    sacct: SacctFn = accounting.sacct,
    ask_slurm: bool = True,
) -> list[Reaped]:
    """Fail (and re-enqueue) every RUNNING trial whose worker is gone; returns what it did.

    With ``ask_slurm=False`` (the workers' routine check before each claim) sacct is asked only
    about trials that missed a heartbeat: a trial that beat within the interval is alive, and
    sparing slurmdbd one query per claim matters with hundreds of workers. When no trial missed
    one, the pass ends without taking the claim lock. The handle's run directory is where
    the Slurm logs that tell an out-of-memory kill are, and the notes of an outage.
    """
    study, run_dir = opened.study, opened.run_dir
    interval = heartbeat_interval(study)
    retries = max_retries(study)
    done: list[Reaped] = []
    if not ask_slurm and not _anyone_missed_a_beat(study, now, interval):
        return done
    with opened.lock():
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        running = outage.take_back(study, running, run_dir)  # given up in an outage: resumed
        clock = time.time() if now is None else now
        suspects = (
            running if ask_slurm else [t for t in running if _missed_beat(t, clock, interval)]
        )
        states = _slurm_states(suspects, sacct)
        for t in running:
            cause = cause_of_death(t, clock, interval, states, run_dir)
            if cause is None:
                continue
            retried = fail_and_retry(study, t, cause, retries)
            log.warning(
                "reaped trial %d: %s%s", t.number, cause, "; re-enqueued" if retried else ""
            )
            done.append(Reaped(t.number, cause, retried))
    return done


class Heartbeat:
    """Stamps a trial's ``heartbeat`` every interval and reaps dead peers meanwhile.

    Storage errors in the thread are logged and retried at the next beat: a short database
    outage must not kill a trial that is training fine.
    """

    def __init__(self, opened: OpenedStudy, trial_id: int) -> None:
        self.opened, self.study, self.trial_id = opened, opened.study, trial_id
        self.interval = heartbeat_interval(self.study)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wcd-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _beat(self) -> None:
        self.study._storage.set_trial_user_attr(self.trial_id, TRIAL_HEARTBEAT, time.time())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._beat()
            except UpdateFinishedTrialError:
                # Reaped while this worker was not heard from: nothing left to beat for. The
                # worker says so, once, when its training next writes to the trial.
                return
            except Exception as exc:  # keep training through a storage hiccup
                log.warning("heartbeat: %s: %s", type(exc).__name__, exc)
                continue
            try:
                reap(self.opened, ask_slurm=False)
            except Exception as exc:  # a peer's trial that just finished, a storage hiccup
                log.warning("heartbeat: %s: %s", type(exc).__name__, exc)
