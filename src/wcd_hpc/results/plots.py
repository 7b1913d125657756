"""The figures of a trial's test evaluation: confusion matrix, ROC curve and Q curve.

A figure leaves the run directory — into a talk, a thesis, a referee's hands — without the files
around it, so each one says what it shows: a header naming study, trial, model, dataset, split,
number of events per class and energy range (:class:`Provenance`), repeated in the file's
metadata (PDF Title/Subject, PNG text chunks). Every efficiency carries its binomial interval
(:mod:`wcd_hpc.results.efficiency`), axes are labelled in physics notation with the classes named
(ε_γ, ε_p, Q = ε_s/√ε_b), and each figure is written twice: a PNG at :data:`DPI` for screens and
a PDF (TrueType fonts, which journals accept where Type 3 fonts are refused) for print.

matplotlib runs with the Agg backend (compute nodes have no display) and is imported only when a
plot is drawn, so workers and CLI verbs that draw nothing do not pay its import time. Each figure
is closed after saving: a worker runs many trials in one process, and open figures would pile up.
Styles are set per figure (``rc_context``), never globally, for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wcd_hpc import merit
from wcd_hpc.output.files import atomic
from wcd_hpc.queue.schema import VECTOR_PLOT_SUFFIX
from wcd_hpc.results.efficiency import CONFIDENCE, MIN_BACKGROUND, Selection

__all__ = [
    "DPI",
    "Classes",
    "Marked",
    "Provenance",
    "confusion_matrix",
    "constant_note",
    "figure",
    "plot_confusion",
    "plot_q",
    "plot_roc",
    "save",
]

#: PNG resolution: print quality (≥ 200 dpi) at the figure's physical size.
DPI = 200
FIGSIZE = (4.6, 3.9)  # inches: a single journal column scaled by ~0.75, fonts stay ≥ 6 pt
STYLE = {
    "font.size": 8.5,
    "axes.titlesize": 8.5,
    "axes.labelsize": 9.5,
    "legend.fontsize": 7.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "pdf.fonttype": 42,  # TrueType in the PDF, not Type 3
    "savefig.dpi": DPI,
}
#: Mathtext symbols of the primaries and classes wcd-hpc's datasets use.
SYMBOLS = {
    "gamma": r"\gamma",
    "photon": r"\gamma",
    "proton": r"\mathrm{p}",
    "hadron": r"\mathrm{h}",
    "iron": r"\mathrm{Fe}",
    "helium": r"\mathrm{He}",
    "nitrogen": r"\mathrm{N}",
    "oxygen": r"\mathrm{O}",
    "carbon": r"\mathrm{C}",
    "electron": r"e",
    "muon": r"\mu",
    "em": r"\mathrm{EM}",
}
CL_TEXT = f"{CONFIDENCE:.0%} CL Clopper–Pearson"
#: Mathtext and typography → plain text, in this order (see :func:`as_text`).
TEXT_FORMS = (
    (r"\log_{10}", "log10"),
    (r"\varepsilon", "eps"),
    (r"\mathrm", ""),
    (r"\leq", "<="),
    (r"\max", "max"),
    (r"\,", ""),
    ("\\", ""),
    ("_", ""),
    ("{", ""),
    ("}", ""),
    ("·", ";"),
    ("–", "-"),
    ("≥", ">="),
    ("≤", "<="),
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plain(text: str) -> str:
    """``text`` safe outside mathtext: a lone ``$`` would start a formula."""
    return text.replace("$", r"\$")


def as_text(label: str) -> str:
    """A figure text without mathtext, for file metadata: ``log10(E0/GeV) 2.50-4.50``.

    ASCII where it can be, so that the provenance in a PDF's Subject is readable with ``grep``.
    """
    out = label.replace("$", "")
    for tex, text in TEXT_FORMS:
        out = out.replace(tex, text)
    return " ".join(out.split())


def symbol(name: str) -> str:
    """Mathtext symbol (without ``$``) of a class: γ for gamma, p for proton, else its name."""
    known = SYMBOLS.get(name.lower())
    if known is not None:
        return known
    safe = "".join(c for c in name if c.isalnum() or c in "-+.") or "?"
    return r"\mathrm{" + safe + "}"


@dataclass(frozen=True)
class Classes:
    """Signal and background of a figure, named from the dataset's classes."""

    names: tuple[str, ...]
    signal: int

    @property
    def background(self) -> tuple[str, ...]:
        return tuple(n for i, n in enumerate(self.names) if i != self.signal)

    @property
    def s(self) -> str:
        """Mathtext subscript of the signal: ``\\gamma``."""
        return symbol(self.names[self.signal])

    @property
    def b(self) -> str:
        """Mathtext subscript of the background: its symbol, or ``bkg`` for several classes."""
        rest = self.background
        return symbol(rest[0]) if len(rest) == 1 else r"\mathrm{bkg}"

    def eff_s(self) -> str:
        return rf"$\varepsilon_{{{self.s}}}$"

    def eff_b(self) -> str:
        return rf"$\varepsilon_{{{self.b}}}$"

    def signal_label(self) -> str:
        name = plain(self.names[self.signal])
        return f"signal efficiency {self.eff_s()} ({name} kept)"

    def background_label(self) -> str:
        names = plain(", ".join(self.background))
        return f"background survival {self.eff_b()} ({names} kept)"

    def background_text(self) -> str:
        """The background named in words (legends): ``proton`` or ``proton, iron``."""
        return plain(", ".join(self.background))

    def q_label(self, best: bool = False) -> str:
        """``Q = ε_s/√ε_b``; with ``best``, the maximum over cuts."""
        q = r"Q_{\max} = \max\," if best else "Q = "
        return rf"${q}\varepsilon_{{{self.s}}}\,/\sqrt{{\varepsilon_{{{self.b}}}}}$"


