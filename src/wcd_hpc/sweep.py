"""``sweep`` as a library: validate everything, then create or resume the study.

Validation (experiment file, plugins, search space, storage URL) happens entirely before the first
file or study is created, so a broken input leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from wcd_hpc import storage as stores
from wcd_hpc import study as studies
from wcd_hpc.config import ConfigError, Experiment, load_experiment, resolve
from wcd_hpc.plugins import Registry
from wcd_hpc.space import Space


@dataclass(frozen=True)
class Plan:
    """A validated sweep: the resolved experiment and where its study and files go."""

    exp: Experiment
    space: Space
    run_dir: Path
    url: str


def plan(
    path: str | Path,
    registry: Registry,
    *,
    profile: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
) -> Plan:
    exp = load_experiment(path, profile=profile, overrides=overrides)
    exp, space = resolve(exp, registry)
    if exp.sampler == "grid":
        _check_grid(exp, space)
    _check_dataset(exp, registry)
    if exp.executor == "auto":
        exp = dataclasses.replace(exp, executor="slurm" if shutil.which("sbatch") else "local")
    run_dir = (Path(exp.runs_dir) / exp.name).resolve()
    return Plan(exp, space, run_dir, stores.resolve(exp.storage, run_dir))


def _check_dataset(exp: Experiment, registry: Registry) -> None:
    """Let the dataset look at its parameters and files now, not on a compute node later."""
    dataset = registry.datasets[exp.dataset].obj
    if dataset.check is None:
        return
    try:
        dataset.check({**dataset.defaults, **exp.dataset_params})
    except ValueError as exc:
        raise ConfigError(exp.source, "dataset", exp.lines.get("dataset"), str(exc)) from None


def _check_grid(exp: Experiment, space: Space) -> None:
    """Refuse a grid sweep over continuous parameters, or with more trials than grid points."""
    line = exp.lines.get("sampler")
    try:
        size = studies.grid_size(studies.grid_of(space))
    except ValueError as exc:
        raise ConfigError(exp.source, "sampler", line, str(exc)) from None
    if exp.trials > size:
        raise ConfigError(
            exp.source,
            "trials",
            exp.lines.get("trials"),
            f"the grid has {size} points; expected trials <= {size}, got {exp.trials}",
        )


def start(p: Plan) -> tuple[optuna.Study, studies.Prepared]:
    """Create or resume the study of plan ``p`` (the first point where anything is written)."""
    storage = stores.open_storage(p.url)
    prepared = studies.prepare(p.exp, p.space, storage, p.url, p.run_dir)
    study = optuna.load_study(study_name=p.exp.name, storage=storage)
    return study, prepared


def best_line(study: optuna.Study, metric: str) -> str | None:
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return None
    best = study.best_trial
    params = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in studies.params_of(study, best).items()
    )
    test = best.user_attrs.get("test", {})
    tail = f"; test {metric}={test[metric]:.4f}" if metric in test else ""
    return f"best trial {best.number}: {metric}={best.value:.4f} ({params}){tail}"
