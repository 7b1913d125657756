"""Counting statistics of cut efficiencies: binomial intervals, the Q band and every cut as counts.

An efficiency is a ratio of counts — k of n events survive a cut — and a test split of a few
thousand footprints leaves a few hundred background events per energy bin, so the interesting
cuts (ε_b ≈ 10⁻²) keep a handful of them. A point drawn without its uncertainty then looks like a
measurement. So every efficiency drawn carries a binomial interval:

- **Clopper–Pearson** (exact, central; it never undercovers, and stays inside [0, 1] at k = 0 and
  k = n, where the normal approximation collapses to zero width), from the quantiles of the beta
  distribution (``scipy.special.betaincinv``). scipy is always there: mlflow, a dependency of
  wcd-hpc, requires it (and ``envs/*.txt`` pin it), so there is no second method to keep in step.
- Confidence level :data:`CONFIDENCE` = 68.27 %, the ±1σ of error bars in physics figures.
- **Q band**: Q = ε_s/√ε_b is a sum in logarithms, ln Q = ln ε_s − ½ ln ε_b, of two independent
  measurements (signal and background are disjoint events). The band adds the two intervals'
  log-distances in quadrature, separately below and above Q. Where one efficiency dominates, this
  *is* its exact Clopper–Pearson interval mapped through Q (a monotone map keeps coverage); in
  between it is ordinary error propagation. ε_b is floored at one event (1/N_b), as ``q_factor``
  does, so Q stays finite when a cut keeps no background; its upper edge is then unbounded.
- **Minimum background** :data:`MIN_BACKGROUND` = 10 events: a Q optimum is quoted only among
  cuts that keep at least ten background events. With k surviving events the relative 1σ
  uncertainty of ε_b is about 1/√k — 32 % at k = 10, i.e. ±16 % on Q — while the largest Q of a
  noisy curve sits, by construction, where it fluctuated up: at k = 1 or 2 the "optimum" is
  mostly that upward fluctuation. When no cut keeps ten, no optimum is quoted and the figure says
  why. The ``q_factor`` metric is the same optimum (:mod:`wcd_hpc.merit`, where the interval
  functions and these constants live).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wcd_hpc.merit import CONFIDENCE, MIN_BACKGROUND, clopper_pearson, selection_curve

__all__ = [
    "CONFIDENCE",
    "MIN_BACKGROUND",
    "Selection",
    "clopper_pearson",
    "q_band",
    "select",
]


def q_band(
    k_s: np.ndarray,
    n_s: int,
    k_b: np.ndarray,
    n_b: int,
    confidence: float = CONFIDENCE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Q, lower, upper) of cuts keeping ``k_s`` of ``n_s`` signal and ``k_b`` of ``n_b``
    background events; the band as in the module docstring (log-quadrature)."""
    ks = np.asarray(k_s, dtype=np.float64)
    kb = np.asarray(k_b, dtype=np.float64)
    ns, nb = max(int(n_s), 1), max(int(n_b), 1)
    eff_s = ks / ns
    eff_b = np.maximum(kb, 1.0) / nb
    s_lo, s_hi = clopper_pearson(ks, ns, confidence)
    b_lo, b_hi = clopper_pearson(kb, nb, confidence)
    q = eff_s / np.sqrt(eff_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        down_s = np.log(eff_s / s_lo)
        up_s = np.log(s_hi / eff_s)
        down_b = 0.5 * np.log(np.maximum(b_hi, eff_b) / eff_b)
        up_b = 0.5 * np.log(eff_b / b_lo)
        lower = q * np.exp(-np.hypot(down_s, down_b))
        upper = q * np.exp(np.hypot(up_s, up_b))
    no_signal = ks == 0  # Q = 0: only an upper end, from the signal's upper limit
    lower = np.where(no_signal, 0.0, lower)
    upper = np.where(no_signal, s_hi / np.sqrt(eff_b), upper)
    return q, lower, np.where(np.isnan(upper), np.inf, upper)


@dataclass(frozen=True)
class Selection:
    """Every cut ``score >= t`` as counts; index 0 is the empty cut (nothing kept)."""

    thresholds: np.ndarray
    k_s: np.ndarray
    k_b: np.ndarray
    n_s: int
    n_b: int

    @property
    def eff_s(self) -> np.ndarray:
        return self.k_s / max(self.n_s, 1)

    @property
    def eff_b(self) -> np.ndarray:
        return self.k_b / max(self.n_b, 1)

    def q(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Q, lower, upper) of every cut."""
        return q_band(self.k_s, self.n_s, self.k_b, self.n_b)

    def best_q(self, min_background: int = MIN_BACKGROUND) -> int | None:
        """Index of the largest Q among cuts keeping ≥ ``min_background`` background events.

        ``None`` when no cut keeps that many (a sample with fewer background events in all).
        """
        eligible = np.flatnonzero(self.k_b >= min_background)
        if eligible.size == 0:
            return None
        q, _, _ = self.q()
        return int(eligible[np.argmax(q[eligible])])

    def at_survival(self, survival: float) -> int:
        """Index of the cut of largest ε_s whose ε_b ≤ ``survival`` (``gamma_eff_1e2``'s cut)."""
        allowed = np.flatnonzero(self.eff_b <= survival + 1e-12)
        return int(allowed[np.argmax(self.eff_s[allowed])])


def select(is_signal: np.ndarray, score: np.ndarray) -> Selection:
    """The cuts of :func:`~wcd_hpc.default_plugins.metrics.selection_curve`, as counts."""
    sig = np.asarray(is_signal, dtype=bool).ravel()
    n_s, n_b = int(sig.sum()), int((~sig).sum())
    thresholds, eff_s, eff_b = selection_curve(sig, score)
    k_s = np.rint(eff_s * max(n_s, 1)).astype(np.int64)
    k_b = np.rint(eff_b * max(n_b, 1)).astype(np.int64)
    return Selection(thresholds, k_s, k_b, n_s, n_b)