@dataclass(frozen=True)
class Provenance:
    """Who drew a figure from what. The trial (or ``train``/``evaluate``) fills what it knows;
    :func:`wcd_hpc.results.evaluation.write_plots` adds the sample: events per class and the
    energy range. Empty fields are left out of the header. ``software`` (wcd-hpc version and
    commit) and ``data`` (the file's checksum, or the simulator and its seed, with "simulated
    (order-of-magnitude physics)") come from :mod:`wcd_hpc.results.provenance`."""

    study: str = ""
    trial: str = ""
    model: str = ""
    dataset: str = ""
    split: str = "test split"
    software: str = ""
    data: str = ""

    def header(self, sample: str) -> str:
        """The lines on top of a figure: the run and dataset, the software and data, then the
        split and ``sample`` (which may hold a line break of its own)."""
        run = [
            f"study {self.study}" if self.study else "",
            self.trial,
            f"model {self.model}" if self.model else "",
            f"dataset {self.dataset}" if self.dataset else "",
        ]
        first = " · ".join(plain(p) for p in run if p) or "provenance not recorded"
        origin = " · ".join(plain(p) for p in (self.software, self.data) if p)
        if origin:
            first += "\n" + origin
        return f"{first}\n{plain(self.split)}: {sample}" if self.split else f"{first}\n{sample}"


@dataclass(frozen=True)
class Marked:
    """The cut a figure marks: chosen elsewhere (``chosen_on``), quoted on the sample drawn."""

    eff_s: float
    q: float
    lo: float | None
    hi: float | None
    kept_b: int
    at_reach: bool
    chosen_on: str


CONSTANT_TEXT = "constant output:\nthe model gives every event the same score,\nno cut separates"


def constant_note(ax: Any) -> None:
    """Say "constant output" across the axes of a figure that would otherwise look empty."""
    ax.text(0.5, 0.5, CONSTANT_TEXT, transform=ax.transAxes, ha="center", va="center",
            color="C3", fontsize=9, bbox={"fc": "white", "ec": "C3", "alpha": 0.9})  # fmt: skip


