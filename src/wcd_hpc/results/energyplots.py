"""Q and signal efficiency against log10(E0/GeV): where in energy a classifier works.

SCIENCE.md asks for every metric per energy bin, because one number hides where a classifier
fails; ``binned.json`` has the numbers, these two figures show them with their statistics. The
bins and the cuts are those of ``binned.json`` (:func:`wcd_hpc.results.evaluation.energy_bins`;
the cut is chosen in each bin, as ``gamma_eff_1e2`` and ``q_factor`` are there), each point
carries its binomial interval, and a bin whose background is too small for the quantity says so
instead of showing a number:

- ``q_vs_energy``: the best Q among cuts that keep ≥ :data:`MIN_BACKGROUND` background events,
  with the propagated band; a bin without such a cut gets a marker at the bottom, not a point.
  The grey band is the same optimum over all energies. Because a cut must keep ten background
  events, Q cannot exceed √(N_b/10) in a bin of N_b background events (every signal event kept,
  ε_b = 10/N_b): this *reach* is drawn per bin, so a point at its reach reads as "limited by the
  sample", not as the classifier's ceiling.
- ``eff_vs_energy``: ε_s at ε_b ≤ 10⁻². A bin with fewer than 100 background events cannot
  resolve 10⁻² — its cut keeps no background at all — and is drawn with an open marker.

Both write each bin's signal/background event counts along the top axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wcd_hpc.results.efficiency import FIXED_SURVIVAL, MIN_BACKGROUND, WorkingPoints
from wcd_hpc.results.plots import CL_TEXT, Classes, figure, plain, save, styled

__all__ = ["EnergyBin", "plot_eff_vs_energy", "plot_q_vs_energy"]

ENERGY_LABEL = r"$\log_{10}(E_0/\mathrm{GeV})$"
EnergyBin = tuple[float, float, WorkingPoints | None]


def _axis(ax: Any, bins: Sequence[EnergyBin], classes: Classes) -> None:
    """Energy axis below; along the top, each bin's signal/background event counts."""
    ax.set_xlim(min(lo for lo, _, _ in bins), max(hi for _, hi, _ in bins))
    ax.set_xlabel(ENERGY_LABEL)
    ax.grid(alpha=0.3, lw=0.4)
    counts = ax.secondary_xaxis("top")
    centres = [(lo + hi) / 2 for lo, hi, _ in bins]
    labels = ["–" if p is None else f"{p.n_s}/{p.n_b}" for _, _, p in bins]
    counts.set_xticks(centres, labels, fontsize=6.5)
    counts.tick_params(length=0, pad=2)
    counts.set_xlabel(f"events per bin, $N_{{{classes.s}}}/N_{{{classes.b}}}$", fontsize=7)


def plot_q_vs_energy(
    path: Path,
    bins: Sequence[EnergyBin],
    overall: WorkingPoints | None,
    classes: Classes,
    header: str,
) -> str:
    """Best Q per energy bin with its band (module docstring)."""
    bkg = classes.background_text()
    with styled():
        plt, fig, ax = figure()
        xs, ys, lo, hi, widths, empty = [], [], [], [], [], []
        signal = plain(classes.names[classes.signal])
        root = rf"$\sqrt{{N_{{{classes.b}}}/{MIN_BACKGROUND}}}$"
        reach = f"reach {root}: all {signal}, {MIN_BACKGROUND} {bkg} kept"
        for low, high, point in bins:
            centre = (low + high) / 2
            if point is None or point.best is None:
                empty.append(centre)
                continue
            limit = np.sqrt(point.n_b / MIN_BACKGROUND)  # ε_s = 1 at the fewest allowed ε_b
            ax.hlines(limit, low, high, color="C1", lw=1.2, ls=":", label=reach)
            reach = "_"  # one legend entry
            q, q_lo, q_hi, _ = point.best
            xs.append(centre)
            widths.append((high - low) / 2)
            ys.append(q)
            lo.append(q - q_lo)
            hi.append(q_hi - q)
        top = max([y + e for y, e in zip(ys, hi, strict=True) if np.isfinite(e)] or [1.0])
        top = max([top] + [np.sqrt(p.n_b / MIN_BACKGROUND) for _, _, p in bins if p and p.best])
        if overall is not None and overall.best is not None:
            q, q_lo, q_hi, _ = overall.best
            ax.axhspan(q_lo, q_hi, color="0.6", alpha=0.25, lw=0)
            ax.axhline(q, color="0.3", ls="--", lw=0.9, label=f"all energies: {q:.2f}")
            top = max(top, q_hi)
        label = f"per bin, {CL_TEXT}"
        style = {"fmt": "o", "color": "C0", "ms": 4, "capsize": 2}
        ax.errorbar(xs, ys, xerr=widths, yerr=[lo, hi], label=label, **style)
        if empty:
            label = f"no cut keeps ≥ {MIN_BACKGROUND} {bkg} events"
            ax.plot(empty, [0.0] * len(empty), "v", color="C3", ms=6, clip_on=False, label=label)
        _axis(ax, bins, classes)
        ax.set_ylim(0.0, top * 1.25)
        ax.set_ylabel(classes.q_label(best=True) + " over cuts")
        ax.legend(loc="best")
        title = f"best Q per bin (cut chosen in each bin, ≥ {MIN_BACKGROUND} {bkg} events kept)"
        return save(plt, fig, path, title, header)


def plot_eff_vs_energy(
    path: Path,
    bins: Sequence[EnergyBin],
    overall: WorkingPoints | None,
    classes: Classes,
    header: str,
) -> str:
    """ε_s at ε_b ≤ 10⁻² per energy bin, open markers where 10⁻² is not resolved."""
    survival = rf"{classes.eff_b()} $\leq 10^{{{round(np.log10(FIXED_SURVIVAL))}}}$"
    needed = round(1 / FIXED_SURVIVAL)
    with styled():
        plt, fig, ax = figure()
        if overall is not None:
            value, e_lo, e_hi = overall.fixed
            ax.axhspan(e_lo, e_hi, color="0.6", alpha=0.25, lw=0)
            ax.axhline(value, color="0.3", ls="--", lw=0.9, label=f"all energies: {value:.3f}")
        drawn = [(lo, hi, p) for lo, hi, p in bins if p is not None]
        for resolved in (True, False):
            chosen = [(lo, hi, p) for lo, hi, p in drawn if p.fixed_resolved == resolved]
            if not chosen:
                continue
            xs = [(lo + hi) / 2 for lo, hi, _ in chosen]
            widths = [(hi - lo) / 2 for lo, hi, _ in chosen]
            points = [p.fixed for _, _, p in chosen]
            ys = [v for v, _, _ in points]
            err = [[v - lo for v, lo, _ in points], [hi - v for v, _, hi in points]]
            label = (
                f"per bin, {CL_TEXT}"
                if resolved
                else f"< {needed} {classes.background_text()} events: cut keeps none"
            )
            face = "C0" if resolved else "white"
            style = {"fmt": "o", "color": "C0", "mfc": face, "ms": 4, "capsize": 2}
            ax.errorbar(xs, ys, xerr=widths, yerr=err, label=label, **style)
        _axis(ax, bins, classes)
        ax.set_ylim(0.0, 1.05)
        ax.set_ylabel(
            f"{classes.eff_s()} at {survival} ({plain(classes.names[classes.signal])} kept)"
        )
        ax.legend(loc="best")
        title = "signal efficiency at fixed background (cut chosen in each bin)"
        return save(plt, fig, path, title, header)
