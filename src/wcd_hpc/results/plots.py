"""The PNG plots of a trial's test evaluation: confusion matrix, ROC curve and Q curve.

matplotlib runs with the Agg backend (compute nodes have no display) and is imported only when a
plot is drawn, so workers and CLI verbs that draw nothing do not pay its import time. Each figure
is closed after saving: a worker runs many trials in one process, and open figures would pile up.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["confusion_matrix", "plot_confusion", "plot_q", "plot_roc"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return matrix


def plot_confusion(path: Path, matrix: np.ndarray, names: Sequence[str]) -> None:
    """Row-normalised colours (per-class efficiency) annotated with the raw counts."""
    plt = _pyplot()
    rows = matrix.sum(axis=1, keepdims=True)
    frac = matrix / np.maximum(rows, 1)
    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=100)
    ax.imshow(frac, vmin=0.0, vmax=1.0, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        colour = "white" if frac[i, j] > 0.5 else "black"
        ax.text(j, i, f"{count}\n{frac[i, j]:.2f}", ha="center", va="center", color=colour)
    ticks = range(len(names))
    ax.set_xticks(ticks, names)
    ax.set_yticks(ticks, names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (test)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_roc(path: Path, eff_s: np.ndarray, eff_b: np.ndarray, auc: float, signal: str) -> None:
    """ε_signal against ε_background, with a log background axis where the sample allows it."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=100)
    ax.plot(eff_b, eff_s, lw=1.5)
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    positive = eff_b[eff_b > 0]
    if positive.size:
        ax.set_xscale("log")
        ax.set_xlim(positive.min() / 2, 1.0)
    ax.set_xlabel("background efficiency (survival)")
    ax.set_ylabel(f"{signal} efficiency")
    ax.set_title(f"ROC (test), AUC = {auc:.3f}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_q(path: Path, eff_s: np.ndarray, q: np.ndarray, signal: str) -> None:
    """Q against signal efficiency, the optimum marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=100)
    ax.plot(eff_s, q, lw=1.5)
    best = int(np.argmax(q))
    ax.plot([eff_s[best]], [q[best]], "o", color="C3")
    ax.set_xlabel(f"{signal} efficiency")
    ax.set_ylabel("Q = eff_sig / sqrt(eff_bkg)")
    ax.set_title(f"quality factor (test), best Q = {q[best]:.2f}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
