"""Seeded, vectorised simulator of multi-PMT WCD station traces for muon tagging.

The task (González et al. 2021, Neural Comput. Appl., doi 10.1007/s00521-021-06730-z; Conceição
et al. 2021, EPJ C 81, 542): given the PMT traces of one tank, does the signal contain a muon or
only electromagnetic (EM) particles? A muon crosses the whole tank (≈ 1 VEM, vertical
equivalent muon, times its track length) and lights the PMTs near its track more than the others;
EM particles (e±, γ of ~10 MeV) deposit small, strongly fluctuating amounts near the top, so their
light is diffuse and their arrival times spread with the shower front. Order of magnitude is what
matters; each number says where it comes from.

Per event, half of them (``muon_fraction``) with 1 + Poisson(0.2) muons:

* EM particles: Poisson(λ) with λ log-uniform in 0.3–30 (a station from far to near the core;
  EM-only events are conditioned on at least one particle), each depositing an exponential amount
  of mean 0.12 VEM; they arrive with the shower front, ``t0 + 3 ns + Exp(10 ns)``.
* Muons: zenith with cos²θ uniform up to 45°, track length ``1/cos θ`` VEM (capped at 1.6, the
  tank's diagonal), arrival ``t0 + N(0, 2 ns)``; they lead the EM front.
* Light: ``pe_per_vem_pmt`` = 40 photoelectrons per PMT per VEM on average (a 4 × 8" PMT tank
  sees ≈ 100–200 pe per VEM in total), shared over 4 PMTs at the bottom corners: a diffuse part
  shared evenly and a direct part ∝ 1/(d² + h²) to the particle's entry point. Direct light (60 %
  for muons, 15 % for EM) arrives promptly (Exp(2 ns)); diffuse light decays exponentially with
  the tank's time constant τ = 35 ns (Tyvek-lined water tanks: 30–60 ns).
* Electronics: gamma-distributed single-pe charges (σ/μ = 0.4), a single-pe pulse
  ``(t/τp) exp(1 − t/τp)`` with τp = 3 ns, dark counts (2 kHz per PMT), Gaussian baseline noise
  (0.3 pe per sample) and saturation at 150 pe per sample; sampling 2 ns over 200 ns.

Traces are in photoelectrons per sample, shape (n_pmt, n_samples).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wcd_hpc.sim.h5io import write_events

__all__ = ["CLASS_NAMES", "TRACES_VERSION", "TraceConfig", "iter_traces", "write_traces"]

#: Bumped whenever the physics changes, so cached data sets keyed by it are regenerated.
TRACES_VERSION = 1
#: Y_class 0: electromagnetic particles only; 1: at least one muon.
CLASS_NAMES = ("em", "muon")
_CHUNK = 512  # events per vectorised block; fixed so that output never depends on it


@dataclass(frozen=True)
class TraceConfig:
    """Tank, PMT and electronics settings; defaults describe a compact 4-PMT single-layer WCD."""

    n_pmt: int = 4
    dt_ns: float = 2.0
    window_ns: float = 200.0
    t0_ns: float = 30.0  # where the first particles arrive in the window (pre-trigger)
    muon_fraction: float = 0.5
    em_rate_range: tuple[float, float] = (0.3, 30.0)
    em_vem: float = 0.12
    max_zenith_deg: float = 45.0
    pe_per_vem_pmt: float = 40.0
    tank_radius_m: float = 1.9
    tank_height_m: float = 1.7
    direct_fraction_mu: float = 0.6
    direct_fraction_em: float = 0.15
    decay_ns: float = 35.0
    spe_sigma: float = 0.4
    pulse_ns: float = 3.0
    dark_rate_hz: float = 2e3
    noise_pe: float = 0.3
    saturation_pe: float = 150.0

    @property
    def n_samples(self) -> int:
        return round(self.window_ns / self.dt_ns)


def _pmt_positions(cfg: TraceConfig) -> np.ndarray:
    """PMTs at half radius on the bottom, evenly in azimuth: (n_pmt, 2) in metres."""
    ang = 2.0 * math.pi * (np.arange(cfg.n_pmt) + 0.5) / cfg.n_pmt
    return 0.5 * cfg.tank_radius_m * np.stack([np.cos(ang), np.sin(ang)], axis=1)


def _pulse(cfg: TraceConfig) -> np.ndarray:
    """Single-pe pulse sampled at ``dt``, normalised to unit area in samples (charge kept)."""
    t = (np.arange(max(2, math.ceil(8 * cfg.pulse_ns / cfg.dt_ns))) + 0.5) * cfg.dt_ns
    h = (t / cfg.pulse_ns) * np.exp(1.0 - t / cfg.pulse_ns)
    return np.asarray(h / h.sum())


def _particles(
    rng: np.random.Generator, n: int, cfg: TraceConfig
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-event truth and a flat particle list (event index, is_muon, VEM, time, entry x/y)."""
    label = (rng.random(n) < cfg.muon_fraction).astype(np.int64)
    n_mu = np.where(label == 1, 1 + rng.poisson(0.2, n), 0)
    lo, hi = cfg.em_rate_range
    lam = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
    n_em = rng.poisson(lam)
    for _ in range(30):  # zero-truncated Poisson for EM-only events: resample the empty ones
        empty = (label == 0) & (n_em == 0)
        if not empty.any():
            break
        n_em[empty] = rng.poisson(lam[empty])
    n_em[(label == 0) & (n_em == 0)] = 1

    ev_mu = np.repeat(np.arange(n), n_mu)
    ev_em = np.repeat(np.arange(n), n_em)
    cos2_min = math.cos(math.radians(cfg.max_zenith_deg)) ** 2
    cos_mu = np.sqrt(rng.uniform(cos2_min, 1.0, ev_mu.size))
    vem_mu = np.minimum(1.0 / cos_mu, 1.6)
    vem_em = rng.exponential(cfg.em_vem, ev_em.size)
    t_mu = cfg.t0_ns + 2.0 * rng.standard_normal(ev_mu.size)
    t_em = cfg.t0_ns + 3.0 + rng.exponential(10.0, ev_em.size)
    m = ev_mu.size + ev_em.size
    radius = cfg.tank_radius_m * np.sqrt(rng.random(m))
    phi = rng.uniform(0.0, 2.0 * math.pi, m)
    flat = {
        "event": np.concatenate([ev_mu, ev_em]),
        "muon": np.concatenate([np.ones(ev_mu.size, bool), np.zeros(ev_em.size, bool)]),
        "vem": np.concatenate([vem_mu, vem_em]),
        "time": np.concatenate([t_mu, t_em]),
        "x": radius * np.cos(phi),
        "y": radius * np.sin(phi),
    }
    s_mu = np.bincount(ev_mu, vem_mu, minlength=n)
    s_em = np.bincount(ev_em, vem_em, minlength=n)
    theta = np.zeros(n)
    first = np.unique(ev_mu, return_index=True)
    theta[first[0]] = np.degrees(np.arccos(cos_mu[first[1]]))
    truth = {"Y_class": label, "Nmuons": n_mu, "Nem": n_em, "S_mu": s_mu, "S_em": s_em}
    truth["S_total"] = s_mu + s_em
    truth["theta_mu (deg)"] = theta
    return label, {**flat, **{f"truth_{k}": v for k, v in truth.items()}}


