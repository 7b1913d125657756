"""The study as the queue: creating or resuming it, and reading its budget and counts.

Everything a worker needs is stored in the study's user attributes (the resolved experiment, the
budget, the run directory), so a worker is started with nothing but a study name and a storage URL.
Nothing here ever deletes a study: running ``sweep`` again resumes it, and a larger ``trials``
extends it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from wcd_hpc import __version__
from wcd_hpc.config import Experiment
from wcd_hpc.space import Space
from wcd_hpc.storage import mask, study_exists

ATTR_EXPERIMENT = "experiment"
ATTR_BUDGET = "budget"
ATTR_RUN_DIR = "run_dir"
ATTR_SPACE = "space"
ATTR_VERSION = "wcd_hpc_version"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
STATE_NAMES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
# Keys that may change between runs of the same study without making it a different experiment.
MUTABLE_KEYS = {"trials", "workers", "executor", "resources", "source", "runs_dir", "storage"}


class StudyConflict(RuntimeError):
    """``sweep`` was asked to resume a study whose stored experiment differs from the file."""


@dataclass(frozen=True)
class Prepared:
    """What ``prepare`` did: the study's coordinates and whether it was new."""

    name: str
    storage_url: str
    run_dir: Path
    created: bool
    budget: int
    previous_budget: int | None
    finished: int


def grid_of(space: Space) -> dict[str, list[Any]]:
    """The full grid of a discrete space, for the grid sampler; continuous parameters raise."""
    grid: dict[str, list[Any]] = {}
    for name, dist in space.distributions().items():
        if isinstance(dist, CategoricalDistribution):
            grid[name] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            grid[name] = list(range(dist.low, dist.high + 1, dist.step))
        elif isinstance(dist, FloatDistribution) and dist.step is not None:
            count = round((dist.high - dist.low) / dist.step) + 1
            grid[name] = [dist.low + i * dist.step for i in range(count)]
        else:
            raise ValueError(
                f"the grid sampler needs discrete parameters (choice, range, randint); "
                f"'{name}' is continuous"
            )
    return grid


def grid_size(grid: dict[str, list[Any]]) -> int:
    size = 1
    for values in grid.values():
        size *= len(values)
    return size


def make_sampler(name: str, seed: int | None, space: Space) -> optuna.samplers.BaseSampler:
    """Build the sampler; TPE uses constant-liar so parallel workers do not crowd one region."""
    if name == "grid":
        return optuna.samplers.GridSampler(grid_of(space), seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """Median pruning once two trials have finished, never in the first third of the epochs.

    CNNs on footprints often sit at chance for an epoch or two before they learn; judging them
    on epoch 1 would prune the trials that were about to become the best ones.
    """
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=max(1, epochs // 3))


def counts(trials: Iterable[FrozenTrial]) -> dict[str, int]:
    """Trials by Optuna state name; every state in ``STATE_NAMES`` is present, zeros included."""
    tally = Counter(t.state.name for t in trials)
    return {name: tally.get(name, 0) for name in STATE_NAMES}


def finished(trials: Iterable[FrozenTrial]) -> int:
    return sum(1 for t in trials if t.state in FINISHED)


def experiment_of(study: optuna.Study) -> Experiment:
    return Experiment.from_dict(study.user_attrs[ATTR_EXPERIMENT])


def budget_of(study: optuna.Study) -> int:
    return int(study.user_attrs[ATTR_BUDGET])


def params_of(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
    """A trial's parameters as the model saw them: lists reassembled, constants included."""
    described = study.user_attrs.get(ATTR_SPACE)
    if not described:
        return dict(trial.params)
    return Space.from_mapping(described).rebuild(trial.params)


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = (set(old) | set(new)) - MUTABLE_KEYS
    return sorted(k for k in keys if old.get(k) != new.get(k))


def prepare(
    exp: Experiment, space: Space, storage: BaseStorage, url: str, run_dir: Path
) -> Prepared:
    """Create the study, or resume it after checking that it is the same experiment.

    Only the budget and how it is run (workers, executor, resources) may change on resume;
    anything else would mix trials of two different experiments in one study.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    if study_exists(storage, exp.name):
        study = optuna.load_study(study_name=exp.name, storage=storage)
        stored = study.user_attrs.get(ATTR_EXPERIMENT)
        if stored is None:
            raise StudyConflict(
                f"study '{exp.name}' in {mask(url)} was not created by wcd-hpc; choose another name"
            )
        changed = _differences(stored, exp.to_dict())
        if changed:
            raise StudyConflict(
                f"study '{exp.name}' already exists with a different experiment "
                f"(changed: {', '.join(changed)}); use a new name, or restore those keys to resume"
            )
        previous = budget_of(study)
        if exp.trials != previous:
            study.set_user_attr(ATTR_BUDGET, exp.trials)
        study.set_user_attr(ATTR_EXPERIMENT, exp.to_dict())
        done = finished(study.get_trials(deepcopy=False))
        return Prepared(exp.name, url, run_dir, False, exp.trials, previous, done)
    direction: Literal["minimize", "maximize"] = (
        "minimize" if exp.direction == "minimize" else "maximize"
    )
    study = optuna.create_study(
        study_name=exp.name, storage=storage, direction=direction, load_if_exists=True
    )
    study.set_user_attr(ATTR_EXPERIMENT, exp.to_dict())
    study.set_user_attr(ATTR_SPACE, space.describe())
    study.set_user_attr(ATTR_RUN_DIR, str(run_dir.resolve()))
    study.set_user_attr(ATTR_VERSION, __version__)
    # Heartbeat interval of every worker of this study (seconds); tests use a short one.
    study.set_user_attr("heartbeat_s", float(os.environ.get("WCD_HPC_HEARTBEAT_S", "30")))
    # The budget goes last: a worker treats a study without one as not ready yet.
    study.set_user_attr(ATTR_BUDGET, exp.trials)
    return Prepared(exp.name, url, run_dir, True, exp.trials, None, 0)


def load(name: str, storage: BaseStorage, url: str) -> optuna.Study:
    """Load a wcd-hpc study; an unknown name lists the studies that do exist."""
    if not study_exists(storage, name):
        known = [s for s in _names(storage)]
        hint = f" (studies there: {', '.join(known)})" if known else " (it holds no studies)"
        raise KeyError(f"no study '{name}' in {mask(url)}{hint}")
    return optuna.load_study(study_name=name, storage=storage)


def _names(storage: BaseStorage) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]
