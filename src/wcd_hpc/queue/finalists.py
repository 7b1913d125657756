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
  mean); the report gives mean ± std (sample standard deviation) on validation and test, overall
  and per energy bin (from each finalist's ``binned.json``: a single number hides where a
  classifier fails), and the model to register is the pick's best seed on validation.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from wcd_hpc.queue import claims
from wcd_hpc.queue import study as studies
from wcd_hpc.queue.opened import OpenedStudy
from wcd_hpc.queue.reaper import heartbeat_interval, reap
from wcd_hpc.queue.schema import (
    BINNED_FILE,
    STUDY_EXPERIMENT,
    STUDY_FINALISTS,
    TRIAL_FINALIST,
    TRIAL_SUSPENDED,
    TRIAL_TEST,
    trial_dir,
)

__all__ = [
    "bin_lines",
    "bin_rows",
    "chosen",
    "claim",
    "enqueue_once",
    "line",
    "linger",
    "metrics",
    "report",
    "shown",
]

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


Edges = tuple[float, float]
#: ``binned.json``'s rows of the objective per energy bin: on validation, and on test.
_BIN_ROWS = (("val", "validation_bins"), ("test", "bins"))


def _trial_bins(run_dir: Path, number: int, metric: str) -> dict[str, dict[Edges, float]]:
    """The objective per energy bin of one trial, on validation and test, from its
    ``binned.json``; empty where the trial wrote none (data without energies, a metric that is
    not binned, or a trial from before validation bins were written)."""
    try:
        payload = json.loads((trial_dir(run_dir, number) / BINNED_FILE).read_text())
    except (OSError, ValueError):
        return {}
    out: dict[str, dict[Edges, float]] = {}
    for split, key in _BIN_ROWS:
        rows = payload.get(key) if isinstance(payload, dict) else None
        values: dict[Edges, float] = {}
        for row in rows if isinstance(rows, list) else []:
            value = row.get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                edges = (round(float(row["log10_e_min"]), 6), round(float(row["log10_e_max"]), 6))
                values[edges] = float(value)
        out[split] = values
    return out


def _per_bin(run_dir: Path | None, done: list[FrozenTrial], metric: str) -> list[dict[str, Any]]:
    """Mean ± std over the seeds of the objective in each energy bin, on validation and test;
    a seed without a value in a bin (too few events there) is left out of that bin's mean."""
    if run_dir is None:
        return []
    seen = [_trial_bins(run_dir, t.number, metric) for t in done]
    edges = sorted({e for trial in seen for values in trial.values() for e in values})
    return [
        {
            "log10_e_min": lo,
            "log10_e_max": hi,
            **{
                split: _spread([t[split][(lo, hi)] for t in seen if (lo, hi) in t.get(split, {})])
                for split, _ in _BIN_ROWS
            },
        }
        for lo, hi in edges
    ]


def report(
    study: optuna.Study, trials: list[FrozenTrial] | None = None, run_dir: Path | None = None
) -> dict[str, Any] | None:
    """The finalists' summary (``status --json`` ``final``), None before any finalist finished.

    ``configurations``: per retrained configuration, its original trial, its finalist trials,
    mean ± std of the validation objective and of the test value of the objective's metric,
    and ``bins``: the same per energy bin (read from the trials' files under ``run_dir``;
    empty without it). ``pick``: the configuration with the best mean validation objective;
    ``model_trial`` its best seed on validation (the registered ``@best`` model).
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
                "bins": _per_bin(run_dir, done, metric),
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
        "bins": best["bins"],
        "model_trial": best["best_seed_trial"],
        "complete": left == 0,
        "configurations": configs,
    }


def shown(part: dict[str, Any]) -> str:
    """``mean ± std`` for people, rounded to the std's second significant digit (the mean
    alone, to three digits, for a single seed; ``± 0`` when the seeds agree to rounding
    noise); ``–`` without a value."""
    mean, std = part["mean"], part["std"]
    if mean is None:
        return "–"
    if std is None or not math.isfinite(std):
        return f"{mean:.3g}"
    if std <= 1e-9 * abs(mean) or std == 0:
        return f"{mean:.3g} ± 0"
    digits = max(0, 1 - math.floor(math.log10(std)))
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def line(final: dict[str, Any]) -> str:
    """One line for people: ``final pick: trial 3 (2 seeds): validation f1 = 0.912 ± 0.004;
    test f1 = 0.905 ± 0.006; model: trial 9``."""
    metric = final["metric"]
    more = "" if final["complete"] else " (finalists still running)"
    return (
        f"final pick: configuration of trial {final['pick']} ({final['val']['n']} new seeds): "
        f"validation {metric} = {shown(final['val'])}; test {metric} = {shown(final['test'])}; "
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


def bin_lines(final: dict[str, Any]) -> list[str]:
    """The pick's objective per energy bin for people, one line per bin under a header (none
    without bins): ``  3.0–3.5  validation 2.41 ± 0.12  test 2.3 ± 0.2``."""
    bins = final.get("bins") or []
    if not bins:
        return []
    head = f"final pick per energy bin, log10(E0/GeV), {final['metric']} (mean ± std over seeds):"
    return [head] + [
        f"  {b['log10_e_min']:.1f}–{b['log10_e_max']:.1f}  validation {shown(b['val'])}  "
        f"test {shown(b['test'])}"
        for b in bins
    ]


def bin_rows(final: dict[str, Any] | None) -> tuple[list[str], list[list[Any]]]:
    """The pick's per-bin mean ± std as a table (columns, rows) for the MLflow parent run:
    ``log10_e_min``, ``log10_e_max``, then ``val_mean``/``_std``/``_n`` and the same for test."""
    columns = ["log10_e_min", "log10_e_max"] + [
        f"{split}_{stat}" for split, _ in _BIN_ROWS for stat in ("mean", "std", "n")
    ]
    rows = [
        [b["log10_e_min"], b["log10_e_max"]]
        + [b[split][stat] for split, _ in _BIN_ROWS for stat in ("mean", "std", "n")]
        for b in (final or {}).get("bins") or []
    ]
    return columns, rows
