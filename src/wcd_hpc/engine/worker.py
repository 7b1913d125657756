"""The worker loop: claim a trial, run it, tell the result, repeat until the budget is met.

A worker needs only a study name and a storage URL; the experiment comes from the study. Claims go
through :func:`wcd_hpc.storage.claim_lock` so that the count of finished plus running trials never
exceeds the budget, however many workers race: there is no batch barrier, and a worker that
finishes a trial asks for the next one at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import optuna
import torch
from optuna.trial import TrialState

from wcd_hpc import study as studies
from wcd_hpc.config import resolve
from wcd_hpc.engine.fit import Interrupted, pick_device
from wcd_hpc.engine.reaper import Heartbeat, heartbeat_interval, reap
from wcd_hpc.engine.trial import Context, run_trial, trial_dir, wait_for_artifacts
from wcd_hpc.plugins import blame, get_registry
from wcd_hpc.startup import ENV_THREADS, paused_gc, warm_up_optimizers
from wcd_hpc.storage import claim_lock, mask, open_storage

log = logging.getLogger("wcd_hpc.worker")
MAX_CONSECUTIVE_FAILURES = 3
# Exit status of a worker that gave up after MAX_CONSECUTIVE_FAILURES failed trials in a row:
# launchers must not restart it, the failure is in the experiment, not in the process.
EXIT_TOO_MANY_FAILURES = 3
# Exit status of a worker that suspended its trial on a signal (EX_TEMPFAIL): launchers may start
# a fresh worker, which resumes the trial from its checkpoint.
EXIT_SUSPENDED = 75


@dataclass
class Summary:
    """What one worker did, for its exit line and exit code."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    interrupted: bool = False
    reason: str = ""
    trials: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.interrupted and self.reason != "too many failures"


class _StopFlag:
    """Set by SIGTERM / SIGINT / SIGUSR2; the training loop polls it between batches."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None

    def handler(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):
            signal.signal(sig, self.handler)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def build_context(study: optuna.Study) -> Context:
    """Resolve the stored experiment against this worker's plugins and load the data once."""
    exp = studies.experiment_of(study)
    registry = get_registry()
    exp, space = resolve(exp, registry)
    run_dir = Path(study.user_attrs[studies.ATTR_RUN_DIR])
    dataset = registry.datasets[exp.dataset].obj
    params = {**dataset.defaults, **exp.dataset_params}
    cache = run_dir.parent / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    splits = dataset.load(params, exp.seed, str(cache))
    metrics = {name: entry.obj for name, entry in registry.metrics.items()}
    model = registry.models[exp.model].obj
    return Context(exp, space, model, metrics, splits, run_dir, pick_device())


def _claim(study: optuna.Study, url: str, worker: str) -> tuple[optuna.Trial, bool] | None:
    """Resume a suspended trial, else start a new one while finished + running < budget.

    Returns the trial and whether it is a resumption. Suspended trials come first: their
    finished epochs are already paid for.
    """
    with claim_lock(url, study._storage, study.study_name):
        trials = study.get_trials(deepcopy=False)
        suspended = [
            t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get("suspended")
        ]
        if suspended:
            frozen = suspended[0]
            study._storage.set_trial_user_attr(frozen._trial_id, "suspended", False)
            trial, resume = optuna.Trial(study, frozen._trial_id), True
        else:
            done = studies.finished(trials)
            running = sum(1 for t in trials if t.state == TrialState.RUNNING)
            if done + running >= studies.budget_of(study):
                return None
            trial, resume = study.ask(), False
        trial.set_user_attr("heartbeat", time.time())
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("worker", worker)
    trial.set_user_attr("claimed", time.time())
    for attr, value in placement().items():
        trial.set_user_attr(attr, value)
    return trial, resume


# Environment variables recorded on every trial: where it ran (Slurm ids, node, GPU, image).
PLACEMENT_ENV = {
    "slurm_job_id": "SLURM_JOB_ID",
    "slurm_array_job_id": "SLURM_ARRAY_JOB_ID",
    "slurm_array_task_id": "SLURM_ARRAY_TASK_ID",
    "node": "SLURMD_NODENAME",
    "gpu": "CUDA_VISIBLE_DEVICES",
    "image_sha256": "WCD_HPC_IMAGE_SHA256",
}


def placement() -> dict[str, str]:
    """This worker's Slurm ids, node, GPU and image digest, as far as the environment tells."""
    return {attr: os.environ[var] for attr, var in PLACEMENT_ENV.items() if os.environ.get(var)}


