"""Cuts and the figures of merit at them: chosen on one sample, quoted on another.

Part of :mod:`wcd_hpc.merit` (its docstring has the definitions and why).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from wcd_hpc.merit.intervals import (
    CONFIDENCE,
    RESAMPLES,
    SEED,
    clopper_pearson,
    percentile_interval,
    resample_weights,
)

__all__ = [
    "CUT_METRICS",
    "MIN_BACKGROUND",
    "SIGNAL_EFFICIENCY",
    "SURVIVALS",
    "Choice",
    "Settings",
    "Value",
    "choose",
    "choose_cuts",
    "measure",
    "measure_all",
    "q_at_eff",
    "q_factor",
    "selection_curve",
    "survival_efficiency",
]

#: Fewest background events a cut must keep for its Q or ε_s at fixed ε_b to be quoted.
MIN_BACKGROUND = 10
#: The signal efficiency of ``q_at_eff``'s cut.
SIGNAL_EFFICIENCY = 0.5
#: The fixed background survivals of the ``gamma_eff_*`` metrics.
SURVIVALS: dict[str, float] = {"gamma_eff_1e2": 1e-2, "gamma_eff_1e3": 1e-3}
#: The metrics whose value depends on a cut on the signal score.
CUT_METRICS = ("q_factor", "q_at_eff", *SURVIVALS)


@dataclass(frozen=True)
class Settings:
    """The experiment's choices for the figures of merit (``metric.min_background`` …)."""

    min_background: int = MIN_BACKGROUND
    efficiency: float = SIGNAL_EFFICIENCY
    resamples: int = RESAMPLES
    seed: int = SEED


@dataclass(frozen=True)
class Choice:
    """A cut chosen on one sample: its threshold (``None``: none could be chosen, ``reason``)."""

    threshold: float | None
    reason: str | None = None
    #: The optimum sits at the tightest cut the background minimum allows (a lower limit).
    at_reach: bool = False

    def to_json(self) -> dict[str, object]:
        t = self.threshold
        return {
            "threshold": None if t is None or not math.isfinite(t) else t,
            "keeps_nothing": t is not None and not math.isfinite(t),
            "reason": self.reason,
            "at_reach": self.at_reach,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, object]) -> Choice:
        t = d.get("threshold")
        threshold = math.inf if d.get("keeps_nothing") else (None if t is None else float(t))  # type: ignore[arg-type]
        reason = d.get("reason")
        return cls(threshold, None if reason is None else str(reason), bool(d.get("at_reach")))


@dataclass(frozen=True)
class Value:
    """A number with its 68 % interval; ``value`` ``None`` means "not measurable" (``reason``)."""

    value: float | None
    lo: float | None = None
    hi: float | None = None
    reason: str | None = None
    at_reach: bool = False
    extra: dict[str, float] = field(default_factory=dict)


