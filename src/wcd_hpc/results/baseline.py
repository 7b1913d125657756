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
  the training gamma rays, and the variant whose Q there is largest (Q at ε_γ as
  :func:`wcd_hpc.merit.q_at_eff` defines it for the model, minimum background included). A
  training bin with fewer than :data:`MIN_TRAIN_EVENTS` events of either kind takes the choice
  made on the whole training split instead (said in the bin's ``baseline_variant``).
- **Quoted on the test split**: the chosen cut is *applied* to the test events of the bin, so
  the baseline's Q is not tuned on the events it is quoted on. ``binned.json`` gains, per bin
  and under ``all``: ``baseline_q_at_eff`` with ``_lo``/``_hi`` (the bootstrap interval of
  :func:`wcd_hpc.merit.measure`, as the model's numbers have), ``baseline_variant``,
  ``baseline_cut``, and ``gain_q_at_eff`` = the model's Q at ε_γ = 0.5 over the baseline's.

The model's Q at ε_γ = 0.5 is the row's ``q_at_eff`` (its cut chosen on validation); a row
without one (a file evaluated with the baseline alone has no model) gets it measured on the
test scores by the same function.

A trained run's ``binned.json`` thus records the cuts its training split chose (variant and
threshold, overall and per bin); ``wcd-hpc evaluate RUN FILE`` applies those to the file
(:func:`apply_recorded`), as it applies the run's validation cuts to the model's scores, so
the file's gain is model against baseline with neither tuned on the file.

Only gamma/hadron evaluations get a baseline: the signal class must be called ``gamma`` and
the split's ``meta`` must hold the discriminants (footprint datasets; third-party datasets may
add them with :func:`wcd_hpc.sim.discriminants.features`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wcd_hpc import merit
from wcd_hpc.queue.schema import BINNED_FILE
from wcd_hpc.results.baselineplots import ALL_ENERGIES
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
    "apply_recorded",
    "baseline_rows",
    "choose",
    "recorded",
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


def _q_at_eff(
    is_signal: np.ndarray, score: np.ndarray, threshold: float | None = None
) -> merit.Value:
    """Q at ε_γ = :data:`EFF_GAMMA` with its interval: at ``threshold`` (a cut chosen elsewhere)
    or at the cut chosen on these very events — the model's definition, minimum background
    included (:mod:`wcd_hpc.merit`)."""
    settings = merit.Settings(efficiency=EFF_GAMMA)
    choice = None if threshold is None else merit.Choice(threshold)
    return merit.measure("q_at_eff", choice, is_signal, score, settings)


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
    settings = merit.Settings(efficiency=EFF_GAMMA)
    for variant in VARIANTS:
        score = variant.score(train.meta)[sel]
        chosen = merit.choose("q_at_eff", sig[sel], score, settings).threshold
        q = merit.q_at_eff(sig[sel], score, EFF_GAMMA)
        if chosen is not None and (best is None or q > best.train_q):
            best = Cut(variant, chosen, q, "bin" if mask is not None else "all energies")
    return best


def _apply(cut: Cut, test: Sample, mask: np.ndarray, in_bin: bool = True) -> dict[str, Any]:
    """The baseline's entries of one test row: the cut applied to the masked test events.

    A bin that had to take the cut chosen on all energies says so in its variant."""
    sig = np.asarray(test.is_signal, dtype=bool)[mask]
    score = cut.variant.score(test.meta)[mask]
    label = cut.variant.label + ("" if cut.where == "bin" or in_bin is False else ALL_ENERGIES)
    q = _q_at_eff(sig, score, cut.threshold)
    return {
        KEY_VARIANT: label,
        KEY_CUT: cut.threshold,
        KEY_Q: q.value,
        f"{KEY_Q}_lo": q.lo,
        f"{KEY_Q}_hi": q.hi,
    }


def _as_tuple(q: merit.Value) -> tuple[float, float, float] | None:
    """(Q, lower, upper) for :func:`_with_gain`; ``None`` where Q is not measurable."""
    if q.value is None:
        return None
    return q.value, float("nan") if q.lo is None else q.lo, float("inf") if q.hi is None else q.hi


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
    train_log = None
    if train_energy is not None and len(train_energy) == np.asarray(train.is_signal).size:
        train_log = np.log10(np.clip(np.asarray(train_energy, dtype=np.float64), 1e-300, None))

    def in_bin(lo: float, hi: float) -> Cut | None:
        if train_log is None:
            return None
        return choose(train, (train_log >= lo - 1e-9) & (train_log < hi - 1e-9))

    return _rows(overall_cut, in_bin, test, energy, scores)


def _rows(
    overall_cut: Cut,
    cut_for: Callable[[float, float], Cut | None],
    test: Sample,
    energy: np.ndarray | None,
    scores: np.ndarray | None,
) -> tuple[dict[str, Any], list[tuple[float, float, dict[str, Any]]]]:
    """The entries of :func:`baseline_rows` given the cuts: overall, and ``cut_for(lo, hi)``
    in each test energy bin (``None``: the overall cut, said in the bin's variant)."""
    n = np.asarray(test.is_signal).size
    everything = np.ones(n, dtype=bool)
    sig = np.asarray(test.is_signal, dtype=bool)
    overall = _apply(overall_cut, test, everything, in_bin=False)
    if scores is not None:
        overall["_model"] = _as_tuple(_q_at_eff(sig, scores))
    rows = []
    for lo, hi, mask in energy_bins(energy, n):
        entries = _apply(cut_for(lo, hi) or overall_cut, test, mask)
        entries["_events"] = (int(mask.sum()), int((mask & sig).sum()))
        if scores is not None:
            entries["_model"] = _as_tuple(_q_at_eff(sig[mask], np.asarray(scores)[mask]))
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
    return _merge(out, overall, rows, {"cuts_chosen_on": "train"})


def _recorded(entry: Mapping[str, Any], overall: bool = False) -> Cut | None:
    """The cut a ``binned.json`` row records (its variant's label and threshold), if any;
    ``overall``: the row is ``all``, whose cut was chosen on all energies."""
    label, threshold = entry.get(KEY_VARIANT), entry.get(KEY_CUT)
    if not isinstance(label, str) or not isinstance(threshold, (int, float)):
        return None
    variant = next((v for v in VARIANTS if label.startswith(v.label)), None)
    if variant is None:
        return None
    where = "all energies" if overall or label.endswith(ALL_ENERGIES) else "bin"
    return Cut(variant, float(threshold), float("nan"), where)


def recorded(binned: Mapping[str, Any]) -> bool:
    """Whether a run's ``binned.json`` records the baseline's cuts (chosen on its training
    split), so that :func:`apply_recorded` can quote them on other events."""
    return _recorded(binned.get("all") or {}) is not None


def apply_recorded(
    out: Path,
    binned: Mapping[str, Any],
    test: Sample,
    *,
    scores: np.ndarray | None = None,
    test_energy: np.ndarray | None = None,
    source: str = "the evaluated run",
) -> dict[str, Any] | None:
    """The baseline of a trained run on other events (``wcd-hpc evaluate RUN FILE``): the cuts
    the run chose on its training split, as its ``binned.json`` records them, applied to
    ``test`` and added to ``out/binned.json`` as :func:`add_to_binned` adds them. A bin of the
    file the run had no cut for takes the run's overall cut (said in its variant). ``None``
    when the run records no baseline."""
    overall_cut = _recorded(binned.get("all") or {}, overall=True)
    if overall_cut is None:
        return None
    by_edges = {
        (round(float(r["log10_e_min"]), 6), round(float(r["log10_e_max"]), 6)): cut
        for r in binned.get("bins") or []
        if isinstance(r, dict) and (cut := _recorded(r)) is not None
    }

    def in_bin(lo: float, hi: float) -> Cut | None:
        return by_edges.get((round(lo, 6), round(hi, 6)))

    overall, rows = _rows(overall_cut, in_bin, test, test_energy, scores)
    return _merge(out, overall, rows, {"cuts_chosen_on": "train", "cuts_from": source})


def _merge(
    out: Path,
    overall: dict[str, Any] | None,
    rows: list[tuple[float, float, dict[str, Any]]],
    where: Mapping[str, str],
) -> dict[str, Any] | None:
    """Write the baseline's entries into ``out/binned.json`` (made when missing)."""
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
    payload["baseline"] = {"eff_gamma": EFF_GAMMA, **where, "what": REFERENCE}
    write_json(path, payload)
    return payload


def _merged(row: Mapping[str, Any], entries: dict[str, Any]) -> dict[str, Any]:
    if "_model" not in entries:
        return entries
    model = entries.pop("_model")
    return _with_gain(dict(row), entries, model)
