"""Counting statistics behind the figures: binomial intervals, the Q band, the quoted optimum."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wcd_hpc.default_plugins import metrics
from wcd_hpc.results.efficiency import (
    CONFIDENCE,
    MIN_BACKGROUND,
    clopper_pearson,
    q_band,
    select,
)

HALF_ALPHA = (1 - CONFIDENCE) / 2


def test_clopper_pearson_matches_the_tabulated_95_percent_interval() -> None:
    lo, hi = clopper_pearson(5, 10, confidence=0.95)
    assert (float(lo), float(hi)) == pytest.approx((0.187086, 0.812914), abs=1e-6)


def test_no_success_gives_a_zero_lower_end_and_the_closed_form_upper_end() -> None:
    lo, hi = clopper_pearson(0, 10)
    assert float(lo) == 0.0
    assert float(hi) == pytest.approx(1 - HALF_ALPHA ** (1 / 10))


def test_all_successes_give_the_closed_form_lower_end_and_one() -> None:
    lo, hi = clopper_pearson(10, 10)
    assert float(lo) == pytest.approx(HALF_ALPHA ** (1 / 10))
    assert float(hi) == 1.0


def test_intervals_are_elementwise_and_bracket_the_efficiency() -> None:
    k = np.array([0, 1, 2, 7, 300, 300])
    n = np.array([0, 300, 300, 300, 300, 1000])
    lo, hi = clopper_pearson(k, n)
    eff = np.where(n > 0, k / np.maximum(n, 1), 0.0)
    assert (lo <= eff).all() and (eff <= hi).all()
    assert (lo[0], hi[0]) == (0.0, 1.0)  # no event: nothing known


def test_q_band_is_the_background_interval_mapped_through_q_when_the_signal_is_exact() -> None:
    # 10^6 of 10^6 signal events: ε_s is known to 2e-6, so the band is the background's alone.
    q, lo, hi = q_band(np.array([10**6]), 10**6, np.array([4]), 400)
    b_lo, b_hi = clopper_pearson(4, 400)
    assert float(q[0]) == pytest.approx(1 / math.sqrt(0.01))
    assert float(lo[0]) == pytest.approx(1 / math.sqrt(float(b_hi)), rel=1e-5)
    assert float(hi[0]) == pytest.approx(1 / math.sqrt(float(b_lo)), rel=1e-5)


def test_q_band_adds_both_uncertainties_and_is_open_above_without_background() -> None:
    q, lo, hi = q_band(np.array([20, 20, 0]), 100, np.array([10, 0, 5]), 300)
    only_b = q_band(np.array([10**6]), 10**6, np.array([10]), 300)
    assert lo[0] < q[0] < hi[0]
    # The signal's uncertainty widens the band beyond the background's alone.
    assert hi[0] / q[0] > only_b[2][0] / only_b[0][0]
    assert math.isinf(hi[1]) and 0 < lo[1] < q[1]  # no background kept: ε_b floored, no top
    assert q[2] == 0.0 and lo[2] == 0.0 and 0 < hi[2] < math.inf  # no signal: an upper end


def _ladder(background_below: int = 90) -> tuple[np.ndarray, np.ndarray]:
    """Cuts (score >=): 0.9: 30 s, 1 b (Q 3.0); 0.8: 60 s, 1 b (Q 6.0, the noisy maximum);
    0.7: 60 s, 10 b; 0.6: 100 s, 10 b (Q 3.16, the quoted optimum); 0.1: everything."""
    scores = np.r_[[0.9] * 30, [0.95], [0.8] * 30, [0.7] * 9, [0.6] * 40, [0.1] * background_below]
    is_signal = np.r_[[1] * 30, [0], [1] * 30, [0] * 9, [1] * 40, [0] * background_below] == 1
    return is_signal, scores


def test_the_optimum_is_quoted_only_among_cuts_keeping_ten_background_events() -> None:
    is_signal, scores = _ladder()
    sel = select(is_signal, scores)
    best = sel.best_q()
    assert best is not None
    assert (sel.k_s[best], sel.k_b[best]) == (100, MIN_BACKGROUND)
    q, _, _ = sel.q()
    assert q[best] == pytest.approx(1 / math.sqrt(0.1))
    # The cut that keeps a single background event has the largest Q of all ...
    assert sel.best_q(min_background=1) is not None
    assert q[sel.best_q(min_background=1)] == pytest.approx(6.0)
    # ... which the q_factor metric does not report: it quotes the figure's optimum.
    probs = np.stack([scores, 1 - scores], axis=1)
    assert metrics.q_factor((~is_signal).astype(int), probs, {}) == pytest.approx(q[best])


def test_no_optimum_is_quoted_when_no_cut_keeps_enough_background() -> None:
    is_signal, scores = _ladder(background_below=0)  # 1 + 9 = 10 background events ...
    assert select(is_signal, scores).best_q() is not None
    keep = ~((scores == 0.7) & ~is_signal)  # ... minus the nine at 0.7: only one left
    assert select(is_signal[keep], scores[keep]).best_q() is None
