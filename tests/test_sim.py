"""Behaviour of the footprint simulator: reproducible, well-shaped, and physics-shaped."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from wcd_hpc.sim import FootprintConfig, simulate


def _narrow(log10_e: float) -> FootprintConfig:
    """A nearly mono-energetic config, so comparisons are not swamped by the E^-2 spread."""
    return FootprintConfig(energy_range_gev=(10**log10_e, 10 ** (log10_e + 0.05)))


def test_same_seed_gives_identical_output_and_other_seed_differs() -> None:
    a, ia = simulate(["gamma", "proton"], 300, seed=7)  # > one internal chunk of events
    b, ib = simulate(["gamma", "proton"], 300, seed=7)
    c, _ = simulate(["gamma", "proton"], 300, seed=8)
    assert np.array_equal(a, b)
    for key in ia:
        assert np.array_equal(ia[key], ib[key]), key
    assert not np.array_equal(a, c)


def test_shapes_dtypes_columns_and_even_class_split() -> None:
    data, info = simulate(["gamma", "proton", "iron"], 301, seed=1, grid=40)
    assert data.shape == (301, 40, 40)
    assert data.dtype == np.float32
    assert np.all(data >= 0)
    for col in ("ID_shower", "E0", "theta0", "Nmuons", "Y_class", "primary"):
        assert info[col].shape == (301,), col
    assert sorted(np.bincount(info["Y_class"].astype(int)).tolist()) == [100, 100, 101]
    names = np.array(["gamma", "proton", "iron"])
    assert np.array_equal(names[info["Y_class"].astype(int)], info["primary"])
    assert not np.array_equal(info["Y_class"][:100], np.sort(info["Y_class"][:100]))  # shuffled


def test_sampled_ranges_follow_the_configuration() -> None:
    _, info = simulate(["gamma", "proton"], 1000, seed=3)
    assert info["E0"].min() >= 10**2.5 and info["E0"].max() <= 10**4.5
    assert np.median(info["E0"]) < 10**3.2  # E^-2: most events near the threshold
    assert info["theta0"].min() >= 0 and info["theta0"].max() <= 30.0
    assert np.abs(info["core_x"]).max() <= 40 and np.abs(info["core_y"]).max() <= 40


def test_iron_has_about_1_5_times_proton_muons_and_gamma_is_muon_poor() -> None:
    _, info = simulate(["gamma", "proton", "iron"], 900, seed=2, config=_narrow(3.5))
    mu = {p: info["Nmuons"][info["primary"] == p].mean() for p in ("gamma", "proton", "iron")}
    assert 1.4 < mu["iron"] / mu["proton"] < 2.0
    assert mu["gamma"] / mu["proton"] < 0.1
    assert mu["proton"] > 5  # enough muons reach the tanks to be a handle at all


def test_hadronic_showers_are_older_than_gamma_showers() -> None:
    _, info = simulate(["gamma", "proton"], 400, seed=4, config=_narrow(3.5))
    age = {p: info["age"][info["primary"] == p].mean() for p in ("gamma", "proton")}
    assert age["proton"] > age["gamma"]
    assert 0.9 < age["gamma"] < 1.5


def test_total_signal_grows_with_primary_energy() -> None:
    low, _ = simulate(["gamma"], 100, seed=5, config=_narrow(3.0))
    high, _ = simulate(["gamma"], 100, seed=5, config=_narrow(4.0))
    assert high.sum(axis=(1, 2)).mean() > 5 * low.sum(axis=(1, 2)).mean()


def test_em_signal_falls_with_distance_from_the_core() -> None:
    data, info = simulate(["gamma"], 100, seed=6, config=_narrow(3.8))
    centres = -158.0 + 4.0 * np.arange(80)
    dx = centres[None, None, :] - info["core_x"][:, None, None]
    dy = centres[None, :, None] - info["core_y"][:, None, None]
    r = np.hypot(dx, dy)
    rings = [(0, 12), (20, 40), (60, 100), (100, 140)]
    means = [data[(r >= lo) & (r < hi)].mean() for lo, hi in rings]
    assert all(a > b for a, b in itertools.pairwise(means)), means


def test_unknown_primary_is_rejected() -> None:
    with pytest.raises(ValueError, match="primaries"):
        simulate(["gamma", "helium"], 10, seed=0)
