"""One trial: parameters → model → fit → metrics → artifacts under ``runs/<study>/trials/<n>/``.

Everything a trial produces goes to files in its own directory (never to MLflow: compute nodes are
often offline), so ``sync`` and people can read a trial without the study: ``params.json``
(parameters and seed), ``metrics.jsonl`` (one line per epoch), ``checkpoint.pt`` (rewritten
after each epoch), ``model.pt`` (final weights), ``cuts.json`` (the cuts chosen on the
validation split) and ``result.json`` (validation objective and test metrics at those cuts, each
with its 68 % interval, and the provenance).

Every metric sees the experiment's signal class (``signal_class``, checked against the loaded
data's class names before training starts) in ``meta``
(:data:`~wcd_hpc.default_plugins.metrics.SIGNAL_KEY`), and the test figures name the study,
trial, model and dataset they were drawn from.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import random
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from wcd_hpc import merit
from wcd_hpc.api import Metric, Model, Split, Splits
from wcd_hpc.default_plugins.metrics import (
    default_signal_class,
    signal_index,
    with_settings,
    with_signal_class,
)
from wcd_hpc.engine.device import Placement, compile_failed, compiled, is_compile_error
from wcd_hpc.engine.fit import (
    EpochStats,
    default_logits,
    default_loss,
    fit,
    make_optimizer,
    predict,
)
from wcd_hpc.errors import ConfigError, DataError
from wcd_hpc.experiment.config import Experiment
from wcd_hpc.experiment.sources import got
from wcd_hpc.experiment.space import Space
from wcd_hpc.queue import journal
from wcd_hpc.queue.schema import (
    CHECKPOINT_FILE,
    CUTS_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PARAMS_FILE,
    PREDICTIONS_FILE,
    RESULT_FILE,
    TRIAL_GPU_HOURS,
    TRIAL_OBJECTIVE_INTERVAL,
    TRIAL_RESUMED_FROM_EPOCH,
    TRIAL_TEST,
    TRIAL_TRAIN_FINISHED,
    TRIAL_TRAIN_STARTED,
    trial_dir,
)
from wcd_hpc.results import provenance as origin
from wcd_hpc.results.evaluation import (
    Provenance,
    write_binned,
    write_data_spec,
    write_json,
    write_plots,
)
from wcd_hpc.results.quote import choose_split_cuts, per_bin_mean, quote

STANDARD_METRICS = ("f1", "accuracy", "roc_auc")
# One thread draws trial plots in the background; matplotlib's Agg backend is safe off the main
# thread as long as a single thread draws. ``wait_for_artifacts`` drains it before exit.
_PLOTTER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wcd-plots")
log = logging.getLogger("wcd_hpc.trial")


def _logged(func: Callable[..., object], *args: Any) -> None:
    try:
        func(*args)
    except Exception as exc:  # a missing plot must not fail a finished trial
        log.warning("plots for %s not drawn: %s: %s", args[0], type(exc).__name__, exc)


def wait_for_artifacts() -> None:
    """Block until every background plot is written (workers call it before they exit)."""
    _PLOTTER.submit(lambda: None).result()


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


def _signal(ctx: Context) -> int:
    return signal_label(ctx.exp, ctx.splits.spec.class_names, ctx.splits.train)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def settings(exp: Experiment) -> merit.Settings:
    """The experiment's figure-of-merit settings (``metric.min_background``, ``.efficiency``)."""
    return merit.Settings(
        min_background=int(exp.setting("metric.min_background")),
        efficiency=float(exp.setting("metric.efficiency")),
    )