def figure() -> tuple[Any, Any, Any]:
    """(pyplot, figure, axes) of the house size, inside the house style."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    return plt, fig, ax


@contextmanager
def styled() -> Iterator[None]:
    """The house style for the figures drawn inside (not for anyone else's)."""
    plt = _pyplot()
    with plt.rc_context(STYLE):
        yield


def save(plt: Any, fig: Any, path: Path, title: str, header: str) -> str:
    """Write ``path`` (PNG) and its PDF twin with ``header`` on top; return the full title.

    The header goes into the metadata too (PDF Subject, PNG Description), so a file keeps its
    provenance even when cropped. Each file is written whole or not at all (a full disk leaves
    no 0-byte plot).
    """
    fig.suptitle(header, fontsize=6.5, color="0.3", x=0.01, ha="left", y=0.995)
    fig.axes[0].set_title(title)
    fig.tight_layout(pad=0.4)
    text, name = as_text(header.replace("\n", " | ")), as_text(title)
    pdf_meta = {"Title": name, "Subject": text, "Creator": "wcd-hpc"}
    try:
        with atomic(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, metadata={"Title": name, "Description": text})
        with atomic(path.with_suffix(VECTOR_PLOT_SUFFIX)) as tmp:
            fig.savefig(tmp, format="pdf", metadata=pdf_meta)
    finally:
        plt.close(fig)
    return f"{header}\n{title}"


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return matrix


def plot_confusion(path: Path, matrix: np.ndarray, names: Sequence[str], header: str) -> str:
    """Row-normalised colours (per-class efficiency) annotated with the raw counts."""
    with styled():
        plt, fig, ax = figure()
        rows = matrix.sum(axis=1, keepdims=True)
        frac = matrix / np.maximum(rows, 1)
        image = ax.imshow(frac, vmin=0.0, vmax=1.0, cmap="Blues")
        for (i, j), count in np.ndenumerate(matrix):
            colour = "white" if frac[i, j] > 0.5 else "black"
            ax.text(j, i, f"{count}\n{frac[i, j]:.3f}", ha="center", va="center", color=colour)
        ticks = range(len(names))
        ax.set_xticks(ticks, [plain(n) for n in names])
        ax.set_yticks(ticks, [plain(n) for n in names])
        ax.set_xlabel("predicted class (largest probability)")
        ax.set_ylabel("true class")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
        return save(plt, fig, path, "confusion matrix: counts and fraction of each row", header)


def plot_roc(
    path: Path,
    sel: Selection,
    auc: str,
    classes: Classes,
    header: str,
    *,
    constant: bool = False,
) -> str:
    """ε_s against ε_b on a log axis, with the box-union band of both binomial intervals.

    Each cut is uncertain in both coordinates; the band is the union of the rectangles
    [ε_b interval] × [ε_s interval] of the cuts drawn, bounded by the staircases through their
    corners, so the poorly known ε_b of a cut keeping a few background events widens it
    sideways. Cuts that keep no background lie left of 1/N_b, off a log axis: the grey region
    marks it, and a dashed line where cuts keep :data:`MIN_BACKGROUND` background events.
    """
    from wcd_hpc.results.efficiency import clopper_pearson

    with styled():
        plt, fig, ax = figure()
        keep = sel.k_b >= 1  # cuts that keep no background lie off the log axis
        k_s, k_b = sel.k_s[keep], sel.k_b[keep]
        eff_s, eff_b = sel.eff_s[keep], sel.eff_b[keep]
        s_lo, s_hi = clopper_pearson(k_s, sel.n_s)
        b_lo, b_hi = clopper_pearson(k_b, sel.n_b)
        floor = 1.0 / max(sel.n_b, 1)
        left = floor / 3
        ax.fill(
            np.r_[np.maximum(b_lo, left), np.maximum(b_hi, left)[::-1]],
            np.r_[s_hi, s_lo[::-1]],
            color="C0",
            alpha=0.25,
            lw=0,
            label=f"{CL_TEXT} in {classes.eff_s()} and {classes.eff_b()}",
        )
        ax.plot(
            eff_b,
            eff_s,
            color="C0",
            lw=1.2,
            drawstyle="steps-post",
            label=f"cuts on the sample, AUC = {auc}",
        )
        bkg = classes.background_text()
        ax.axvspan(left, floor, color="0.85", lw=0, label=f"no {bkg} event kept")
        minimum = MIN_BACKGROUND * floor
        if minimum < 1:
            label = f"{MIN_BACKGROUND} {bkg} events kept"
            ax.axvline(minimum, color="0.4", ls="--", lw=0.8, label=label)
        grid = np.geomspace(left, 1.0, 50)
        ax.plot(grid, grid, ls=":", color="grey", lw=0.8, label="no separation")
        ax.set_xscale("log")
        ax.set_xlim(left, 1.0)
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel(classes.background_label())
        ax.set_ylabel(classes.signal_label())
        if constant:
            constant_note(ax)
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3, which="both", lw=0.4)
        title = f"ROC curve: cuts on the {plain(classes.names[classes.signal])} score"
        return save(plt, fig, path, title, header)


