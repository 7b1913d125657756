"""Evaluation artifacts of a trained model: per-energy-bin metrics and the test plots.

A single number hides where a classifier fails (SCIENCE.md): gamma/hadron separation is easy at
high energy and hard near threshold. So every trial also writes ``binned.json`` — the standard
metrics in bins of log10(E0/GeV) of width 0.5 from ``meta['energy']`` — and the figures
``plots/{confusion,roc,q,q_vs_energy,eff_vs_energy}.{png,pdf}``. A sweep's trials and
``wcd-hpc train`` (one trial outside a study) write them through :func:`write_binned` and
:func:`write_plots`, ``wcd-hpc evaluate`` through :func:`write_evaluation_artifacts`, which calls
the same two: results of all three are read the same way.

The signal class (the experiment's ``signal_class``, as an index) reaches the metrics through
``meta`` (:data:`~wcd_hpc.default_plugins.metrics.SIGNAL_KEY`) and the figures as an argument;
a caller that gives neither gets :func:`~wcd_hpc.default_plugins.metrics.default_signal_class`.
The energy figures use the very bins of ``binned.json`` (:func:`energy_bins`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wcd_hpc import merit
from wcd_hpc.api import DataSpec, Metric
from wcd_hpc.default_plugins.metrics import (
    SIGNAL_KEY,
    default_signal_class,
    signal_class,
    with_signal_class,
)
from wcd_hpc.queue.schema import (
    BASELINE_PLOT,
    BINNED_FILE,
    CONFUSION_PLOT,
    DATA_SPEC_FILE,
    EFF_VS_ENERGY_PLOT,
    PLOTS_DIR,
    Q_PLOT,
    Q_VS_ENERGY_PLOT,
    ROC_PLOT,
)
from wcd_hpc.results import baselineplots, energyplots, plots
from wcd_hpc.results.efficiency import select
from wcd_hpc.results.plots import Classes, Provenance
from wcd_hpc.results.quote import (
    BINNED_METRICS,
    ENERGY_BIN_WIDTH,
    bin_cuts,
    energy_bins,
    energy_edges,
    quote,
)

__all__ = [
    "BINNED_METRICS",
    "ENERGY_BIN_WIDTH",
    "Provenance",
    "binned_payload",
    "binned_table",
    "energy_bins",
    "energy_edges",
    "signal_of",
    "with_primary",
    "write_binned",
    "write_evaluation_artifacts",
    "write_json",
    "write_plots",
]


def with_primary(
    meta: Mapping[str, np.ndarray], y_true: np.ndarray, class_names: Sequence[str]
) -> dict[str, np.ndarray]:
    """``meta`` plus a ``primary`` column from the class names when the dataset gave none.

    The gamma/hadron metrics find the gamma class through ``meta['primary']``; naming each event
    by its class makes them pick the class called ``gamma`` wherever it sits in ``class_names``.
    """
    out = dict(meta)
    if "primary" not in out and class_names:
        labels = np.asarray(y_true, dtype=np.int64)
        names = np.asarray(list(class_names), dtype=str)
        out["primary"] = names[np.clip(labels, 0, len(names) - 1)]
    return out


def binned_table(
    y_true: np.ndarray,
    probs: np.ndarray,
    meta: Mapping[str, np.ndarray],
    metrics: Mapping[str, Metric],
    *,
    signal: int | None = None,
    settings: merit.Settings | None = None,
    cuts: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One row per energy bin: edges, event counts per class, each of :data:`BINNED_METRICS`
    with its interval (:func:`wcd_hpc.results.quote.quote`).

    ``cuts``: a ``cuts.json`` payload whose per-bin cuts are applied; ``None``: each bin's cuts
    are chosen on its own events. Empty when the metadata carry no ``energy``.
    """
    truth = np.asarray(y_true, dtype=np.int64)
    label = signal_class(truth, meta) if signal is None else int(signal)
    chosen = settings or merit.Settings()
    rows = []
    for lo, hi, mask in energy_bins(meta.get("energy"), truth.size):
        sub = {k: np.asarray(v)[mask] for k, v in meta.items() if len(v) == truth.size}
        row: dict[str, Any] = {
            "log10_e_min": lo,
            "log10_e_max": hi,
            "events": int(mask.sum()),
            "per_class": np.bincount(truth[mask], minlength=probs.shape[1]).tolist(),
        }
        row |= quote(truth[mask], probs[mask], sub, metrics, label, chosen, bin_cuts(cuts, lo))
        rows.append(row)
    return rows


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON atomically (a reader never sees half a file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def write_evaluation_artifacts(
    out: Path,
    y_true: np.ndarray,
    probs: np.ndarray,
    meta: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    metrics: Mapping[str, Metric],
    *,
    signal: int | None = None,
    provenance: Provenance | None = None,
    settings: merit.Settings | None = None,
    cuts: Mapping[str, Any] | None = None,
    extend: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """Write ``out/binned.json`` and the figures under ``out/plots/``; return ``binned.json``.

    ``binned.json`` also holds the same metrics over the whole sample under ``all``. ``cuts``
    (a ``cuts.json`` payload) are applied; without them every cut is chosen on this sample.
    ``extend`` adds to ``binned.json`` before the figures are drawn (the classical baseline,
    whose figure is drawn from it) and returns the file's new content, or ``None`` for no
    change. The figures quote the very numbers of ``binned.json``.
    """
    payload = write_binned(
        out, y_true, probs, meta, class_names, metrics, signal=signal, settings=settings, cuts=cuts
    )
    if extend is not None:
        payload = extend(payload) or payload
    write_plots(
        out, y_true, probs, meta, class_names, signal=signal, provenance=provenance, binned=payload
    )
    return payload


def signal_of(
    y_true: np.ndarray,
    meta: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    signal: int | None = None,
) -> int:
    """The signal class's index: ``signal`` if given, else the one in ``meta``, else the default."""
    truth = np.asarray(y_true, dtype=np.int64)
    if signal is not None:
        return int(signal)
    if truth.size and len(meta.get(SIGNAL_KEY, ())) == truth.size:
        return signal_class(truth, meta)
    return default_signal_class(class_names, truth, meta)


def write_binned(
    out: Path,
    y_true: np.ndarray,
    probs: np.ndarray,
    meta: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    metrics: Mapping[str, Metric],
    *,
    signal: int | None = None,
    settings: merit.Settings | None = None,
    cuts: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    validation_bins: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """``out/binned.json`` (:func:`binned_payload`), returned too.

    ``validation_bins``: a trial's objective per energy bin on the validation split (rows of
    :func:`binned_table`), kept beside the test bins so that the finalists' report can give
    mean ± std per bin on validation as well as on test without the data at hand.
    """
    payload = binned_payload(
        y_true, probs, meta, class_names, metrics, signal=signal, settings=settings, cuts=cuts
    )
    if provenance:
        payload["provenance"] = dict(provenance)
    if validation_bins is not None:
        payload["validation_bins"] = [dict(row) for row in validation_bins]
    write_json(out / BINNED_FILE, payload)
    return payload


def binned_payload(
    y_true: np.ndarray,
    probs: np.ndarray,
    meta: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    metrics: Mapping[str, Metric],
    *,
    signal: int | None = None,
    settings: merit.Settings | None = None,
    cuts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The metrics per energy bin and over the whole sample, each with its interval.

    ``cuts_chosen_on`` says where the cuts came from: the ``chosen_on`` of ``cuts`` (the
    validation split), or ``this sample`` when none were given; ``cuts`` holds the overall
    thresholds applied.
    """
    truth = np.asarray(y_true, dtype=np.int64)
    full = with_primary(meta, truth, class_names)
    if signal is not None:
        full = with_signal_class(full, signal, truth.size)
    label = signal_of(truth, full, class_names, signal)
    chosen = settings or merit.Settings()
    rows = binned_table(truth, probs, full, metrics, signal=label, settings=chosen, cuts=cuts)
    overall = quote(truth, probs, full, metrics, label, chosen, bin_cuts(cuts))
    applied = cuts.get("all") if cuts else None
    if applied is None and 0 <= label < probs.shape[1]:
        here = merit.choose_cuts(truth == label, probs[:, label], chosen)
        applied = {name: choice.to_json() for name, choice in here.items()}
    return {
        "variable": "log10(E0/GeV)",
        "width": ENERGY_BIN_WIDTH,
        "signal_class": _name(class_names, label),
        "cuts_chosen_on": str(cuts.get("chosen_on", "validation split")) if cuts else "this sample",
        "min_background": chosen.min_background,
        "efficiency": chosen.efficiency,
        "confidence": merit.CONFIDENCE,
        "cuts": applied or {},
        "all": overall,
        "bins": rows,
    }


def _name(class_names: Sequence[str], label: int) -> str:
    return str(class_names[label]) if 0 <= label < len(class_names) else str(label)


def _sample_text(
    truth: np.ndarray, meta: Mapping[str, np.ndarray], names: Sequence[str], classes: int
) -> str:
    """``N = 3000 (gamma 1480, proton 1520)`` and the energy range below, for a figure header."""
    counts = np.bincount(truth, minlength=classes) if truth.size else np.zeros(classes, int)
    per = ", ".join(f"{plots.plain(n)} {c}" for n, c in zip(names, counts.tolist(), strict=False))
    text = f"N = {truth.size} ({per})"
    energy = meta.get("energy")
    if energy is not None and len(energy) == truth.size:
        e = np.asarray(energy, dtype=np.float64)
        e = e[np.isfinite(e) & (e > 0)]
        if e.size:
            log_e = np.log10(e)
            span = f"{log_e.min():.2f}–{log_e.max():.2f}"
            text += "\nenergy range " + rf"$\log_{{10}}(E_0/\mathrm{{GeV}})$ {span}"
    return text


def write_plots(
    out: Path,
    y_true: np.ndarray,
    probs: np.ndarray,
    meta: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    *,
    signal: int | None = None,
    provenance: Provenance | None = None,
    binned: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Metric] | None = None,
) -> dict[str, str]:
    """``out/plots/``: confusion matrix; ROC, Q and the two energy figures where defined.

    The numbers drawn are those of ``binned`` (``binned.json``, as :func:`write_binned` returns
    it); without it they are quoted here with every cut chosen on this sample. Returns each
    PNG's name with the full title drawn on it; every PNG has a PDF twin.
    """
    truth = np.asarray(y_true, dtype=np.int64)
    full = with_primary(meta, truth, class_names)
    folder = out / PLOTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    classes = probs.shape[1] if probs.ndim == 2 else len(class_names)
    names = list(class_names) if len(class_names) == classes else [str(i) for i in range(classes)]
    header = (provenance or Provenance()).header(_sample_text(truth, full, names, classes))
    titles: dict[str, str] = {}
    if truth.size and classes:
        matrix = plots.confusion_matrix(truth, probs.argmax(axis=1), classes)
        titles[CONFUSION_PLOT] = plots.plot_confusion(
            folder / CONFUSION_PLOT, matrix, names, header
        )
    label = signal_of(truth, full, names, signal)
    is_signal = truth == label
    if not (is_signal.any() and not is_signal.all() and 0 <= label < classes):
        return titles
    if binned is None:
        binned = binned_payload(truth, probs, meta, names, metrics or _cut_metrics(), signal=label)
    kinds = Classes(tuple(names), label)
    score = probs[:, label]
    constant = bool(np.ptp(score) == 0)
    sel = select(is_signal, score)
    overall = binned["all"]
    chosen_on = str(binned.get("cuts_chosen_on", "this sample"))
    least = int(binned.get("min_background", merit.MIN_BACKGROUND))
    auc = _auc_text(overall, classes, is_signal, score)
    titles[ROC_PLOT] = plots.plot_roc(folder / ROC_PLOT, sel, auc, kinds, header, constant=constant)
    marked = _marked(overall, binned, is_signal, score, chosen_on)
    titles[Q_PLOT] = plots.plot_q(
        folder / Q_PLOT,
        sel,
        kinds,
        header,
        marked=marked,
        min_background=least,
        reason=overall.get("q_factor_reason"),
        constant=constant,
    )
    points = [_point(row, label) for row in binned.get("bins", [])]
    if points:
        total = _point(
            {
                **overall,
                "per_class": np.bincount(truth, minlength=classes).tolist(),
                "events": int(truth.size),
                "log10_e_min": 0.0,
                "log10_e_max": 0.0,
            },
            label,
        )
        titles[Q_VS_ENERGY_PLOT] = energyplots.plot_q_vs_energy(
            folder / Q_VS_ENERGY_PLOT,
            points,
            total,
            kinds,
            header,
            min_background=least,
            chosen_on=chosen_on,
            constant=constant,
        )
        titles[EFF_VS_ENERGY_PLOT] = energyplots.plot_eff_vs_energy(
            folder / EFF_VS_ENERGY_PLOT,
            points,
            total,
            kinds,
            header,
            chosen_on=chosen_on,
            constant=constant,
        )
    compared = baseline_bins(out)
    if compared:
        titles[BASELINE_PLOT] = baselineplots.plot_baseline_vs_energy(
            folder / BASELINE_PLOT, compared, kinds, header
        )
    return titles


def _cut_metrics() -> dict[str, Metric]:
    """The built-in metrics, for figures drawn without the registry at hand."""
    from wcd_hpc.default_plugins import metrics as builtin

    found: dict[str, Metric] = {}
    builtin.register_metrics(lambda m: found.__setitem__(m.name, m))
    return found


def _auc_text(
    overall: Mapping[str, Any], classes: int, is_signal: np.ndarray, score: np.ndarray
) -> str:
    """The ROC figure's AUC: ``binned.json``'s with its interval for two classes."""
    if classes == 2 and overall.get("roc_auc") is not None:
        return merit.rounded(
            overall["roc_auc"], overall.get("roc_auc_lo"), overall.get("roc_auc_hi")
        )
    w = merit.resample_weights(score.size)
    boot = merit.bootstrap_auc(is_signal, score, np.ones((1, score.size)))
    lo, hi = merit.percentile_interval(merit.bootstrap_auc(is_signal, score, w))
    return merit.rounded(float(boot[0]), lo, hi)


def _marked(
    overall: Mapping[str, Any],
    binned: Mapping[str, Any],
    is_signal: np.ndarray,
    score: np.ndarray,
    chosen_on: str,
) -> plots.Marked | None:
    """The ``q_factor`` cut of ``binned.json`` as the Q figure marks it."""
    value = overall.get("q_factor")
    threshold = ((binned.get("cuts") or {}).get("q_factor") or {}).get("threshold")
    if value is None or threshold is None:
        return None
    passed = score >= float(threshold)
    eff_s = float((passed & is_signal).sum() / max(int(is_signal.sum()), 1))
    kept_b = int((passed & ~is_signal).sum())
    lo, hi = overall.get("q_factor_lo"), overall.get("q_factor_hi")
    return plots.Marked(
        eff_s, float(value), lo, hi, kept_b, bool(overall.get("at_reach")), chosen_on
    )


def _point(row: Mapping[str, Any], label: int) -> energyplots.BinPoint:
    counts = list(row.get("per_class") or [])
    n_s = int(counts[label]) if label < len(counts) else 0
    return energyplots.BinPoint(
        float(row["log10_e_min"]),
        float(row["log10_e_max"]),
        n_s,
        int(row["events"]) - n_s,
        row.get("q_factor"),
        row.get("q_factor_lo"),
        row.get("q_factor_hi"),
        bool(row.get("at_reach")),
        row.get("gamma_eff_1e2"),
        row.get("gamma_eff_1e2_lo"),
        row.get("gamma_eff_1e2_hi"),
    )


def baseline_bins(out: Path) -> list[dict[str, Any]]:
    """The rows of ``out/binned.json`` that carry the classical baseline
    (:mod:`wcd_hpc.results.baseline` adds it for gamma/hadron footprints); none otherwise."""
    try:
        rows = json.loads((out / BINNED_FILE).read_text()).get("bins") or []
    except (OSError, ValueError):
        return []
    return [r for r in rows if isinstance(r, dict) and "baseline_q_at_eff" in r]


def write_data_spec(
    out: Path,
    spec: DataSpec,
    transform: Mapping[str, Any] | None = None,
    signal_class: str | None = None,
) -> None:
    """``data_spec.json``: what ``wcd-hpc evaluate`` and ``sync`` need to rebuild the model and
    apply it to raw inputs: shapes, classes, the input transform (when the dataset records it)
    and the signal class the trial was scored with."""
    record: dict[str, Any] = {
        "input_shape": [int(d) for d in spec.input_shape],
        "num_classes": int(spec.num_classes),
        "class_names": [str(c) for c in spec.class_names],
    }
    if transform:
        record["transform"] = dict(transform)
    if signal_class is not None:
        record["signal_class"] = signal_class
    write_json(out / DATA_SPEC_FILE, record)