def _linger(
    study: optuna.Study, url: str, worker: str, stop: _StopFlag
) -> tuple[optuna.Trial, bool] | None:
    """Before leaving, make sure the trials still running belong to live workers.

    The budget counts running trials, so a worker may find nothing to claim while a peer that
    died a moment ago still holds a trial. Waiting until every running trial has beaten since
    (or been reaped, which re-enqueues it) takes at most ~1.5 heartbeat intervals and keeps a
    sweep from ending short; if something becomes claimable meanwhile, it is returned.
    """
    since = time.time()
    interval = heartbeat_interval(study)
    while not stop():
        trials = study.get_trials(deepcopy=False)
        if studies.finished(trials) >= studies.budget_of(study):
            return None
        running = [t for t in trials if t.state == TrialState.RUNNING]
        beats = [t.user_attrs.get("heartbeat", 0.0) for t in running]
        if all(isinstance(b, (int, float)) and b > since for b in beats):
            return None
        time.sleep(min(interval / 2, 5.0))
        reap(study, url, ask_slurm=False)
        claimed = _claim(study, url, worker)
        if claimed is not None:
            return claimed
    return None


def _suspend(study: optuna.Study, trial: optuna.Trial, worker: str, signum: int) -> None:
    """Leave the trial RUNNING but marked suspended: the next worker resumes it from its
    last checkpoint. Under Slurm, SIGUSR2 (preemption, time limit) also requeues this task."""
    name = signal.Signals(signum).name
    storage = study._storage
    storage.set_trial_user_attr(trial._trial_id, "suspended", True)
    storage.set_trial_user_attr(trial._trial_id, "suspended_by", f"{name} to worker {worker}")
    log.warning("trial %d suspended by %s; it resumes from its last checkpoint", trial.number, name)
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    target = f"{job}_{task}" if job and task else os.environ.get("SLURM_JOB_ID")
    if signum == signal.SIGUSR2 and target:
        proc = subprocess.run(["scontrol", "requeue", target], capture_output=True, text=True)
        log.warning("scontrol requeue %s: %s", target, (proc.stderr or "ok").strip())


def _fail(study: optuna.Study, trial: optuna.Trial, cause: str) -> None:
    study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", cause)
    study.tell(trial, state=TrialState.FAIL)


def run_worker(
    study_name: str, url: str, *, worker: str = "", max_trials: int | None = None
) -> Summary:
    """Pull trials from the study until its budget is met (or ``max_trials`` for this worker)."""
    threads = os.environ.get(ENV_THREADS)
    if threads:
        torch.set_num_threads(max(1, int(threads)))
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    stop = _StopFlag()
    stop.install()
    with paused_gc():
        storage = open_storage(url)
        study = studies.load(study_name, storage, url)
        exp = studies.experiment_of(study)
        log.info("worker %s joined study %s in %s", worker, study_name, mask(url))
        ctx = build_context(study)
        warm_up_optimizers()
    study.sampler = studies.make_sampler(exp.sampler, None, ctx.space)
    study.pruner = studies.make_pruner(exp.pruner, exp.epochs)
    summary = Summary()
    streak = 0
    while not stop():
        if max_trials is not None and len(summary.trials) >= max_trials:
            summary.reason = "max trials for this worker"
            break
        reap(study, url, ask_slurm=False)
        claimed = _claim(study, url, worker)
        if claimed is None:
            claimed = _linger(study, url, worker, stop)
        if claimed is None:
            summary.reason = "budget met"
            break
        trial, resume = claimed
        summary.trials.append(trial.number)
        try:
            with Heartbeat(study, url, trial._trial_id):
                value = run_trial(ctx, trial, stop, resume=resume, background=True)
        except optuna.TrialPruned as exc:
            study.tell(trial, state=TrialState.PRUNED)
            summary.pruned += 1
            streak = 0
            log.info("trial %d pruned: %s", trial.number, exc)
        except Interrupted:
            _suspend(study, trial, worker, stop.signum or signal.SIGTERM)
            summary.interrupted = True
            break
        except Exception as exc:
            cause = _one_line(exc)
            culprit = blame(exc, exp.model)  # a plugin's own code failed: name its distribution
            if culprit is not None:
                cause = f"{culprit}: model '{exp.model}' failed: {cause}"
            out = trial_dir(ctx.run_dir, trial.number)  # absent if parameters were rejected
            out.mkdir(parents=True, exist_ok=True)
            (out / "error.txt").write_text(traceback.format_exc())
            _fail(study, trial, cause)
            summary.failed += 1
            streak += 1
            log.error("trial %d failed: %s", trial.number, cause)
            if streak >= MAX_CONSECUTIVE_FAILURES:
                summary.reason = "too many failures"
                break
        else:
            study.tell(trial, value)
            summary.complete += 1
            streak = 0
            log.info("trial %d complete: %s=%.4g", trial.number, exp.metric, value)
    wait_for_artifacts()
    if stop() and not summary.reason:
        summary.interrupted = True
        summary.reason = f"stopped by {signal.Signals(stop.signum or signal.SIGTERM).name}"
    return summary
