"""Quoting numbers: cuts chosen on validation, applied to test, every value with its interval.

The definitions live in :mod:`wcd_hpc.merit`; this module applies them to a split, overall and in
each energy bin, and lays the result out as the rows of ``binned.json`` (which the tables, MLflow
and the figures read): each metric ``m`` with ``m_lo`` and ``m_hi`` (68 % interval), ``m_reason``
when it has no value, and for the cut-based ones the flag ``m_at_reach`` (``at_reach`` for
``q_factor``) when the value is a lower limit set by the sample's size.

:func:`choose_split_cuts` picks every cut on one split — the validation split of a trial — overall
and per energy bin; it is what ``cuts.json`` keeps, so that ``wcd-hpc evaluate`` applies the very
cuts of the run it evaluates. :func:`quote` applies them (or, given none, chooses on the sample
itself and says so in ``cuts_chosen_on``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from wcd_hpc import merit
from wcd_hpc.api import Metric
from wcd_hpc.default_plugins.metrics import signal_class, with_settings

__all__ = [
    "BINNED_METRICS",
    "ENERGY_BIN_WIDTH",
    "bin_cuts",
    "choose_split_cuts",
    "energy_bins",
    "energy_edges",
    "per_bin_mean",
    "quote",
]

ENERGY_BIN_WIDTH = 0.5
#: Metrics of the per-bin table (when registered); third-party metrics stay out of it because
#: a bin may hold a handful of events or a single class, which not every formula survives.
BINNED_METRICS = ("f1", "accuracy", "roc_auc", *merit.CUT_METRICS)


def energy_edges(energy_gev: np.ndarray, width: float = ENERGY_BIN_WIDTH) -> np.ndarray:
    """Bin edges in log10(E0/GeV) on multiples of ``width`` covering every positive energy."""
    e = np.asarray(energy_gev, dtype=np.float64)
    e = e[np.isfinite(e) & (e > 0)]
    if e.size == 0:
        return np.zeros(0)
    log_e = np.log10(e)
    lo = math.floor(log_e.min() / width + 1e-9) * width
    hi = math.floor(log_e.max() / width + 1e-9) * width + width
    return np.round(np.arange(lo, hi + width / 2, width), 6)


def energy_bins(
    energy: np.ndarray | None, n: int, width: float = ENERGY_BIN_WIDTH
) -> list[tuple[float, float, np.ndarray]]:
    """(low edge, high edge, event mask) of every non-empty bin of log10(E0/GeV).

    The one definition of the bins, shared by ``binned.json``, ``cuts.json`` and the figures.
    Empty when there is no energy per event.
    """
    if energy is None or len(energy) != n:
        return []
    log_e = np.log10(np.clip(np.asarray(energy, dtype=np.float64), 1e-300, None))
    bins = []
    for lo, hi in itertools.pairwise(energy_edges(np.asarray(energy), width)):
        mask = (log_e >= lo - 1e-9) & (log_e < hi - 1e-9)
        if mask.any():
            bins.append((float(lo), float(hi), mask))
    return bins


def _signal_score(
    truth: np.ndarray, probs: np.ndarray, signal: int
) -> tuple[np.ndarray, np.ndarray] | None:
    if probs.ndim != 2 or not 0 <= signal < probs.shape[1]:
        return None
    return truth == signal, probs[:, signal]


def _cuts_json(cuts: Mapping[str, merit.Choice]) -> dict[str, Any]:
    return {name: choice.to_json() for name, choice in cuts.items()}


def choose_split_cuts(
    y_true: np.ndarray,
    probs: np.ndarray,
    meta: Mapping[str, np.ndarray],
    signal: int,
    settings: merit.Settings,
    split: str = "validation split",
) -> dict[str, Any]:
    """Every cut, overall and per energy bin, chosen on this split: the ``cuts.json`` payload."""
    truth = np.asarray(y_true, dtype=np.int64)
    pair = _signal_score(truth, probs, signal)
    payload: dict[str, Any] = {
        "chosen_on": split,
        "signal_class": int(signal),
        "min_background": settings.min_background,
        "efficiency": settings.efficiency,
        "all": {},
        "bins": [],
    }
    if pair is None:
        return payload
    is_signal, score = pair
    payload["all"] = _cuts_json(merit.choose_cuts(is_signal, score, settings))
    for lo, hi, mask in energy_bins(meta.get("energy"), truth.size):
        chosen = merit.choose_cuts(is_signal[mask], score[mask], settings)
        payload["bins"].append({"log10_e_min": lo, "log10_e_max": hi, "cuts": _cuts_json(chosen)})
    return payload


def bin_cuts(
    payload: Mapping[str, Any] | None, lo: float | None = None
) -> dict[str, merit.Choice] | None:
    """The cuts of ``payload`` overall (``lo`` ``None``) or of the bin starting at ``lo``.

    ``None`` without a payload (choose on the sample); ``{}`` for a bin the payload lacks (no
    cut was chosen for it: its cut-based values are not measurable).
    """
    if payload is None:
        return None
    if lo is None:
        raw = payload.get("all") or {}
    else:
        found = [b for b in payload.get("bins", []) if abs(b["log10_e_min"] - lo) < 1e-6]
        raw = found[0]["cuts"] if found else {}
    return {name: merit.Choice.from_json(d) for name, d in raw.items()}


def _standard(
    name: str,
    truth: np.ndarray,
    probs: np.ndarray,
    value: float,
    signal: int,
    weights: np.ndarray,
) -> tuple[float | None, float | None]:
    """The interval of ``f1``, ``accuracy`` or ``roc_auc`` (as :mod:`...metrics` defines them)."""
    if not math.isfinite(value) or truth.size == 0:
        return None, None
    pred = probs.argmax(axis=1)
    if name == "accuracy":
        lo, hi = merit.clopper_pearson(int((pred == truth).sum()), truth.size)
        return float(lo), float(hi)
    if name == "f1":
        labels = [signal] if probs.shape[1] == 2 else np.union1d(truth, pred).tolist()
        return merit.percentile_interval(merit.bootstrap_f1(truth, pred, labels, weights))
    if probs.shape[1] == 2:
        boot = merit.bootstrap_auc(truth == 1, probs[:, 1], weights)
    else:
        per_class = [
            merit.bootstrap_auc(truth == c, probs[:, c], weights)
            for c in range(probs.shape[1])
            if (truth == c).any() and (truth != c).any()
        ]
        boot = np.nanmean(per_class, axis=0) if per_class else np.full(len(weights), np.nan)
    return merit.percentile_interval(boot)


def _finite(value: float | None) -> float | None:
    """NaN and inf become JSON ``null`` instead of invalid JSON."""
    return None if value is None or not math.isfinite(value) else float(value)


def quote(
    y_true: np.ndarray,
    probs: np.ndarray,
    meta: Mapping[str, np.ndarray],
    metrics: Mapping[str, Metric],
    signal: int,
    settings: merit.Settings,
    cuts: Mapping[str, merit.Choice] | None = None,
    names: Sequence[str] = BINNED_METRICS,
) -> dict[str, Any]:
    """Each of ``names`` (of :data:`BINNED_METRICS`, when registered) with ``_lo``/``_hi``.

    ``cuts``: chosen on another split (validation) and applied here; ``None``: chosen here.
    The cut-based values come from :func:`wcd_hpc.merit.measure`, the others from the metric
    plugin itself, so the numbers are those of the objective's definitions.
    """
    truth = np.asarray(y_true, dtype=np.int64)
    full = with_settings(meta, settings, truth.size)
    weights = merit.resample_weights(truth.size, settings.resamples, settings.seed)
    pair = _signal_score(truth, probs, signal)
    row: dict[str, Any] = {}
    for name in names:
        if name not in metrics or name not in BINNED_METRICS:
            continue
        if name in merit.CUT_METRICS:
            if pair is None:
                value = merit.Value(None, reason="no score for the signal class")
            elif cuts is not None and name not in cuts:
                value = merit.Value(None, reason="no cut was chosen for this bin on validation")
            else:
                choice = None if cuts is None else cuts[name]
                value = merit.measure(name, choice, *pair, settings, weights)
            row[name] = _finite(value.value)
            row[f"{name}_lo"], row[f"{name}_hi"] = _finite(value.lo), _finite(value.hi)
            if value.value is None:
                row[f"{name}_reason"] = value.reason
            if name.startswith("q_"):
                row["at_reach" if name == "q_factor" else f"{name}_at_reach"] = value.at_reach
            continue
        try:
            number = float(metrics[name].compute(truth, probs, full))
        except Exception:  # a formula that does not survive a one-class bin: no value
            number = float("nan")
        lo, hi = _standard(name, truth, probs, number, signal, weights)
        row[name], row[f"{name}_lo"], row[f"{name}_hi"] = _finite(number), _finite(lo), _finite(hi)
    return row


def per_bin_mean(
    name: str,
    y_true: np.ndarray,
    probs: np.ndarray,
    meta: Mapping[str, np.ndarray],
    metric: Metric,
    settings: merit.Settings,
) -> float:
    """``metric`` averaged over the energy bins with enough events (``metric.per_bin: mean``).

    A bin counts when it holds signal and at least ``min_background`` background events and the
    metric has a value there; NaN when no bin does (or the sample has no energies).
    """
    truth = np.asarray(y_true, dtype=np.int64)
    full = with_settings(meta, settings, truth.size)
    label = signal_class(truth, full)
    values = []
    for _, _, mask in energy_bins(meta.get("energy"), truth.size):
        n_s = int((truth[mask] == label).sum())
        if n_s == 0 or int(mask.sum()) - n_s < settings.min_background:
            continue
        sub = {k: np.asarray(v)[mask] for k, v in full.items() if len(v) == truth.size}
        value = float(metric.compute(truth[mask], probs[mask], sub))
        if math.isfinite(value):
            values.append(value)
    return float(np.mean(values)) if values else float("nan")
