"""Classical gamma/hadron discriminants of one footprint: compactness and muon-like hits.

A network is worth its GPU-hours by its gain over what a physicist does without one (SCIENCE.md,
"Compare with what a physicist does without a network"). Two per-event numbers stand in for that:

- **Compactness** (HAWC: Abeysekara et al. 2017, ApJ 843, 39, §5.2): the number of hit tanks
  divided by the largest signal recorded beyond a radius R from the shower core. A hadronic
  shower deposits large, isolated signals far from its core (muons, sub-showers), a gamma shower
  does not, so gamma rays have *large* compactness. HAWC uses R = 40 m and PE; here signals are
  in VEM and R is one of :data:`RADII`. When no tank beyond R is hit the largest signal is taken
  as :data:`SIGNAL_FLOOR_VEM` (below any zero-suppression threshold), so such an event ranks as
  the most compact of its size instead of dividing by zero.
- **Muon-like hits**: tanks beyond R with a signal in :data:`MUON_WINDOW_VEM` (0.7–4 VEM: one
  through-going muon gives ≈ 1 VEM times its track length; EM particles far from the core give
  far less, a core's EM flux far more). Hadronic showers have more of them.

The core is the signal-weighted centroid of the tanks (the simplest estimator a physicist would
use without a fit), and distances are measured in the ground plane.

The detector layout is the one of the SWGO/LIP footprint files (SCIENCE.md) and of
:mod:`wcd_hpc.sim.footprints`: an H × W grid of tanks, one per cell, whose cell centres span
−``half_width_m`` … ``half_width_m`` on both axes (160 m for the 80 × 80 images; our simulator
writes it as the ``half_width_m`` attribute of ``data``). Rows are y, columns x.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "DEFAULT_HALF_WIDTH_M",
    "HIT_KEY",
    "MUON_WINDOW_VEM",
    "RADII",
    "SIGNAL_FLOOR_VEM",
    "compactness_key",
    "features",
    "muon_key",
    "tank_centres",
]

#: Radii (m) from the core beyond which the discriminants look; the baseline picks one per bin.
RADII: tuple[float, ...] = (30.0, 40.0, 60.0)
#: Half the side of the footprint image when a file does not say (SWGO/LIP: −160…160 m).
DEFAULT_HALF_WIDTH_M = 160.0
#: A muon-like hit: signal in [low, high] VEM (SCIENCE.md: roughly 0.7–4 VEM).
MUON_WINDOW_VEM = (0.7, 4.0)
#: Stand-in for "largest signal beyond R" when no tank beyond R is hit.
SIGNAL_FLOOR_VEM = 0.01
#: Meta key of the number of hit tanks (signal > 0).
HIT_KEY = "classical_hit_tanks"
_BLOCK = 256  # events per vectorised step: bounded memory (256 × 6400 float32 per array)


def compactness_key(radius: float) -> str:
    """Meta key of the compactness beyond ``radius`` metres, e.g. ``classical_compactness_r40``."""
    return f"classical_compactness_r{round(radius)}"


def muon_key(radius: float) -> str:
    """Meta key of the count of muon-like hits beyond ``radius`` metres."""
    return f"classical_muon_hits_r{round(radius)}"


def tank_centres(cells: int, half_width_m: float = DEFAULT_HALF_WIDTH_M) -> np.ndarray:
    """Centres (m) of ``cells`` equal cells spanning −half_width … half_width (one axis)."""
    cell = 2.0 * half_width_m / cells
    return np.asarray(-half_width_m + cell * (np.arange(cells) + 0.5))


def features(
    footprints: np.ndarray,
    half_width_m: float = DEFAULT_HALF_WIDTH_M,
    radii: Sequence[float] = RADII,
) -> dict[str, np.ndarray]:
    """Per event: hit tanks, and compactness and muon-like hits beyond each radius.

    ``footprints`` is (N, H, W) signals in VEM. Returns float64 arrays of length N under
    :data:`HIT_KEY`, :func:`compactness_key` and :func:`muon_key` of each radius: the columns the
    footprint datasets add to every split's ``meta``.
    """
    data = np.asarray(footprints)
    if data.ndim != 3:
        raise ValueError(f"footprints must be (N, H, W), got shape {data.shape}")
    n, rows, cols = data.shape
    ys = tank_centres(rows, half_width_m).astype(np.float32)
    xs = tank_centres(cols, half_width_m).astype(np.float32)
    out = {HIT_KEY: np.zeros(n)}
    for r in radii:
        out[compactness_key(r)] = np.zeros(n)
        out[muon_key(r)] = np.zeros(n)
    low, high = MUON_WINDOW_VEM
    for a in range(0, n, _BLOCK):
        sig = np.clip(np.asarray(data[a : a + _BLOCK], dtype=np.float32), 0.0, None)
        total = sig.sum(axis=(1, 2))
        safe = np.where(total > 0, total, 1.0)
        core_x = (sig.sum(axis=1) * xs).sum(axis=1) / safe
        core_y = (sig.sum(axis=2) * ys).sum(axis=1) / safe
        dist = np.hypot(
            xs[None, None, :] - core_x[:, None, None], ys[None, :, None] - core_y[:, None, None]
        )
        hit = (sig > 0).sum(axis=(1, 2)).astype(np.float64)
        muon_like = (sig >= low) & (sig <= high)
        out[HIT_KEY][a : a + _BLOCK] = hit
        for r in radii:
            beyond = dist > r
            largest = np.where(beyond, sig, 0.0).max(axis=(1, 2))
            out[compactness_key(r)][a : a + _BLOCK] = hit / np.maximum(largest, SIGNAL_FLOOR_VEM)
            out[muon_key(r)][a : a + _BLOCK] = (muon_like & beyond).sum(axis=(1, 2))
    return out
