"""The worker loop: claim a trial, run it, tell the result, repeat until the budget is met.

A worker needs only a study name and a storage URL; the experiment, its search space and the run
directory come from the study. Claiming, suspending and failing trials are queue operations
(:mod:`wcd_hpc.queue.claims`); this module runs what it claimed. There is no batch barrier: a
worker that finishes a trial asks for the next one at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import optuna
import torch
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from wcd_hpc.engine.device import (
    CompileError,
    check_compile,
    settle,
)
from wcd_hpc.engine.fit import Interrupted, pick_device
from wcd_hpc.engine.preemption import requeue_own_task, worker_requeues
from wcd_hpc.engine.search import make_pruner, make_sampler
from wcd_hpc.engine.startup import ENV_THREADS, paused_gc, warm_up_optimizers
from wcd_hpc.engine.trial import Context, run_trial, wait_for_artifacts
from wcd_hpc.errors import DataError, StorageUnavailable, one_line
from wcd_hpc.experiment.resolve import resolve
from wcd_hpc.output.masking import mask_text, masked_traceback
from wcd_hpc.plugins import blame, get_registry
from wcd_hpc.queue import claims, files, finalists, identity, outage
from wcd_hpc.queue import study as studies
from wcd_hpc.queue.opened import OpenedStudy
from wcd_hpc.queue.reaper import Heartbeat, reap
from wcd_hpc.queue.schema import (
    CACHE_DIR,
    ERROR_FILE,
    EXIT_OK,
    EXIT_STORAGE_LOST,
    EXIT_SUSPENDED,
    EXIT_TOO_MANY_FAILURES,
    EXIT_USAGE,
    TRIAL_FAIL_REASON,
    trial_dir,
)
from wcd_hpc.store.storage import Storage

log = logging.getLogger("wcd_hpc.worker")
MAX_CONSECUTIVE_FAILURES = 3
TOO_MANY_FAILURES = "too many failures"
STORAGE_LOST = "storage unreachable"
DATA_ERROR = "data error"


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
    def exit_code(self) -> int:
        """What the worker process exits with (see :mod:`wcd_hpc.queue.schema`)."""
        if self.interrupted:
            return EXIT_SUSPENDED
        if self.reason == TOO_MANY_FAILURES:
            return EXIT_TOO_MANY_FAILURES
        if self.reason == DATA_ERROR:
            return EXIT_USAGE  # deterministic: a restarted worker would fail the same way
        if self.reason == STORAGE_LOST:
            return EXIT_STORAGE_LOST  # not restarted: it would meet the same outage
        return EXIT_OK


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


def build_context(opened: OpenedStudy) -> Context:
    """Check the stored experiment against this worker's plugins and load the data once.

    The search space is the one stored in the study, not the model plugin's current default.
    On a GPU the data go to the device here when they fit, once for every trial of the worker
    (:mod:`wcd_hpc.engine.device`).
    """
    study, run_dir = opened.study, opened.run_dir
    exp = studies.experiment_of(study)
    registry = get_registry()
    files.load_recorded(registry, study, run_dir)  # the study's copies, never the originals
    exp, _ = resolve(exp, registry)
    dataset = registry.datasets[exp.dataset].obj
    params = {**dataset.defaults, **exp.dataset_params}
    cache = run_dir.parent / CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    check_compile(exp)
    splits = dataset.load(params, exp.seed, str(cache))
    device = pick_device()
    splits, where = settle(exp, splits, device)
    metrics = {name: entry.obj for name, entry in registry.metrics.items()}
    model = registry.models[exp.model].obj
    space = studies.space_of(study)
    ident = identity.identity_of(study)
    return Context(
        exp, space, model, metrics, splits, run_dir, device, placement=where, study_id=ident
    )


def _suspend(study: optuna.Study, trial: optuna.Trial, worker: str, signum: int) -> None:
    """Suspend the trial; under Slurm, SIGUSR2 (preemption, time limit) also requeues this task.

    The worker owns preemption: submitit's own requeue-on-timeout is off (see
    :mod:`wcd_hpc.launch.slurm`), so a task is requeued exactly once per signal, here, or by the
    task that started this worker among several (:mod:`wcd_hpc.engine.preemption`).
    """
    name = signal.Signals(signum).name
    claims.suspend(study, trial, f"{name} to worker {worker}")
    log.warning("trial %d suspended by %s; it resumes from its last checkpoint", trial.number, name)
    if signum == signal.SIGUSR2 and worker_requeues():  # else the task requeues, once
        requeue_own_task()


def _report_unusable_data(opened: OpenedStudy, worker: str, exc: DataError) -> None:
    """Make a worker that cannot even load its data visible in ``status``: a failed trial."""
    claimed = claims.claim(opened, worker)
    if claimed is not None:
        what = "cannot train" if isinstance(exc, CompileError) else "cannot load its data"
        claims.fail(opened.study, claimed[0], f"worker {worker} {what}: {one_line(exc)}")


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
        opened = studies.open_study(study_name, Storage.parse(url))  # the one parse
        study = opened.study
        exp = studies.experiment_of(study)
        log.info("worker %s joined study %s in %s", worker, study_name, opened.storage)
        try:
            ctx = build_context(opened)
        except DataError as exc:
            _report_unusable_data(opened, worker, exc)
            raise
        warm_up_optimizers()
    study.sampler = make_sampler(
        exp.sampler, ctx.space, seed=exp.seed, worker=worker, workers=exp.workers
    )
    # Reports inside an epoch count samples seen: the pruner's rungs do too.
    unit = len(ctx.splits.train) if float(ctx.exp.setting("report_every")) < 1 else 1
    study.pruner = make_pruner(exp.pruner, exp.epochs, exp.pruner_options, unit)
    summary = Summary()
    try:
        _work_off(opened, ctx, worker, stop, summary, max_trials)
    except StorageUnavailable as exc:
        summary.reason = STORAGE_LOST
        log.error("worker %s stops: %s", worker, exc)
    wait_for_artifacts()
    if stop() and not summary.reason:
        summary.interrupted = True
        summary.reason = f"stopped by {signal.Signals(stop.signum or signal.SIGTERM).name}"
    return summary


def _work_off(
    opened: OpenedStudy,
    ctx: Context,
    worker: str,
    stop: _StopFlag,
    summary: Summary,
    max_trials: int | None,
) -> None:
    """The loop of :func:`run_worker`: claim, run, tell, until there is nothing left to do.

    A trial held when the storage proves unreachable is left for resumption
    (:mod:`wcd_hpc.queue.outage`) before :class:`StorageUnavailable` ends the loop: it can be
    neither told nor failed, and its checkpoint is where the next worker goes on.
    """
    study = opened.study
    streak = 0
    while not stop():
        if max_trials is not None and len(summary.trials) >= max_trials:
            summary.reason = "max trials for this worker"
            break
        try:
            claimed = _claim(ctx, opened, worker, stop)
        except StorageUnavailable as exc:
            if exc.trial is not None:  # created, then the outage caught its claim
                outage.leave(ctx.run_dir, exc.trial, f"worker {worker} lost the storage: {exc}")
            raise
        if claimed is None:
            spent = claims.gpu_budget_spent(study)
            summary.reason = "GPU-hour budget spent" if spent else "budget met"
            break
        trial, resume = claimed
        summary.trials.append(trial.number)
        try:
            kind, result = _attempt(ctx, opened, trial, stop, resume, worker)
        except StorageUnavailable as exc:
            why = f"worker {worker} lost the storage: {exc}"
            if outage.leave(ctx.run_dir, trial.number, why):
                log.error("trial %d left to be resumed from its checkpoint: %s", trial.number, exc)
            raise
        except Exception as exc:
            if not _finished_elsewhere(exc):
                raise
            _dropped(study, trial)
            continue
        if kind == "interrupted":
            summary.interrupted = True
            break
        if kind == "pruned":
            summary.pruned += 1
            streak = 0
            log.info("trial %d pruned: %s", trial.number, result)
        elif kind == "complete":
            summary.complete += 1
            streak = 0
            log.info("trial %d complete: %s=%.4g", trial.number, ctx.exp.metric, result)
        else:
            summary.failed += 1
            streak += 1
            if isinstance(result, DataError):
                summary.reason = DATA_ERROR  # the next trial would read the same data
                break
            if streak >= MAX_CONSECUTIVE_FAILURES:
                summary.reason = TOO_MANY_FAILURES
                break


def _claim(
    ctx: Context, opened: OpenedStudy, worker: str, stop: _StopFlag
) -> tuple[optuna.Trial, bool] | None:
    """The next trial of the budget, else (the budget met) the next finalist, else None."""
    reap(opened, ask_slurm=False)
    claimed = claims.claim(opened, worker, sample=ctx.space.suggest)
    if claimed is None:
        claimed = claims.linger(opened, worker, stop, ctx.space.suggest)
    if claimed is None and not stop():  # the budget is met: the finalists, if asked for
        claimed = finalists.claim(opened, worker, ctx.space.suggest)
        if claimed is None:
            claimed = finalists.linger(opened, worker, stop, ctx.space.suggest)
    return claimed


def _attempt(
    ctx: Context,
    opened: OpenedStudy,
    trial: optuna.Trial,
    stop: _StopFlag,
    resume: bool,
    worker: str,
) -> tuple[str, Any]:
    """Run one claimed trial and record how it ended: ``("complete", value)``, ``("pruned",
    why)``, ``("failed", exception)`` or ``("interrupted", None)`` (suspended).

    Raises only what is not the trial's own doing: a trial finished by another process
    meanwhile (:func:`_finished_elsewhere`; the caller drops it in one line) or a bug here.
    """
    study = opened.study
    try:
        with Heartbeat(opened, trial._trial_id):
            value = run_trial(ctx, trial, stop, resume=resume, background=True)
    except StorageUnavailable:
        raise  # neither to be told nor failed: see _work_off
    except optuna.TrialPruned as exc:
        tell(study, trial, state=TrialState.PRUNED)
        return "pruned", exc
    except Interrupted:
        _suspend(study, trial, worker, stop.signum or signal.SIGTERM)
        return "interrupted", None
    except Exception as exc:
        if _finished_elsewhere(exc):
            raise
        _failed(ctx, study, trial, exc)
        return "failed", exc
    tell(study, trial, value)
    return "complete", value


def tell(study: optuna.Study, trial: optuna.Trial, value: Any = None, **kwargs: Any) -> None:
    """``study.tell``, with a trial the reaper finished meanwhile said as such.

    Optuna refuses to tell a finished trial with a plain ``ValueError`` ("Cannot tell a FAIL
    trial") before it reaches the storage, whose own refusal is ``UpdateFinishedTrialError``:
    a worker slow enough to be reaped (a loaded machine) met the first and crashed. Both now
    end in the one line of :func:`_dropped`."""
    try:
        study.tell(trial, value, **kwargs)
    except ValueError as exc:
        try:
            stored = study._storage.get_trial(trial._trial_id).state
        except Exception:
            raise exc from None
        if not stored.is_finished():
            raise
        raise UpdateFinishedTrialError(
            f"trial {trial.number} was already {stored.name} when its result came"
        ) from exc


def _finished_elsewhere(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from or while handling) says that the
    trial was finished by another process: the reaper, while this worker was not heard from
    (stopped, suspended with its laptop, cut off from the storage) for longer than its grace."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, UpdateFinishedTrialError):
            return True
        current = current.__cause__ or current.__context__
    return False


def _dropped(study: optuna.Study, trial: optuna.Trial) -> None:
    """One line, no traceback, for a trial reaped while its worker was away; the worker goes
    on with the next claim (the reaper has re-enqueued the parameters already)."""
    try:
        reason = study._storage.get_trial(trial._trial_id).user_attrs.get(TRIAL_FAIL_REASON)
    except Exception:  # the line matters more than its detail
        reason = None
    log.warning(
        "trial %d was finished by another process while this worker was not heard from (%s); "
        "its result is dropped, and its parameters were queued again",
        trial.number,
        mask_text(str(reason or "no reason recorded")),
    )


def _failed(ctx: Context, study: optuna.Study, trial: optuna.Trial, exc: Exception) -> None:
    """Fail the trial with a one-line cause (naming a plugin whose code raised) and keep the
    traceback in its ``error.txt``."""
    model = ctx.exp.model
    cause = one_line(exc)
    culprit = blame(exc, model)  # a plugin's own code failed: name its distribution
    if culprit is not None:
        cause = f"{culprit}: model '{model}' failed: {cause}"
    out = trial_dir(ctx.run_dir, trial.number)  # absent if parameters were rejected
    out.mkdir(parents=True, exist_ok=True)
    (out / ERROR_FILE).write_text(masked_traceback(exc))
    claims.fail(study, trial, cause)
    log.error("trial %d failed: %s", trial.number, cause)
