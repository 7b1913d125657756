"""``cancel`` and ``retry``: stopping a study's workers, and giving failed trials another go."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from wcd_hpc.status import ATTR_SLURM_JOBS
from wcd_hpc.storage import claim_lock

CANCELLED = "cancelled by wcd-hpc cancel"
# {"host", "pid"} of a running local ``sweep`` (its launcher restarts workers that stop).
ATTR_LOCAL_SWEEP = "local_sweep"


@dataclass(frozen=True)
class Cancelled:
    jobs: list[str]
    local_pids: list[int]
    trials: list[int]


def cancel(study: optuna.Study, url: str) -> Cancelled:
    """scancel the study's arrays, stop its local sweep and workers, fail its running trials.

    Finished trials are untouched; the study stays, and ``sweep`` can resume it later.
    """
    jobs = [str(j) for j in study.user_attrs.get(ATTR_SLURM_JOBS, [])]
    if jobs:
        subprocess.run(["scancel", *jobs], capture_output=True, text=True, timeout=60)
    host = socket.gethostname()
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    workers = sorted(
        {
            int(t.user_attrs["pid"])
            for t in running
            if t.user_attrs.get("host") == host
            and t.user_attrs.get("pid")
            and not t.user_attrs.get("slurm_job_id")
        }
    )
    launcher = study.user_attrs.get(ATTR_LOCAL_SWEEP) or {}
    pids = list(workers)
    if launcher.get("host") == host and launcher.get("pid"):
        pids.insert(0, int(launcher["pid"]))  # first, so that it starts no replacements
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # it may have just finished
            os.kill(pid, signal.SIGTERM)
    _wait_gone(pids)
    failed = []
    with claim_lock(url, study._storage, study.study_name):
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study._storage.set_trial_user_attr(t._trial_id, "fail_reason", CANCELLED)
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            failed.append(t.number)
    return Cancelled(jobs, workers, failed)


def _wait_gone(pids: list[int], timeout: float = 60) -> None:
    """Give stopped workers time to checkpoint and exit before their trials are failed."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)


def retry(study: optuna.Study, url: str) -> list[int]:
    """Enqueue the parameters of every failed trial not already queued, finished or running."""
    with claim_lock(url, study._storage, study.study_name):
        trials = study.get_trials(deepcopy=False)
        taken = [t.params for t in trials if t.state != TrialState.FAIL]
        taken += [
            t.system_attrs.get("fixed_params", {}) for t in trials if t.state == TrialState.WAITING
        ]
        enqueued = []
        for t in trials:
            if t.state == TrialState.FAIL and t.params not in taken:
                study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})
                taken.append(t.params)
                enqueued.append(t.number)
    return enqueued
