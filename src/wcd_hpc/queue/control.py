"""``cancel`` and ``retry``: stopping a study's workers, and giving failed trials another go.

``cancel`` signals only processes proven to be this study's (host, pid, start time and boot id
all match a record, see :mod:`wcd_hpc.queue.processes`) and Slurm jobs only through ``scancel``
of the arrays the study recorded; a record whose process has ended is cleared, never signalled.
A record whose identity cannot be verified (taken, or read, where ``/proc`` is another PID
namespace's) is never signalled either: its pid is reported for the person to judge.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from wcd_hpc.queue import processes
from wcd_hpc.queue.opened import OpenedStudy
from wcd_hpc.queue.schema import (
    LOCAL_SWEEP_WORKERS,
    STUDY_LOCAL_SWEEP,
    SYSTEM_FIXED_PARAMS,
    TRIAL_FAIL_REASON,
    TRIAL_HOST,
    TRIAL_PID,
    TRIAL_PID_UNVERIFIED,
    TRIAL_RETRY_OF,
    TRIAL_SLURM_JOB_ID,
)
from wcd_hpc.queue.study import slurm_jobs

CANCELLED = "cancelled by wcd-hpc cancel"


@dataclass(frozen=True)
class Cancelled:
    jobs: list[str]
    local_pids: list[int]
    trials: list[int]
    #: Recorded local pids left alone because their identity cannot be verified (see
    #: :mod:`wcd_hpc.queue.processes`), and why; the person must stop them.
    unverified: list[int] = field(default_factory=list)
    why_unverified: str = ""


def record_local_sweep(study: optuna.Study, workers: Sequence[int] = ()) -> None:
    """Remember this process as the study's running local sweep (``cancel`` stops it first),
    with its worker processes: a worker that is loading its data or waiting for the last
    trials holds no trial, and ``cancel`` stops and counts it all the same."""
    record = processes.record()
    if workers:
        record[LOCAL_SWEEP_WORKERS] = [processes.record(pid) for pid in workers]
    study.set_user_attr(STUDY_LOCAL_SWEEP, record)


def clear_local_sweep(study: optuna.Study) -> None:
    """Forget the local sweep when it ends, so that no later ``cancel`` looks at its pid."""
    study.set_user_attr(STUDY_LOCAL_SWEEP, None)


def _ours(rec: Mapping[str, Any] | None) -> int | None:
    """The pid of a recorded process that is provably still that process, else None."""
    if not rec or not processes.is_running(rec):
        return None
    return int(rec[TRIAL_PID])


def cancel(opened: OpenedStudy) -> Cancelled:
    """scancel the study's arrays, stop its local sweep and workers, fail its running trials.

    Finished trials are untouched; the study stays, and ``sweep`` can resume it later.
    """
    study = opened.study
    jobs = slurm_jobs(study)
    if jobs:
        subprocess.run(["scancel", *jobs], capture_output=True, text=True, timeout=60)
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    launcher = study.user_attrs.get(STUDY_LOCAL_SWEEP)
    recorded = launcher.get(LOCAL_SWEEP_WORKERS, []) if isinstance(launcher, dict) else []
    workers = sorted(
        {
            pid
            for t in running
            if not t.user_attrs.get(TRIAL_SLURM_JOB_ID) and (pid := _ours(t.user_attrs))
        }
        | {pid for rec in recorded if isinstance(rec, dict) and (pid := _ours(rec))}
    )
    pids = list(workers)
    sweep_pid = _ours(launcher)
    if sweep_pid is not None:
        pids.insert(0, sweep_pid)  # first, so that it starts no replacements
    elif launcher:
        clear_local_sweep(study)  # it has ended (or its pid now belongs to someone else)
    records = [t.user_attrs for t in running if not t.user_attrs.get(TRIAL_SLURM_JOB_ID)]
    unverified, why = _unverified([launcher, *records])
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # it may have just finished
            os.kill(pid, signal.SIGTERM)
    _wait_gone(pids)
    failed = []
    with opened.lock():
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study._storage.set_trial_user_attr(t._trial_id, TRIAL_FAIL_REASON, CANCELLED)
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            failed.append(t.number)
    return Cancelled(jobs, workers, failed, unverified, why)


def _unverified(records: list[Mapping[str, Any] | None]) -> tuple[list[int], str]:
    """Local pids among ``records`` that cannot be proven ours, so never signalled, and why."""
    here = socket.gethostname()
    now = processes.unverifiable()
    pids, why = set(), ""
    for rec in records:
        if not rec or rec.get(TRIAL_HOST) != here or not isinstance(rec.get(TRIAL_PID), int):
            continue
        reason = rec.get(TRIAL_PID_UNVERIFIED) or now
        if reason:
            pids.add(int(rec[TRIAL_PID]))
            why = why or str(reason)
    return sorted(pids), why


def _wait_gone(pids: list[int], timeout: float = 60) -> None:
    """Give stopped workers time to checkpoint and exit before their trials are failed (a
    zombie has exited: see :func:`~wcd_hpc.queue.processes.has_exited`)."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline and not processes.has_exited(pid):
            time.sleep(0.2)


def retry(opened: OpenedStudy) -> list[int]:
    """Enqueue the parameters of every failed trial not already queued, finished or running."""
    study = opened.study
    with opened.lock():
        trials = study.get_trials(deepcopy=False)
        taken = [t.params for t in trials if t.state != TrialState.FAIL]
        taken += [
            t.system_attrs.get(SYSTEM_FIXED_PARAMS, {})
            for t in trials
            if t.state == TrialState.WAITING
        ]
        enqueued = []
        for t in trials:
            if t.state == TrialState.FAIL and t.params not in taken:
                study.enqueue_trial(dict(t.params), user_attrs={TRIAL_RETRY_OF: t.number})
                taken.append(t.params)
                enqueued.append(t.number)
    return enqueued
