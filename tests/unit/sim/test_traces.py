"""Behaviour of the station-trace simulator: reproducible, shaped, muons that look like muons."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from wcd_hpc.sim.traces import TraceConfig, iter_traces, write_traces


def _all(events: int, seed: int, cfg: TraceConfig | None = None) -> tuple[np.ndarray, dict]:
    blocks = list(iter_traces(events, seed, config=cfg))
    data = np.concatenate([b[0] for b in blocks])
    return data, {k: np.concatenate([b[1][k] for b in blocks]) for k in blocks[0][1]}


def test_shapes_labels_and_determinism() -> None:
    a, ia = _all(700, 3)  # more than one internal block
    b, _ = _all(700, 3)
    c, _ = _all(700, 4)
    assert a.shape == (700, 4, 100) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert 0.4 < ia["Y_class"].mean() < 0.6
    assert np.array_equal(ia["Y_class"] == 1, ia["Nmuons"] > 0)
    assert np.all(ia["Nem"][ia["Y_class"] == 0] >= 1)  # an EM-only event is never empty
    assert np.array_equal(ia["ID_event"], np.arange(700))


def test_a_muon_gives_tens_of_photoelectrons_per_pmt_and_lights_them_unevenly() -> None:
    data, info = _all(3000, 5)
    lone_mu = (info["Nmuons"] == 1) & (info["Nem"] == 0)
    per_pmt = data[lone_mu].sum(axis=2)  # pe per PMT (pulse shape keeps the charge)
    assert 10 < np.median(per_pmt) < 100
    # Direct light: the brightest PMT sees clearly more than the dimmest for a lone muon.
    assert np.median(per_pmt.max(axis=1) / per_pmt.min(axis=1).clip(min=1)) > 1.5
    # EM-only events with about one muon's worth of signal spread their light more evenly.
    em = (info["Y_class"] == 0) & (info["S_em"] > 0.8) & (info["S_em"] < 1.5)
    em_pmt = data[em].sum(axis=2)
    em_ratio = np.median(em_pmt.max(axis=1) / em_pmt.min(axis=1).clip(min=1))
    mu_ratio = np.median(per_pmt.max(axis=1) / per_pmt.min(axis=1).clip(min=1))
    assert mu_ratio > em_ratio


def test_light_decays_with_the_tank_constant_and_muons_arrive_first() -> None:
    cfg = TraceConfig(noise_pe=0.0, dark_rate_hz=0.0)
    data, info = _all(2000, 6, cfg)
    t = (np.arange(cfg.n_samples) + 0.5) * cfg.dt_ns
    total = data.sum(axis=1)  # over PMTs
    mean_t = (total * t).sum(axis=1) / total.sum(axis=1).clip(min=1e-9)
    mu = (info["Nmuons"] >= 1) & (info["Nem"] == 0)
    em = info["Y_class"] == 0
    assert np.median(mean_t[mu]) < np.median(mean_t[em])
    # Late tail of lone muons: log-slope of the summed trace ≈ −1/τ (τ = 35 ns).
    tail = total[mu].sum(axis=0)
    late = (t > cfg.t0_ns + 30) & (t < cfg.t0_ns + 120)
    slope = np.polyfit(t[late], np.log(tail[late]), 1)[0]
    assert -1 / 25 < slope < -1 / 50


def test_saturation_clips_the_brightest_samples() -> None:
    cfg = TraceConfig(saturation_pe=5.0, em_rate_range=(20.0, 30.0))
    data, _ = _all(200, 7, cfg)
    assert data.max() == 5.0
    assert (data == 5.0).any(axis=(1, 2)).mean() > 0.5


def test_written_file_has_the_layout_and_pandas_info(tmp_path: Path) -> None:
    path = write_traces(tmp_path / "t.h5", 300, 8, config=TraceConfig(n_pmt=3, dt_ns=4.0))
    with h5py.File(path, "r") as fh:
        assert fh["data"].shape == (300, 3, 50) and fh["data"].dtype == np.float32
        assert list(fh["data"].attrs["class_names"]) == ["em", "muon"]
    info = pd.read_hdf(path, "info")
    assert {"ID_event", "Y_class", "Nmuons", "Nem", "S_mu", "S_em", "npe"} <= set(info.columns)
    assert info["Y_class"].dtype == np.float64 and len(info) == 300
