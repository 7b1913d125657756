"""The figures of merit defined once (wcd_hpc.merit): cuts, minimum background, intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from wcd_hpc import merit
from wcd_hpc.merit import Settings


def _one_hadron_above() -> tuple[np.ndarray, np.ndarray]:
    """20 gammas and 100 hadrons; one hadron scores above every gamma, the rest spread below.

    The tightest cut that keeps a gamma keeps that one hadron: ε_γ = 1, ε_h = 0.01, Q = 10 —
    Poisson noise. With ten hadrons kept: ε_γ = 1, ε_h = 0.1, Q = √10.
    """
    scores = np.r_[np.linspace(0.80, 0.90, 20), [0.99], np.linspace(0.05, 0.7, 99)]
    is_signal = np.r_[[True] * 20, [False] * 100]
    return is_signal, scores


def test_q_factor_does_not_report_a_cut_that_keeps_one_background_event() -> None:
    is_signal, scores = _one_hadron_above()
    assert merit.q_factor(is_signal, scores) == pytest.approx(math.sqrt(10))
    assert merit.q_factor(is_signal, scores, min_background=1) == pytest.approx(10.0)
    choice = merit.choose("q_factor", is_signal, scores, Settings())
    assert choice.at_reach  # the optimum sits at the tightest cut allowed: a lower limit


def test_q_factor_is_not_measurable_with_fewer_background_events_than_the_minimum() -> None:
    is_signal = np.r_[[True] * 20, [False] * 9]
    scores = np.r_[np.full(20, 0.9), np.full(9, 0.1)]
    value = merit.measure("q_factor", None, is_signal, scores)
    assert value.value is None
    assert "no cut keeps ≥ 10 background events (9 in the sample)" in (value.reason or "")


def test_gamma_efficiency_is_not_measurable_without_min_background_events_behind_it() -> None:
    is_signal = np.r_[[True] * 50, [False] * 500]
    scores = np.r_[np.full(50, 0.9), np.linspace(0, 0.5, 500)]
    value = merit.measure("gamma_eff_1e2", None, is_signal, scores)
    assert value.value is None and "needs ≥ 1000" in (value.reason or "")
    value = merit.measure("gamma_eff_1e2", None, is_signal, scores, Settings(min_background=5))
    assert value.value == pytest.approx(1.0)


def test_q_at_eff_is_q_at_the_cut_keeping_half_the_signal() -> None:
    # 100 gammas at 0.01 … 1.00 and 1000 hadrons at 0.0001 … 0.1 plus 100 at 0.6 … 0.699.
    is_signal = np.r_[[True] * 100, [False] * 1100]
    scores = np.r_[np.arange(1, 101) / 100, np.arange(1000) / 10000, 0.6 + np.arange(100) / 1000]
    # Half the gammas: the cut >= 0.51 keeps 50 gammas and the 100 hadrons at 0.6 …
    assert merit.q_at_eff(is_signal, scores) == pytest.approx(0.5 / math.sqrt(100 / 1100))
    # … and every gamma: the cut >= 0.01 keeps 900 + 100 hadrons.
    assert merit.q_at_eff(is_signal, scores, efficiency=1.0) == pytest.approx(
        1.0 / math.sqrt(1000 / 1100)
    )


def test_the_cut_applied_to_a_sample_does_not_depend_on_its_scores_order() -> None:
    rng = np.random.default_rng(1)
    val_sig = rng.random(2000) < 0.5
    val_score = np.where(val_sig, rng.normal(1, 1, 2000), rng.normal(-1, 1, 2000))
    cuts = merit.choose_cuts(val_sig, val_score, Settings())
    test_sig = rng.random(2000) < 0.5
    test_score = np.where(test_sig, rng.normal(1, 1, 2000), rng.normal(-1, 1, 2000))
    first = merit.measure_all(test_sig, test_score, cuts)
    shuffled = rng.permutation(test_score)  # the test scores no longer match their events
    again = merit.choose_cuts(val_sig, val_score, Settings())
    assert again == cuts
    assert merit.measure_all(test_sig, shuffled, cuts)["q_factor"].value != first["q_factor"].value


def test_clopper_pearson_covers_a_known_efficiency_at_its_stated_rate() -> None:
    rng = np.random.default_rng(7)
    n, p = 40, 0.15
    k = rng.binomial(n, p, size=4000)
    lo, hi = merit.clopper_pearson(k, n)
    coverage = float(np.mean((lo <= p) & (p <= hi)))
    assert coverage >= merit.CONFIDENCE  # exact: it never undercovers ...
    assert coverage < 0.85  # ... and is not the 95 % interval either


def test_the_bootstrap_interval_of_q_and_auc_covers_the_true_value_at_about_68_percent() -> None:
    rng = np.random.default_rng(11)
    threshold, shift = 0.5, 1.5
    eff_s, eff_b = norm.sf(threshold - shift), norm.sf(threshold)
    true_q, true_auc = eff_s / math.sqrt(eff_b), norm.cdf(shift / math.sqrt(2))
    hits_q = hits_auc = 0
    trials = 150
    for i in range(trials):
        sig = np.r_[[True] * 400, [False] * 400]
        score = np.r_[rng.normal(shift, 1, 400), rng.normal(0, 1, 400)]
        value = merit.measure(
            "q_factor", merit.Choice(threshold), sig, score, Settings(resamples=200, seed=i)
        )
        assert value.lo is not None and value.hi is not None
        hits_q += value.lo <= true_q <= value.hi
        w = merit.resample_weights(sig.size, 200, seed=i)
        lo, hi = merit.percentile_interval(merit.bootstrap_auc(sig, score, w))
        assert lo is not None and hi is not None
        hits_auc += lo <= true_auc <= hi
    # 68 % nominal; with 150 experiments the binomial spread is ±4 %.
    assert 0.56 <= hits_q / trials <= 0.80
    assert 0.56 <= hits_auc / trials <= 0.80


def test_bootstrap_auc_with_unit_weights_is_the_mann_whitney_auc() -> None:
    from wcd_hpc.default_plugins.metrics import roc_auc

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    score = np.round(rng.random(300) + 0.3 * y, 2)  # with ties
    auc = roc_auc(y, np.stack([1 - score, score], 1), {})
    assert merit.bootstrap_auc(y == 1, score, np.ones((1, 300)))[0] == pytest.approx(auc)


def test_a_value_is_shown_to_two_significant_digits_of_its_interval() -> None:
    assert merit.rounded(0.85312, 0.8401, 0.8672) == "0.853 (+0.014 −0.013)"
    # A half-width just under 0.01 rounds to 0.010: three decimals, like its neighbours.
    assert merit.rounded(0.93144, 0.92244, 0.94140) == "0.931 (+0.010 −0.009)"
    assert merit.rounded(0.5, None, 0.6) == "0.5"
