"""Evaluation artifacts of a trained model: per-energy-bin metrics and the test plots.

A single number hides where a classifier fails (SCIENCE.md): gamma/hadron separation is easy at
high energy and hard near threshold. So every trial also writes ``binned.json`` — the standard
metrics in bins of log10(E0/GeV) of width 0.5 from ``meta['energy']`` — and
``plots/{confusion,roc,q}.png``. ``wcd-hpc evaluate`` and ``wcd-hpc train`` write the same files
through :func:`write_evaluation_artifacts`, so results of all three are read the same way.
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
from wcd_hpc.default_plugins.metrics import q_curve, roc_auc, selection_curve, signal_class
from wcd_hpc.queue.schema import (
    BINNED_FILE,
    CONFUSION_PLOT,
    DATA_SPEC_FILE,
    PLOTS_DIR,
    Q_PLOT,
    ROC_PLOT,
)
from wcd_hpc.results import plots

__all__ = [
    "BINNED_METRICS",
    "ENERGY_BIN_WIDTH",
    "binned_table",
    "energy_edges",
    "with_primary",
    "write_evaluation_artifacts",
    "write_json",
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
    energy = meta.get("energy")
    truth = np.asarray(y_true, dtype=np.int64)
    if energy is None or len(energy) != truth.size:
        return []
    log_e = np.log10(np.clip(np.asarray(energy, dtype=np.float64), 1e-300, None))
    edges = energy_edges(np.asarray(energy), width)
    names = [m for m in BINNED_METRICS if m in metrics]
    rows = []
    for lo, hi in itertools.pairwise(edges):
        mask = (log_e >= lo - 1e-9) & (log_e < hi - 1e-9)
        if not mask.any():
            continue
        sub = {k: np.asarray(v)[mask] for k, v in meta.items() if len(v) == truth.size}
        row: dict[str, Any] = {
            "log10_e_min": float(lo),
            "log10_e_max": float(hi),
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
) -> list[dict[str, Any]]:
    """Write ``out/binned.json`` and ``out/plots/*.png``; return the per-bin rows.

    ``binned.json`` also holds the same metrics over the whole sample under ``all`` (the trial's
    ``result.json`` carries only the objective and the standard metrics).

    ROC and Q curves need both the signal class and some background in the sample; when one is
    missing only the confusion matrix is drawn.
    """
    rows = write_binned(out, y_true, probs, meta, class_names, metrics)
    write_plots(out, y_true, probs, meta, class_names)
    return rows


def write_binned(
    out: Path,
    y_true: np.ndarray,
    probs: np.ndarray,
    meta: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    metrics: Mapping[str, Metric],
) -> list[dict[str, Any]]:
    """``out/binned.json``: the metrics per energy bin and over the whole sample."""
    truth = np.asarray(y_true, dtype=np.int64)
    full = with_primary(meta, truth, class_names)
    rows = binned_table(truth, probs, full, metrics)
    overall = {
        name: _finite(float(metrics[name].compute(truth, probs, full)))
        for name in BINNED_METRICS
        if name in metrics
    }
    write_json(
        out / BINNED_FILE,
        {"variable": "log10(E0/GeV)", "width": ENERGY_BIN_WIDTH, "all": overall, "bins": rows},
    )
    return rows


def write_plots(
    out: Path,
    y_true: np.ndarray,
    probs: np.ndarray,
    meta: Mapping[str, np.ndarray],
    class_names: Sequence[str],
) -> None:
    """``out/plots/``: confusion matrix, and ROC and Q curves when signal and background exist."""
    truth = np.asarray(y_true, dtype=np.int64)
    full = with_primary(meta, truth, class_names)
    folder = out / PLOTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    classes = probs.shape[1] if probs.ndim == 2 else len(class_names)
    names = list(class_names) if len(class_names) == classes else [str(i) for i in range(classes)]
    if truth.size and classes:
        matrix = plots.confusion_matrix(truth, probs.argmax(axis=1), classes)
        plots.plot_confusion(folder / CONFUSION_PLOT, matrix, names)
    label = signal_class(truth, full)
    is_signal = truth == label
    if is_signal.any() and not is_signal.all() and label < classes:
        _, eff_s, eff_b = selection_curve(is_signal, probs[:, label])
        auc = roc_auc(
            is_signal.astype(np.int64), np.stack([1 - probs[:, label], probs[:, label]], 1), {}
        )
        plots.plot_roc(folder / ROC_PLOT, eff_s, eff_b, auc, names[label])
        q_eff, _, q = q_curve(truth, probs, full)
        plots.plot_q(folder / Q_PLOT, q_eff, q, names[label])


def write_data_spec(out: Path, spec: DataSpec) -> None:
    """``data_spec.json``: what ``wcd-hpc evaluate`` needs to rebuild the model."""
    write_json(
        out / DATA_SPEC_FILE,
        {
            "input_shape": [int(d) for d in spec.input_shape],
            "num_classes": int(spec.num_classes),
            "class_names": [str(c) for c in spec.class_names],
        },
    )