def _chunk(
    rng: np.random.Generator, n: int, cfg: TraceConfig
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Traces (n, n_pmt, n_samples) float32 and the truth columns for one block of events."""
    _, p = _particles(rng, n, cfg)
    n_pmt, n_s = cfg.n_pmt, cfg.n_samples
    pmts = _pmt_positions(cfg)
    d2 = (p["x"][:, None] - pmts[None, :, 0]) ** 2 + (p["y"][:, None] - pmts[None, :, 1]) ** 2
    direct = 1.0 / (d2 + cfg.tank_height_m**2 / 4.0)
    direct /= direct.sum(axis=1, keepdims=True)
    f_dir = np.where(p["muon"], cfg.direct_fraction_mu, cfg.direct_fraction_em)[:, None]
    share = n_pmt * ((1.0 - f_dir) / n_pmt + f_dir * direct)  # mean 1 per PMT
    mean_pe = p["vem"][:, None] * cfg.pe_per_vem_pmt * share  # (particles, n_pmt)
    pe = rng.poisson(mean_pe).ravel()

    owner = np.repeat(np.arange(pe.size), pe)  # one entry per photoelectron
    part, pmt = owner // n_pmt, owner % n_pmt
    is_direct = rng.random(owner.size) < f_dir[part, 0]
    delay = np.where(is_direct, rng.exponential(2.0, owner.size), 0.0)
    delay += np.where(is_direct, 0.0, rng.exponential(cfg.decay_ns, owner.size))
    t = p["time"][part] + delay + 1.5 * rng.standard_normal(owner.size)  # PMT transit spread
    ev_pe, pmt_pe = p["event"][part], pmt

    n_dark = rng.poisson(cfg.dark_rate_hz * cfg.window_ns * 1e-9, n * n_pmt)
    dark_owner = np.repeat(np.arange(n * n_pmt), n_dark)
    ev_all = np.concatenate([ev_pe, dark_owner // n_pmt])
    pmt_all = np.concatenate([pmt_pe, dark_owner % n_pmt])
    t_all = np.concatenate([t, rng.uniform(0.0, cfg.window_ns, dark_owner.size)])
    q = rng.gamma(1.0 / cfg.spe_sigma**2, cfg.spe_sigma**2, t_all.size)
    b = np.floor(t_all / cfg.dt_ns).astype(np.int64)
    keep = (b >= 0) & (b < n_s)
    flat = (ev_all[keep] * n_pmt + pmt_all[keep]) * n_s + b[keep]
    hist = np.bincount(flat, q[keep], minlength=n * n_pmt * n_s).astype(np.float64)
    hist = hist.reshape(n, n_pmt, n_s)

    trace = np.zeros_like(hist)
    for k, h in enumerate(_pulse(cfg)):
        trace[..., k:] += h * hist[..., : n_s - k]
    trace += cfg.noise_pe * rng.standard_normal(trace.shape)
    np.clip(trace, None, cfg.saturation_pe, out=trace)

    info = {k[6:]: v.astype(np.float64) for k, v in p.items() if k.startswith("truth_")}
    info["npe"] = np.bincount(ev_pe, minlength=n).astype(np.float64)
    return trace.astype(np.float32), info


def iter_traces(
    events: int, seed: int, *, config: TraceConfig | None = None
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Yield ``(traces, info)`` blocks of at most 512 events, each from its own seed.

    ``info`` has ``ID_event, Y_class`` (0 EM only, 1 muon; float64 like the footprint files),
    ``Nmuons, Nem`` (particle counts), ``S_mu, S_em, S_total`` (deposits, VEM), ``theta_mu (deg)``
    (first muon's zenith, 0 without muon) and ``npe`` (photoelectrons over all PMTs).
    """
    cfg = config or TraceConfig()
    if events < 0:
        raise ValueError(f"events must be >= 0, got {events}")
    if cfg.n_pmt < 1 or cfg.n_samples < 8:
        raise ValueError(f"need n_pmt >= 1 and >= 8 samples, got {cfg.n_pmt}, {cfg.n_samples}")
    blocks = -(-events // _CHUNK)
    for i, seq in enumerate(np.random.SeedSequence(seed).spawn(max(blocks, 1))[:blocks]):
        lo, hi = i * _CHUNK, min(events, (i + 1) * _CHUNK)
        data, info = _chunk(np.random.default_rng(seq), hi - lo, cfg)
        yield data, {"ID_event": np.arange(lo, hi, dtype=np.float64), **info}


def write_traces(
    path: str | Path,
    events: int,
    seed: int,
    *,
    config: TraceConfig | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> Path:
    """Simulate straight into an HDF5 file: ``data`` (N, n_pmt, n_samples) plus ``info``."""
    cfg = config or TraceConfig()
    attrs = {
        "simulator": "wcd_hpc.sim.traces",
        "sim_version": TRACES_VERSION,
        "class_names": list(CLASS_NAMES),
        "seed": seed,
        "dt_ns": cfg.dt_ns,
        "n_pmt": cfg.n_pmt,
    }
    return write_events(
        path,
        iter_traces(events, seed, config=cfg),
        events=events,
        sample_shape=(cfg.n_pmt, cfg.n_samples),
        attrs=attrs,
        progress=progress,
    )
