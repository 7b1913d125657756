"""Seeded, vectorised simulator of air-shower footprints on a square WCD array.

The predecessor trained on CORSIKA footprints that are not public, so the toolkit needs data that
is *shaped like physics* — particle densities that fall with core distance, muon numbers that grow
with energy and mass, old and clumpy hadronic showers — for tests, demos and the quickstart sweep.
Order of magnitude is what matters here; every number below says where it comes from so that a
later, deeper simulator can replace it piece by piece.

Model, per event:

* Energy from a power law ``E^-index`` (default ``E^-2`` over 10^2.5–10^4.5 GeV, so high energies
  are well populated) and a spectral ``weight`` per event that reweights to the physical spectrum:
  ``E^-2.7`` for cosmic rays, ``E^-2.6`` for Crab-like gamma rays (weights average to 1 per
  primary, so weighted and unweighted counts agree in total); zenith with an
  isotropic flux through a flat array (``cos^2 θ`` uniform, θ ≤ 30°); azimuth uniform; core
  uniform within ±40 m.
* Depth of maximum: gamma rays from Heitler, ``X_max = X0 ln(E0/ξc)`` (X0 = 37 g/cm²,
  ξc = 85 MeV) plus a conversion-point fluctuation; hadrons from Heitler–Matthews with the
  model, ``X_max^p = λ_p ln2 + X0 ln(E0 / (3 N_ch ξc))`` with N_ch = 10 (Matthews 2005,
  Astropart. Phys. 22, 387), fluctuating with the first interaction point (exponential in the
  primary's interaction length). Nuclei sit ``ΔX · ln A / ln 56`` higher with ΔX = 100 g/cm², the
  proton–iron separation of full simulations (Kampert & Unger 2012, Astropart. Phys. 35, 660);
  the bare superposition value X0 ln 56 ≈ 150 g/cm² overshoots it. (Version 1 also put iron's
  mean first interaction at λ_Fe = 13 instead of λ_p ln2 ≈ 62 g/cm²; together iron came out
  ~100 g/cm² too shallow and hit the age clamp at 1.9 with almost no electrons at the ground.)
* Electrons at the ground from Greisen's longitudinal profile,
  ``N_e = 0.31/√β0 · exp(t (1 − 1.5 ln s))``, age ``s = 3t/(t + 2β0)``, for the EM energy
  (hadrons: ``E0 − N_μ ξπ``, split over A sub-showers); lateral shape NKG with an effective
  Molière radius of 35 m (fitted radii are 30–40 m, smaller than the 130 m of ~5 km altitude).
* Muons: ``N_μ = A^(1−β) (E0/ξπ)^β``, ξπ = 20 GeV, β = 0.9 (Matthews 2005), so iron/proton ≈
  56^0.1 ≈ 1.5; gamma rays carry 4 % of a proton's muons; Greisen lateral shape
  ``ρ_μ ∝ r^−0.75 (1 + r/320 m)^−2.5`` (Greisen 1960, Ann. Rev. Nucl. Sci. 10, 63).
* Hadronic showers are clumpy: a few sub-shower blobs off-axis take a share of the EM particles.
* One tank per cell: Poisson counts of EM particles (≈ 0.15 VEM each) and muons (≈ 1 VEM × track
  length), Gaussian PMT resolution, rare accidental muons from the uncorrelated background, and
  electronics noise (σ = 0.02 VEM) in every tank followed by zero suppression at 3σ, as a
  self-triggered array reads out: a few noise-only tanks per event, like real data.

Depths and distances are measured in the shower plane (``r² = (u cos θ)² + v²`` for ground
coordinates u along and v across the azimuth), which is the secant projection of the footprint.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wcd_hpc.sim.discriminants import tank_centres
from wcd_hpc.sim.h5io import write_events

__all__ = [
    "INFO_COLUMNS",
    "PRIMARIES",
    "SIM_VERSION",
    "FootprintConfig",
    "iter_footprints",
    "simulate",
    "spectral_weight",
    "write_footprints",
]

#: Bumped whenever the physics changes, so cached data sets keyed by it are regenerated.
SIM_VERSION = 2

#: Mass number of each supported primary (0 marks a photon).
PRIMARIES: dict[str, int] = {"gamma": 0, "proton": 1, "iron": 56}

X0 = 37.0  # radiation length in air, g/cm² (PDG)
XI_C = 0.085  # critical energy in air, GeV (Heitler model)
XI_PI = 20.0  # pion critical energy, GeV (Matthews 2005)
BETA_MU = 0.9  # Heitler–Matthews muon exponent
N_CH = 10  # charged multiplicity per hadronic interaction (Matthews 2005)
LAMBDA_INT = {"proton": 90.0, "iron": 13.0}  # interaction lengths in air, g/cm²
DX_MAX_FE = 100.0  # g/cm², X_max(proton) − X_max(iron) in full simulations
GAMMA_MUON_FRACTION = 0.04  # photo-produced muons: a few % of a proton shower's
R_GREISEN_MU = 320.0  # m, Greisen muon lateral scale
_CHUNK = 256  # events per vectorised block; fixed so that output never depends on it


@dataclass(frozen=True)
class FootprintConfig:
    """Detector and spectrum settings; defaults describe a SWGO-like array at 5200 m."""

    half_width_m: float = 160.0  # the grid spans −160…160 m whatever its size
    energy_range_gev: tuple[float, float] = (10**2.5, 10**4.5)
    spectral_index: float = 2.0
    max_zenith_deg: float = 30.0
    core_range_m: float = 40.0
    vertical_depth: float = 536.0  # g/cm² at 5200 m a.s.l.
    moliere_m: float = 35.0  # effective (fitted) Molière radius
    tank_area_m2: float = 10.0
    em_vem: float = 0.15  # mean signal of one EM particle, VEM
    em_vem_spread: float = 0.10  # its spread: EM deposits fluctuate a lot
    mu_vem_spread: float = 0.2  # relative spread of a muon's track length
    pmt_resolution: float = 0.1  # relative charge resolution at 1 VEM, scales as 1/√S
    accidental_muons: float = 2e-4  # background muons per tank per event window
    noise_vem: float = 0.02  # electronics noise per tank, VEM
    threshold_vem: float = 0.06  # zero suppression: 3 σ of the noise
    physical_index_gamma: float = 2.6  # Crab-like gamma-ray spectrum (HEGRA/H.E.S.S. ≈ 2.6)
    physical_index_cr: float = 2.7  # cosmic-ray spectrum below the knee


def _sample_energy(rng: np.random.Generator, n: int, cfg: FootprintConfig) -> np.ndarray:
    """Inverse-CDF sampling of ``E^-index``; index 1 is the logarithmic special case."""
    lo, hi = cfg.energy_range_gev
    u = rng.random(n)
    g = 1.0 - cfg.spectral_index
    if abs(g) < 1e-9:
        return np.asarray(lo * (hi / lo) ** u)
    return np.asarray((lo**g + u * (hi**g - lo**g)) ** (1.0 / g))


def _power_integral(lo: float, hi: float, index: float) -> float:
    """∫_lo^hi E^-index dE, with the logarithmic case for index 1."""
    g = 1.0 - index
    return math.log(hi / lo) if abs(g) < 1e-9 else (hi**g - lo**g) / g


def spectral_weight(
    energy: np.ndarray, primary: np.ndarray, cfg: FootprintConfig | None = None
) -> np.ndarray:
    """Weight that turns the sampled ``E^-index`` into the physical spectrum of each primary.

    ``w(E) = q(E) / p(E)`` with p the sampling density and q the physical one, both normalised on
    the simulated range, so the expected weight is exactly 1 for every primary.
    """
    cfg = cfg or FootprintConfig()
    lo, hi = cfg.energy_range_gev
    a = cfg.spectral_index
    out = np.empty(energy.shape, dtype=np.float64)
    for is_gamma, b in ((True, cfg.physical_index_gamma), (False, cfg.physical_index_cr)):
        sel = (primary == "gamma") == is_gamma
        norm = _power_integral(lo, hi, a) / _power_integral(lo, hi, b)
        out[sel] = norm * energy[sel] ** (a - b)
    return out


def _nkg_c(s: np.ndarray) -> np.ndarray:
    """NKG normalisation C(s) = Γ(4.5−s) / [2π Γ(s) Γ(4.5−2s)], so ∫2πr ρ dr = N_e."""
    lg = np.vectorize(math.lgamma, otypes=[np.float64])
    return np.asarray(np.exp(lg(4.5 - s) - lg(s) - lg(4.5 - 2.0 * s)) / (2.0 * math.pi))


def _muon_norm() -> float:
    """∫0^∞ 2πr · r^−0.75 (1+r/R)^−2.5 dr = 2π R^1.25 B(1.25, 1.25) (a Beta integral)."""
    log_beta = 2.0 * math.lgamma(1.25) - math.lgamma(2.5)
    return float(2.0 * math.pi * R_GREISEN_MU**1.25 * math.exp(log_beta))


def _event_parameters(
    rng: np.random.Generator, primary: np.ndarray, cfg: FootprintConfig
) -> dict[str, np.ndarray]:
    """Draw everything that is per event (not per tank): energy, geometry, N_e, age, N_μ."""
    n = primary.shape[0]
    energy = _sample_energy(rng, n, cfg)
    cos2_min = math.cos(math.radians(cfg.max_zenith_deg)) ** 2
    theta = np.arccos(np.sqrt(rng.uniform(cos2_min, 1.0, n)))
    phi = rng.uniform(0.0, 2.0 * math.pi, n)
    core = rng.uniform(-cfg.core_range_m, cfg.core_range_m, (n, 2))
    depth = cfg.vertical_depth / np.cos(theta)

    is_gamma = primary == "gamma"
    mass = np.array([max(PRIMARIES[p], 1) for p in primary], dtype=np.float64)
    n_mu_proton = (energy / XI_PI) ** BETA_MU
    n_mu = np.where(is_gamma, GAMMA_MUON_FRACTION, mass ** (1.0 - BETA_MU)) * n_mu_proton
    # Shower-to-shower muon fluctuations, mean-preserving, smaller for heavy nuclei (superposition).
    sig = np.where(mass > 1, 0.08, 0.2)
    n_mu = n_mu * np.exp(sig * rng.standard_normal(n) - 0.5 * sig**2)

    # EM energy: what the charged pions did not carry away (≥ 30 %, Matthews' EM fraction floor).
    e_em = np.where(is_gamma, energy, np.maximum(energy - n_mu * XI_PI, 0.3 * energy))
    n_sub = np.where(is_gamma, 1.0, mass)
    beta0 = np.log(np.maximum(e_em / n_sub / XI_C, 2.0))
    lam = np.array([LAMBDA_INT.get(p, 9.0 / 7.0 * X0) for p in primary])
    # First-interaction fluctuation around its mean; the mean depth is in the formulas below.
    first = rng.exponential(lam) - lam
    x_max = np.where(
        is_gamma,
        X0 * np.log(energy / XI_C) + first,
        LAMBDA_INT["proton"] * math.log(2.0)
        + first
        + X0 * np.log(np.maximum(energy / (3 * N_CH * XI_C), 1.0))
        - DX_MAX_FE * np.log(mass) / math.log(56.0),
    )
    t = np.maximum((depth - x_max) / X0 + beta0, 0.5)
    age = np.clip(3.0 * t / (t + 2.0 * beta0), 0.6, 2.0)  # NKG needs s < 2.25
    n_e = n_sub * 0.31 / np.sqrt(beta0) * np.exp(t * (1.0 - 1.5 * np.log(age)))
    return {
        "energy": energy,
        "theta": theta,
        "phi": phi,
        "core": core,
        "x_max": x_max,
        "age": age,
        "n_e": n_e,
        "n_mu": n_mu,
    }


def _blobs(
    rng: np.random.Generator, primary: np.ndarray, n_e: np.ndarray, axis: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sub-shower blobs of hadronic showers: amplitude, centre (x, y) and width, max 6 per event.

    Secondary hadrons start EM sub-showers off the axis; they make hadronic footprints clumpy and
    uneven around the core, a classic gamma/hadron handle. Gamma showers get none.
    """
    n, k = primary.shape[0], 6
    mean = np.where(primary == "proton", 3.0, np.where(primary == "iron", 2.0, 0.0))
    count = np.minimum(rng.poisson(mean), k)
    active = np.arange(k)[None, :] < count[:, None]
    share = rng.uniform(0.03, 0.12, (n, k)) * active
    amp = share * n_e[:, None]
    dist = 10.0 + rng.exponential(30.0, (n, k))
    ang = rng.uniform(0.0, 2.0 * math.pi, (n, k))
    centre = axis[:, None, :] + np.stack([dist * np.cos(ang), dist * np.sin(ang)], axis=-1)
    width = rng.uniform(4.0, 10.0, (n, k))
    return amp, centre, width, share.sum(axis=1)


