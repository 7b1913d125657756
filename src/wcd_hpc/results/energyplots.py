"""Q and signal efficiency against log10(E0/GeV): where in energy a classifier works.

SCIENCE.md asks for every metric per energy bin, because one number hides where a classifier
fails. These two figures draw the numbers of ``binned.json`` — the very values, intervals and
flags the tables and MLflow carry (:mod:`wcd_hpc.results.quote`) — so a figure never shows
another Q than the table:

- ``q_vs_energy``: per bin, Q at the ``q_factor`` cut chosen on the validation split (at least
  ``min_background`` background events kept there) and applied to the sample drawn, with its
  bootstrap interval. A bin whose value is *at the reach* — the optimum sits at the tightest cut
  the minimum allows, so a larger sample could show more — is drawn as a lower limit (an upward
  arrow), and the sample's reach √(N_b/min_background) is drawn per bin on top of the points, so
  it stays visible. A bin without a value gets a marker at the bottom, not a point.
- ``eff_vs_energy``: ε_s at the ``gamma_eff_1e2`` cut (ε_b ≤ 10⁻²), Clopper–Pearson interval; a
  bin with too few background events to measure 10⁻² is marked "not measurable".

Both write each bin's signal/background event counts along the top axis, and a model whose
output is constant says so instead of leaving the axes empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wcd_hpc.results.plots import Classes, constant_note, figure, plain, save, styled

__all__ = ["BinPoint", "plot_eff_vs_energy", "plot_q_vs_energy"]

ENERGY_LABEL = r"$\log_{10}(E_0/\mathrm{GeV})$"
BOOT_TEXT = "68 % bootstrap interval"
CP_TEXT = "68 % Clopper–Pearson"


@dataclass(frozen=True)
class BinPoint:
    """One energy bin (or the whole sample) as ``binned.json`` quotes it."""

    lo: float
    hi: float
    n_s: int
    n_b: int
    q: float | None
    q_lo: float | None
    q_hi: float | None
    at_reach: bool
    eff: float | None
    eff_lo: float | None
    eff_hi: float | None


def _bars(
    values: list[float], lows: list[float | None], highs: list[float | None]
) -> list[list[float]]:
    """Error bar lengths below and above; a missing end draws no bar on that side, nor does an
    end on the wrong side of the value (a bootstrap interval need not cover it)."""
    below = [
        max(v - (lo if lo is not None else v), 0.0) for v, lo in zip(values, lows, strict=True)
    ]
    above = [
        max((hi if hi is not None else v) - v, 0.0) for v, hi in zip(values, highs, strict=True)
    ]
    return [below, above]


def _axis(ax: Any, bins: Sequence[BinPoint], classes: Classes) -> None:
    """Energy axis below; along the top, each bin's signal/background event counts."""
    ax.set_xlim(min(p.lo for p in bins), max(p.hi for p in bins))
    ax.set_xlabel(ENERGY_LABEL)
    ax.grid(alpha=0.3, lw=0.4)
    counts = ax.secondary_xaxis("top")
    centres = [(p.lo + p.hi) / 2 for p in bins]
    counts.set_xticks(centres, [f"{p.n_s}/{p.n_b}" for p in bins], fontsize=6.5)
    counts.tick_params(length=0, pad=2)
    counts.set_xlabel(f"events per bin, $N_{{{classes.s}}}/N_{{{classes.b}}}$", fontsize=7)


