"""What a trial is scored with: the worker's prepared context, the signal class, and the
figures of merit on a split (cuts chosen on validation, quoted on test), split out of
:mod:`wcd_hpc.engine.trial` so that the training loop there stays readable.

Everything here reads the context's splits and metrics and writes nothing but a trial's files;
:func:`test_report` is where the validation cuts are chosen and applied to the test split.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wcd_hpc import merit
from wcd_hpc.api import Metric, Model, Split, Splits
from wcd_hpc.default_plugins.metrics import (
    default_signal_class,
    signal_index,
    with_settings,
    with_signal_class,
)
from wcd_hpc.engine.device import Placement
from wcd_hpc.engine.fit import (
    default_logits,
    predict,
)
from wcd_hpc.errors import ConfigError, DataError
from wcd_hpc.experiment.config import Experiment
from wcd_hpc.experiment.sources import got
from wcd_hpc.experiment.space import Space
from wcd_hpc.queue.schema import (
    CUTS_FILE,
)
from wcd_hpc.results import baseline
from wcd_hpc.results import provenance as origin
from wcd_hpc.results.evaluation import (
    binned_table,
    write_binned,
    write_json,
)
from wcd_hpc.results.quote import choose_split_cuts, per_bin_mean, quote

STANDARD_METRICS = ("f1", "accuracy", "roc_auc")
#: Test events saved as the MLflow model's input example (small even for 80×80 footprints).
EXAMPLE_EVENTS = 2


@dataclass
class Context:
    """What a worker prepares once and reuses for every trial it runs (data stays loaded)."""

    exp: Experiment
    space: Space
    model: Model
    metrics: dict[str, Metric]
    splits: Splits
    run_dir: Path
    device: torch.device
    #: How the figures name a run: ``trial 12`` in a sweep, ``train run 0`` for ``wcd-hpc train``.
    run_kind: str = "trial"
    #: Precision, compile, data on the GPU and GPU share, resolved once for the worker's device.
    placement: Placement = field(default_factory=Placement)
    #: The study's identity (:mod:`wcd_hpc.queue.identity`), written into each trial's files.
    study_id: str | None = None


class SignalClassError(ConfigError, DataError):
    """``signal_class`` names no class of the loaded data.

    A setting, so it is blamed on its file and line (or flag); but no trial of the experiment can
    run with it, so a worker stops on it as on unusable data instead of failing trial after trial.
    """


def signal_label(exp: Experiment, class_names: Sequence[str], split: Split | None = None) -> int:
    """The index of the experiment's signal class among ``class_names``.

    ``None`` in the experiment means the dataset's default
    (:func:`~wcd_hpc.default_plugins.metrics.default_signal_class`, which may look at ``split``'s
    ``meta['primary']``); a name that is not a class raises :class:`SignalClassError` naming the
    key and the classes.
    """
    if exp.signal_class is None:
        y = split.y.cpu().numpy() if split is not None else None
        return default_signal_class(class_names, y, split.meta if split is not None else None)
    found = signal_index(exp.signal_class, class_names)
    if found is None:
        flag = exp.origins.get("signal_class")
        file, line = (flag, None) if flag else (exp.source, exp.lines.get("signal_class"))
        classes = ", ".join(str(c) for c in class_names)
        message = (
            f"{got(exp.signal_class)} is not a class of dataset '{exp.dataset}' "
            f"(its classes: {classes})"
        )
        raise SignalClassError(file, "signal_class", line, message)
    return found


def signal_of(ctx: Context) -> int:
    return signal_label(ctx.exp, ctx.splits.spec.class_names, ctx.splits.train)


def settings(exp: Experiment) -> merit.Settings:
    """The experiment's figure-of-merit settings (``metric.min_background``, ``.efficiency``)."""
    return merit.Settings(
        min_background=int(exp.setting("metric.min_background")),
        efficiency=float(exp.setting("metric.efficiency")),
    )


def metric_values(ctx: Context, split: Split, probs: np.ndarray) -> dict[str, float]:
    """The objective and the standard metrics, each chosen and quoted on ``split``.

    With ``metric.per_bin: mean`` the objective is the metric's mean over the energy bins with
    enough events (:func:`wcd_hpc.results.quote.per_bin_mean`).
    """
    y_true = split.y.cpu().numpy()
    chosen = settings(ctx.exp)
    meta = with_settings(
        with_signal_class(split.meta, signal_of(ctx), y_true.size), chosen, y_true.size
    )
    names = [ctx.exp.metric] + [m for m in STANDARD_METRICS if m != ctx.exp.metric]
    out = {
        name: float(ctx.metrics[name].compute(y_true, probs, meta))
        for name in names
        if name in ctx.metrics
    }
    if ctx.exp.setting("metric.per_bin") == "mean" and ctx.exp.metric in ctx.metrics:
        metric = ctx.metrics[ctx.exp.metric]
        out[ctx.exp.metric] = per_bin_mean(ctx.exp.metric, y_true, probs, meta, metric, chosen)
    return out


