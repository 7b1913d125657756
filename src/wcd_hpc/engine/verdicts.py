"""Why a trial stops early: a loss or outputs that are not finite, or a network at chance level.

These judgements run at each report, before the experiment's pruner is asked, and need no other
trial: a median or ASHA pruner waits for its startup trials and its warm-up, and all that time a
network whose predictions are constant, or whose weights are NaN, holds a GPU for nothing
(issue 24: half of a sweep's training seconds went to networks at chance). A trial stopped here
is pruned with the reason recorded on it (:data:`~wcd_hpc.queue.schema.TRIAL_PRUNED_BECAUSE`:
``nan``, ``chance``; ``pruner`` for the experiment's pruner), and it is stopped *before* its
value is reported, so it never enters the median or the ASHA rungs the other trials are judged
against (its value would pull the median down and let bad trials through).

Chance level (``prune_chance``, on by default; ``false`` turns it off): from report ``after`` on,
a trial is at chance when 0.5 lies within its ROC AUC's 68 % interval (± one standard error),
widened by ``auc_margin``, or when its validation predictions are constant (every class
probability varies by less than :data:`CONSTANT_SPREAD` over the validation events) and their
ranking is not both clear and strong (ROC AUC at least :data:`CLEAR_SIGMAS` standard errors and
:data:`STRONG_AUC` from 0.5). Both halves were measured: an early network whose outputs all sit
near 0.5 yet rank the events well (ROC AUC 0.78 ± 0.03 on 300 events after one short epoch, in
the race of ``benchmarks/quality.py``) is worth its next epoch, and pruning on the size of the
outputs alone cut 7 of 8 trials of that race; while a network whose weights decay away
(quickstart with ``reg: 0.5``) keeps a faint, significant ranking (ROC AUC 0.54-0.68 ± 0.02 on
1,000 events) that never becomes a classifier — the significance test alone let three of eight
such trials train two or three epochs instead of one. The AUC is the signal
class against the rest on the signal-class score; its standard error is Hanley & McNeil's
approximation (1982, Radiology 143, 29: from the AUC and the two class counts alone, no
resampling), cheap enough for every report and conservative for a network near 0.5. A
NaN or infinite loss or output is pruned with ``nan`` whatever ``prune_chance`` says, and the
probabilities are checked before any metric sees them: ``argmax`` of NaN is class 0, which scored
F1 0.80 and won a sweep.

Every report is judged, those inside an epoch (``report_every`` below 1, on the validation
subsample) as well as the epoch's end, and ``after`` counts them all: on a large training set a
dead network is then stopped within a fraction of its first epoch. ``min_steps`` (default 0)
holds the judgement back until the trial has taken that many optimizer steps, whatever its
reports: a slow starter's outputs can stay within :data:`CONSTANT_SPREAD` of each other for its
first 4-8 steps (the race of ``benchmarks/quality.py``, where an epoch is 4-25 steps), so a rule
counted in reports judges trials with large batches earlier in their training than trials with
small ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from wcd_hpc.default_plugins.metrics import roc_auc

NAN = "nan"
CHANCE = "chance"
PRUNER = "pruner"
#: Class probabilities that vary by less than this over all validation events are "constant".
#: A network whose weights decayed to nothing (quickstart with ``reg: 0.5``) still varies by
#: ~1e-3 — enough float noise for its AUC to read 0.37 or 0.58 on 60 events and escape the
#: interval test — while a freshly initialised LeNet already spreads its outputs by several
#: hundredths: 0.01 separates the two.
CONSTANT_SPREAD = 0.01
#: Small outputs count as constant unless their ROC AUC lies this many standard errors from 0.5
#: (float noise reads 0.37 or 0.58 on 60 events, about one standard error; three happen 0.3 % of
#: the time) ...
CLEAR_SIGMAS = 3.0
#: ... and at least this far from 0.5: decayed weights rank events faintly (AUC up to 0.68),
#: a network on its way ranks them well (0.78 after its first short epoch).
STRONG_AUC = 0.25


@dataclass(frozen=True)
class ChanceRule:
    """``prune_chance`` as the experiment keeps it (:mod:`wcd_hpc.experiment.pruning`).

    ``after`` counts reports, those inside an epoch included; ``min_steps`` counts optimizer
    steps: a trial is judged from the first report at which it has both."""

    after: int = 1
    auc_margin: float = 0.0
    min_steps: int = 0


def chance_rule(setting: Any) -> ChanceRule | None:
    """The rule of a ``prune_chance`` value; None when it is off."""
    if setting is False:
        return None
    given: Mapping[str, Any] = setting if isinstance(setting, Mapping) else {}
    return ChanceRule(
        int(given.get("after", 1)),
        float(given.get("auc_margin", 0.0)),
        int(given.get("min_steps", 0)),
    )


def auc_with_error(is_signal: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """ROC AUC of ``score`` for ``is_signal`` and its Hanley–McNeil standard error.

    SE² = (A(1−A) + (n₁−1)(Q₁−A²) + (n₀−1)(Q₂−A²)) / (n₁n₀), Q₁ = A/(2−A), Q₂ = 2A²/(1+A).
    NaN for both when a class is missing.
    """
    positive = np.asarray(is_signal, dtype=bool).ravel()
    n1, n0 = int(positive.sum()), int((~positive).sum())
    if n1 == 0 or n0 == 0:
        return math.nan, math.nan
    a = float(roc_auc(positive.astype(np.int64), np.asarray(score, dtype=np.float64), {}))
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0)
    return a, math.sqrt(max(var, 0.0))


def not_finite(train_loss: float, probs: np.ndarray) -> str | None:
    """Why the loss or the predicted probabilities cannot be used, or None when both are finite."""
    if not math.isfinite(train_loss):
        return f"training loss is {train_loss}"
    if probs.size and not np.isfinite(probs).all():
        bad = int((~np.isfinite(probs).all(axis=1)).sum())
        return f"{bad} of {probs.shape[0]} validation predictions are NaN or inf"
    return None


def at_chance(
    probs: np.ndarray,
    y_true: np.ndarray,
    signal: int,
    rule: ChanceRule,
    report: int,
    steps: int | None = None,
) -> str | None:
    """Why a trial at its ``report``-th report, after ``steps`` optimizer steps (None: not
    counted), is at chance level, or None (see the module)."""
    truth = np.asarray(y_true).ravel()
    early = report < rule.after or (steps is not None and steps < rule.min_steps)
    if early or signal >= probs.shape[1]:
        return None
    is_signal = truth == signal
    if is_signal.all() or not is_signal.any():
        return None  # one class only (a one-event set): neither constant nor AUC says anything
    spread = float(np.ptp(probs, axis=0).max())
    auc, error = auc_with_error(is_signal, probs[:, signal])
    strong = abs(auc - 0.5) >= max(CLEAR_SIGMAS * error, STRONG_AUC) + rule.auc_margin
    if spread < CONSTANT_SPREAD and not strong:
        return f"constant validation predictions (they vary by {spread:.2g}, ROC AUC {auc:.3f})"
    if math.isnan(auc) or abs(auc - 0.5) > error + rule.auc_margin:
        return None
    margin = f" + margin {rule.auc_margin:g}" if rule.auc_margin else ""
    return f"validation ROC AUC {auc:.3f} ± {error:.3f}{margin} contains 0.5"