def plot_q_vs_energy(
    path: Path,
    bins: Sequence[BinPoint],
    overall: BinPoint | None,
    classes: Classes,
    header: str,
    *,
    min_background: int,
    chosen_on: str,
    constant: bool = False,
) -> str:
    """Q per energy bin with its interval, lower limits as arrows (module docstring)."""
    bkg = classes.background_text()
    with styled():
        plt, fig, ax = figure()
        measured = [p for p in bins if p.q is not None and not p.at_reach]
        limits = [p for p in bins if p.q is not None and p.at_reach]
        empty = [(p.lo + p.hi) / 2 for p in bins if p.q is None]
        reaches = [np.sqrt(p.n_b / min_background) for p in bins if p.n_b]
        top = max([1.0, *reaches, *[p.q_hi or p.q or 0.0 for p in bins if p.q is not None]])
        if overall is not None and overall.q is not None:
            lo, hi = overall.q_lo or overall.q, overall.q_hi or overall.q
            ax.axhspan(lo, hi, color="0.6", alpha=0.25, lw=0)
            ax.axhline(
                overall.q, color="0.3", ls="--", lw=0.9, label=f"all energies: {overall.q:.2f}"
            )
            top = max(top, hi)
        if measured:
            xs = [(p.lo + p.hi) / 2 for p in measured]
            ys = [float(p.q or 0.0) for p in measured]
            err = _bars(ys, [p.q_lo for p in measured], [p.q_hi for p in measured])
            ax.errorbar(
                xs,
                ys,
                xerr=[(p.hi - p.lo) / 2 for p in measured],
                yerr=err,
                fmt="o",
                color="C0",
                ms=4,
                capsize=2,
                label=f"per bin, {BOOT_TEXT}",
            )
        if limits:
            xs = [(p.lo + p.hi) / 2 for p in limits]
            ys = [float(p.q or 0.0) for p in limits]
            ax.errorbar(
                xs,
                ys,
                xerr=[(p.hi - p.lo) / 2 for p in limits],
                yerr=[[0.0] * len(ys), [0.12 * top] * len(ys)],
                uplims=False,
                lolims=True,
                fmt="^",
                color="C2",
                ms=5,
                capsize=3,
                label="at the sample's reach: lower limit",
            )
        reach_label = rf"reach $\sqrt{{N_{{{classes.b}}}/{min_background}}}$"
        for p in bins:  # drawn last, above the points and their bars
            if p.n_b:
                ax.hlines(
                    np.sqrt(p.n_b / min_background),
                    p.lo,
                    p.hi,
                    color="C1",
                    lw=1.4,
                    ls=(0, (2, 1.5)),
                    zorder=5,
                    label=reach_label,
                )
                reach_label = "_"
        if empty:
            label = f"no value (< {min_background} {bkg} events or no cut)"
            ax.plot(empty, [0.0] * len(empty), "v", color="C3", ms=6, clip_on=False, label=label)
        _axis(ax, bins, classes)
        ax.set_ylim(0.0, top * 1.3)
        ax.set_ylabel(classes.q_label() + " at the chosen cut")
        if constant:
            constant_note(ax)
        ax.legend(loc="best")
        kept = f"≥ {min_background} {bkg} kept"
        where = "this sample" if chosen_on == "this sample" else f"the {plain(chosen_on)}"
        title = f"Q per energy bin\ncuts chosen per bin on {where} ({kept})"
        return save(plt, fig, path, title, header)


def plot_eff_vs_energy(
    path: Path,
    bins: Sequence[BinPoint],
    overall: BinPoint | None,
    classes: Classes,
    header: str,
    *,
    chosen_on: str,
    constant: bool = False,
) -> str:
    """ε_s at ε_b ≤ 10⁻² per energy bin; bins that cannot measure 10⁻² are marked."""
    survival = rf"{classes.eff_b()} $\leq 10^{{-2}}$"
    with styled():
        plt, fig, ax = figure()
        if overall is not None and overall.eff is not None:
            lo, hi = overall.eff_lo or overall.eff, overall.eff_hi or overall.eff
            ax.axhspan(lo, hi, color="0.6", alpha=0.25, lw=0)
            ax.axhline(
                overall.eff, color="0.3", ls="--", lw=0.9, label=f"all energies: {overall.eff:.3f}"
            )
        shown = [p for p in bins if p.eff is not None]
        if shown:
            xs = [(p.lo + p.hi) / 2 for p in shown]
            ys = [float(p.eff or 0.0) for p in shown]
            err = [
                [
                    y - (p.eff_lo if p.eff_lo is not None else y)
                    for y, p in zip(ys, shown, strict=True)
                ],
                [
                    (p.eff_hi if p.eff_hi is not None else y) - y
                    for y, p in zip(ys, shown, strict=True)
                ],
            ]
            ax.errorbar(
                xs,
                ys,
                xerr=[(p.hi - p.lo) / 2 for p in shown],
                yerr=err,
                fmt="o",
                color="C0",
                ms=4,
                capsize=2,
                label=f"per bin, {CP_TEXT}",
            )
        missing = [(p.lo + p.hi) / 2 for p in bins if p.eff is None]
        if missing:
            label = f"not measurable (too few {classes.background_text()} events)"
            ax.plot(
                missing,
                [0.0] * len(missing),
                "o",
                mfc="white",
                color="C0",
                ms=5,
                clip_on=False,
                label=label,
            )
        _axis(ax, bins, classes)
        ax.set_ylim(0.0, 1.05)
        ax.set_ylabel(
            f"{classes.eff_s()} at {survival} ({plain(classes.names[classes.signal])} kept)"
        )
        if constant:
            constant_note(ax)
        ax.legend(loc="best")
        where = "this sample" if chosen_on == "this sample" else f"the {plain(chosen_on)}"
        title = f"signal efficiency at fixed background\ncuts chosen per bin on {where}"
        return save(plt, fig, path, title, header)
