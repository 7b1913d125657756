"""``train`` as a library: one run of one experiment at fixed parameters, no study, no sweep.

Which parameters a one-off run uses, entry by entry of the resolved search space:

- ``uniform(a, b)`` → (a + b) / 2; ``loguniform(a, b)`` → √(a·b), the midpoint in log space;
- ``randint(a, b)`` → ⌊(a + b) / 2⌋; ``range(a, b, step)`` → the grid point at or just below the
  middle; ``choice([...])`` → the first option; constants stay as written;
- ``--set param_space.NAME=VALUE`` replaces an entry first, so a constant fixes it exactly.

The midpoint is the least surprising fixed point of a range (the same rule for every model, and
the defaults of the predecessor's spaces sit inside its best results' region); the first option of a
choice lets an experiment file put its preferred value first. The run goes through the very same
:func:`wcd_hpc.engine.trial.run_trial` as a sweep's trials, so it writes the same files, under
``<runs_dir>/<name>/train/trials/<n>/`` (n counts up: a second ``train`` never overwrites the
first) plus ``experiment.json``, the resolved experiment that ``wcd-hpc evaluate`` reads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from wcd_hpc.engine.device import check_compile, settle
from wcd_hpc.engine.fit import pick_device
from wcd_hpc.engine.trial import Context, run_trial, signal_label
from wcd_hpc.errors import WcdHpcError
from wcd_hpc.experiment.config import Experiment, load_experiment
from wcd_hpc.experiment.paths import with_absolute_paths
from wcd_hpc.experiment.resolve import resolve
from wcd_hpc.experiment.space import Space
from wcd_hpc.plugins import Registry, load_experiment_files
from wcd_hpc.queue.schema import (
    CACHE_DIR,
    EXPERIMENT_FILE,
    PARAMS_FILE,
    RESULT_FILE,
    TRAIN_DIR,
    TRIALS_DIR,
    trial_dir,
)
from wcd_hpc.queue.study import stored_experiment
from wcd_hpc.results.evaluation import write_json
from wcd_hpc.store.urls import with_chosen_storage

__all__ = ["RunStopped", "TrainResult", "fixed_params", "midpoint", "plan_train", "train"]


class RunStopped(WcdHpcError):
    """A ``train`` run whose loss or outputs stopped being finite (a sweep prunes such a trial)."""

    exit_code = 1


@dataclass(frozen=True)
class TrainResult:
    """Where the run wrote its files, the parameters it used and its ``result.json``."""

    out: Path
    params: dict[str, object]
    result: dict[str, Any]


def midpoint(dist: BaseDistribution) -> object:
    """The value a one-off run takes for one Optuna distribution (rule in the module docstring)."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[0]
    if isinstance(dist, IntDistribution):
        if dist.log:
            return round(math.sqrt(dist.low * dist.high))
        return dist.low + (dist.high - dist.low) // dist.step // 2 * dist.step
    if isinstance(dist, FloatDistribution):
        if dist.log:
            return math.exp((math.log(dist.low) + math.log(dist.high)) / 2)
        if dist.step is not None:
            steps = math.floor((dist.high - dist.low) / dist.step / 2 + 1e-9)
            return dist.low + steps * dist.step
        return (dist.low + dist.high) / 2
    raise TypeError(f"no midpoint rule for {type(dist).__name__}")


def fixed_params(space: Space) -> dict[str, object]:
    """The nested parameters of a one-off run: every distribution at its :func:`midpoint`."""
    flat = {name: midpoint(dist) for name, dist in space.distributions().items()}
    return space.suggest(optuna.trial.FixedTrial(flat))


def plan_train(
    path: str | Path,
    registry: Registry,
    *,
    profile: Mapping[str, Any] | None = None,
    sets: Sequence[str] = (),
    flags: Mapping[str, tuple[str, Any]] | None = None,
) -> tuple[Experiment, Space]:
    """Load and resolve the experiment exactly as ``sweep`` does (same errors, same precedence)."""
    given = with_chosen_storage(flags)
    exp = load_experiment(path, profile=profile, overrides=sets, flags=given)
    load_experiment_files(registry, exp)
    exp, space = resolve(exp, registry)
    return with_absolute_paths(exp, registry.datasets[exp.dataset].obj), space


def _claim_number(base: Path) -> tuple[int, Path]:
    """The next free run number and its new directory, created here and by nobody else.

    Two ``train`` runs started together both see the same highest number; creating the
    directory exclusively makes the later one move on instead of writing into the other's run.
    """
    taken = [int(p.name) for p in (base / TRIALS_DIR).glob("*") if p.name.isdigit()]
    number = max(taken, default=-1) + 1
    while True:
        out = trial_dir(base, number)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            out.mkdir()
        except FileExistsError:
            number += 1
            continue
        return number, out


def train(exp: Experiment, space: Space, registry: Registry) -> TrainResult:
    """Load the data, train once at :func:`fixed_params`, evaluate, write the artifacts."""
    runs = Path(exp.runs_dir).resolve()
    base = runs / exp.name / TRAIN_DIR
    flat = {name: midpoint(dist) for name, dist in space.distributions().items()}
    dataset = registry.datasets[exp.dataset].obj
    cache = runs / CACHE_DIR  # the cache sweeps use, so train and sweep share simulated data
    cache.mkdir(parents=True, exist_ok=True)
    check_compile(exp)  # before the data are read, as a worker does
    splits = dataset.load({**dataset.defaults, **exp.dataset_params}, exp.seed, str(cache))
    signal_label(exp, splits.spec.class_names, splits.train)  # before anything is written
    metrics = {name: entry.obj for name, entry in registry.metrics.items()}
    model = registry.models[exp.model].obj
    device = pick_device()
    splits, where = settle(exp, splits, device)
    ctx = Context(
        exp, space, model, metrics, splits, base, device, run_kind="train run", placement=where
    )
    number, out = _claim_number(base)
    dataset_params = {**dataset.defaults, **exp.dataset_params}
    stored = {**stored_experiment(exp), "dataset_params": dataset_params}
    write_json(out / EXPERIMENT_FILE, stored)
    try:
        run_trial(ctx, optuna.trial.FixedTrial(flat, number=number))  # type: ignore[arg-type]
    except optuna.TrialPruned as exc:  # only a loss or outputs that are not finite stop a run
        raise RunStopped(f"train run {number} ({out}) stopped: {exc}; try a smaller lr") from None
    params = json.loads((out / PARAMS_FILE).read_text())["params"]
    return TrainResult(out, params, json.loads((out / RESULT_FILE).read_text()))
