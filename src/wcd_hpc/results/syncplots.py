"""The PNG plots that only ``sync`` draws: a trial's learning curves, and per study the
optimization history, parameter importances and parallel coordinates.

They are drawn at sync time, not by the workers, from what the trial directory already holds
(``metrics.jsonl``) and from the study, so a trial needs neither its data nor its model plugin
to be plotted. (A trial's confusion matrix and ROC curve are drawn by the trial itself, or by
sync from ``predictions.npz`` with the same code: :func:`wcd_hpc.results.evaluation.write_plots`.)
Matplotlib runs with the Agg backend: sync often runs in a batch job or over SSH, where there
is no display.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import optuna
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from wcd_hpc.output.files import atomic

log = logging.getLogger(__name__)
DPI = 80


def _save(fig: Figure, path: Path) -> Path:
    """Write ``path`` (PNG) whole or not at all: a full disk leaves no 0-byte plot."""
    fig.tight_layout()
    try:
        with atomic(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    return path


def learning_curves(records: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Training loss and every validation metric against the epoch; None without epochs."""
    if not records:
        return None
    epochs = [int(r.get("epoch", i + 1)) for i, r in enumerate(records)]
    val_keys = sorted({k for r in records for k in r if k.startswith("val_")})
    fig, (loss_ax, val_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_ax.plot(epochs, [r.get("train_loss", np.nan) for r in records], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="training loss")
    for key in val_keys:
        values = [r.get(key, np.nan) for r in records]
        val_ax.plot(epochs, values, marker="o", label=key.removeprefix("val_"))
    val_ax.set(xlabel="epoch", ylabel="value", title="validation metrics")
    if val_keys:
        val_ax.legend(fontsize="small")
    return _save(fig, path)


def _optuna_plot(draw: Callable[[], Any], path: Path) -> Path | None:
    """Run one of Optuna's matplotlib plots and save it; a plot that cannot be drawn is skipped.

    These plots are a convenience on the parent run: a study they cannot handle (one trial, a
    constant parameter, an importance model that fails to fit) must never make the sync fail.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            drawn = draw()
    except Exception as exc:
        log.info("skipping %s: %s", path.name, exc)
        plt.close("all")
        return None
    first = drawn.flat[0] if isinstance(drawn, np.ndarray) else drawn
    fig = plt.gcf()
    if isinstance(first, Axes) and isinstance(first.figure, Figure):
        fig = first.figure
    fig.set_size_inches(8, 4.5)
    return _save(fig, path)


def study_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Optimization history, parameter importances (two complete trials and more than one
    parameter needed) and parallel coordinates of ``study``, as PNG files in ``folder``."""
    from optuna.visualization import matplotlib as ovm

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return []
    params = {k for t in complete for k in t.params}
    plots: list[Path | None] = [
        _optuna_plot(
            lambda: ovm.plot_optimization_history(study), folder / "optimization_history.png"
        )
    ]
    if len(complete) >= 2 and len(params) > 1:
        plots.append(
            _optuna_plot(
                lambda: ovm.plot_param_importances(study), folder / "param_importances.png"
            )
        )
    if params:
        plots.append(
            _optuna_plot(
                lambda: ovm.plot_parallel_coordinate(study), folder / "parallel_coordinates.png"
            )
        )
    return [p for p in plots if p is not None]
