"""Built-in metrics: ``f1``, ``accuracy`` and ``roc_auc``, in numpy only.

scikit-learn is not a dependency (it would add ~40 MB to every worker image for three
formulas), so these follow its conventions instead: binary F1 is the F1 of class 1; multi-class F1
is the macro average over the labels present in truth or prediction, and a class with no true
and no predicted members scores 0; ROC AUC is the Mann–Whitney U statistic with average ranks for
ties (Hanley & McNeil 1982, Radiology 143, 29), macro one-vs-rest for several classes, and NaN
when it is undefined (a single class in ``y_true``) rather than an exception that would kill a
trial at its very end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from wcd_hpc.api import Metric
from wcd_hpc.hookspecs import hookimpl

__all__ = ["accuracy", "f1", "register_metrics", "roc_auc"]


def _prepare(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer labels and a 2-D score matrix; a 1-D score is the probability of class 1."""
    truth = np.asarray(y_true).astype(np.int64).ravel()
    score = np.asarray(y_score, dtype=np.float64)
    if score.ndim == 1:
        score = np.stack([1.0 - score, score], axis=1)
    if score.ndim != 2 or score.shape[0] != truth.shape[0]:
        raise ValueError(
            f"y_score must be (N, classes) with N = len(y_true) = {truth.shape[0]}, "
            f"got shape {score.shape}"
        )
    return truth, score


def _f1_of(truth: np.ndarray, pred: np.ndarray, label: int) -> float:
    tp = float(np.sum((pred == label) & (truth == label)))
    fp = float(np.sum((pred == label) & (truth != label)))
    fn = float(np.sum((pred != label) & (truth == label)))
    return 0.0 if tp == 0.0 else 2.0 * tp / (2.0 * tp + fp + fn)


def f1(y_true: np.ndarray, y_score: np.ndarray, meta: Mapping[str, np.ndarray]) -> float:
    """F1 of class 1 for two classes, macro F1 otherwise; predictions are the argmax."""
    truth, score = _prepare(y_true, y_score)
    pred = score.argmax(axis=1)
    if score.shape[1] == 2:
        return _f1_of(truth, pred, 1)
    labels = np.union1d(truth, pred)
    return float(np.mean([_f1_of(truth, pred, int(c)) for c in labels])) if labels.size else 0.0


def accuracy(y_true: np.ndarray, y_score: np.ndarray, meta: Mapping[str, np.ndarray]) -> float:
    """Fraction of events whose argmax class is the true one."""
    truth, score = _prepare(y_true, y_score)
    return float(np.mean(score.argmax(axis=1) == truth)) if truth.size else float("nan")


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of the ranks they span."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    return (upper - (counts - 1) / 2.0)[inverse.ravel()]


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(score)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_auc(y_true: np.ndarray, y_score: np.ndarray, meta: Mapping[str, np.ndarray]) -> float:
    """Area under the ROC curve: binary on the class-1 score, else macro one-vs-rest."""
    truth, score = _prepare(y_true, y_score)
    if np.unique(truth).size < 2:
        return float("nan")
    if score.shape[1] == 2:
        return _binary_auc(truth == 1, score[:, 1])
    aucs = [_binary_auc(truth == c, score[:, c]) for c in range(score.shape[1])]
    defined = [a for a in aucs if not np.isnan(a)]  # classes absent from y_true have no ROC
    return float(np.mean(defined))


@hookimpl
def register_metrics(register: Callable[[Metric], None]) -> None:
    """Register ``f1``, ``accuracy`` and ``roc_auc`` (all maximised)."""
    register(Metric("f1", "maximize", f1, "F1 of class 1 (binary) or macro F1, argmax predictions"))
    register(Metric("accuracy", "maximize", accuracy, "fraction of correct argmax predictions"))
    register(Metric("roc_auc", "maximize", roc_auc, "ROC AUC (Mann-Whitney, macro one-vs-rest)"))
