"""One trial: parameters → model → fit → metrics → artifacts under ``runs/<study>/trials/<n>/``.

Everything a trial produces goes to files in its own directory (never to MLflow: compute nodes are
often offline), so ``sync`` and people can read a trial without the study: ``params.json``
(parameters and seed), ``metrics.jsonl`` (one line per epoch), ``checkpoint.pt`` (rewritten
after each epoch), ``model.pt`` (final weights) and ``result.json`` (validation and test metrics).
"""

from __future__ import annotations

import json
import math
import os
import random
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from wcd_hpc.api import Metric, Model, Split, Splits
from wcd_hpc.config import Experiment
from wcd_hpc.engine.fit import (
    EpochStats,
    default_logits,
    default_loss,
    fit,
    make_optimizer,
    predict,
)
from wcd_hpc.space import Space

STANDARD_METRICS = ("f1", "accuracy", "roc_auc")


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


def trial_dir(run_dir: Path, number: int) -> Path:
    return run_dir / "trials" / str(number)


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def evaluate(ctx: Context, model: torch.nn.Module, split: Split) -> dict[str, float]:
    """The objective metric plus the standard ones, on one split."""
    logits = ctx.model.logits or default_logits
    probs = predict(model, split, device=ctx.device, logits_fn=logits)
    y_true = split.y.numpy()
    names = [ctx.exp.metric] + [m for m in STANDARD_METRICS if m != ctx.exp.metric]
    values: dict[str, float] = {}
    for name in names:
        metric = ctx.metrics.get(name)
        if metric is not None:
            values[name] = float(metric.compute(y_true, probs, split.meta))
    return values


def run_trial(ctx: Context, trial: optuna.Trial, stop: Callable[[], bool] = lambda: False) -> float:
    """Train and evaluate one trial; returns the validation objective of the last epoch.

    Raises ``optuna.TrialPruned`` when the pruner stops it, ``Interrupted`` on a stop request,
    and any other exception for a genuine failure (the worker records its cause).
    """
    params = ctx.space.suggest(trial)
    seed = ctx.exp.seed + trial.number
    out = trial_dir(ctx.run_dir, trial.number)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(
        out / "params.json",
        {
            "study": ctx.exp.name,
            "trial": trial.number,
            "params": params,
            "seed": seed,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        },
    )
    seed_everything(seed)
    model = ctx.model.build(params, ctx.splits.spec).to(ctx.device)
    optimizer = make_optimizer(model, params)
    history = out / "metrics.jsonl"
    history.unlink(missing_ok=True)
    objective: list[float] = []

    def after_epoch(stats: EpochStats) -> None:
        values = evaluate(ctx, model, ctx.splits.val)
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
        torch.save(checkpoint, out / "checkpoint.pt.tmp")
        os.replace(out / "checkpoint.pt.tmp", out / "checkpoint.pt")
        if math.isnan(value):
            raise ValueError(f"validation {ctx.exp.metric} is NaN at epoch {stats.epoch}")
        objective.append(value)
        trial.report(value, stats.epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned at epoch {stats.epoch} ({ctx.exp.metric}={value:.4g})"
            )

    trial.set_user_attr("train_started", time.time())
    try:
        fit(
            model,
            ctx.splits.train,
            params,
            epochs=ctx.exp.epochs,
            seed=seed,
            device=ctx.device,
            optimizer=optimizer,
            loss_fn=ctx.model.loss or default_loss,
            after_epoch=after_epoch,
            stop=stop,
        )
    finally:
        trial.set_user_attr("train_finished", time.time())
    torch.save(model.state_dict(), out / "model.pt")
    test = evaluate(ctx, model, ctx.splits.test)
    val = {k: v for k, v in json.loads(history.read_text().splitlines()[-1]).items()}
    result = {"objective": objective[-1], "metric": ctx.exp.metric, "test": test, "val": val}
    _write_json(out / "result.json", result)
    trial.set_user_attr("test", test)
    return objective[-1]
