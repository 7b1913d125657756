"""The per-bin figure of the classical baseline: Q at ε_γ = 0.5, network beside baseline.

``baseline_vs_energy`` draws, per bin of log10(E0/GeV), the model's Q at the cut keeping half
of the gamma rays and the classical baseline's (:mod:`wcd_hpc.results.baseline`: compactness or
muon-like hits, variant and cut chosen on the training split, applied to the test split), each
with its band, and writes the gain model/baseline above each bin. Both Qs are at the same
signal efficiency, so the ratio compares like with like, unlike the best-Q figure whose cut
moves from bin to bin. The variant chosen in each bin is written below its points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wcd_hpc.results.plots import CL_TEXT, Classes, figure, save, styled

__all__ = ["ALL_ENERGIES", "plot_baseline_vs_energy"]

#: Suffix of a bin's ``baseline_variant`` whose cut was chosen on all energies (too few training
#: events in the bin); drawn as ``*``.
ALL_ENERGIES = " (chosen on all energies)"
ENERGY_LABEL = r"$\log_{10}(E_0/\mathrm{GeV})$"


def _series(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], ...]:
    """x, half-width, y, down, up of the rows where ``key`` is a number."""
    xs, widths, ys, down, up = [], [], [], [], []
    for row in rows:
        value = row.get(key)
        if value is None:
            continue
        lo, hi = row.get(f"{key}_lo"), row.get(f"{key}_hi")
        xs.append((row["log10_e_min"] + row["log10_e_max"]) / 2)
        widths.append((row["log10_e_max"] - row["log10_e_min"]) / 2)
        ys.append(float(value))
        # A bootstrap interval need not cover its value (at the reach it lies above it): the
        # bar then stops at the value on that side.
        down.append(max(float(value) - float(lo), 0.0) if lo is not None else 0.0)
        up.append(max(float(hi) - float(value), 0.0) if hi is not None else 0.0)
    return xs, widths, ys, down, up


def _short(variant: str) -> str:
    """``compactness R=40 m`` → ``C 40 m``; ``muon-like hits R=30 m`` → ``μ 30 m``; a variant
    chosen on all energies (too few training events in the bin) gets a ``*``."""
    star = "*" if variant.endswith(ALL_ENERGIES) else ""
    radius = variant.split("R=")[-1].split(" m")[0] if "R=" in variant else "?"
    kind = "C" if variant.startswith("compactness") else "μ"
    return f"{kind} {radius} m{star}"


def plot_baseline_vs_energy(
    path: Path, rows: Sequence[Mapping[str, Any]], classes: Classes, header: str
) -> str:
    """Model and baseline Q at ε_γ = 0.5 per energy bin, with the gain written above."""
    with styled():
        plt, fig, ax = figure()
        tops: dict[float, float] = {}
        for key, label, style in (
            ("q_at_eff", "network", {"fmt": "o", "color": "C0"}),
            ("baseline_q_at_eff", "classical baseline", {"fmt": "s", "color": "C1", "mfc": "w"}),
        ):
            xs, widths, ys, down, up = _series(rows, key)
            if xs:
                ax.errorbar(
                    xs, ys, xerr=widths, yerr=[down, up], ms=4, capsize=2,
                    label=f"{label}, {CL_TEXT}", **style,
                )  # fmt: skip
            for x, y, u in zip(xs, ys, up, strict=True):
                tops[x] = max(tops.get(x, 0.0), y + u)
        top = max([1.0, *tops.values()])
        for row in rows:
            centre = (row["log10_e_min"] + row["log10_e_max"]) / 2
            gain = row.get("gain_q_at_eff")
            if gain is not None:
                y = tops.get(centre, 0.0) + 0.03 * top
                ax.annotate(f"×{gain:.2f}", (centre, y), ha="center", va="bottom", fontsize=7)
        lows = [r["log10_e_min"] for r in rows]
        highs = [r["log10_e_max"] for r in rows]
        if lows:
            ax.set_xlim(min(lows), max(highs))
            chosen = ax.secondary_xaxis("top")
            centres = [(r["log10_e_min"] + r["log10_e_max"]) / 2 for r in rows]
            names = [_short(str(r.get("baseline_variant") or "–")) for r in rows]
            chosen.set_xticks(centres, names, fontsize=6.5)
            chosen.tick_params(length=0, pad=2)
            chosen.set_xlabel(
                "baseline cut (training split): C compactness, μ muon-like hits beyond R; "
                "* all energies",
                fontsize=6.5,
            )
        ax.set_ylim(0.0, top * 1.3)
        ax.set_xlabel(ENERGY_LABEL)
        ax.set_ylabel(rf"Q at {classes.eff_s()} = 0.5;  ×: gain network/baseline")
        ax.grid(alpha=0.3, lw=0.4)
        ax.legend(loc="best", fontsize=7)
        title = "Q at 50% signal efficiency: network vs classical baseline"
        return save(plt, fig, path, title, header)
