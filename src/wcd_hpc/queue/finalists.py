"""Finalists: the few best configurations retrained with new seeds, and the final pick.

The best of N noisy trials is, on average, luckier than it is good (the winner's curse,
SCIENCE.md "Numbers a referee accepts"). With ``finalists: {top: K, seeds: S}``, once the
budget of ordinary trials is met the K best configurations (distinct parameters, best
validation objective first) are enqueued S times each as trials of the same study — Optuna's
``enqueue_trial`` with the configuration's parameters and the user attribute
:data:`~wcd_hpc.queue.schema.TRIAL_FINALIST` naming the ordinary trial they retrain. Every
trial's seed is the experiment's seed plus its number, so each finalist trains with a new seed.

- **Once**: the enqueueing happens under the claim lock and records the chosen trial numbers in
  the study attribute :data:`~wcd_hpc.queue.schema.STUDY_FINALISTS`; a second worker (or a
  resumed sweep) finds it and enqueues nothing.
- **Apart from the budget**: :func:`wcd_hpc.queue.study.finished` does not count finalists, so
  ``trials: N`` still means N ordinary trials.
- **Same workers, resumable**: the worker loop claims finalists with :func:`claim` when no
  ordinary trial is left; a finalist suspended by a signal is resumed first like any trial, and
  one whose worker died is reaped and re-enqueued with its tag (:mod:`wcd_hpc.queue.reaper`).
- **The pick** (:func:`report`) is the configuration with the best *mean* validation objective
  over its finalist seeds (the original trial, selected for being lucky, is left out of the
  mean); the report gives mean ± std (sample standard deviation) on validation and test, and
  the model to register is the pick's best seed on validation.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from wcd_hpc.queue import claims
from wcd_hpc.queue import study as studies
from wcd_hpc.queue.opened import OpenedStudy
from wcd_hpc.queue.reaper import heartbeat_interval, reap
from wcd_hpc.queue.schema import (
    STUDY_EXPERIMENT,
    STUDY_FINALISTS,
    TRIAL_FINALIST,
    TRIAL_SUSPENDED,
    TRIAL_TEST,
)

__all__ = ["chosen", "claim", "enqueue_once", "line", "linger", "metrics", "report"]

Claim = tuple[optuna.Trial, bool]
Sample = Callable[[optuna.Trial], object]


def _maximize(study: optuna.Study) -> bool:
    return study.direction == optuna.study.StudyDirection.MAXIMIZE


def chosen(study: optuna.Study, trials: list[FrozenTrial], top: int) -> list[FrozenTrial]:
    """The ``top`` best COMPLETE ordinary trials of distinct parameters (lowest number first
    among equals): the configurations to retrain."""
    complete = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and t.value is not None and not studies.is_finalist(t)
    ]
    sign = -1.0 if _maximize(study) else 1.0
    complete.sort(key=lambda t: (sign * float(t.value or 0.0), t.number))
    picked: list[FrozenTrial] = []
    seen: set[str] = set()
    for t in complete:
        key = json.dumps(t.params, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            picked.append(t)
        if len(picked) == top:
            break
    return picked


def enqueue_once(study: optuna.Study) -> list[int]:
    """Enqueue the finalists if the study wants them and has not yet had them; the caller
    holds the claim lock. Returns the trial numbers whose configurations are retrained."""
    setting = studies.finalists_setting(study)
    if setting is None or STUDY_FINALISTS in study.user_attrs:
        return list(study.user_attrs.get(STUDY_FINALISTS) or [])
    best = chosen(study, study.get_trials(deepcopy=False), int(setting["top"]))
    for t in best:
        for _ in range(int(setting["seeds"])):
            study.enqueue_trial(dict(t.params), user_attrs={TRIAL_FINALIST: t.number})
    numbers = [t.number for t in best]
    study.set_user_attr(STUDY_FINALISTS, numbers)  # last: a crash before it enqueues again
    return numbers


def claim(opened: OpenedStudy, worker: str, sample: Sample | None = None) -> Claim | None:
    """Once the budget is met: enqueue the finalists (once) and claim a waiting one."""
    study = opened.study
    if studies.finalists_setting(study) is None or claims.gpu_budget_spent(study):
        return None
    trials = study.get_trials(deepcopy=False)
    if studies.finished(trials) < studies.budget_of(study):
        return None
    with opened.lock():
        enqueue_once(study)
        trials = study.get_trials(deepcopy=False)
        waiting = [t for t in trials if t.state == TrialState.WAITING and studies.is_finalist(t)]
        if not waiting:
            return None
        # The oldest waiting finalist, taken as ``study.ask`` takes a waiting trial; never a
        # waiting ordinary trial (re-enqueued after the budget filled): that would overshoot it.
        frozen = min(waiting, key=lambda t: t.number)
        if not study._storage.set_trial_state_values(frozen._trial_id, TrialState.RUNNING):
            return None
        trial = optuna.Trial(study, frozen._trial_id)
        if sample is not None:
            # Fixed (enqueued) parameters; a rejected one fails the same way when it runs.
            with contextlib.suppress(Exception):
                sample(trial)
        claims.stamp(trial, worker)
    return trial, False


def linger(
    opened: OpenedStudy, worker: str, stop: Callable[[], bool], sample: Sample | None = None
) -> Claim | None:
    """Stay while trials still run elsewhere: the last ordinary ones (their end enqueues the
    finalists, which this worker then takes) or finalists (if one's worker dies, the reaper
    re-enqueues it and this worker takes it back). Leave when nothing runs and nothing waits."""
    study = opened.study
    if studies.finalists_setting(study) is None:
        return None
    pace = min(heartbeat_interval(study) / 2, 5.0)
    while not stop():
        reap(opened, ask_slurm=False)
        claimed = claim(opened, worker, sample)
        if claimed is not None:
            return claimed
        trials = study.get_trials(deepcopy=False)
        running = [
            t
            for t in trials
            if t.state == TrialState.RUNNING and not t.user_attrs.get(TRIAL_SUSPENDED)
        ]
        if not running:
            return None
        time.sleep(pace * random.uniform(0.5, 1.0))
    return None


def _spread(values: list[float]) -> dict[str, Any]:
    """mean, sample std (null for one value) and n."""
    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "n": n}


def report(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> dict[str, Any] | None:
    """The finalists' summary (``status --json`` ``final``), None before any finalist finished.

    ``configurations``: per retrained configuration, its original trial, its finalist trials,
    mean ± std of the validation objective and of the test value of the objective's metric.
    ``pick``: the configuration with the best mean validation objective; ``model_trial`` its
    best seed on validation (the registered ``@best`` model).
    """
    numbers = study.user_attrs.get(STUDY_FINALISTS)
    if not numbers:
        return None
    trials = trials if trials is not None else study.get_trials(deepcopy=False)
    stored = study.user_attrs.get(STUDY_EXPERIMENT) or {}
    metric = str(stored.get("metric", "objective")) if isinstance(stored, dict) else "objective"
    by_number = {t.number: t for t in trials}
    configs = []
    for number in numbers:
        done = [
            t
            for t in trials
            if t.user_attrs.get(TRIAL_FINALIST) == number
            and t.state == TrialState.COMPLETE
            and t.value is not None
        ]
        if not done:
            continue
        tests = [
            float(t.user_attrs[TRIAL_TEST][metric])
            for t in done
            if isinstance(t.user_attrs.get(TRIAL_TEST), dict) and metric in t.user_attrs[TRIAL_TEST]
        ]
        pick = max if _maximize(study) else min
        seed_best = pick(done, key=lambda t: float(t.value or 0.0))
        original = by_number.get(number)
        configs.append(
            {
                "trial": number,
                "params": studies.params_of(study, original) if original else {},
                "finalists": sorted(t.number for t in done),
                "val": _spread([float(t.value or 0.0) for t in done]),
                "test": _spread(tests),
                "best_seed_trial": seed_best.number,
            }
        )
    if not configs:
        return None
    sign = -1.0 if _maximize(study) else 1.0
    best = min(configs, key=lambda c: (sign * float(c["val"]["mean"]), c["trial"]))
    left = studies.finalists_left(study, trials)
    return {
        "metric": metric,
        "pick": best["trial"],
        "params": best["params"],
        "val": best["val"],
        "test": best["test"],
        "model_trial": best["best_seed_trial"],
        "complete": left == 0,
        "configurations": configs,
    }


def line(final: dict[str, Any]) -> str:
    """One line for people: ``final pick: trial 3 (2 seeds): validation f1 = 0.912 ± 0.004;
    test f1 = 0.905 ± 0.006; model: trial 9``."""
    metric = final["metric"]

    def show(part: dict[str, Any]) -> str:
        if part["mean"] is None:
            return "–"
        std = part["std"]
        return f"{part['mean']:.4g} ± {std:.2g}" if std is not None else f"{part['mean']:.4g}"

    more = "" if final["complete"] else " (finalists still running)"
    return (
        f"final pick: configuration of trial {final['pick']} ({final['val']['n']} new seeds): "
        f"validation {metric} = {show(final['val'])}; test {metric} = {show(final['test'])}; "
        f"model: trial {final['model_trial']}{more}"
    )


def metrics(final: dict[str, Any] | None) -> dict[str, float]:
    """The pick as MLflow parent-run metrics: ``final_val_mean``/``_std``,
    ``final_test_mean``/``_std``, ``final_pick_trial``, ``final_model_trial``."""
    if final is None:
        return {}
    out = {
        "final_pick_trial": float(final["pick"]),
        "final_model_trial": float(final["model_trial"]),
    }
    for split in ("val", "test"):
        for stat in ("mean", "std"):
            value = final[split][stat]
            if value is not None:
                out[f"final_{split}_{stat}"] = float(value)
    return out
