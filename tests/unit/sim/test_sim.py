"""Behaviour of the footprint simulator: reproducible, well-shaped, and physics-shaped.

The physics checks are the ones SCIENCE.md asks for: Heitler–Matthews muon ratios, signal that
grows like E0, an NKG lateral profile, spectral weights that reweight to the physical spectrum.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from wcd_hpc.sim import FootprintConfig, simulate, spectral_weight, write_footprints
from wcd_hpc.sim import footprints as fp


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
    for col in ("ID_shower", "E0 (GeV)", "theta0 (deg)", "Nmuons", "Y_class", "primary", "weight"):
        assert info[col].shape == (301,), col
    assert sorted(np.bincount(info["Y_class"].astype(int)).tolist()) == [100, 100, 101]
    names = np.array(["gamma", "proton", "iron"])
    assert np.array_equal(names[info["Y_class"].astype(int)], info["primary"])
    assert not np.array_equal(info["Y_class"][:100], np.sort(info["Y_class"][:100]))  # shuffled


def test_sampled_ranges_follow_the_configuration() -> None:
    _, info = simulate(["gamma", "proton"], 1000, seed=3)
    assert info["E0 (GeV)"].min() >= 10**2.5 and info["E0 (GeV)"].max() <= 10**4.5
    assert np.median(info["E0 (GeV)"]) < 10**3.2  # E^-2: most events near the threshold
    assert info["theta0 (deg)"].min() >= 0 and info["theta0 (deg)"].max() <= 30.0
    assert np.abs(info["core_x (m)"]).max() <= 40 and np.abs(info["core_y (m)"]).max() <= 40


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
    dx = centres[None, None, :] - info["core_x (m)"][:, None, None]
    dy = centres[None, :, None] - info["core_y (m)"][:, None, None]
    r = np.hypot(dx, dy)
    rings = [(0, 12), (20, 40), (60, 100), (100, 140)]
    means = [data[(r >= lo) & (r < hi)].mean() for lo, hi in rings]
    assert all(a > b for a, b in itertools.pairwise(means)), means


def test_unknown_primary_is_rejected() -> None:
    with pytest.raises(ValueError, match="primaries"):
        simulate(["gamma", "helium"], 10, seed=0)


def test_total_signal_is_roughly_proportional_to_primary_energy() -> None:
    """Log-log slope of the mean footprint signal between 10^3.5 and 10^4.5 GeV near 1."""
    for primary in ("gamma", "proton"):
        lo, _ = simulate([primary], 150, seed=11, config=_narrow(3.5))
        hi, _ = simulate([primary], 150, seed=11, config=_narrow(4.5))
        slope = math.log10(hi.sum(axis=(1, 2)).mean() / lo.sum(axis=(1, 2)).mean())
        assert 0.8 < slope < 1.4, (primary, slope)


def test_em_density_follows_the_nkg_lateral_profile() -> None:
    """Ring-averaged signal of vertical gamma showers against NKG with each event's N_e and age."""
    cfg = FootprintConfig(
        energy_range_gev=(10**4.0, 10**4.05), max_zenith_deg=0.5, noise_vem=0.0, threshold_vem=0.0
    )
    data, info = simulate(["gamma"], 150, seed=12, config=cfg)
    centres = -158.0 + 4.0 * np.arange(80)
    r = np.hypot(
        centres[None, None, :] - info["core_x (m)"][:, None, None],
        centres[None, :, None] - info["core_y (m)"][:, None, None],
    ).clip(min=2.0)
    s = info["age"][:, None, None]
    x = r / cfg.moliere_m
    norm = info["Ne"] * fp._nkg_c(info["age"]) / cfg.moliere_m**2
    rho = norm[:, None, None] * x ** (s - 2.0) * (1.0 + x) ** (s - 4.5)
    expected = rho * cfg.tank_area_m2 * cfg.em_vem  # VEM per tank; muons are ~0 for gammas
    for lo, hi in [(8, 16), (16, 32), (32, 64), (64, 128)]:
        ring = (r >= lo) & (r < hi)
        ratio = data[ring].mean() / expected[ring].mean()
        assert 0.8 < ratio < 1.25, (lo, hi, ratio)


def test_spectral_weights_reweight_to_the_physical_spectrum() -> None:
    _, info = simulate(["gamma", "proton"], 4000, seed=13, grid=4)  # weights need no tanks
    energy, w = info["E0 (GeV)"], info["weight"]
    assert np.array_equal(w, spectral_weight(energy, info["primary"]))
    for primary, index in (("gamma", 2.6), ("proton", 2.7)):
        sel = info["primary"] == primary
        assert w[sel].mean() == pytest.approx(1.0, abs=0.08)
        # Weighted mean of log E equals that of E^-index on the simulated range.
        grid = np.geomspace(10**2.5, 10**4.5, 20001)
        pdf = grid**-index
        target = np.trapezoid(np.log10(grid) * pdf, grid) / np.trapezoid(pdf, grid)
        got = np.average(np.log10(energy[sel]), weights=w[sel])
        assert got == pytest.approx(target, abs=0.03)
    proton = info["primary"] == "proton"
    assert np.all(np.diff(w[proton][np.argsort(energy[proton])]) < 0)  # steeper: falls with E


def test_iron_is_older_than_proton_but_keeps_electrons_at_the_ground() -> None:
    _, info = simulate(["proton", "iron"], 400, seed=14, config=_narrow(4.0))
    age = {p: info["age"][info["primary"] == p] for p in ("proton", "iron")}
    assert age["iron"].mean() > age["proton"].mean() + 0.1
    assert np.mean(age["iron"] >= 1.99) < 0.05  # not piled up at the clamp (version 1 was)
    assert np.median(info["Ne"][info["primary"] == "iron"]) > 100


def _content(path: Path) -> tuple[bytes, pd.DataFrame]:
    with h5py.File(path, "r") as fh:
        return fh["data"][:].tobytes(), pd.read_hdf(path, "info")


def test_same_seed_writes_an_identical_file_that_pandas_opens(tmp_path: Path) -> None:
    """Identical content (PyTables stamps creation times into the info table's nodes)."""
    a = write_footprints(tmp_path / "a.h5", ["gamma", "proton"], 300, seed=5, grid=40)
    b = write_footprints(tmp_path / "b.h5", ["gamma", "proton"], 300, seed=5, grid=40)
    c = write_footprints(tmp_path / "c.h5", ["gamma", "proton"], 300, seed=6, grid=40)
    (data_a, info_a), (data_b, info_b), (data_c, _) = map(_content, (a, b, c))
    assert data_a == data_b and data_a != data_c
    pd.testing.assert_frame_equal(info_a, info_b)
    info = pd.read_hdf(a, "info")
    assert list(info.columns[:5]) == ["ID_shower", "E0 (GeV)", "theta0 (deg)", "Nmuons", "Y_class"]
    assert all(info[c].dtype == np.float64 for c in info.columns[:5])
    assert {"primary", "weight"} <= set(info.columns) and len(info) == 300
    mem, mem_info = simulate(["gamma", "proton"], 300, seed=5, grid=40)
    with h5py.File(a, "r") as fh:
        assert fh["data"].shape == (300, 40, 40) and fh["data"].dtype == np.float32
        assert np.array_equal(fh["data"][:], mem)  # chunked writing changes nothing
        assert list(fh["data"].attrs["class_names"]) == ["gamma", "proton"]
    assert np.array_equal(info["E0 (GeV)"].to_numpy(), mem_info["E0 (GeV)"])
    assert not list(tmp_path.glob("*.tmp"))
