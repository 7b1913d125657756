"""One trial: parameters → model → fit → metrics → artifacts under ``runs/<study>/trials/<n>/``.

Everything a trial produces goes to files in its own directory (never to MLflow: compute nodes are
often offline), so ``sync`` and people can read a trial without the study: ``params.json``
(parameters and seed), ``metrics.jsonl`` (one line per epoch), ``checkpoint.pt`` (rewritten
after each epoch), ``model.pt`` (the kept weights), ``cuts.json`` (the cuts chosen on the
validation split) and ``result.json`` (validation objective and test metrics at those cuts, each
with its 68 % interval, and the provenance).

**The kept epoch** (``keep: best | last``, default ``best``): a trial keeps the weights of the
epoch with the best validation objective, the earlier one on a tie (as Lightning's
``ModelCheckpoint(monitor=…)`` and Keras' ``restore_best_weights``): a network that peaked at
epoch 3 of 4 is worth its epoch 3, and the sweep should compare trials at their best. Its
objective, ``model.pt``, the test metrics, figures, ``binned.json`` and predictions all come from
that epoch, and ``result.json`` names it (``kept_epoch``). The checkpoint still holds the last
finished epoch (resuming continues training) and carries the kept weights with it, so they
survive a suspend and resume. Choosing on the validation split keeps the test split untouched.

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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import optuna
import torch

from wcd_hpc.engine import subepoch
from wcd_hpc.engine.device import compile_failed, compiled, is_compile_error
from wcd_hpc.engine.fit import (
    EpochStats,
    batch_size_of,
    default_logits,
    default_loss,
    fit,
    logits_problem,
    make_optimizer,
    report_marks,
)
from wcd_hpc.engine.scoring import (
    Context,
    SignalClassError,
    evaluate,
    metric_values,
    objective_interval,
    probs_of,
    save_example,
    save_predictions,
    signal_label,
    signal_of,
    test_report,
    val_loss,
    write_baseline,
)
from wcd_hpc.engine.verdicts import CHANCE, NAN, PRUNER, at_chance, chance_rule, not_finite
from wcd_hpc.errors import PluginError
from wcd_hpc.plugins import get_registry
from wcd_hpc.queue.schema import (
    CHECKPOINT_FILE,
    INPUT_EXAMPLE_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PARAMS_FILE,
    PREDICTIONS_FILE,
    REPORTS_FILE,
    RESULT_FILE,
    STUDY_ID,
    TRIAL_CHECKPOINT_MISSING,
    TRIAL_GPU_HOURS,
    TRIAL_KEPT_EPOCH,
    TRIAL_OBJECTIVE_INTERVAL,
    TRIAL_PRUNED_BECAUSE,
    TRIAL_PRUNED_DETAIL,
    TRIAL_RESUMED_FROM_EPOCH,
    TRIAL_TEST,
    TRIAL_TRAIN_FINISHED,
    TRIAL_TRAIN_STARTED,
    draws_trial_figures,
    trial_dir,
)
from wcd_hpc.results import provenance as origin
from wcd_hpc.results.evaluation import (
    Provenance,
    write_data_spec,
    write_json,
    write_plots,
)
from wcd_hpc.store import journal

#: What other modules import from here; the scoring half lives in :mod:`wcd_hpc.engine.scoring`.
__all__ = [
    "Context",
    "ModelOutputError",
    "SignalClassError",
    "evaluate",
    "run_trial",
    "seed_everything",
    "signal_label",
    "wait_for_artifacts",
]

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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _restore(
    out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[int, dict[str, Any]]:
    """Load the last epoch checkpoint of a suspended trial; returns (epoch, kept epoch so far).

    Lines of ``metrics.jsonl`` written after that checkpoint (an epoch whose checkpoint was cut
    short) are dropped, so the per-epoch history continues without gaps or repeats. The kept
    epoch (see the module docstring) travels inside the checkpoint, never ahead of it.
    """
    ckpt_path, history = out / CHECKPOINT_FILE, out / METRICS_FILE
    if not ckpt_path.exists():
        history.unlink(missing_ok=True)
        return 0, {}
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    epoch = int(ckpt["epoch"])
    records = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
    kept = [r for r in records if r["epoch"] <= epoch]
    history.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return epoch, dict(ckpt.get("kept") or {})


def _better(value: float, kept: dict[str, Any], maximize: bool) -> bool:
    """Whether ``value`` beats the kept epoch's (strictly: a tie keeps the earlier epoch)."""
    if not kept:
        return True
    best = float(kept["value"])
    return value > best if maximize else value < best


