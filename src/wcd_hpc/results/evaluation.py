"""Evaluation artifacts of a trained model: per-energy-bin metrics and the test plots.

A single number hides where a classifier fails (SCIENCE.md): gamma/hadron separation is easy at
high energy and hard near threshold. So every trial also writes ``binned.json`` — the standard
metrics in bins of log10(E0/GeV) of width 0.5 from ``meta['energy']`` — and the figures
``plots/{confusion,roc,q,q_vs_energy,eff_vs_energy}.{png,pdf}``. ``wcd-hpc evaluate`` and
``wcd-hpc train`` write the same files through :func:`write_evaluation_artifacts`, so results of
all three are read the same way.

The signal class (the experiment's ``signal_class``, as an index) reaches the metrics through
``meta`` (:data:`~wcd_hpc.default_plugins.metrics.SIGNAL_KEY`) and the figures as an argument;
a caller that gives neither gets :func:`~wcd_hpc.default_plugins.metrics.default_signal_class`.
The energy figures use the very bins of ``binned.json`` (:func:`energy_bins`).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wcd_hpc.api import DataSpec, Metric
from wcd_hpc.default_plugins.metrics import (
    SIGNAL_KEY,
    default_signal_class,
    roc_auc,
    signal_class,
    with_signal_class,
)
from wcd_hpc.queue.schema import (
    BINNED_FILE,
    CONFUSION_PLOT,
    DATA_SPEC_FILE,
    EFF_VS_ENERGY_PLOT,
    PLOTS_DIR,
    Q_PLOT,
    Q_VS_ENERGY_PLOT,
    ROC_PLOT,
)
from wcd_hpc.results import energyplots, plots
from wcd_hpc.results.efficiency import select, working_points
from wcd_hpc.results.plots import Classes, Provenance

__all__ = [
    "BINNED_METRICS",
    "ENERGY_BIN_WIDTH",
    "Provenance",
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

ENERGY_BIN_WIDTH = 0.5
#: Metrics of the per-bin table (when registered); third-party metrics stay out of it because
#: a bin may hold a handful of events or a single class, which not every formula survives.
BINNED_METRICS = ("f1", "accuracy", "roc_auc", "q_factor", "gamma_eff_1e2", "gamma_eff_1e3")


def _finite(value: float) -> float | None:
    """NaN (undefined, e.g. one class in a bin) becomes JSON ``null`` instead of invalid JSON."""
    return None if math.isnan(value) or math.isinf(value) else float(value)


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


def energy_bins(
    energy: np.ndarray | None, n: int, width: float = ENERGY_BIN_WIDTH
) -> list[tuple[float, float, np.ndarray]]:
    """(low edge, high edge, event mask) of every non-empty bin of log10(E0/GeV).

    The one definition of the bins, shared by ``binned.json`` and the energy figures. Empty when
    there is no energy per event.
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


def binned_table(
    y_true: np.ndarray,
    probs: np.ndarray,
    meta: Mapping[str, np.ndarray],
    metrics: Mapping[str, Metric],
    width: float = ENERGY_BIN_WIDTH,
) -> list[dict[str, Any]]:
    """One row per energy bin: edges, event counts per class, and each of :data:`BINNED_METRICS`.

    Empty when the metadata carry no ``energy``; bins without events are left out.
    """
    truth = np.asarray(y_true, dtype=np.int64)
    names = [m for m in BINNED_METRICS if m in metrics]
    rows = []
    for lo, hi, mask in energy_bins(meta.get("energy"), truth.size, width):
        sub = {k: np.asarray(v)[mask] for k, v in meta.items() if len(v) == truth.size}
        row: dict[str, Any] = {
            "log10_e_min": lo,
            "log10_e_max": hi,
            "events": int(mask.sum()),
            "per_class": np.bincount(truth[mask], minlength=probs.shape[1]).tolist(),
        }
        for name in names:
            row[name] = _finite(float(metrics[name].compute(truth[mask], probs[mask], sub)))
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
) -> list[dict[str, Any]]:
    """Write ``out/binned.json`` and the figures under ``out/plots/``; return the per-bin rows.

    ``binned.json`` also holds the same metrics over the whole sample under ``all`` (the trial's
    ``result.json`` carries only the objective and the standard metrics).

    ROC and Q curves need both the signal class and some background in the sample; when one is
    missing only the confusion matrix is drawn. The energy figures need ``meta['energy']``.
    """
    rows = write_binned(out, y_true, probs, meta, class_names, metrics, signal=signal)
    write_plots(out, y_true, probs, meta, class_names, signal=signal, provenance=provenance)
    return rows


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
) -> list[dict[str, Any]]:
    """``out/binned.json``: the metrics per energy bin and over the whole sample."""
    truth = np.asarray(y_true, dtype=np.int64)
    full = with_primary(meta, truth, class_names)
    if signal is not None:
        full = with_signal_class(full, signal, truth.size)
    rows = binned_table(truth, probs, full, metrics)
    overall = {
        name: _finite(float(metrics[name].compute(truth, probs, full)))
        for name in BINNED_METRICS
        if name in metrics
    }
    label = signal_of(truth, full, class_names, signal)
    write_json(
        out / BINNED_FILE,
        {
            "variable": "log10(E0/GeV)",
            "width": ENERGY_BIN_WIDTH,
            "signal_class": _name(class_names, label),
            "all": overall,
            "bins": rows,
        },
    )
    return rows


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
) -> dict[str, str]:
    """``out/plots/``: confusion matrix; ROC, Q and the two energy figures where defined.

    Returns each PNG's name with the full title drawn on it (header with the provenance, then
    the figure's own title); every PNG has a PDF twin.
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
    kinds = Classes(tuple(names), label)
    score = probs[:, label]
    sel = select(is_signal, score)
    auc = roc_auc(is_signal.astype(np.int64), np.stack([1 - score, score], 1), {})
    titles[ROC_PLOT] = plots.plot_roc(folder / ROC_PLOT, sel, auc, kinds, header)
    titles[Q_PLOT] = plots.plot_q(folder / Q_PLOT, sel, kinds, header)
    bins = [
        (lo, hi, working_points(is_signal[mask], score[mask]))
        for lo, hi, mask in energy_bins(full.get("energy"), truth.size)
    ]
    if bins:
        overall = working_points(is_signal, score)
        titles[Q_VS_ENERGY_PLOT] = energyplots.plot_q_vs_energy(
            folder / Q_VS_ENERGY_PLOT, bins, overall, kinds, header
        )
        titles[EFF_VS_ENERGY_PLOT] = energyplots.plot_eff_vs_energy(
            folder / EFF_VS_ENERGY_PLOT, bins, overall, kinds, header
        )
    return titles


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