def plot_q(
    path: Path,
    sel: Selection,
    classes: Classes,
    header: str,
    *,
    marked: Marked | None = None,
    min_background: int = MIN_BACKGROUND,
    reason: str | None = None,
    constant: bool = False,
) -> str:
    """Q against ε_s as a step curve with its band; the optimum only with enough background.

    One step per cut (a cut between two events gives no new point, so nothing is drawn between
    them), from the first cut that keeps an event — not from the empty cut at (0, 0). Cuts that
    keep fewer than ``min_background`` background events are drawn dotted. The marked point is
    the ``q_factor`` cut chosen on ``marked.chosen_on`` (the validation split) and quoted on
    the sample drawn, with its bootstrap interval — the number of ``binned.json``; without one
    the figure says why (``reason``).
    """
    with styled():
        plt, fig, ax = figure()
        q, lo, hi = sel.q()
        keep = slice(1, None)
        x, q, lo, hi, k_b = sel.eff_s[keep], q[keep], lo[keep], hi[keep], sel.k_b[keep]
        top = float(np.max(q)) * 1.6 if q.size else 1.0
        few = k_b < min_background
        bkg = classes.background_text()
        none = k_b == 0  # ε_b floored at 1/N_b: a convention, not a measurement
        band = np.where(none, np.nan, np.minimum(hi, top * 2))
        label = f"{CL_TEXT} (propagated)"
        ax.fill_between(x, np.where(none, np.nan, lo), band, step="post", color="C0", alpha=0.22,
                        lw=0, label=label)  # fmt: skip
        if none.any():
            edge = float(x[none].max())
            label = rf"no {bkg} kept: {classes.eff_b()} set to $1/N_{{{classes.b}}}$"
            ax.plot(x[none], q[none], color="0.55", lw=0.9, ls=(0, (1, 1.5)),
                    drawstyle="steps-post", label=label)  # fmt: skip
            ax.axvspan(0.0, edge, color="0.93", lw=0, zorder=0)
        for sparse, style in ((False, "-"), (True, ":")):
            shown = np.where((few == sparse) & ~none, q, np.nan)
            label = f"{'1–' + str(min_background - 1) if sparse else '≥ ' + str(min_background)}"
            label += f" {bkg} events kept"
            ax.plot(x, shown, color="C0", lw=1.2, ls=style, drawstyle="steps-post", label=label)
        if marked is not None:
            err = [[marked.q - (marked.lo if marked.lo is not None else marked.q)],
                   [(marked.hi if marked.hi is not None else marked.q) - marked.q]]  # fmt: skip
            label = _marked_text(marked, sel.n_b, classes)
            ax.errorbar([marked.eff_s], [marked.q], yerr=err, fmt="^" if marked.at_reach else "o",
                        color="C3", ms=5, capsize=2, label=label)  # fmt: skip
            title = _q_title(marked, min_background, bkg)
        else:
            note = f"no Q quoted:\n{plain(reason or 'no cut')}"
            if not constant:
                ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center",
                        color="C3")  # fmt: skip
            title = f"quality factor; no cut keeps ≥ {min_background} {bkg} events"
        if constant:
            constant_note(ax)
            title = "quality factor: constant output"
        ax.set_xlim(0.0, 1.02)
        ax.set_ylim(0.0, top)
        ax.set_xlabel(classes.signal_label())
        ax.set_ylabel(classes.q_label())
        ax.legend(loc="upper right")
        ax.grid(alpha=0.3, lw=0.4)
        return save(plt, fig, path, title, header)


def _q_title(marked: Marked, min_background: int, bkg: str) -> str:
    """The Q figure's title: the value quoted, where its cut was chosen, the background minimum."""
    value = f"Q = {merit.rounded(marked.q, marked.lo, marked.hi)}"
    if marked.at_reach:
        value = f"{value}, lower limit"
    if marked.chosen_on == "this sample":
        return f"{value}\noptimum among cuts keeping ≥ {min_background} {bkg} events"
    return f"{value}\ncut from the {plain(marked.chosen_on)} (≥ {min_background} {bkg} kept there)"


def _marked_text(marked: Marked, n_b: int, classes: Classes) -> str:
    value = f"Q = {merit.rounded(marked.q, marked.lo, marked.hi)}"
    if marked.at_reach:
        value += " (lower limit: at the reach)"
    where = f"{classes.eff_s()} = {marked.eff_s:.2f}"
    return f"{value} at {where}\n({marked.kept_b} of {n_b} {classes.background_text()} kept)"