def _stop(trial: optuna.Trial, because: str, message: str) -> NoReturn:
    """Prune the trial, recording why (:data:`TRIAL_PRUNED_BECAUSE`) and the line that says so."""
    trial.set_user_attr(TRIAL_PRUNED_BECAUSE, because)
    trial.set_user_attr(TRIAL_PRUNED_DETAIL, message)
    raise optuna.TrialPruned(message)


def _draws_figures(ctx: Context, trial: optuna.Trial) -> bool:
    """Whether this run draws its figures: a ``train`` run always, a sweep trial as
    :func:`~wcd_hpc.queue.schema.draws_trial_figures` says (``sync`` asks the same)."""
    if ctx.run_kind != "trial":
        return True
    return draws_trial_figures(ctx.exp.setting("trial_plots"), trial.user_attrs)


class ModelOutputError(PluginError):
    """A model whose outputs break the contract (class logits of shape (batch, classes))."""


def _output_check(ctx: Context, trial: optuna.Trial) -> Callable[[Any, torch.Tensor, Any], None]:
    """The check of the first batch a trial trains: logits shaped (batch, classes), finite loss.

    A wrong shape fails the trial naming the model and its plugin; a loss that is already NaN
    or inf prunes it with ``nan`` before a single step.
    """

    def check(outputs: Any, x: torch.Tensor, loss: Any) -> None:
        logits = (ctx.model.logits or default_logits)(outputs)
        spec = ctx.splits.spec
        problem = logits_problem(logits, int(x.shape[0]), spec.num_classes)
        if problem is not None:
            entry = get_registry().models.get(ctx.exp.model)
            owner = f"{entry.source}: " if entry is not None else ""
            classes = ", ".join(str(c) for c in spec.class_names)
            raise ModelOutputError(
                f"{owner}model '{ctx.exp.model}': {problem}; dataset '{ctx.exp.dataset}' has "
                f"{spec.num_classes} classes ({classes})"
            )
        value = float(loss.detach().float())
        if not math.isfinite(value):
            _stop(trial, NAN, f"training loss is {value} on the first batch")

    return check


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
    """Train and evaluate one trial; returns the validation objective of its kept epoch.

    With ``resume`` the trial's parameters are read back (not sampled) and training continues
    after the last checkpointed epoch. Raises ``optuna.TrialPruned`` when the pruner stops it,
    ``Interrupted`` on a stop request, and any other exception for a genuine failure. Before
    the pruner, :mod:`wcd_hpc.engine.verdicts` prunes a loss or outputs that are not finite, and
    (``prune_chance``) a network at chance level; the trial's ``pruned_because`` says which.
    """
    signal = signal_of(ctx)  # a signal_class the data do not have fails here, before training
    # A resumed trial that lacks some or all of its parameters was created when an outage cut
    # its claim short, before they were all drawn: it draws the rest now (Optuna answers the
    # ones already stored with their stored values).
    drawn = resume and not ctx.space.missing(trial.params)
    params = ctx.space.rebuild(trial.params) if drawn else ctx.space.suggest(trial)
    seed = ctx.exp.seed + trial.number
    out = trial_dir(ctx.run_dir, trial.number)
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / PARAMS_FILE,
        {
            "study": ctx.exp.name,
            STUDY_ID: ctx.study_id,
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
    history, reports = out / METRICS_FILE, out / REPORTS_FILE
    start_epoch, kept = 0, dict[str, Any]()
    judged: set[int] = set()  # steps the pruner has already seen (a resumed trial's)
    if resume:
        judged = set(trial.study._storage.get_trial(trial._trial_id).intermediate_values)
        start_epoch, kept = _restore(out, model, optimizer)
        subepoch.trim(reports, start_epoch)
        trial.set_user_attr(TRIAL_RESUMED_FROM_EPOCH, start_epoch)
        if start_epoch == 0 and judged:  # it had trained: its checkpoint was deleted
            lost = (
                f"checkpoint {out / CHECKPOINT_FILE} is missing: trial {trial.number} had "
                f"reached epoch {max(judged)} and restarts from epoch 1"
            )
            trial.set_user_attr(TRIAL_CHECKPOINT_MISSING, lost)
            log.warning("%s", lost)
    else:
        history.unlink(missing_ok=True)
        reports.unlink(missing_ok=True)
    fraction = float(ctx.exp.setting("report_every"))
    unit = len(ctx.splits.train) if fraction < 1 else 1  # steps: samples seen, else epochs
    keep_best = ctx.exp.setting("keep") != "last"
    maximize = ctx.exp.direction != "minimize"
    # A one-off ``train`` run has no slot to free: it is never judged at chance level.
    chance = chance_rule(ctx.exp.setting("prune_chance")) if ctx.run_kind == "trial" else None
    y_val = ctx.splits.val.y.cpu().numpy()

    size = int(ctx.exp.setting("report_subsample"))
    sub = subepoch.val_subsample(ctx.splits.val, size, ctx.exp.seed) if unit > 1 else None
    marks = tuple(report_marks(len(ctx.splits.train), fraction))
    clock = subepoch.Clock(marks, len(ctx.splits.train), batch_size_of(params))

    def during_epoch(epoch: int, samples: int) -> None:
        """A report inside the epoch, on the validation subsample (see :mod:`.subepoch`)."""
        if sub is None:  # only called with reports inside the epoch
            return
        step = (epoch - 1) * unit + samples
        probs = probs_of(ctx, runner, sub)
        broken = not_finite(0.0, probs)
        if broken is not None:
            _stop(trial, NAN, f"{broken} after {step} samples")
        value = metric_values(ctx, sub, probs)[ctx.exp.metric]
        # The epoch's seconds so far (this report's scoring included): a trial pruned inside
        # its epoch has no metrics.jsonl line for it, and its cost must still be counted.
        seconds = round(time.perf_counter() - epoch_began, 3)
        record = {"epoch": epoch, "samples": step, f"val_{ctx.exp.metric}": value}
        subepoch.append(reports, {**record, "seconds": seconds})
        if step in judged or math.isnan(value):
            return
        report, steps = clock.at(epoch, samples)
        truth = sub.y.cpu().numpy()
        why = at_chance(probs, truth, signal, chance, report, steps) if chance is not None else None
        if why is not None:
            _stop(trial, CHANCE, f"at chance level after {step} samples in epoch {epoch}: {why}")
        trial.report(value, step)
        if trial.should_prune():
            _stop(trial, PRUNER, f"pruned after {step} samples in epoch {epoch} ({value:.4g})")

    epoch_began = time.perf_counter()  # reset after each epoch's end-of-epoch work

    def after_epoch(stats: EpochStats) -> None:
        nonlocal kept, epoch_began
        probs = probs_of(ctx, runner, ctx.splits.val)
        broken = not_finite(stats.train_loss, probs)  # before any metric sees the scores
        if broken is not None:
            _stop(trial, NAN, f"{broken} at epoch {stats.epoch}")
        values = metric_values(ctx, ctx.splits.val, probs)
        value = values[ctx.exp.metric]
        record = {
            "epoch": stats.epoch,
            "train_loss": stats.train_loss,
            "seconds": stats.seconds,
            "samples_per_s": stats.samples_per_s,
            **val_loss(ctx.splits.val, probs),
            **{f"val_{k}": v for k, v in values.items()},
        }
        with history.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        if math.isnan(value):
            raise ValueError(f"validation {ctx.exp.metric} is NaN at epoch {stats.epoch}")
        if not keep_best:
            kept = {"epoch": stats.epoch, "value": value}
        elif _better(value, kept, maximize):
            state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            kept = {"epoch": stats.epoch, "value": value, "model": state}
        checkpoint = {
            "epoch": stats.epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "params": params,
            "seed": seed,
            "kept": kept,
        }
        partial = out / f"{CHECKPOINT_FILE}.tmp"
        torch.save(checkpoint, partial)
        os.replace(partial, out / CHECKPOINT_FILE)
        epoch_began = time.perf_counter()  # the next epoch's reports count from here
        step = stats.epoch * unit
        if step in judged:
            return  # a resumed trial's redone epoch: reported and judged before it stopped
        # Judged before it is reported: a chance-level value never enters the statistics
        # (median, ASHA rungs) the other trials are compared with.
        report, steps = clock.at(stats.epoch)
        why = at_chance(probs, y_val, signal, chance, report, steps) if chance is not None else None
        if why is not None:
            _stop(trial, CHANCE, f"at chance level at epoch {stats.epoch}: {why}")
        trial.report(value, step)
        # The last epoch is reported but never judged: stopping there saves no training and
        # would throw a finished result away.
        if stats.epoch < ctx.exp.epochs and trial.should_prune():
            _stop(trial, PRUNER, f"pruned at epoch {stats.epoch} ({ctx.exp.metric}={value:.4g})")

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
            first_batch=_output_check(ctx, trial),
            report_every=fraction,
            during_epoch=during_epoch if sub is not None else None,
        )
    except Exception as exc:
        if ctx.placement.compiled and is_compile_error(exc):
            raise compile_failed(exc) from exc
        raise
    finally:
        _trained(trial, began, ctx.placement.gpu_share)
    if not kept:  # every epoch was trained before a crash that lost them: nothing to keep
        raise RuntimeError(f"no finished epoch to keep in {out}")
    if "model" in kept:
        model.load_state_dict(kept["model"])  # ``runner`` shares these parameters
    torch.save(model.state_dict(), out / MODEL_FILE)
    probs = probs_of(ctx, runner, ctx.splits.test)  # predicted once, used three ways below
    broken = not_finite(0.0, probs)
    if broken is not None:  # finite on validation, not on test: still no metric sees them
        _stop(trial, NAN, f"test split: {broken}")
    save_predictions(ctx, probs, out / PREDICTIONS_FILE)
    test, where = test_report(ctx, out, runner, probs, signal)
    test_split = ctx.splits.test
    names = ctx.splits.spec.class_names
    write_data_spec(out, ctx.splits.spec, ctx.splits.transform, str(names[signal]))
    save_example(out / INPUT_EXAMPLE_FILE, test_split)
    y_test = test_split.y.cpu().numpy()
    figure_origin = (origin.software_text(where["software"]), origin.describe(where["data"]))
    write_baseline(ctx, out, probs, signal)
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
    if not _draws_figures(ctx, trial):
        pass  # ``trial_plots: false``: the predictions are kept; ``evaluate`` draws them later
    elif background:  # the figures cost ~1-3 s: drawn while the next trial already trains
        _PLOTTER.submit(_logged, plot, *args)
    else:
        plot(*args)
    records = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
    val = next(r for r in records if r["epoch"] == kept["epoch"])
    result = {
        "objective": kept["value"],
        **objective_interval(ctx, where["val_probs"], signal),
        "metric": ctx.exp.metric,
        "keep": "best" if keep_best else "last",
        TRIAL_KEPT_EPOCH: kept["epoch"],
        "epochs": records[-1]["epoch"],
        "test": test,
        "test_cuts_chosen_on": "validation split",
        "test_notes": where["notes"],
        "val": val,
        "provenance": {"software": where["software"], "data": where["data"]},
    }
    write_json(out / RESULT_FILE, result)
    trial.set_user_attr(TRIAL_TEST, test)
    trial.set_user_attr(TRIAL_KEPT_EPOCH, kept["epoch"])
    if "objective_lo" in result:
        trial.set_user_attr(
            TRIAL_OBJECTIVE_INTERVAL, [result["objective_lo"], result["objective_hi"]]
        )
    return float(kept["value"])
