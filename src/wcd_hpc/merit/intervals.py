"""Intervals of the figures of merit: Clopper–Pearson, a vectorised seeded bootstrap, and rounding.

Part of :mod:`wcd_hpc.merit` (its docstring says which number gets which interval and why).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

__all__ = [
    "CONFIDENCE",
    "RESAMPLES",
    "SEED",
    "bootstrap_auc",
    "bootstrap_f1",
    "clopper_pearson",
    "format_values",
    "percentile_interval",
    "resample_weights",
    "rounded",
]

#: Central confidence level of every interval: ±1σ of a normal distribution.
CONFIDENCE = 0.6826894921370859
#: Bootstrap resamples and seed: a 68 % percentile interval needs a few hundred.
RESAMPLES = 300
SEED = 20240623


def clopper_pearson(
    k: np.ndarray | int | float, n: np.ndarray | int | float, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Central Clopper–Pearson interval (lower, upper) of the efficiency k/n, elementwise.

    At k = 0 the lower end is 0 and at k = n the upper end is 1; n = 0 gives [0, 1].
    """
    # The beta quantile straight from scipy.special: scipy.stats' import costs every worker and
    # every `status` about a CPU-second more, for the same function (beta.ppf calls it).
    from scipy.special import betaincinv

    kk, nn = np.broadcast_arrays(np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64))
    alpha = 1.0 - confidence
    low_ok, high_ok = kk > 0, kk < nn
    lo = betaincinv(np.where(low_ok, kk, 1.0), np.where(low_ok, nn - kk + 1, 1.0), alpha / 2)
    hi = betaincinv(np.where(high_ok, kk + 1, 1.0), np.where(high_ok, nn - kk, 1.0), 1 - alpha / 2)
    return np.where(low_ok, lo, 0.0), np.where(high_ok, hi, 1.0)


def resample_weights(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(resamples, n) event multiplicities of bootstrap resamples (each row sums to ``n``)."""
    rng = np.random.default_rng(seed)
    if n == 0 or resamples == 0:
        return np.zeros((resamples, n), dtype=np.float32)
    picks = rng.integers(0, n, size=(resamples, n), dtype=np.int64)
    flat = (picks + (np.arange(resamples) * n)[:, None]).ravel()
    # float32: exact for multiplicities and their sums below 2**24, half the memory of float64
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.float32)


def percentile_interval(
    samples: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float | None, float | None]:
    """Central percentile interval of the finite bootstrap values (``None`` when there are none)."""
    finite = np.asarray(samples, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return None, None
    tail = (1.0 - confidence) / 2 * 100
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_auc(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC (Mann–Whitney, ties counted half) of each resample row of ``weights``."""
    pos = np.asarray(positive, dtype=bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    order = np.argsort(s, kind="stable")
    s, pos, w = s[order], pos[order], weights[:, order]
    if s.size == 0:
        return np.full(weights.shape[0], np.nan)
    starts = np.r_[0, np.nonzero(np.diff(s))[0] + 1]
    wp = np.add.reduceat(w * pos, starts, axis=1)  # (B, groups) weight of positives per score
    wn = np.add.reduceat(w * ~pos, starts, axis=1)
    below = np.cumsum(wn, axis=1) - wn  # negatives strictly below each group
    total_p, total_n = wp.sum(1), wn.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (wp * (below + 0.5 * wn)).sum(1) / (total_p * total_n)
    return np.where((total_p > 0) & (total_n > 0), auc, np.nan)


def bootstrap_f1(
    truth: np.ndarray, pred: np.ndarray, labels: list[int], weights: np.ndarray
) -> np.ndarray:
    """F1 of each resample: of ``labels[0]`` alone when one label is given, else their mean."""
    t = np.asarray(truth).ravel()
    p = np.asarray(pred).ravel()
    scores = []
    for label in labels:
        tp = weights @ ((p == label) & (t == label)).astype(weights.dtype)
        fp = weights @ ((p == label) & (t != label)).astype(weights.dtype)
        fn = weights @ ((p != label) & (t == label)).astype(weights.dtype)
        with np.errstate(divide="ignore", invalid="ignore"):
            scores.append(np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0))
    return np.mean(scores, axis=0) if scores else np.full(weights.shape[0], np.nan)


def rounded(value: float | None, lo: float | None = None, hi: float | None = None) -> str:
    """``value`` for people: to two significant digits of its interval, ``+hi-lo`` attached.

    ``n/a`` without a value; three significant digits without an interval.
    """
    if value is None or not math.isfinite(value):
        return "n/a"
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{value:.3g}"
    # The width to two significant digits first: 0.00996 shows as 0.010, not as 0.0100.
    width = float(f"{max(hi - value, value - lo):.2g}")
    if width <= 0:
        return f"{value:.3g}"
    digits = max(0, 1 - math.floor(math.log10(width)))
    return f"{value:.{digits}f} (+{hi - value:.{digits}f} −{value - lo:.{digits}f})"


def format_values(values: Mapping[str, object]) -> str:
    """``name=value (+up −down), …`` for people: each metric with its interval, rounded to it.

    ``name_lo``/``name_hi`` entries are folded into their metric; other keys are left out.
    """
    parts = []
    for name, value in values.items():
        if name.endswith(("_lo", "_hi")) or not (value is None or isinstance(value, (int, float))):
            continue
        lo, hi = values.get(f"{name}_lo"), values.get(f"{name}_hi")
        number = None if value is None else float(value)
        low = float(lo) if isinstance(lo, (int, float)) else None
        high = float(hi) if isinstance(hi, (int, float)) else None
        parts.append(f"{name}={rounded(number, low, high)}")
    return ", ".join(parts)
