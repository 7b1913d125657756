"""Built-in metrics: ``f1``, ``accuracy``, ``roc_auc`` and the gamma/hadron ones, in numpy only.

scikit-learn is not a dependency (it would add ~40 MB to every worker image for three
formulas), so these follow its conventions instead: binary F1 is the F1 of class 1; multi-class F1
is the macro average over the labels present in truth or prediction, and a class with no true
and no predicted members scores 0; ROC AUC is the Mann–Whitney U statistic with average ranks for
ties (Hanley & McNeil 1982, Radiology 143, 29), macro one-vs-rest for several classes, and NaN
when it is undefined (a single class in ``y_true``) rather than an exception that would kill a
trial at its very end.

Gamma/hadron separation (SCIENCE.md) is judged by cuts on the signal-class score ``p_signal >= t``:
``q_factor`` is the quality factor Q = ε_γ / √ε_h at its best cut, ``gamma_eff_1e2`` and
``gamma_eff_1e3`` the largest gamma efficiency whose hadron survival is at most 10⁻² / 10⁻³.
**Which class is the signal ("gamma")**: the class of the events whose ``meta['primary']`` is
``'gamma'`` when the dataset provides that column and it contains gammas; otherwise class 0 (the
first of the dataset's ``class_names``: the muon class of a muon-tagging set whose first class is
``muon``, iron in the predecessor's iron/proton files). Every other class is background.
Finite samples: ε_h is floored at one background event (1/N_h), so Q stays finite when a cut keeps
no hadron (Q is then a lower bound, as in the field's practice of quoting it at the
statistical limit); with fewer than 1/h background events, ``gamma_eff`` at survival h is the
efficiency of a cut that keeps no background at all (a conservative value, never NaN).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from wcd_hpc.api import Metric
from wcd_hpc.hookspecs import hookimpl

__all__ = [
    "accuracy",
    "f1",
    "gamma_efficiency_at",
    "q_curve",
    "q_factor",
    "register_metrics",
    "roc_auc",
    "selection_curve",
    "signal_class",
]


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


def signal_class(y_true: np.ndarray, meta: Mapping[str, np.ndarray]) -> int:
    """The label of the gamma class (see the module docstring), else 0."""
    primary = meta.get("primary")
    truth = np.asarray(y_true).astype(np.int64).ravel()
    if primary is not None and len(primary) == truth.size:
        gammas = truth[np.asarray(primary).astype(str) == "gamma"]
        if gammas.size:
            return int(np.bincount(gammas).argmax())
    return 0


def selection_curve(
    is_signal: np.ndarray, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, ε_signal, ε_background) for the cuts ``score >= t``, t descending.

    The first point is the empty cut (t = +inf, both efficiencies 0); one point follows per
    distinct score, so tied events are always kept or dropped together.
    """
    sig = np.asarray(is_signal, dtype=bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    order = np.argsort(-s, kind="stable")
    s, sig = s[order], sig[order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1] if s.size else np.zeros(0, np.int64)
    n_sig, n_bkg = max(int(sig.sum()), 1), max(int((~sig).sum()), 1)
    eff_s = np.r_[0.0, np.cumsum(sig)[last] / n_sig]
    eff_b = np.r_[0.0, np.cumsum(~sig)[last] / n_bkg]
    return np.r_[np.inf, s[last]], eff_s, eff_b


def _gamma_vs_rest(
    y_true: np.ndarray, y_score: np.ndarray, meta: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Signal mask and signal score; ``None`` when a class is missing and no cut is defined."""
    truth, score = _prepare(y_true, y_score)
    label = signal_class(truth, meta)
    is_signal = truth == label
    if is_signal.all() or not is_signal.any() or label >= score.shape[1]:
        return None
    return is_signal, score[:, label]


def q_curve(
    y_true: np.ndarray, y_score: np.ndarray, meta: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ε_γ, ε_h, Q) over all cuts, ε_h floored at 1/N_h inside Q; empty when undefined."""
    pair = _gamma_vs_rest(y_true, y_score, meta)
    if pair is None:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    is_signal, score = pair
    _, eff_s, eff_b = selection_curve(is_signal, score)
    floor = 1.0 / max(int((~is_signal).sum()), 1)
    return eff_s, eff_b, eff_s / np.sqrt(np.maximum(eff_b, floor))


def q_factor(y_true: np.ndarray, y_score: np.ndarray, meta: Mapping[str, np.ndarray]) -> float:
    """The best quality factor Q = ε_γ / √ε_h over all cuts on the gamma score."""
    _, _, q = q_curve(y_true, y_score, meta)
    return float(q.max()) if q.size else float("nan")


def gamma_efficiency_at(
    survival: float,
) -> Callable[[np.ndarray, np.ndarray, Mapping[str, np.ndarray]], float]:
    """A metric: the largest ε_γ among cuts whose hadron survival ε_h is at most ``survival``."""

    def compute(y_true: np.ndarray, y_score: np.ndarray, meta: Mapping[str, np.ndarray]) -> float:
        pair = _gamma_vs_rest(y_true, y_score, meta)
        if pair is None:
            return float("nan")
        _, eff_s, eff_b = selection_curve(*pair)
        return float(eff_s[eff_b <= survival + 1e-12].max())

    return compute


@hookimpl
def register_metrics(register: Callable[[Metric], None]) -> None:
    """Register the six built-in metrics (all maximised).

    The gamma efficiencies are named ``gamma_eff_1e2`` / ``gamma_eff_1e3`` (not ``…_at_1e-2``)
    so the names stay plain identifiers in experiment files, MLflow and shell flags.
    """
    register(Metric("f1", "maximize", f1, "F1 of class 1 (binary) or macro F1, argmax predictions"))
    register(Metric("accuracy", "maximize", accuracy, "fraction of correct argmax predictions"))
    register(Metric("roc_auc", "maximize", roc_auc, "ROC AUC (Mann-Whitney, macro one-vs-rest)"))
    register(Metric("q_factor", "maximize", q_factor, "best Q = gamma eff / sqrt(hadron eff)"))
    for name, survival in (("gamma_eff_1e2", 1e-2), ("gamma_eff_1e3", 1e-3)):
        register(
            Metric(
                name,
                "maximize",
                gamma_efficiency_at(survival),
                f"gamma efficiency at hadron survival <= {survival:g}",
            )
        )