def _chunk(
    rng: np.random.Generator,
    primary: np.ndarray,
    ev: dict[str, np.ndarray],
    centres: np.ndarray,
    cfg: FootprintConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Tank signals (VEM) and detected muon counts for one block of events."""
    n, g = primary.shape[0], centres.shape[0]
    theta, phi, core = ev["theta"], ev["phi"], ev["core"]
    cos_t = np.cos(theta)[:, None, None]
    dx = centres[None, None, :] - core[:, 0, None, None]  # (n, 1, g): columns are x
    dy = centres[None, :, None] - core[:, 1, None, None]  # (n, g, 1): rows are y
    cphi, sphi = np.cos(phi)[:, None, None], np.sin(phi)[:, None, None]
    u = dx * cphi + dy * sphi
    v = dy * cphi - dx * sphi
    r = np.sqrt((u * cos_t) ** 2 + v**2).clip(min=2.0)  # ~tank radius: no r→0 divergence

    amp, bcentre, width, blob_share = _blobs(rng, primary, ev["n_e"], core)
    s = ev["age"][:, None, None]
    rm = cfg.moliere_m
    x = r / rm
    log_norm = np.log(ev["n_e"] * (1.0 - blob_share) * _nkg_c(ev["age"]) / rm**2)
    log_rho_em = log_norm[:, None, None] + (s - 2.0) * np.log(x) + (s - 4.5) * np.log1p(x)
    rho_em = np.exp(log_rho_em)
    gx = np.exp(-0.5 * ((centres[None, None, :] - bcentre[..., 0, None]) / width[..., None]) ** 2)
    gy = np.exp(-0.5 * ((centres[None, None, :] - bcentre[..., 1, None]) / width[..., None]) ** 2)
    rho_em += np.einsum("nk,nky,nkx->nyx", amp / (2.0 * math.pi * width**2), gy, gx)

    mu_scale = (ev["n_mu"] / _muon_norm())[:, None, None]
    rho_mu = mu_scale * r**-0.75 * (1.0 + r / R_GREISEN_MU) ** -2.5

    # A horizontal tank sees the shower-plane density times cos θ.
    area = cfg.tank_area_m2 * cos_t
    k_em = rng.poisson(rho_em * area).astype(np.float64)
    k_mu = rng.poisson(rho_mu * area).astype(np.float64)
    k_acc = rng.poisson(cfg.accidental_muons, k_mu.shape).astype(np.float64)

    # Sums of k deposits, Gaussian approximation: k·mean + √k·spread·z (exact in mean and variance).
    z = rng.standard_normal((3, *k_em.shape))
    sec = 1.0 / cos_t
    sig = k_em * cfg.em_vem + np.sqrt(k_em) * cfg.em_vem_spread * z[0]
    sig += k_mu * sec + np.sqrt(k_mu) * cfg.mu_vem_spread * sec * z[1]
    sig += k_acc  # background muons arrive at all angles; ≈ 1 VEM each
    sig = np.clip(sig, 0.0, None)
    sig += cfg.pmt_resolution * np.sqrt(sig) * z[2]
    sig = np.where(k_em + k_mu + k_acc > 0, np.clip(sig, 0.0, None), 0.0)
    sig += cfg.noise_vem * rng.standard_normal(sig.shape)
    sig = np.where(sig >= cfg.threshold_vem, sig, 0.0)
    return sig.astype(np.float32), k_mu.reshape(n, g * g).sum(axis=1)


INFO_COLUMNS = ("ID_shower", "E0 (GeV)", "theta0 (deg)", "Nmuons", "Y_class")


def _check_args(primaries: Sequence[str], events: int, grid: int) -> None:
    unknown = [p for p in primaries if p not in PRIMARIES]
    if unknown or not primaries:
        raise ValueError(
            f"primaries must be a non-empty list of {sorted(PRIMARIES)}, got {unknown}"
        )
    if events < 0 or grid < 1:
        raise ValueError(f"events must be >= 0 and grid >= 1, got events={events}, grid={grid}")


def iter_footprints(
    primaries: Sequence[str],
    events: int,
    seed: int,
    *,
    grid: int = 80,
    config: FootprintConfig | None = None,
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Yield ``(data, info)`` blocks of at most 256 events; see :func:`simulate` for the content.

    Per-event parameters (a few floats each) are drawn up front; the tank signals, which are what
    takes memory, are made one block at a time from that block's own seed, so the output never
    depends on how a caller consumes the blocks.
    """
    cfg = config or FootprintConfig()
    _check_args(primaries, events, grid)
    root = np.random.SeedSequence(seed)
    event_seq, *chunk_seqs = root.spawn(1 + max(1, -(-events // _CHUNK)))
    rng = np.random.default_rng(event_seq)
    per = [events // len(primaries) + (i < events % len(primaries)) for i in range(len(primaries))]
    y_class = rng.permutation(np.repeat(np.arange(len(primaries)), per))
    primary = np.asarray(primaries, dtype=str)[y_class] if events else np.array([], dtype=str)
    ev = _event_parameters(rng, primary, cfg)
    weight = spectral_weight(ev["energy"], primary, cfg)

    centres = tank_centres(grid, cfg.half_width_m)  # the one definition of the layout
    for i, seq in enumerate(chunk_seqs[: -(-events // _CHUNK)]):
        sl = slice(i * _CHUNK, min(events, (i + 1) * _CHUNK))
        sub = {k: v[sl] for k, v in ev.items()}
        data, n_mu_seen = _chunk(np.random.default_rng(seq), primary[sl], sub, centres, cfg)
        info = {
            "ID_shower": np.arange(sl.start, sl.stop, dtype=np.float64),
            "E0 (GeV)": sub["energy"],
            "theta0 (deg)": np.degrees(sub["theta"]),
            "Nmuons": n_mu_seen,
            "Y_class": y_class[sl].astype(np.float64),
            "primary": primary[sl],
            "weight": weight[sl],
            "phi0 (deg)": np.degrees(sub["phi"]),
            "core_x (m)": sub["core"][:, 0].copy(),
            "core_y (m)": sub["core"][:, 1].copy(),
            "Xmax (g/cm2)": sub["x_max"],
            "age": sub["age"],
            "Ne": sub["n_e"],
            "Nmu_total": sub["n_mu"],
        }
        yield data, info


def simulate(
    primaries: Sequence[str],
    events: int,
    seed: int,
    *,
    grid: int = 80,
    config: FootprintConfig | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Simulate ``events`` footprints in memory, split evenly among ``primaries`` and shuffled.

    Returns ``data`` of shape (events, grid, grid), float32 VEM per tank (rows are y, columns x,
    both from −160 to 160 m), and ``info`` with the predecessor's columns ``ID_shower, E0 (GeV),
    theta0 (deg), Nmuons, Y_class`` (float64; Nmuons the muons that hit tanks, Y_class the index
    into ``primaries``) plus ``primary`` (strings), ``weight`` (spectral weight, see
    :func:`spectral_weight`) and geometry / longitudinal truth for studies. The same arguments
    always give identical output. For large sets use :func:`write_footprints`.
    """
    _check_args(primaries, events, grid)
    blocks = list(iter_footprints(primaries, events, seed, grid=grid, config=config))
    if not blocks:
        empty = np.zeros(0, dtype=np.float64)
        cols = {k: empty for k in (*INFO_COLUMNS, "weight")}
        return np.zeros((0, grid, grid), np.float32), {**cols, "primary": np.array([], str)}
    data = np.concatenate([b[0] for b in blocks])
    info = {k: np.concatenate([b[1][k] for b in blocks]) for k in blocks[0][1]}
    return data, info


def write_footprints(
    path: str | Path,
    primaries: Sequence[str],
    events: int,
    seed: int,
    *,
    grid: int = 80,
    config: FootprintConfig | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> Path:
    """Simulate straight into an HDF5 file in the SWGO/LIP layout, one block at a time.

    Memory stays at one block of tank signals (256 × 80 × 80 float32, 6.5 MB) plus a few floats
    per event, whatever ``events`` is. The file's ``data`` carries the attributes ``simulator``,
    ``sim_version``, ``class_names``, ``seed`` and ``grid``.
    """
    _check_args(primaries, events, grid)
    attrs = {
        "simulator": "wcd_hpc.sim.footprints",
        "sim_version": SIM_VERSION,
        "class_names": list(primaries),
        "seed": seed,
        "grid": grid,
        "half_width_m": (config or FootprintConfig()).half_width_m,
    }
    blocks = iter_footprints(primaries, events, seed, grid=grid, config=config)
    return write_events(
        path, blocks, events=events, sample_shape=(grid, grid), attrs=attrs, progress=progress
    )
