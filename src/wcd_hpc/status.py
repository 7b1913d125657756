"""A study's state as one JSON-serialisable dict: what ``wcd-hpc status`` prints.

The dict is a stable interface for scripts: ``counts`` keyed by Optuna's state names, ``budget``,
``best`` (number, value, params), ``running`` (number, host, pid, worker, elapsed_s), ``failures``
(number, cause) and ``throughput_per_h``. New keys may be added; existing ones keep their meaning.
"""

from __future__ import annotations

import time
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from wcd_hpc import study as studies


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
        "optuna_params": best.params,
        "test": best.user_attrs.get("test", {}),
    }


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


def summarize(study: optuna.Study) -> dict[str, Any]:
    """Collect counts, best trial, running trials, failures and throughput of ``study``."""
    trials = study.get_trials(deepcopy=False)
    exp = study.user_attrs.get(studies.ATTR_EXPERIMENT, {})
    now = time.time()
    running = [
        {
            "number": t.number,
            "host": t.user_attrs.get("host"),
            "pid": t.user_attrs.get("pid"),
            "worker": t.user_attrs.get("worker"),
            "elapsed_s": round(now - t.datetime_start.timestamp(), 1) if t.datetime_start else None,
            "last_epoch": t.last_step,
        }
        for t in trials
        if t.state == TrialState.RUNNING
    ]
    failures = [
        {"number": t.number, "cause": t.user_attrs.get("fail_reason", "unknown")}
        for t in trials
        if t.state == TrialState.FAIL
    ]
    counts = studies.counts(trials)
    budget = int(study.user_attrs.get(studies.ATTR_BUDGET, 0))
    return {
        "study": study.study_name,
        "direction": study.direction.name.lower(),
        "metric": exp.get("metric"),
        "model": exp.get("model"),
        "dataset": exp.get("dataset"),
        "budget": budget,
        "finished": counts["COMPLETE"] + counts["PRUNED"],
        "done": counts["COMPLETE"] + counts["PRUNED"] >= budget > 0,
        "counts": counts,
        "best": _best(study, trials),
        "running": running,
        "failures": failures,
        "throughput_per_h": _throughput(trials),
        "run_dir": study.user_attrs.get(studies.ATTR_RUN_DIR),
    }
