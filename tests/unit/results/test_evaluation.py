"""Gamma/hadron metrics, the per-energy-bin table and the plots every trial writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from wcd_hpc.default_plugins import metrics
from wcd_hpc.merit import Settings
from wcd_hpc.plugins import get_registry
from wcd_hpc.results.evaluation import binned_table, energy_edges, write_evaluation_artifacts

PNG = b"\x89PNG\r\n\x1a\n"


def _probs(p_class0: np.ndarray) -> np.ndarray:
    return np.stack([p_class0, 1.0 - p_class0], axis=1)


@pytest.fixture(scope="module")
def all_metrics() -> dict[str, metrics.Metric]:
    return {name: entry.obj for name, entry in get_registry().metrics.items()}


def test_gamma_hadron_metrics_are_registered_as_maximised(all_metrics: dict) -> None:
    for name in ("q_factor", "gamma_eff_1e2", "gamma_eff_1e3"):
        assert all_metrics[name].direction == "maximize"


def _min_background(n: int, count: int) -> dict[str, np.ndarray]:
    return metrics.with_settings({}, Settings(min_background=count), n)


def test_q_factor_of_a_perfect_classifier_is_the_sample_reach() -> None:
    # Every gamma above every hadron: the best cut keeps all gammas and the fewest hadrons
    # allowed (10), so Q is the reach sqrt(N_h / 10), not the sqrt(N_h) of a cut keeping none.
    y = np.array([0] * 10 + [1] * 400)
    p0 = np.r_[np.full(10, 0.9), np.linspace(0.1, 0.5, 400)]
    assert metrics.q_factor(y, _probs(p0), {}) == pytest.approx(math.sqrt(400 / 10))


def test_q_factor_picks_the_best_cut_among_those_with_enough_background() -> None:
    # gammas at 0.9 (x6) and 0.5 (x4); hadrons at 0.6 (x1) and 0.1 (x99).
    # With min_background 1: cut >= 0.6: 0.6 / sqrt(0.01) = 6; cut >= 0.5: 1.0 / sqrt(0.01) = 10.
    # With the default 10, only the loosest cut keeps 10 hadrons: Q = 1.
    y = np.array([0] * 10 + [1] * 100)
    p0 = np.r_[np.full(6, 0.9), np.full(4, 0.5), [0.6], np.full(99, 0.1)]
    assert metrics.q_factor(y, _probs(p0), _min_background(110, 1)) == pytest.approx(10.0)
    assert metrics.q_factor(y, _probs(p0), {}) == pytest.approx(1.0)


def test_gamma_efficiency_at_fixed_hadron_survival() -> None:
    # 1000 hadrons, 10 of them score above 30 of the 100 gammas; the other gammas sit above all.
    rng = np.random.default_rng(0)
    y = np.array([0] * 100 + [1] * 1000)
    p0 = np.r_[np.full(70, 0.95), np.full(30, 0.5), np.full(10, 0.8), rng.uniform(0, 0.4, 990)]
    assert metrics.gamma_efficiency_at(1e-2)(y, _probs(p0), {}) == pytest.approx(1.0)
    loose = _min_background(1100, 1)
    assert metrics.gamma_efficiency_at(1e-3)(y, _probs(p0), loose) == pytest.approx(0.7)
    # 10^-3 of 1000 hadrons is one event: not measurable with the default minimum of 10.
    assert math.isnan(metrics.gamma_efficiency_at(1e-3)(y, _probs(p0), {}))


def test_gamma_is_the_class_of_primary_gamma_when_the_metadata_say_so() -> None:
    y = np.array([0] * 30 + [1] * 50)  # class 0 = proton, class 1 = gamma
    meta = {"primary": np.array(["proton"] * 30 + ["gamma"] * 50)}
    assert metrics.signal_class(y, meta) == 1
    assert metrics.signal_class(y, {}) == 0
    p0 = np.r_[np.linspace(0.7, 0.9, 30), np.linspace(0.1, 0.3, 50)]  # perfectly separated
    # A perfect cut gives the reach sqrt(N_background / 10): 30 protons with gamma as signal ...
    assert metrics.q_factor(y, _probs(p0), meta) == pytest.approx(math.sqrt(3))
    # ... and 50 "background" events when class 0 (the protons) is taken as the signal.
    assert metrics.q_factor(y, _probs(p0), {}) == pytest.approx(math.sqrt(5))


def test_tied_scores_are_kept_or_dropped_together() -> None:
    thresholds, eff_s, eff_b = metrics.selection_curve(
        np.array([True, False, True, False]), np.array([0.5, 0.5, 0.9, 0.1])
    )
    assert thresholds.tolist() == [math.inf, 0.9, 0.5, 0.1]
    assert eff_s.tolist() == [0.0, 0.5, 1.0, 1.0]
    assert eff_b.tolist() == [0.0, 0.0, 0.5, 1.0]


def test_gamma_metrics_are_nan_with_a_single_class() -> None:
    y = np.zeros(5, dtype=int)
    assert math.isnan(metrics.q_factor(y, _probs(np.full(5, 0.5)), {}))
    assert math.isnan(metrics.gamma_efficiency_at(1e-2)(y, _probs(np.full(5, 0.5)), {}))


def test_energy_bins_are_half_decades_aligned_to_multiples_of_the_width() -> None:
    edges = energy_edges(np.array([10**2.6, 10**3.2, 10**4.99]))
    assert edges.tolist() == [2.5, 3.0, 3.5, 4.0, 4.5, 5.0]


def test_binned_table_counts_events_and_scores_each_bin(all_metrics: dict) -> None:
    y = np.array([0, 1, 0, 1, 0, 0])
    p0 = np.array([0.9, 0.2, 0.8, 0.7, 0.6, 0.4])
    energy = np.array([200.0, 250.0, 2000.0, 2500.0, 20000.0, 30000.0])
    rows = binned_table(y, _probs(p0), {"energy": energy}, all_metrics)
    assert [(r["log10_e_min"], r["events"], r["per_class"]) for r in rows] == [
        (2.0, 2, [1, 1]),
        (3.0, 2, [1, 1]),
        (4.0, 2, [2, 0]),
    ]
    assert rows[0]["accuracy"] == 1.0 and rows[1]["accuracy"] == 0.5
    assert rows[2]["roc_auc"] is None and rows[2]["q_factor"] is None  # one class: undefined
    assert binned_table(y, _probs(p0), {}, all_metrics) == []  # no energy, no table


def test_artifacts_are_json_and_png_files(tmp_path: Path, all_metrics: dict) -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    p0 = np.clip(np.where(y == 0, 0.7, 0.3) + rng.normal(0, 0.2, 300), 0, 1)
    meta = {"energy": 10 ** rng.uniform(2.5, 4.5, 300)}
    payload = write_evaluation_artifacts(
        tmp_path, y, _probs(p0), meta, ("gamma", "proton"), all_metrics
    )
    stored = json.loads((tmp_path / "binned.json").read_text())
    rows = payload["bins"]
    assert stored["variable"] == "log10(E0/GeV)" and stored["bins"] == rows
    assert sum(r["events"] for r in rows) == 300
    for name in ("confusion.png", "roc.png", "q.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == PNG


def test_a_single_class_sample_gets_only_the_confusion_matrix(
    tmp_path: Path, all_metrics: dict
) -> None:
    y = np.zeros(20, dtype=int)
    write_evaluation_artifacts(tmp_path, y, _probs(np.full(20, 0.6)), {}, ("a", "b"), all_metrics)
    # Every figure is written as PNG and PDF (issue 16): the PDF twin is the only addition.
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "confusion.pdf",
        "confusion.png",
    ]
    assert json.loads((tmp_path / "binned.json").read_text())["bins"] == []