def _metric_values(ctx: Context, split: Split, probs: np.ndarray) -> dict[str, float]:
    """The objective and the standard metrics, each chosen and quoted on ``split``.

    With ``metric.per_bin: mean`` the objective is the metric's mean over the energy bins with
    enough events (:func:`wcd_hpc.results.quote.per_bin_mean`).
    """
    y_true = split.y.cpu().numpy()
    chosen = settings(ctx.exp)
    meta = with_settings(
        with_signal_class(split.meta, _signal(ctx), y_true.size), chosen, y_true.size
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


def _test_report(
    ctx: Context, out: Path, runner: torch.nn.Module, probs: np.ndarray, signal: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Cuts chosen on validation (``cuts.json``), applied to the test split (``binned.json``).

    Returns the test metrics for ``result.json`` — the cut-based ones at the validation cuts,
    every one with ``_lo``/``_hi`` — and the provenance.
    """
    chosen = settings(ctx.exp)
    val = ctx.splits.val
    y_val = val.y.cpu().numpy()
    val_probs = _probs(ctx, runner, val)
    cuts = choose_split_cuts(y_val, val_probs, val.meta, signal, chosen)
    write_json(out / CUTS_FILE, cuts)
    data = origin.data_provenance(ctx.exp.dataset, ctx.exp.dataset_params)
    where = {"software": origin.software(), "data": data}
    test_split = ctx.splits.test
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
    )
    test = _metric_values(ctx, test_split, probs)
    overall = payload["all"]
    for name in list(test):
        if name in overall:
            test[name] = overall[name]
    for key, value in overall.items():
        if key[:-3] in test and key.endswith(("_lo", "_hi")):
            test[key] = value
    notes = {k: v for k, v in overall.items() if k.endswith(("_reason", "at_reach"))}
    return test, {**where, "payload": payload, "val_probs": val_probs, "notes": notes}


def _objective_interval(ctx: Context, val_probs: np.ndarray, signal: int) -> dict[str, Any]:
    """The objective's 68 % interval on validation (bootstrap; each resample re-chooses a cut)."""
    if ctx.exp.setting("metric.per_bin") == "mean":
        return {}
    val, name = ctx.splits.val, ctx.exp.metric
    y_val = val.y.cpu().numpy()
    quoted = quote(y_val, val_probs, val.meta, ctx.metrics, signal, settings(ctx.exp), names=[name])
    return {"objective_lo": quoted.get(f"{name}_lo"), "objective_hi": quoted.get(f"{name}_hi")}


def _probs(ctx: Context, model: torch.nn.Module, split: Split) -> np.ndarray:
    logits = ctx.model.logits or default_logits
    precision = ctx.placement.precision
    return predict(model, split, device=ctx.device, logits_fn=logits, precision=precision)


def evaluate(ctx: Context, model: torch.nn.Module, split: Split) -> dict[str, float]:
    """The objective metric plus the standard ones, on one split."""
    return _metric_values(ctx, split, _probs(ctx, model, split))


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


def _restore(
    out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, metric: str
) -> tuple[int, list[float]]:
    """Load the last epoch checkpoint of a suspended trial; returns (epoch, objective so far).

    Lines of ``metrics.jsonl`` written after that checkpoint (an epoch whose checkpoint was cut
    short) are dropped, so the per-epoch history continues without gaps or repeats.
    """
    ckpt_path, history = out / CHECKPOINT_FILE, out / METRICS_FILE
    if not ckpt_path.exists():
        history.unlink(missing_ok=True)
        return 0, []
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    epoch = int(ckpt["epoch"])
    records = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
    kept = [r for r in records if r["epoch"] <= epoch]
    history.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return epoch, [float(r[f"val_{metric}"]) for r in kept]


def _trained(trial: optuna.Trial, began: float, share: float) -> None:
    """Record the end of a stretch of training and charge the trial its GPU share of it."""
    ended = time.time()
    trial.set_user_attr(TRIAL_TRAIN_FINISHED, ended)
    if share > 0:
        before = trial.user_attrs.get(TRIAL_GPU_HOURS)
        spent = (before if isinstance(before, float) else 0.0) + (ended - began) * share / 3600
        trial.set_user_attr(TRIAL_GPU_HOURS, round(spent, 6))


def run_trial(
    ctx: Context,
    trial: optuna.Trial,
    stop: Callable[[], bool] = lambda: False,
    *,
    resume: bool = False,
    background: bool = False,
) -> float:
    """Train and evaluate one trial; returns the validation objective of the last epoch.

    With ``resume`` the trial's parameters are read back (not sampled) and training continues
    after the last checkpointed epoch. Raises ``optuna.TrialPruned`` when the pruner stops it,
    ``Interrupted`` on a stop request, and any other exception for a genuine failure.
    """
    signal = _signal(ctx)  # a signal_class the data do not have fails here, before training
    params = ctx.space.rebuild(trial.params) if resume else ctx.space.suggest(trial)
    seed = ctx.exp.seed + trial.number
    out = trial_dir(ctx.run_dir, trial.number)
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / PARAMS_FILE,
        {
            "study": ctx.exp.name,
            "trial": trial.number,
            "params": params,
            "seed": seed,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        },
    )
    journal.set_user_attrs(trial, ctx.placement.attrs())  # one append on a journal
    seed_everything(seed)
    model = ctx.model.build(params, ctx.splits.spec).to(ctx.device)
    # Trains and predicts; ``model`` itself is what is saved (a compiled module's state dict
    # would carry its wrapper's prefix and load into no plain model).
    runner = compiled(model) if ctx.placement.compiled else model
    optimizer = make_optimizer(model, params)
    history = out / METRICS_FILE
    start_epoch, objective = 0, list[float]()
    judged: set[int] = set()  # epochs the pruner has already seen (a resumed trial's)
    if resume:
        start_epoch, objective = _restore(out, model, optimizer, ctx.exp.metric)
        trial.set_user_attr(TRIAL_RESUMED_FROM_EPOCH, start_epoch)
        judged = set(trial.study._storage.get_trial(trial._trial_id).intermediate_values)
    else:
        history.unlink(missing_ok=True)

    def after_epoch(stats: EpochStats) -> None:
        values = evaluate(ctx, runner, ctx.splits.val)
        value = values[ctx.exp.metric]
        record = {
            "epoch": stats.epoch,
            "train_loss": stats.train_loss,
            "seconds": stats.seconds,
            "samples_per_s": stats.samples_per_s,
            **{f"val_{k}": v for k, v in values.items()},
        }
        with history.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        checkpoint = {
            "epoch": stats.epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "params": params,
            "seed": seed,
        }
        partial = out / f"{CHECKPOINT_FILE}.tmp"
        torch.save(checkpoint, partial)
        os.replace(partial, out / CHECKPOINT_FILE)
        if math.isnan(value):
            raise ValueError(f"validation {ctx.exp.metric} is NaN at epoch {stats.epoch}")
        objective.append(value)
        if stats.epoch in judged:
            return  # a resumed trial's redone epoch: reported and judged before it stopped
        trial.report(value, stats.epoch)
        # The last epoch is reported but never judged: stopping there saves no training and
        # would throw a finished result away.
        if stats.epoch < ctx.exp.epochs and trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned at epoch {stats.epoch} ({ctx.exp.metric}={value:.4g})"
            )

    began = time.time()
    if TRIAL_TRAIN_STARTED not in trial.user_attrs:
        trial.set_user_attr(TRIAL_TRAIN_STARTED, began)
    try:
        fit(
            runner,
            ctx.splits.train,
            params,
            epochs=ctx.exp.epochs,
            seed=seed,
            device=ctx.device,
            optimizer=optimizer,
            start_epoch=start_epoch,
            loss_fn=ctx.model.loss or default_loss,
            after_epoch=after_epoch,
            stop=stop,
            precision=ctx.placement.precision,
        )
    except Exception as exc:
        if ctx.placement.compiled and is_compile_error(exc):
            raise compile_failed(exc) from exc
        raise
    finally:
        _trained(trial, began, ctx.placement.gpu_share)
    torch.save(model.state_dict(), out / MODEL_FILE)
    probs = _probs(ctx, runner, ctx.splits.test)  # predicted once, used three ways below
    save_predictions(ctx, probs, out / PREDICTIONS_FILE)
    write_data_spec(out, ctx.splits.spec)
    test, where = _test_report(ctx, out, runner, probs, signal)
    test_split = ctx.splits.test
    names = ctx.splits.spec.class_names
    y_test = test_split.y.cpu().numpy()
    figure_origin = (origin.software_text(where["software"]), origin.describe(where["data"]))
    provenance = Provenance(
        study=ctx.exp.name,
        trial=f"{ctx.run_kind} {trial.number}",
        model=ctx.exp.model,
        dataset=ctx.exp.dataset,
        split="test split (cuts chosen on the validation split)",
        software=figure_origin[0],
        data=figure_origin[1],
    )
    plot = functools.partial(
        write_plots, signal=signal, provenance=provenance, binned=where["payload"]
    )
    args = (out, y_test, probs, test_split.meta, names)
    if background:  # the figures cost ~1-3 s: drawn while the next trial already trains
        _PLOTTER.submit(_logged, plot, *args)
    else:
        plot(*args)
    val = dict(json.loads(history.read_text().splitlines()[-1]))
    result = {
        "objective": objective[-1],
        **_objective_interval(ctx, where["val_probs"], signal),
        "metric": ctx.exp.metric,
        "test": test,
        "test_cuts_chosen_on": "validation split",
        "test_notes": where["notes"],
        "val": val,
        "provenance": {"software": where["software"], "data": where["data"]},
    }
    write_json(out / RESULT_FILE, result)
    trial.set_user_attr(TRIAL_TEST, test)
    if "objective_lo" in result:
        trial.set_user_attr(
            TRIAL_OBJECTIVE_INTERVAL, [result["objective_lo"], result["objective_hi"]]
        )
    return objective[-1]