def selection_curve(
    is_signal: np.ndarray, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, ε_signal, ε_background) for the cuts ``score >= t``, t descending.

    The first point is the empty cut (t = +inf, both efficiencies 0); one point follows per
    distinct score, so tied events are always kept or dropped together.
    """
    thresholds, k_s, k_b, n_s, n_b = _counts(is_signal, score)
    return thresholds, k_s / max(n_s, 1), k_b / max(n_b, 1)


def _counts(
    is_signal: np.ndarray, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """(thresholds, k_s, k_b, N_s, N_b) of every cut, as in :func:`selection_curve`."""
    sig = np.asarray(is_signal, dtype=bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    order = np.argsort(-s, kind="stable")
    s, sig = s[order], sig[order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1] if s.size else np.zeros(0, np.int64)
    k_s = np.r_[0, np.cumsum(sig)[last]].astype(np.int64)
    k_b = np.r_[0, np.cumsum(~sig)[last]].astype(np.int64)
    return np.r_[np.inf, s[last]], k_s, k_b, int(sig.sum()), int((~sig).sum())


def _q(
    k_s: np.ndarray, n_s: float | np.ndarray, k_b: np.ndarray, n_b: float | np.ndarray, floor: float
) -> np.ndarray:
    """Q = ε_s/√ε_b with the background count floored at ``floor`` events."""
    with np.errstate(divide="ignore", invalid="ignore"):
        eff_s = np.asarray(k_s / np.maximum(n_s, 1e-300), dtype=np.float64)
        return np.asarray(eff_s / np.sqrt(np.maximum(k_b, floor) / np.maximum(n_b, 1e-300)))


def _none_without_classes(n_s: int, n_b: int) -> str | None:
    if n_s == 0:
        return "no signal event in the sample"
    if n_b == 0:
        return "no background event in the sample"
    return None


def choose(name: str, is_signal: np.ndarray, score: np.ndarray, settings: Settings) -> Choice:
    """The cut of figure of merit ``name`` (one of :data:`CUT_METRICS`) on this sample."""
    thresholds, k_s, k_b, n_s, n_b = _counts(is_signal, score)
    missing = _none_without_classes(n_s, n_b)
    if missing:
        return Choice(None, missing)
    m = settings.min_background
    if name == "q_factor":
        eligible = np.flatnonzero(k_b >= m)
        if eligible.size == 0:
            return Choice(None, f"no cut keeps ≥ {m} background events ({n_b} in the sample)")
        q = _q(k_s[eligible], n_s, k_b[eligible], n_b, 1.0)
        best = int(np.argmax(q))
        return Choice(float(thresholds[eligible[best]]), at_reach=best == 0)
    if name == "q_at_eff":
        i = int(np.argmax(k_s >= settings.efficiency * n_s - 1e-9))
        return Choice(float(thresholds[i]), at_reach=bool(k_b[i] < m))
    survival = SURVIVALS[name]
    if n_b * survival < m - 1e-9:
        need = math.ceil(m / survival - 1e-9)
        return Choice(
            None,
            f"not measurable: {n_b} background events; ε_b ≤ {survival:g} with ≥ {m} of them "
            f"kept needs ≥ {need}",
        )
    allowed = int(np.sum(k_b <= survival * n_b + 1e-9))  # k_b rises along the curve
    return Choice(float(thresholds[allowed - 1]))


def choose_cuts(is_signal: np.ndarray, score: np.ndarray, settings: Settings) -> dict[str, Choice]:
    """Every cut of :data:`CUT_METRICS`, chosen on this sample."""
    return {name: choose(name, is_signal, score, settings) for name in CUT_METRICS}


def _weighted_counts(
    w: np.ndarray, is_signal: np.ndarray, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """As :func:`_counts`, per resample: (thresholds, K_s, K_b, N_s, N_b), K of shape (B, cuts)."""
    sig = np.asarray(is_signal, dtype=bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    order = np.argsort(-s, kind="stable")
    s, sig, w = s[order], sig[order], w[:, order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1] if s.size else np.zeros(0, np.int64)
    zero = np.zeros((w.shape[0], 1))
    k_s = np.hstack([zero, np.cumsum(w * sig, axis=1)[:, last]])
    k_b = np.hstack([zero, np.cumsum(w * ~sig, axis=1)[:, last]])
    return np.r_[np.inf, s[last]], k_s, k_b, (w * sig).sum(1), (w * ~sig).sum(1)


def _boot_choose(
    name: str, w: np.ndarray, is_signal: np.ndarray, score: np.ndarray, settings: Settings
) -> np.ndarray:
    """The figure of merit of each resample, its cut chosen on that resample."""
    _, k_s, k_b, n_s, n_b = _weighted_counts(w, is_signal, score)
    m = settings.min_background
    n_s, n_b = n_s[:, None], n_b[:, None]
    rows = np.arange(w.shape[0])
    if name == "q_factor":
        q = np.where(k_b >= m, _q(k_s, n_s, k_b, n_b, 1.0), -np.inf)
        best = q.max(axis=1)
        return np.asarray(np.where(np.isfinite(best), best, np.nan))
    if name == "q_at_eff":
        i = np.argmax(k_s >= settings.efficiency * n_s - 1e-9, axis=1)
        return _q(k_s[rows, i], n_s[:, 0], k_b[rows, i], n_b[:, 0], float(m))
    survival = SURVIVALS[name]
    i = np.sum(k_b <= survival * n_b + 1e-9, axis=1) - 1
    return np.asarray(k_s[rows, i] / np.maximum(n_s[:, 0], 1e-300))


def measure(
    name: str,
    choice: Choice | None,
    is_signal: np.ndarray,
    score: np.ndarray,
    settings: Settings = Settings(),
    weights: np.ndarray | None = None,
) -> Value:
    """Figure of merit ``name`` on this sample with its interval.

    ``choice``: the cut chosen on another sample (validation), applied here; ``None``: choose it
    on this very sample (the objective). ``weights``: precomputed :func:`resample_weights` rows
    for this sample (several metrics then share one set of resamples).
    """
    sig = np.asarray(is_signal, dtype=bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    n_s, n_b = int(sig.sum()), int((~sig).sum())
    missing = _none_without_classes(n_s, n_b)
    if missing:
        return Value(None, reason=missing)
    here = choice is None
    if choice is None:
        choice = choose(name, sig, s, settings)
    if choice.threshold is None:
        return Value(None, reason=choice.reason)
    passed = s >= choice.threshold
    k_s, k_b = int((passed & sig).sum()), int((passed & ~sig).sum())
    m = settings.min_background
    counts = {"signal_kept": float(k_s), "background_kept": float(k_b)}
    counts |= {"signal_events": float(n_s), "background_events": float(n_b)}
    if name in SURVIVALS:
        lo, hi = clopper_pearson(k_s, n_s, CONFIDENCE)
        return Value(k_s / n_s, float(lo), float(hi), extra=counts)
    floor = float(m) if name == "q_at_eff" else 1.0
    q = float(_q(np.asarray(k_s), n_s, np.asarray(k_b), n_b, floor))
    w = resample_weights(s.size, settings.resamples, settings.seed) if weights is None else weights
    if here:
        boot = _boot_choose(name, w, sig, s, settings)
    else:
        kept_s = w @ (passed & sig).astype(w.dtype)
        kept_b = w @ (passed & ~sig).astype(w.dtype)
        boot = _q(kept_s, w @ sig.astype(w.dtype), kept_b, w @ (~sig).astype(w.dtype), floor)
    lo_q, hi_q = percentile_interval(boot)
    at_reach = choice.at_reach or k_b < m
    return Value(q, lo_q, hi_q, at_reach=at_reach, extra=counts)


def q_factor(
    is_signal: np.ndarray, score: np.ndarray, min_background: int = MIN_BACKGROUND
) -> float:
    """Best Q among the cuts keeping ≥ ``min_background`` background events (NaN: none does)."""
    settings = Settings(min_background=min_background)
    choice = choose("q_factor", is_signal, score, settings)
    return _value_at(choice, is_signal, score, 1.0)


def q_at_eff(
    is_signal: np.ndarray,
    score: np.ndarray,
    efficiency: float = SIGNAL_EFFICIENCY,
    min_background: int = MIN_BACKGROUND,
) -> float:
    """Q at the cut keeping a fraction ``efficiency`` of the signal (module docstring)."""
    settings = Settings(min_background=min_background, efficiency=efficiency)
    choice = choose("q_at_eff", is_signal, score, settings)
    return _value_at(choice, is_signal, score, float(min_background))


def survival_efficiency(
    name: str, is_signal: np.ndarray, score: np.ndarray, min_background: int = MIN_BACKGROUND
) -> float:
    """ε_s of ``gamma_eff_1e2`` / ``gamma_eff_1e3`` on this sample (NaN: not measurable)."""
    choice = choose(name, is_signal, score, Settings(min_background=min_background))
    if choice.threshold is None:
        return float("nan")
    sig = np.asarray(is_signal, dtype=bool).ravel()
    passed = np.asarray(score, dtype=np.float64).ravel() >= choice.threshold
    return float((passed & sig).sum() / max(int(sig.sum()), 1))


def _value_at(choice: Choice, is_signal: np.ndarray, score: np.ndarray, floor: float) -> float:
    if choice.threshold is None:
        return float("nan")
    sig = np.asarray(is_signal, dtype=bool).ravel()
    passed = np.asarray(score, dtype=np.float64).ravel() >= choice.threshold
    k_s, k_b = (passed & sig).sum(), (passed & ~sig).sum()
    return float(_q(np.asarray(k_s), int(sig.sum()), np.asarray(k_b), int((~sig).sum()), floor))


def measure_all(
    is_signal: np.ndarray,
    score: np.ndarray,
    cuts: Mapping[str, Choice] | None,
    settings: Settings = Settings(),
) -> dict[str, Value]:
    """Every figure of merit of :data:`CUT_METRICS` with one shared set of resamples.

    ``cuts``: chosen on another sample (a name missing from it has no cut: no value);
    ``None``: each cut chosen on this sample.
    """
    sig = np.asarray(is_signal, dtype=bool).ravel()
    w = resample_weights(sig.size, settings.resamples, settings.seed)
    out = {}
    for name in CUT_METRICS:
        if cuts is not None and name not in cuts:
            out[name] = Value(None, reason="no cut was chosen on the validation split")
            continue
        choice = None if cuts is None else cuts[name]
        out[name] = measure(name, choice, sig, score, settings, w)
    return out
