"""Built-in metrics: ``f1``, ``accuracy``, ``roc_auc`` and the gamma/hadron ones, in numpy only.

scikit-learn is not a dependency (it would add ~40 MB to every worker image for three
formulas), so these follow its conventions instead: multi-class F1 is the macro average over the
labels present in truth or prediction, and a class with no true and no predicted members scores
0; ROC AUC is the Mann–Whitney U statistic with average ranks for ties (Hanley & McNeil 1982,
Radiology 143, 29), macro one-vs-rest for several classes, and NaN when it is undefined (a single
class in ``y_true``) rather than an exception that would kill a trial at its very end.

**The signal class.** Which class is "positive" is a key of the experiment (``signal_class``,
docs: reference/experiment.md); wcd-hpc hands its index to every metric in the reserved ``meta`` key
:data:`SIGNAL_KEY` — one int per event, so that the "every meta array has length N" contract and
the per-energy-bin slicing of ``meta`` keep working. Binary ``f1`` is the F1 of that class;
``q_factor`` and the gamma efficiencies cut on its score and treat every other class as
background. A caller that does not pass the key (a third-party tool calling these functions)
gets the rules these metrics always had: binary F1 of class 1 (scikit-learn's ``pos_label=1``),
and as signal for the cut-based metrics the class of the events whose ``meta['primary']`` is
``'gamma'``, else class 0. When an experiment names no signal class, :func:`default_signal_class`
picks it from the class names (gamma, else muon, else class 1).

Gamma/hadron separation (SCIENCE.md) is judged by cuts on the signal-class score ``p_signal >= t``:
``q_factor``, ``q_at_eff``, ``gamma_eff_1e2`` and ``gamma_eff_1e3`` are defined once, in
:mod:`wcd_hpc.merit` (read it for the definitions, the minimum background and why), and these
metrics only call it. Here each is chosen and quoted on the sample it is given — the objective on
the validation split; the test numbers of a trial apply the validation cuts instead
(:mod:`wcd_hpc.results.evaluation`). The experiment's ``metric.min_background`` and
``metric.efficiency`` reach them, like the signal class, as reserved ``meta`` keys
(:data:`MIN_BACKGROUND_KEY`, :data:`EFFICIENCY_KEY`, once per event); a caller that passes none
gets :data:`wcd_hpc.merit.MIN_BACKGROUND` and :data:`wcd_hpc.merit.SIGNAL_EFFICIENCY`. A value
that is not measurable is NaN (JSON ``null``, with the reason, in the result files).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from wcd_hpc import merit
from wcd_hpc.api import Metric
from wcd_hpc.hookspecs import hookimpl
from wcd_hpc.merit import selection_curve

__all__ = [
    "EFFICIENCY_KEY",
    "MIN_BACKGROUND_KEY",
    "SIGNAL_KEY",
    "accuracy",
    "default_signal_class",
    "f1",
    "gamma_efficiency_at",
    "q_at_eff",
    "q_curve",
    "q_factor",
    "register_metrics",
    "roc_auc",
    "selection_curve",
    "settings_of",
    "signal_class",
    "signal_index",
    "with_settings",
    "with_signal_class",
]

#: Reserved ``meta`` key: the index of the experiment's signal class, once per event.
SIGNAL_KEY = "signal_class"
#: Reserved ``meta`` keys: the experiment's ``metric.min_background`` and ``metric.efficiency``.
MIN_BACKGROUND_KEY = "min_background"
EFFICIENCY_KEY = "signal_efficiency"
#: Class names :func:`default_signal_class` looks for, in this order: the gamma of a gamma/hadron
#: set, the muon class of a muon-tagging set (the tag is "a muon is present").
DEFAULT_SIGNAL_NAMES = ("gamma", "muon")


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
    if not np.isfinite(score).all():  # argmax of NaN is class 0: a score, but a false one
        raise ValueError("y_score holds NaN or inf: no metric is defined on such predictions")
    return truth, score


def _f1_of(truth: np.ndarray, pred: np.ndarray, label: int) -> float:
    tp = float(np.sum((pred == label) & (truth == label)))
    fp = float(np.sum((pred == label) & (truth != label)))
    fn = float(np.sum((pred != label) & (truth == label)))
    return 0.0 if tp == 0.0 else 2.0 * tp / (2.0 * tp + fp + fn)


def f1(y_true: np.ndarray, y_score: np.ndarray, meta: Mapping[str, np.ndarray]) -> float:
    """F1 of the signal class for two classes, macro F1 otherwise; predictions are the argmax.

    The signal class comes from ``meta[SIGNAL_KEY]``; without it, class 1 (scikit-learn's
    convention, the predecessor's F1 table). Several classes keep the macro average: the usual
    meaning of one F1 for a multi-class problem, whichever class a cut would select.
    """
    truth, score = _prepare(y_true, y_score)
    pred = score.argmax(axis=1)
    if score.shape[1] == 2:
        chosen = _chosen(meta, truth.size)
        return _f1_of(truth, pred, 1 if chosen is None else chosen)
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


def _chosen(meta: Mapping[str, np.ndarray], n: int) -> int | None:
    """The index in ``meta[SIGNAL_KEY]``, or ``None`` when the caller passed none."""
    value = meta.get(SIGNAL_KEY)
    if value is None or n == 0 or len(value) != n:
        return None
    return int(np.asarray(value).ravel()[0])


def with_signal_class(meta: Mapping[str, np.ndarray], label: int, n: int) -> dict[str, np.ndarray]:
    """``meta`` plus :data:`SIGNAL_KEY`: ``label`` repeated for the ``n`` events."""
    return {**meta, SIGNAL_KEY: np.full(n, int(label), dtype=np.int64)}


def signal_index(name: str, class_names: Sequence[str]) -> int | None:
    """The index of the class called ``name`` (exactly, as the dataset spells it), else ``None``."""
    names = [str(c) for c in class_names]
    return names.index(name) if name in names else None


def default_signal_class(
    class_names: Sequence[str],
    y_true: np.ndarray | None = None,
    meta: Mapping[str, np.ndarray] | None = None,
) -> int:
    """The signal class of an experiment that names none (docs: reference/experiment.md).

    In order: the class named ``gamma`` (gamma/hadron); the class of the events whose
    ``meta['primary']`` is ``gamma`` (a file read with its layout's default class names); the
    class named ``muon`` (muon tagging: the tag is the muon); otherwise class 1 — for the
    iron/proton files proton, the class the objective F1 has always scored (scikit-learn's
    ``pos_label=1``, the predecessor's F1 table), so that existing iron/proton studies keep their
    objective.
    """
    found = signal_index(DEFAULT_SIGNAL_NAMES[0], class_names)
    if found is None and y_true is not None and meta is not None:
        found = _gamma_by_primary(np.asarray(y_true).astype(np.int64).ravel(), meta)
    if found is None:
        found = signal_index(DEFAULT_SIGNAL_NAMES[1], class_names)
    if found is None:
        found = 1 if len(class_names) > 1 else 0
    return found


def _gamma_by_primary(truth: np.ndarray, meta: Mapping[str, np.ndarray]) -> int | None:
    primary = meta.get("primary")
    if primary is not None and len(primary) == truth.size:
        gammas = truth[np.asarray(primary).astype(str) == "gamma"]
        if gammas.size:
            return int(np.bincount(gammas).argmax())
    return None


def signal_class(y_true: np.ndarray, meta: Mapping[str, np.ndarray]) -> int:
    """The label of the signal class: ``meta[SIGNAL_KEY]``, else the gamma class, else 0."""
    truth = np.asarray(y_true).astype(np.int64).ravel()
    chosen = _chosen(meta, truth.size)
    if chosen is not None:
        return chosen
    gamma = _gamma_by_primary(truth, meta)
    return 0 if gamma is None else gamma


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


def settings_of(meta: Mapping[str, np.ndarray]) -> merit.Settings:
    """The figure-of-merit settings carried in ``meta`` (the defaults where absent)."""
    out = merit.Settings()
    low = meta.get(MIN_BACKGROUND_KEY)
    if low is not None and len(low):
        out = merit.Settings(int(np.asarray(low).ravel()[0]), out.efficiency)
    eff = meta.get(EFFICIENCY_KEY)
    if eff is not None and len(eff):
        out = merit.Settings(out.min_background, float(np.asarray(eff).ravel()[0]))
    return out


def with_settings(
    meta: Mapping[str, np.ndarray], settings: merit.Settings, n: int
) -> dict[str, np.ndarray]:
    """``meta`` plus the reserved keys of ``settings`` for ``n`` events."""
    return {
        **meta,
        MIN_BACKGROUND_KEY: np.full(n, settings.min_background, dtype=np.int64),
        EFFICIENCY_KEY: np.full(n, settings.efficiency, dtype=np.float64),
    }


def q_curve(
    y_true: np.ndarray, y_score: np.ndarray, meta: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ε_γ, ε_h, Q) over all cuts, ε_h floored at 1/N_h inside Q; empty when undefined.

    The curve drawn in the Q figure; its *optimum* is :func:`q_factor`, which only looks at the
    cuts that keep ``min_background`` background events.
    """
    pair = _gamma_vs_rest(y_true, y_score, meta)
    if pair is None:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    is_signal, score = pair
    _, eff_s, eff_b = selection_curve(is_signal, score)
    floor = 1.0 / max(int((~is_signal).sum()), 1)
    return eff_s, eff_b, eff_s / np.sqrt(np.maximum(eff_b, floor))


def q_factor(y_true: np.ndarray, y_score: np.ndarray, meta: Mapping[str, np.ndarray]) -> float:
    """Best Q = ε_γ/√ε_h among cuts keeping ≥ ``min_background`` background events."""
    pair = _gamma_vs_rest(y_true, y_score, meta)
    if pair is None:
        return float("nan")
    return merit.q_factor(*pair, settings_of(meta).min_background)


def q_at_eff(y_true: np.ndarray, y_score: np.ndarray, meta: Mapping[str, np.ndarray]) -> float:
    """Q at the cut keeping the fraction ``metric.efficiency`` (default 0.5) of the signal."""
    pair = _gamma_vs_rest(y_true, y_score, meta)
    if pair is None:
        return float("nan")
    settings = settings_of(meta)
    return merit.q_at_eff(*pair, settings.efficiency, settings.min_background)


def gamma_efficiency_at(
    survival: float,
) -> Callable[[np.ndarray, np.ndarray, Mapping[str, np.ndarray]], float]:
    """A metric: the largest ε_γ among cuts with ε_h ≤ ``survival``; NaN when the sample cannot
    put ``min_background`` background events behind that survival."""
    name = next(k for k, v in merit.SURVIVALS.items() if v == survival)

    def compute(y_true: np.ndarray, y_score: np.ndarray, meta: Mapping[str, np.ndarray]) -> float:
        pair = _gamma_vs_rest(y_true, y_score, meta)
        if pair is None:
            return float("nan")
        return merit.survival_efficiency(name, *pair, settings_of(meta).min_background)

    return compute


@hookimpl
def register_metrics(register: Callable[[Metric], None]) -> None:
    """Register the seven built-in metrics (all maximised).

    The gamma efficiencies are named ``gamma_eff_1e2`` / ``gamma_eff_1e3`` (not ``…_at_1e-2``)
    so the names stay plain identifiers in experiment files, MLflow and shell flags.
    """
    register(Metric("f1", "maximize", f1, "F1 of the signal class (binary) or macro F1, argmax"))
    register(Metric("accuracy", "maximize", accuracy, "fraction of correct argmax predictions"))
    register(Metric("roc_auc", "maximize", roc_auc, "ROC AUC (Mann-Whitney, macro one-vs-rest)"))
    register(
        Metric(
            "q_factor",
            "maximize",
            q_factor,
            "best Q = signal eff / sqrt(background eff), >= min_background background kept",
        )
    )
    register(Metric("q_at_eff", "maximize", q_at_eff, "Q at the cut keeping 50 % of the signal"))
    for name, survival in (("gamma_eff_1e2", 1e-2), ("gamma_eff_1e3", 1e-3)):
        register(
            Metric(
                name,
                "maximize",
                gamma_efficiency_at(survival),
                f"gamma efficiency at hadron survival <= {survival:g}",
            )
        )
