"""A study's state as one JSON-serialisable dict: what ``wcd-hpc status`` prints.

The dict is a stable interface for scripts: ``counts`` keyed by Optuna's state names, ``budget``,
``best`` (number, value, params, ``kept_epoch``), ``pruned_because`` (PRUNED trials by reason:
``chance``, ``nan``, ``pruner``), ``running`` (number, host, pid, worker, elapsed_s), ``failures``
(number, cause), ``throughput_per_h`` and ``trials`` (per trial: ``value`` with ``value_lo`` and
``value_hi``, the ends of its 68 % interval or null without one, its worker, Slurm array task,
node, GPU, ``pruned_because``, ``kept_epoch`` and ``gpu_hours``, its share of the GPU-hours:
training time times the GPUs its worker held over the workers sharing them), ``finalists`` (the
setting, the configurations retrained, their trials, how many are left) and ``final`` (the
finalists' pick with mean ± std on validation and test, overall and per energy bin under ``bins``,
:func:`wcd_hpc.queue.finalists.report`).
``finished`` counts ordinary trials only: finalists are apart from the budget. New keys may be
added; existing ones keep their meaning.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from wcd_hpc.errors import SlurmError
from wcd_hpc.output.masking import mask_text
from wcd_hpc.queue import accounting, finalists
from wcd_hpc.queue import study as studies
from wcd_hpc.queue.schema import (
    STUDY_BUDGET,
    STUDY_EXPERIMENT,
    STUDY_FINALISTS,
    STUDY_GPU_HOURS,
    STUDY_RUN_DIR,
    TRIAL_FAIL_REASON,
    TRIAL_GPU,
    TRIAL_GPU_HOURS,
    TRIAL_GPU_SHARE,
    TRIAL_HOST,
    TRIAL_KEPT_EPOCH,
    TRIAL_NODE,
    TRIAL_OBJECTIVE_INTERVAL,
    TRIAL_PID,
    TRIAL_PRUNED_BECAUSE,
    TRIAL_PRUNED_DETAIL,
    TRIAL_SLURM_ARRAY_JOB_ID,
    TRIAL_SLURM_ARRAY_TASK_ID,
    TRIAL_SLURM_JOB_ID,
    TRIAL_SUSPENDED,
    TRIAL_TEST,
    TRIAL_TRAIN_FINISHED,
    TRIAL_TRAIN_STARTED,
    TRIAL_WORKER,
)


def _best(study: optuna.Study, trials: list[FrozenTrial]) -> dict[str, Any] | None:
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        return None
    pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    best = pick(complete, key=lambda t: float(t.value))  # type: ignore[arg-type]
    return {
        "number": best.number,
        "value": best.value,
        "params": studies.params_of(study, best),
        TRIAL_KEPT_EPOCH: best.user_attrs.get(TRIAL_KEPT_EPOCH),
        "optuna_params": best.params,
        TRIAL_OBJECTIVE_INTERVAL: best.user_attrs.get(TRIAL_OBJECTIVE_INTERVAL),
        TRIAL_TEST: best.user_attrs.get(TRIAL_TEST, {}),
    }


def _pruned_because(trials: list[FrozenTrial]) -> dict[str, int]:
    """PRUNED trials by reason (``chance``, ``nan``, ``pruner``; ``unknown`` for a trial pruned
    before reasons were recorded)."""
    reasons: dict[str, int] = {}
    for t in trials:
        if t.state == TrialState.PRUNED:
            why = str(t.user_attrs.get(TRIAL_PRUNED_BECAUSE, "unknown"))
            reasons[why] = reasons.get(why, 0) + 1
    return dict(sorted(reasons.items()))


def _throughput(trials: list[FrozenTrial]) -> float | None:
    """Finished trials per hour between the first start and the last finish."""
    ends = [t.datetime_complete for t in trials if t.state in studies.FINISHED]
    done = [e for e in ends if e is not None]
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    if not done or not starts:
        return None
    span = max(done) - min(starts)
    hours = span.total_seconds() / 3600
    return len(done) / hours if hours > 0 else None


def _trial_rows(trials: list[FrozenTrial], waits: dict[str, float | None]) -> list[dict[str, Any]]:
    rows = []
    for t in trials:
        a = t.user_attrs
        job = a.get(TRIAL_SLURM_ARRAY_JOB_ID)
        task = a.get(TRIAL_SLURM_ARRAY_TASK_ID)
        lo, hi = _interval(t)
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "value_lo": lo,
                "value_hi": hi,
                TRIAL_WORKER: a.get(TRIAL_WORKER),
                TRIAL_HOST: a.get(TRIAL_HOST),
                TRIAL_SLURM_ARRAY_JOB_ID: job,
                TRIAL_SLURM_ARRAY_TASK_ID: task,
                TRIAL_SLURM_JOB_ID: a.get(TRIAL_SLURM_JOB_ID),
                TRIAL_NODE: a.get(TRIAL_NODE),
                TRIAL_GPU: a.get(TRIAL_GPU),
                "gpu_hours": a.get(TRIAL_GPU_HOURS),
                "epochs": _epochs(t),
                "seconds": _seconds(t),
                TRIAL_PRUNED_BECAUSE: a.get(TRIAL_PRUNED_BECAUSE),
                TRIAL_PRUNED_DETAIL: a.get(TRIAL_PRUNED_DETAIL),
                TRIAL_KEPT_EPOCH: a.get(TRIAL_KEPT_EPOCH),
                "queue_wait_s": waits.get(f"{job}_{task}") if job is not None else None,
            }
        )
    return rows


def _interval(t: FrozenTrial) -> tuple[float | None, float | None]:
    """The ends of the objective's 68 % interval on validation, each None where the trial has
    none (one from before intervals were recorded, a pruned one, an objective averaged over
    bins) or no value to attach them to (one that failed after recording them): scripts can then
    read ``value_lo is None`` as "no interval" without checking the state."""
    ends = t.user_attrs.get(TRIAL_OBJECTIVE_INTERVAL)
    if t.value is None or not isinstance(ends, (list, tuple)) or len(ends) != 2:
        return None, None
    lo, hi = ends
    return _number(lo), _number(hi)


def _number(x: Any) -> float | None:
    """A stored end as a float; JSON null (no resample could score) stays None."""
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _epochs(t: FrozenTrial) -> int | None:
    """Epochs the trial reported (one intermediate value per epoch, numbered from 1)."""
    steps = t.intermediate_values
    return max(steps) if steps else None


def _seconds(t: FrozenTrial) -> float | None:
    """Wall time of the trial: start to finish, or to now while it runs."""
    if t.datetime_start is None:
        return None
    end = t.datetime_complete.timestamp() if t.datetime_complete else time.time()
    return round(end - t.datetime_start.timestamp(), 1)


def _trained_s(t: FrozenTrial) -> float:
    start, end = t.user_attrs.get(TRIAL_TRAIN_STARTED), t.user_attrs.get(TRIAL_TRAIN_FINISHED)
    if isinstance(start, float) and isinstance(end, float) and end >= start:
        return end - start
    return 0.0


def _training_seconds(trials: list[FrozenTrial]) -> float:
    return sum(_trained_s(t) for t in trials)


def _trials_gpu_hours(trials: list[FrozenTrial]) -> float | None:
    """GPU-hours the trials trained, each charged its share of its GPU; None when no trial
    records a share (studies from before shares were recorded: the idle fraction then compares
    training time with task time, as it did)."""
    shares = [t.user_attrs.get(TRIAL_GPU_HOURS) for t in trials]
    if not any(isinstance(h, (int, float)) for h in shares):
        return None
    return sum(_gpu_hours_of(t, h) for t, h in zip(trials, shares, strict=True))


def _gpu_hours_of(t: FrozenTrial, hours: Any) -> float:
    """A trial's GPU-hours: what it recorded; 0 for a trial that records its share but no hours
    (a CPU worker, or one that has not finished a stretch of training yet); for a trial from
    before shares were recorded, its training time on one whole GPU."""
    if isinstance(hours, (int, float)):
        return float(hours)
    if TRIAL_GPU_SHARE in t.user_attrs:
        return 0.0
    return _trained_s(t) / 3600


def _slurm(
    study: optuna.Study, trials: list[FrozenTrial]
) -> tuple[dict[str, Any] | None, dict[str, float | None]]:
    """Allocation summary from sacct for the study's Slurm jobs (None when it has none).

    The arrays ``sweep`` submitted are recorded on the study; arrays submitted by hand
    (``sbatch worker.sbatch``) are known from the job ids their trials carry.
    """
    jobs = accounting.jobs_of(studies.slurm_jobs(study), trials)
    if not jobs:
        return None, {}
    try:
        records = accounting.sacct(jobs)
    except SlurmError as exc:
        return {"jobs": jobs, "error": str(exc)}, {}
    summary = accounting.summarize_allocation(
        records, _training_seconds(trials), _trials_gpu_hours(trials)
    )
    return {"jobs": jobs, **summary}, {r.job_id: r.queue_wait_s for r in records}


def finalists_block(
    study: optuna.Study, trials: list[FrozenTrial], left: int
) -> dict[str, Any] | None:
    """``finalists: {top, seeds}`` as set, the configurations retrained, the finalist trials
    and how many are still to run; None when the study has no finalists."""
    setting = studies.finalists_setting(study)
    if setting is None:
        return None
    return {
        **setting,
        "of": study.user_attrs.get(STUDY_FINALISTS),
        "trials": [t.number for t in trials if studies.is_finalist(t)],
        "left": left,
    }


def summarize(study: optuna.Study, run_dir: Path) -> dict[str, Any]:
    """Collect counts, best trial, running trials, failures and throughput of ``study``.

    ``run_dir`` is where the caller found the study's files (see ``study.run_dir_of``).
    """
    trials = study.get_trials(deepcopy=False)
    exp = study.user_attrs.get(STUDY_EXPERIMENT, {})
    now = time.time()
    running = [
        {
            "number": t.number,
            TRIAL_HOST: t.user_attrs.get(TRIAL_HOST),
            TRIAL_PID: t.user_attrs.get(TRIAL_PID),
            TRIAL_WORKER: t.user_attrs.get(TRIAL_WORKER),
            "elapsed_s": round(now - t.datetime_start.timestamp(), 1) if t.datetime_start else None,
            "last_epoch": t.last_step,
            TRIAL_SUSPENDED: bool(t.user_attrs.get(TRIAL_SUSPENDED)),
        }
        for t in trials
        if t.state == TrialState.RUNNING
    ]
    failures = [
        {
            "number": t.number,
            "cause": mask_text(str(t.user_attrs.get(TRIAL_FAIL_REASON, "unknown"))),
        }
        for t in trials
        if t.state == TrialState.FAIL
    ]
    counts = studies.counts(trials)
    slurm, waits = _slurm(study, trials)
    budget = int(study.user_attrs.get(STUDY_BUDGET, 0))
    gpu_budget = study.user_attrs.get(STUDY_GPU_HOURS)
    gpu_used = slurm.get("gpu_hours") if slurm else None
    gpu_spent = gpu_budget is not None and gpu_used is not None and gpu_used >= gpu_budget
    left = studies.finalists_left(study, trials)
    return {
        "study": study.study_name,
        "direction": study.direction.name.lower(),
        "metric": exp.get("metric"),
        "model": exp.get("model"),
        "dataset": exp.get("dataset"),
        "budget": budget,
        "finished": studies.finished(trials),  # ordinary trials: finalists are apart
        "done": (studies.finished(trials) >= budget > 0 and not left) or gpu_spent,
        "finalists": finalists_block(study, trials, left),
        "final": finalists.report(study, trials, run_dir),
        "gpu_hours_budget": gpu_budget,
        "gpu_hours_used": gpu_used,
        "counts": counts,
        TRIAL_PRUNED_BECAUSE: _pruned_because(trials),
        "best": _best(study, trials),
        "running": running,
        "failures": failures,
        "throughput_per_h": _throughput(trials),
        STUDY_RUN_DIR: str(run_dir),
        "slurm": slurm,
        "trials": _trial_rows(trials, waits),
    }
