"""The classical baseline: what a physicist separates gamma rays from hadrons with, no network.

SCIENCE.md ("Compare with what a physicist does without a network"): a network is worth its
GPU-hours by its gain over the classical cuts, per energy bin. The baseline here is that cut:

- **Discriminants** (:mod:`wcd_hpc.sim.discriminants`, computed by the footprint datasets from
  the raw events into each split's ``meta``): HAWC's compactness (hit tanks over the largest
  signal beyond R from the core; Abeysekara et al. 2017, ApJ 843, 39) and the count of muon-like
  hits (0.7–4 VEM beyond R), for R in 30, 40 and 60 m. The muon count is normalised by the event
  size as ``(muon-like hits + 1) / hit tanks``: the add-one keeps events without a muon-like hit
  ordered by size (no muon in a big shower says more than none in a small one) instead of one
  big tie at zero.
- **The cut** is chosen on the **training** split, in each energy bin of the test table: for
  each of the six variants (2 discriminants × 3 radii) the cut that keeps :data:`EFF_GAMMA` of
  the training gamma rays, and the variant whose Q = ε_γ/√ε_h is largest there. A training bin
  with fewer than :data:`MIN_TRAIN_EVENTS` events of either kind takes the choice made on the
  whole training split instead (said in the bin's ``baseline_variant``).
- **Quoted on the test split**: the chosen cut is *applied* to the test events of the bin, so
  the baseline's Q is not tuned on the events it is quoted on. ``binned.json`` gains, per bin
  and under ``all``: ``baseline_q_at_eff`` with ``_lo``/``_hi`` (the Clopper–Pearson-propagated
  band of :func:`wcd_hpc.results.efficiency.q_band`), ``baseline_variant``, ``baseline_cut``,
  and ``gain_q_at_eff`` = the model's Q at ε_γ = 0.5 over the baseline's.

The model's Q at ε_γ = 0.5 is the row's ``q_at_eff`` when the metrics already put one there;
otherwise :func:`q_at_eff` computes it on the test scores (cut at the signal-score quantile)
and writes it with its band. TODO(issue 23 points 1–3): once the ``q_at_eff`` metric with its
cut chosen on validation lands, it fills the row first and :func:`q_at_eff` here is only the
fallback for rows without it; replace it by that metric's function then.

Only gamma/hadron evaluations get a baseline: the signal class must be called ``gamma`` and
the split's ``meta`` must hold the discriminants (footprint datasets; third-party datasets may
add them with :func:`wcd_hpc.sim.discriminants.features`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wcd_hpc.queue.schema import BINNED_FILE
from wcd_hpc.results.baselineplots import ALL_ENERGIES
from wcd_hpc.results.efficiency import q_band
from wcd_hpc.results.evaluation import energy_bins, write_json
from wcd_hpc.sim.discriminants import HIT_KEY, RADII, compactness_key, muon_key

__all__ = [
    "EFF_GAMMA",
    "MIN_TRAIN_EVENTS",
    "VARIANTS",
    "Cut",
    "Sample",
    "Variant",
    "add_to_binned",
    "applies",
    "baseline_rows",
    "choose",
    "cut_at_eff",
    "q_at_eff",
]

#: Signal efficiency of the working point compared (ε_γ = 0.5: stable, well populated).
EFF_GAMMA = 0.5
#: Fewest training events of each kind (gamma, hadron) for a cut chosen within a bin.
MIN_TRAIN_EVENTS = 10
#: binned.json keys written here (besides the model's ``q_at_eff`` when it was missing).
KEY_Q, KEY_GAIN, KEY_VARIANT, KEY_CUT = (
    "baseline_q_at_eff",
    "gain_q_at_eff",
    "baseline_variant",
    "baseline_cut",
)
MODEL_Q = "q_at_eff"
REFERENCE = (
    "HAWC compactness (Abeysekara et al. 2017, ApJ 843, 39) and muon-like hits "
    "(0.7-4 VEM) beyond R in {30, 40, 60} m; cut keeps 50% of training gammas, variant "
    "chosen per energy bin on the training split, applied to the test split"
)


@dataclass(frozen=True)
class Variant:
    """One discriminant at one radius, oriented so that gamma rays score high."""

    kind: str  # "compactness" | "muon"
    radius: float

    @property
    def label(self) -> str:
        what = "compactness" if self.kind == "compactness" else "muon-like hits"
        return f"{what} R={round(self.radius)} m"

    def score(self, meta: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.kind == "compactness":
            return np.asarray(meta[compactness_key(self.radius)], dtype=np.float64)
        muons = np.asarray(meta[muon_key(self.radius)], dtype=np.float64)
        hits = np.maximum(np.asarray(meta[HIT_KEY], dtype=np.float64), 1.0)
        return -(muons + 1.0) / hits  # fewer muon-like hits per tank: more gamma-like


VARIANTS: tuple[Variant, ...] = tuple(
    Variant(kind, r) for kind in ("compactness", "muon") for r in RADII
)


@dataclass(frozen=True)
class Sample:
    """One split as the baseline sees it: which events are signal, and their ``meta``."""

    is_signal: np.ndarray
    meta: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Cut:
    """The chosen variant and threshold (keep ``score >= threshold``), and where it was chosen."""

    variant: Variant
    threshold: float
    train_q: float
    where: str  # "bin" | "all energies"


def cut_at_eff(signal_scores: np.ndarray, eff: float = EFF_GAMMA) -> float:
    """The threshold that keeps at least ``eff`` of the signal (``score >= threshold``)."""
    s = np.sort(np.asarray(signal_scores, dtype=np.float64))[::-1]
    if s.size == 0:
        return float("inf")
    keep = min(max(int(np.ceil(eff * s.size - 1e-9)), 1), s.size)
    return float(s[keep - 1])


def _counts(is_signal: np.ndarray, score: np.ndarray, threshold: float) -> tuple[int, ...]:
    kept = score >= threshold
    return (
        int((kept & is_signal).sum()),
        int(is_signal.sum()),
        int((kept & ~is_signal).sum()),
        int((~is_signal).sum()),
    )


def _q(k_s: int, n_s: int, k_b: int, n_b: int) -> float:
    """Q = ε_s/√ε_b, ε_b floored at one event (as ``q_factor`` and the Q band do)."""
    return float((k_s / max(n_s, 1)) / np.sqrt(max(k_b, 1) / max(n_b, 1)))


def q_at_eff(
    is_signal: np.ndarray, score: np.ndarray, eff: float = EFF_GAMMA
) -> tuple[float, float, float] | None:
    """(Q, lower, upper) at the cut keeping ``eff`` of the signal, on the same events.

    Local stand-in for the ``q_at_eff`` metric of issue 23 points 1–3 (see the module
    docstring); ``None`` without both signal and background.
    """
    sig = np.asarray(is_signal, dtype=bool)
    if not sig.any() or sig.all():
        return None
    score = np.asarray(score, dtype=np.float64)
    k_s, n_s, k_b, n_b = _counts(sig, score, cut_at_eff(score[sig], eff))
    q, lo, hi = q_band(np.array([k_s]), n_s, np.array([k_b]), n_b)
    return float(q[0]), float(lo[0]), float(hi[0])


def applies(class_names: Sequence[str], signal: int, *metas: Mapping[str, np.ndarray]) -> bool:
    """Whether a baseline is defined: gamma is the signal and every ``meta`` has the features."""
    if not 0 <= signal < len(class_names) or str(class_names[signal]).lower() != "gamma":
        return False
    keys = {HIT_KEY, *(compactness_key(r) for r in RADII), *(muon_key(r) for r in RADII)}
    return all(keys <= set(m) for m in metas)


def choose(train: Sample, mask: np.ndarray | None = None) -> Cut | None:
    """The variant with the largest training Q at ε_γ = :data:`EFF_GAMMA` among ``mask``'s
    events (all when ``None``); ``None`` when they lack :data:`MIN_TRAIN_EVENTS` of a kind."""
    sig = np.asarray(train.is_signal, dtype=bool)
    sel = np.ones(sig.size, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if min(int((sel & sig).sum()), int((sel & ~sig).sum())) < MIN_TRAIN_EVENTS:
        return None
    best: Cut | None = None
    for variant in VARIANTS:
        score = variant.score(train.meta)[sel]
        threshold = cut_at_eff(score[sig[sel]])
        q = _q(*_counts(sig[sel], score, threshold))
        if best is None or q > best.train_q:
            best = Cut(variant, threshold, q, "bin" if mask is not None else "all energies")
    return best


def _apply(cut: Cut, test: Sample, mask: np.ndarray, in_bin: bool = True) -> dict[str, Any]:
    """The baseline's entries of one test row: the cut applied to the masked test events.

    A bin that had to take the cut chosen on all energies says so in its variant."""
    sig = np.asarray(test.is_signal, dtype=bool)[mask]
    score = cut.variant.score(test.meta)[mask]
    k_s, n_s, k_b, n_b = _counts(sig, score, cut.threshold)
    label = cut.variant.label + ("" if cut.where == "bin" or in_bin is False else ALL_ENERGIES)
    out: dict[str, Any] = {KEY_VARIANT: label, KEY_CUT: cut.threshold}
    if n_s == 0 or n_b == 0:
        return {**out, KEY_Q: None, f"{KEY_Q}_lo": None, f"{KEY_Q}_hi": None}
    q, lo, hi = q_band(np.array([k_s]), n_s, np.array([k_b]), n_b)
    return {
        **out,
        KEY_Q: float(q[0]),
        f"{KEY_Q}_lo": float(lo[0]),
        f"{KEY_Q}_hi": _finite(hi[0]),
    }


def _finite(value: float) -> float | None:
    """An unbounded interval end (no background kept) is ``null`` in JSON, not ``Infinity``."""
    return float(value) if np.isfinite(value) else None


def _with_gain(
    row: Mapping[str, Any], entries: dict[str, Any], model: tuple[float, float, float] | None
) -> dict[str, Any]:
    """``entries`` plus the model's Q (when the row has none yet) and the gain model/baseline.

    A row whose ``q_at_eff`` is there but ``null`` (not measurable) keeps it, and its gain is
    ``null`` too."""
    out = dict(entries)
    if MODEL_Q not in row and model is not None:
        out[MODEL_Q], out[f"{MODEL_Q}_lo"], out[f"{MODEL_Q}_hi"] = map(_finite, model)
    mine = row[MODEL_Q] if MODEL_Q in row else out.get(MODEL_Q)
    base = out.get(KEY_Q)
    out[KEY_GAIN] = float(mine) / float(base) if mine is not None and base else None
    return out


def baseline_rows(
    train: Sample,
    test: Sample,
    energy: np.ndarray | None,
    train_energy: np.ndarray | None,
    scores: np.ndarray | None = None,
) -> tuple[dict[str, Any] | None, list[tuple[float, float, dict[str, Any]]]]:
    """The baseline's entries over the whole test split, and per test energy bin (edges,
    entries). ``scores`` (the model's signal scores on the test split) add the model's own
    Q at ε_γ = 0.5 for the gain; without them the entries hold the baseline alone."""
    overall_cut = choose(train)
    if overall_cut is None:
        return None, []
    n = np.asarray(test.is_signal).size
    everything = np.ones(n, dtype=bool)
    sig = np.asarray(test.is_signal, dtype=bool)
    overall = _apply(overall_cut, test, everything, in_bin=False)
    if scores is not None:
        overall["_model"] = q_at_eff(sig, scores)
    rows = []
    train_log = None
    if train_energy is not None and len(train_energy) == np.asarray(train.is_signal).size:
        train_log = np.log10(np.clip(np.asarray(train_energy, dtype=np.float64), 1e-300, None))
    for lo, hi, mask in energy_bins(energy, n):
        cut = None
        if train_log is not None:
            cut = choose(train, (train_log >= lo - 1e-9) & (train_log < hi - 1e-9))
        entries = _apply(cut or overall_cut, test, mask)
        entries["_events"] = (int(mask.sum()), int((mask & sig).sum()))
        if scores is not None:
            entries["_model"] = q_at_eff(sig[mask], np.asarray(scores)[mask])
        rows.append((lo, hi, entries))
    return overall, rows


def add_to_binned(
    out: Path,
    train: Sample,
    test: Sample,
    *,
    scores: np.ndarray | None = None,
    train_energy: np.ndarray | None = None,
    test_energy: np.ndarray | None = None,
) -> dict[str, Any] | None:
    """Add the baseline (and gain) to ``out/binned.json`` written by ``write_binned``, or write
    a baseline-only one when there is none; returns the file's content, ``None`` when the
    training split cannot choose a cut."""
    overall, rows = baseline_rows(train, test, test_energy, train_energy, scores)
    if overall is None:
        return None
    path = out / BINNED_FILE
    payload: dict[str, Any] = (
        json.loads(path.read_text())
        if path.exists()
        else {"variable": "log10(E0/GeV)", "all": {}, "bins": []}
    )
    payload["all"] = {**payload.get("all", {}), **_merged(payload.get("all", {}), overall)}
    counts = [e.pop("_events") for _, _, e in rows]
    by_edges = {(round(lo, 6), round(hi, 6)): e for lo, hi, e in rows}
    table = payload.get("bins") or []
    if not table:  # baseline alone: one row per test bin
        table = [
            {"log10_e_min": lo, "log10_e_max": hi, "events": n, "gamma_events": n_s}
            for (lo, hi, _), (n, n_s) in zip(rows, counts, strict=True)
        ]
    for row in table:
        entries = by_edges.get((round(row["log10_e_min"], 6), round(row["log10_e_max"], 6)))
        if entries is not None:
            row.update(_merged(row, entries))
    payload["bins"] = table
    payload["baseline"] = {"eff_gamma": EFF_GAMMA, "cuts_chosen_on": "train", "what": REFERENCE}
    write_json(path, payload)
    return payload


def _merged(row: Mapping[str, Any], entries: dict[str, Any]) -> dict[str, Any]:
    if "_model" not in entries:
        return entries
    model = entries.pop("_model")
    return _with_gain(dict(row), entries, model)
