"""The PNG plots that ``sync`` uploads: per trial (learning curves, confusion matrix, ROC) and per
study (optimization history, parameter importances, parallel coordinates).

They are drawn at sync time, not by the workers, from what the trial directory already holds
(``metrics.jsonl``, ``predictions.npz``) and from the study, so a trial needs neither its data nor
its model plugin to be plotted. Matplotlib runs with the Agg backend: sync often runs in a batch
job or over SSH, where there is no display.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import optuna
from matplotlib.axes import Axes
from matplotlib.figure import Figure

log = logging.getLogger(__name__)
DPI = 80


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def learning_curves(records: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Training loss and every validation metric against the epoch; None without epochs."""
    if not records:
        return None
    epochs = [int(r.get("epoch", i + 1)) for i, r in enumerate(records)]
    val_keys = sorted({k for r in records for k in r if k.startswith("val_")})
    fig, (loss_ax, val_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_ax.plot(epochs, [r.get("train_loss", np.nan) for r in records], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="training loss")
    for key in val_keys:
        values = [r.get(key, np.nan) for r in records]
        val_ax.plot(epochs, values, marker="o", label=key.removeprefix("val_"))
    val_ax.set(xlabel="epoch", ylabel="value", title="validation metrics")
    if val_keys:
        val_ax.legend(fontsize="small")
    return _save(fig, path)


def confusion_matrix(
    y_true: np.ndarray, y_score: np.ndarray, names: Sequence[str], path: Path
) -> Path:
    """Counts of true class (rows) against the predicted class, the arg-max of the scores."""
    classes = max(y_score.shape[1], len(names), 1)
    labels = list(names) if len(names) == classes else [str(i) for i in range(classes)]
    pred = y_score.argmax(axis=1)
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (y_true.astype(np.int64), pred), 1)
    fig, ax = plt.subplots(figsize=(1.2 * classes + 2.5, 1.2 * classes + 2))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=color)
    ax.set_xticks(range(classes), labels)
    ax.set_yticks(range(classes), labels)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (test split)")
    return _save(fig, path)


def roc_points(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of every threshold on ``score`` (positives: y_true == 1)."""
    order = np.argsort(-score, kind="mergesort")
    hits = (y_true[order] == 1).astype(np.float64)
    tp = np.concatenate([[0.0], np.cumsum(hits)])
    fp = np.concatenate([[0.0], np.cumsum(1.0 - hits)])
    return fp / max(fp[-1], 1.0), tp / max(tp[-1], 1.0)


def roc_curve(y_true: np.ndarray, y_score: np.ndarray, names: Sequence[str], path: Path) -> Path:
    """ROC of class 1 for two classes, one-vs-rest curves for more."""
    classes = y_score.shape[1]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    shown = [1] if classes == 2 else list(range(classes))
    for c in shown:
        fpr, tpr = roc_points((y_true == c).astype(np.int64), y_score[:, c])
        auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
        name = names[c] if c < len(names) else str(c)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC (test split)")
    ax.legend(fontsize="small", loc="lower right")
    return _save(fig, path)


def _optuna_plot(draw: Callable[[], Any], path: Path) -> Path | None:
    """Run one of Optuna's matplotlib plots and save it; a plot that cannot be drawn is skipped.

    These plots are a convenience on the parent run: a study they cannot handle (one trial, a
    constant parameter, an importance model that fails to fit) must never make the sync fail.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            drawn = draw()
    except Exception as exc:
        log.info("skipping %s: %s", path.name, exc)
        plt.close("all")
        return None
    first = drawn.flat[0] if isinstance(drawn, np.ndarray) else drawn
    fig = plt.gcf()
    if isinstance(first, Axes) and isinstance(first.figure, Figure):
        fig = first.figure
    fig.set_size_inches(8, 4.5)
    return _save(fig, path)


def study_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Optimization history, parameter importances (two complete trials and more than one
    parameter needed) and parallel coordinates of ``study``, as PNG files in ``folder``."""
    from optuna.visualization import matplotlib as ovm

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return []
    params = {k for t in complete for k in t.params}
    plots: list[Path | None] = [
        _optuna_plot(
            lambda: ovm.plot_optimization_history(study), folder / "optimization_history.png"
        )
    ]
    if len(complete) >= 2 and len(params) > 1:
        plots.append(
            _optuna_plot(
                lambda: ovm.plot_param_importances(study), folder / "param_importances.png"
            )
        )
    if params:
        plots.append(
            _optuna_plot(
                lambda: ovm.plot_parallel_coordinate(study), folder / "parallel_coordinates.png"
            )
        )
    return [p for p in plots if p is not None]
