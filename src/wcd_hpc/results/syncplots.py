"""The plots that only ``sync`` draws: a trial's learning curves, and per study the
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

from wcd_hpc.queue.schema import VECTOR_PLOT_SUFFIX
from wcd_hpc.results import plots
from wcd_hpc.results.plots import Provenance

#: The validation loss in ``metrics.jsonl`` (cross-entropy of the validation predictions).
VAL_LOSS = "val_loss"

log = logging.getLogger(__name__)


def _save(fig: Figure, path: Path, title: str, header: str) -> list[Path]:
    """The trial figures' standard (:func:`wcd_hpc.results.plots.save`): provenance header on
    top and in the metadata, PNG at print resolution and a PDF twin, each written whole or not
    at all (a full disk leaves no 0-byte plot). Returns both files."""
    plots.save(plt, fig, path, title, header)
    return [path, path.with_suffix(VECTOR_PLOT_SUFFIX)]


def learning_curves(
    records: Sequence[Mapping[str, Any]], path: Path, provenance: Provenance | None = None
) -> list[Path]:
    """Training and validation loss, and every validation metric, against the epoch; nothing
    without epochs. A trial from before validation loss was recorded shows training loss only.
    """
    if not records:
        return []
    epochs = [int(r.get("epoch", i + 1)) for i, r in enumerate(records)]
    val_keys = sorted({k for r in records for k in r if k.startswith("val_") and k != VAL_LOSS})
    with plots.styled():
        width, height = plots.FIGSIZE
        fig, (loss_ax, val_ax) = plt.subplots(1, 2, figsize=(2 * width, height))
        loss_ax.plot(epochs, [r.get("train_loss", np.nan) for r in records], marker="o",
                     label="training")  # fmt: skip
        if any(VAL_LOSS in r for r in records):
            loss_ax.plot(epochs, [r.get(VAL_LOSS, np.nan) for r in records], marker="s",
                         label="validation")  # fmt: skip
        loss_ax.set(xlabel="epoch", ylabel="loss")
        loss_ax.legend(fontsize="small")
        for key in val_keys:
            values = [r.get(key, np.nan) for r in records]
            val_ax.plot(epochs, values, marker="o", label=key.removeprefix("val_"))
        val_ax.set(xlabel="epoch", ylabel="value", title="validation metrics")
        if val_keys:
            val_ax.legend(fontsize="small")
        header = (provenance or Provenance()).header(f"{len(records)} epochs")
        return _save(fig, path, "loss", header)


def _optuna_plot(draw: Callable[[], Any], path: Path, header: str) -> list[Path]:
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
        return []
    first = drawn.flat[0] if isinstance(drawn, np.ndarray) else drawn
    fig = plt.gcf()
    if isinstance(first, Axes) and isinstance(first.figure, Figure):
        fig = first.figure
    width, height = plots.FIGSIZE
    fig.set_size_inches(1.6 * width, 1.2 * height)
    title = fig.axes[0].get_title() if fig.axes else path.stem
    return _save(fig, path, title, header)


def study_plots(
    study: optuna.Study, folder: Path, provenance: Provenance | None = None
) -> list[Path]:
    """Optimization history, parameter importances (two complete trials and more than one
    parameter needed) and parallel coordinates of ``study``, as PNG and PDF files in
    ``folder``, each with the study's provenance on top."""
    from optuna.visualization import matplotlib as ovm

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return []
    params = {k for t in complete for k in t.params}
    finished = len(study.get_trials(deepcopy=False))
    header = (provenance or Provenance(study=study.study_name)).header(
        f"{len(complete)} complete of {finished} trials"
    )
    drawn = _optuna_plot(
        lambda: ovm.plot_optimization_history(study), folder / "optimization_history.png", header
    )
    if len(complete) >= 2 and len(params) > 1:
        drawn += _optuna_plot(
            lambda: ovm.plot_param_importances(study), folder / "param_importances.png", header
        )
    if params:
        drawn += _optuna_plot(
            lambda: ovm.plot_parallel_coordinate(study),
            folder / "parallel_coordinates.png",
            header,
        )
    return drawn
