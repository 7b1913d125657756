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
from wcd_hpc.engine.trial import Context, run_trial, trial_dir
from wcd_hpc.plugins import get_registry
from wcd_hpc.storage import claim_lock, mask, open_storage

log = logging.getLogger("wcd_hpc.worker")
ENV_THREADS = "WCD_HPC_THREADS"
MAX_CONSECUTIVE_FAILURES = 3
# Exit status of a worker that gave up after MAX_CONSECUTIVE_FAILURES failed trials in a row:
# launchers must not restart it, the failure is in the experiment, not in the process.
EXIT_TOO_MANY_FAILURES = 3


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


def _claim(study: optuna.Study, url: str, worker: str) -> optuna.Trial | None:
    """Start a new trial if finished + running trials are still below the budget."""
    with claim_lock(url, study._storage, study.study_name):
        trials = study.get_trials(deepcopy=False)
        done = studies.finished(trials)
        running = sum(1 for t in trials if t.state == TrialState.RUNNING)
        if done + running >= studies.budget_of(study):
            return None
        trial = study.ask()
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("worker", worker)
    trial.set_user_attr("claimed", time.time())
    return trial


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
    storage = open_storage(url)
    study = studies.load(study_name, storage, url)
    exp = studies.experiment_of(study)
    log.info("worker %s joined study %s in %s", worker, study_name, mask(url))
    ctx = build_context(study)
    study.sampler = studies.make_sampler(exp.sampler, None, ctx.space)
    study.pruner = studies.make_pruner(exp.pruner, exp.epochs)
    summary = Summary()
    streak = 0
    while not stop():
        if max_trials is not None and len(summary.trials) >= max_trials:
            summary.reason = "max trials for this worker"
            break
        trial = _claim(study, url, worker)
        if trial is None:
            summary.reason = "budget met"
            break
        summary.trials.append(trial.number)
        try:
            value = run_trial(ctx, trial, stop)
        except optuna.TrialPruned as exc:
            study.tell(trial, state=TrialState.PRUNED)
            summary.pruned += 1
            streak = 0
            log.info("trial %d pruned: %s", trial.number, exc)
        except Interrupted:
            name = signal.Signals(stop.signum or signal.SIGTERM).name
            _fail(study, trial, f"worker {worker} stopped by {name}")
            summary.interrupted = True
            break
        except Exception as exc:
            cause = _one_line(exc)
            (trial_dir(ctx.run_dir, trial.number) / "error.txt").write_text(traceback.format_exc())
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
    if stop() and not summary.reason:
        summary.interrupted = True
        summary.reason = f"stopped by {signal.Signals(stop.signum or signal.SIGTERM).name}"
    return summary