def test_report(
    ctx: Context, out: Path, runner: torch.nn.Module, probs: np.ndarray, signal: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Cuts chosen on validation (``cuts.json``), applied to the test split (``binned.json``).

    ``binned.json`` also keeps the objective per energy bin on validation (``validation_bins``,
    at those same cuts): the finalists' report averages it over seeds.

        Returns the test metrics for ``result.json`` — the cut-based ones at the validation cuts,
        every one with ``_lo``/``_hi`` — and the provenance.
    """
    chosen = settings(ctx.exp)
    val = ctx.splits.val
    y_val = val.y.cpu().numpy()
    val_probs = probs_of(ctx, runner, val)
    cuts = choose_split_cuts(y_val, val_probs, val.meta, signal, chosen)
    write_json(out / CUTS_FILE, cuts)
    data = origin.data_provenance(ctx.exp.dataset, ctx.exp.dataset_params)
    where = {"software": origin.software(), "data": data}
    test_split = ctx.splits.test
    objective = {n: m for n, m in ctx.metrics.items() if n == ctx.exp.metric}
    val_meta = with_signal_class(val.meta, signal, y_val.size)
    val_bins = binned_table(
        y_val, val_probs, val_meta, objective, signal=signal, settings=chosen, cuts=cuts
    )
    payload = write_binned(
        out,
        test_split.y.cpu().numpy(),
        probs,
        test_split.meta,
        ctx.splits.spec.class_names,
        ctx.metrics,
        signal=signal,
        settings=chosen,
        cuts=cuts,
        provenance=where,
        validation_bins=val_bins,
    )
    test = metric_values(ctx, test_split, probs)
    overall = payload["all"]
    for name in list(test):
        if name in overall:
            test[name] = overall[name]
    for key, value in overall.items():
        if key[:-3] in test and key.endswith(("_lo", "_hi")):
            test[key] = value
    notes = {k: v for k, v in overall.items() if k.endswith(("_reason", "at_reach"))}
    return test, {**where, "payload": payload, "val_probs": val_probs, "notes": notes}


def objective_interval(ctx: Context, val_probs: np.ndarray, signal: int) -> dict[str, Any]:
    """The objective's 68 % interval on validation (bootstrap; each resample re-chooses a cut)."""
    if ctx.exp.setting("metric.per_bin") == "mean":
        return {}
    val, name = ctx.splits.val, ctx.exp.metric
    y_val = val.y.cpu().numpy()
    quoted = quote(y_val, val_probs, val.meta, ctx.metrics, signal, settings(ctx.exp), names=[name])
    return {"objective_lo": quoted.get(f"{name}_lo"), "objective_hi": quoted.get(f"{name}_hi")}


def probs_of(ctx: Context, model: torch.nn.Module, split: Split) -> np.ndarray:
    logits = ctx.model.logits or default_logits
    precision = ctx.placement.precision
    return predict(model, split, device=ctx.device, logits_fn=logits, precision=precision)


def evaluate(ctx: Context, model: torch.nn.Module, split: Split) -> dict[str, float]:
    """The objective metric plus the standard ones, on one split."""
    return metric_values(ctx, split, probs_of(ctx, model, split))


def val_loss(split: Split, probs: np.ndarray) -> dict[str, float]:
    """``val_loss``: the cross-entropy of the validation predictions, beside the training loss
    in the learning curves (an overfitting model shows it rising). It is the classification
    loss only: a model whose own loss adds terms (an autoencoder's reconstruction) trains on
    more than this."""
    y = split.y.cpu().numpy()
    if not y.size or probs.shape[0] != y.size:
        return {}
    picked = probs[np.arange(y.size), y]
    return {"val_loss": float(-np.mean(np.log(np.clip(picked, 1e-12, None))))}


def save_predictions(ctx: Context, probs: np.ndarray, path: Path) -> None:
    """Keep the test split's labels, class probabilities and class names for ``sync``.

    ``sync`` draws the confusion matrix and ROC curve from them later, on a machine that has
    neither the data nor the model's plugin loaded.
    """
    tmp = path.with_name(path.name + ".tmp.npz")
    names = np.array([str(n) for n in ctx.splits.spec.class_names])
    np.savez_compressed(
        tmp, y_true=ctx.splits.test.y.cpu().numpy(), y_score=probs, class_names=names
    )
    os.replace(tmp, path)


def write_baseline(ctx: Context, out: Path, probs: np.ndarray, signal: int) -> None:
    """The classical baseline beside the model in ``binned.json`` (gamma/hadron footprints):
    its cut chosen on the training split, applied to the test split, and the gain."""
    train, test = ctx.splits.train, ctx.splits.test
    if not baseline.applies(ctx.splits.spec.class_names, signal, train.meta, test.meta):
        return
    baseline.add_to_binned(
        out,
        baseline.Sample(train.y.cpu().numpy() == signal, train.meta),
        baseline.Sample(test.y.cpu().numpy() == signal, test.meta),
        scores=probs[:, signal],
        train_energy=train.meta.get("energy"),
        test_energy=test.meta.get("energy"),
    )


def save_example(path: Path, split: Split) -> None:
    """A few real test events as the model saw them: the logged MLflow model's input example
    (``sync`` turns them back into raw inputs)."""
    n = min(EXAMPLE_EVENTS, len(split))
    if n:
        events = split.x[0:n]
        np.save(path, events.detach().cpu().numpy().astype(np.float32))
