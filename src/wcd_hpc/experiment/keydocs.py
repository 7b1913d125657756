"""What each experiment key means, beside what the validator accepts: the key reference's source.

The validator's definitions (:data:`~wcd_hpc.experiment.config.TOP_KEYS`, ``SUB_KEYS``,
``DEFAULTS``, the samplers, pruners, precisions …) say which keys exist, their defaults and their
allowed values; this adds the words a person needs. The documentation site's key reference
(``docs/reference/experiment.md``) is generated from both by :func:`rows`, and a key the
validator accepts without an entry here fails that generation (and the test that runs it), so a
new key cannot ship undocumented.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from wcd_hpc.experiment import config, pruning, training

__all__ = ["KEYS", "Row", "accepted", "rows", "undocumented"]

#: Dotted key -> (type, example, what it means). Allowed values and defaults come from the
#: validator's own definitions (see :func:`rows`), never from here.
KEYS: dict[str, tuple[str, str, str]] = {
    "name": (
        "string", "footprint-lenet",
        "Study name: letters, digits, `.`, `_`, `-` (64 at most); the run directory is "
        "`runs_dir/name/`.",
    ),
    "dataset": (
        "name or mapping", "{name: footprint-sim, params: {events: 20000}}",
        "The dataset plugin (`wcd-hpc plugins` lists them) or a file `PATH.py:NAME`.",
    ),
    "dataset.name": ("string", "footprint-h5", "Same as the short form `dataset: NAME`."),
    "dataset.params": (
        "mapping", "{train: data/Train.h5, test: data/Test.h5}",
        "The dataset's own parameters (see the datasets reference); relative paths are made "
        "absolute from the working directory.",
    ),
    "dataset.sha256": (
        "hex string", "'9b1c2d3e'",
        "For a dataset from a file: the content it must have (a prefix of its sha256); how a "
        "resumed sweep is told to go on with a changed file.",
    ),
    "model": (
        "name or mapping", "lenet",
        "The model plugin, or a Python file `./my_net.py:NAME` holding a `wcd_hpc.Model` or a "
        "function `build(params, spec)` (relative to the experiment file).",
    ),
    "model.name": ("string", "resnet", "Same as the short form `model: NAME`."),
    "model.sha256": (
        "hex string", "'9b1c2d3e'",
        "For a model from a file: the content it must have (a prefix of its sha256); "
        "`--set model.sha256=NEW` acknowledges a changed file on resume.",
    ),
    "metric": (
        "name or mapping", "{name: q_factor}",
        "The metric the sweep optimises, on the validation split.",
    ),
    "metric.name": ("string", "f1", "Same as the short form `metric: NAME`."),
    "metric.direction": (
        "string", "maximize",
        "Which way is better; default: the metric's own direction (required for a bare function "
        "from a file).",
    ),
    "metric.sha256": (
        "hex string", "'9b1c2d3e'", "For a metric from a file: the content it must have."
    ),
    "trials": (
        "integer >= 1", "64",
        "The global budget: finished (complete or pruned) trials, across all workers and resumes.",
    ),
    "budget": (
        "mapping", "{trials: 64, gpu_hours: 10}", "The budget in trials and/or GPU-hours."
    ),
    "budget.trials": ("integer >= 1", "64", "Same as `trials`."),
    "budget.gpu_hours": (
        "number > 0", "10",
        "Stop claiming trials once the study's Slurm jobs were allocated this many GPU-hours "
        "(from `sacct`); a local sweep has no accounting.",
    ),
    "epochs": ("integer >= 1", "5", "Epochs per trial (pruned trials stop earlier)."),
    "param_space": (
        "mapping", "{lr: 'loguniform(1e-4, 1e-2)'}",
        "Overrides of the model's default search space, key by key, in the search-space language.",
    ),
    "sampler": ("string", "tpe", "Optuna's sampler."),
    "pruner": (
        "name or mapping", "{name: asha, min_epochs: 2}", "Stops trials that are clearly worse."
    ),
    "pruner.name": ("string", "asha", "Same as the short form `pruner: NAME`."),
    "pruner.min_epochs": (
        "integer >= 1", "2", "asha, hyperband: epochs before the first rung."
    ),
    "pruner.reduction_factor": (
        "integer >= 2", "3", "asha, hyperband: a trial goes on if in the top 1/factor of its rung."
    ),
    "pruner.startup_trials": (
        "integer >= 0", "2", "median: finished trials before it prunes anything."
    ),
    "pruner.warmup_epochs": (
        "integer >= 0", "1", "median: epochs never judged (default: the first third)."
    ),
    "storage": (
        "string", "postgresql://wcd@db.example.org/wcd",
        "Where the study lives: `journal` (`runs_dir/name/journal.log`), `journal:PATH`, "
        "`sqlite:///PATH`, `postgresql://USER@HOST/DB` (password in ~/.pgpass) or "
        "`grpc://HOST:PORT`.",
    ),
    "seed": ("integer >= 0", "0", "Trial n uses seed + n; seeds each worker's sampler too."),
    "runs_dir": (
        "path", "/scratch/me/wcd-runs",
        "Root of the run directories, relative to the working directory.",
    ),
    "workers": ("integer >= 1", "8", "Local worker processes, or Slurm array tasks."),
    "executor": (
        "string", "slurm", "`auto`: slurm when `sbatch` is on PATH (a login node), else local."
    ),
    "resources": (
        "mapping", "{gpus: 1, cpus: 8, mem_gb: 32, time: '04:00:00'}",
        "What one worker (array task) asks for; merged key by key over the profile's.",
    ),
    "resources.gpus": ("integer >= 0", "1", "GPUs per array task (`--gres`)."),
    "resources.cpus": ("integer >= 1", "8", "`--cpus-per-task`; also each task's thread pools."),
    "resources.mem_gb": ("number > 0", "32", "`--mem`, in GB."),
    "resources.time": (
        "HH:MM:SS or D-HH:MM:SS", "'1-00:00:00'", "`--time` of each array task."
    ),
    "resources.trials_per_gpu": (
        "integer >= 1", "4", "Workers each array task runs per GPU it holds."
    ),
    "signal_class": (
        "class name", "gamma",
        "The class metrics and figures treat as the signal; default: gamma, else muon, else "
        "class 1.",
    ),
    "precision": ("string", "bf16", "Autocast precision: `auto` is bf16 or fp16 on a GPU."),
    "data_on_device": (
        "auto, true or false", "true", "Keep in-memory splits on the GPU for every trial."
    ),
    "compile": ("boolean", "true", "Run the model through `torch.compile`."),
}  # fmt: skip

#: Allowed values of keys whose domain is a list the validator holds.
ALLOWED: dict[str, tuple[Any, ...]] = {
    "sampler": config.SAMPLERS,
    "executor": config.EXECUTORS,
    "metric.direction": config.DIRECTIONS,
    "pruner": pruning.PRUNERS,
    "pruner.name": pruning.PRUNERS,
    "precision": training.PRECISIONS,
    "data_on_device": ("auto", True, False),
    "compile": (True, False),
}


def accepted() -> list[str]:
    """Every key the validator accepts, dotted: top-level keys, sub-keys, pruner knobs."""
    keys = list(config.TOP_KEYS)
    for top, subs in config.SUB_KEYS.items():
        keys += [f"{top}.{sub}" for sub in subs]
    knobs = sorted({k for table in pruning.KNOBS.values() for k in table})
    keys += ["pruner.name", *(f"pruner.{k}" for k in knobs)]
    return keys


def undocumented() -> list[str]:
    """Keys the validator accepts that :data:`KEYS` does not explain."""
    return [key for key in accepted() if key not in KEYS]


@dataclass(frozen=True)
class Row:
    """One key of the reference."""

    key: str
    type: str
    default: str
    allowed: str
    example: str
    doc: str
    mutable: bool


#: Defaults the validator decides later than :data:`config.DEFAULTS` (from the data, a plugin).
DECIDED_LATER = {
    "metric.direction": "the metric's own",
    "signal_class": "gamma, else muon, else class 1",
    "budget.trials": "`trials`",
    "pruner.warmup_epochs": "the first third of the epochs",
}


def default_of(key: str) -> str:
    """The key's default as the validator applies it, as text (``required`` when it has none)."""
    if key in config.REQUIRED:
        return "required"
    if key in DECIDED_LATER:
        return DECIDED_LATER[key]
    top, _, sub = key.partition(".")
    value: Any = config.DEFAULTS.get(top, None)
    if sub and top == "pruner":
        knobs = [t.get(sub) for t in pruning.KNOBS.values() if sub in t]
        value = knobs[0] if knobs else config.DEFAULTS["pruner"]
    elif sub:
        value = value.get(sub) if isinstance(value, dict) else None
        if top in ("dataset", "model", "metric") and sub == "name":
            return "required" if top != "metric" else str(config.DEFAULTS["metric"])
    if value is None:
        return "empty" if key == "dataset.params" else "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "see its keys" if value else "empty"
    return str(value) if value != "" else "empty"


def rows(mutable_keys: Collection[str]) -> Iterator[Row]:
    """The reference's rows, in the validator's order; raises if a key lacks its words.

    ``mutable_keys`` are the stored fields a resumed sweep may change (the queue's rule).
    """
    missing = undocumented()
    if missing:
        raise LookupError(
            f"experiment keys without documentation in wcd_hpc.experiment.keydocs.KEYS: "
            f"{', '.join(missing)}"
        )
    for key in accepted():
        kind, example, doc = KEYS[key]
        allowed = ", ".join(
            str(v).lower() if isinstance(v, bool) else str(v) for v in ALLOWED.get(key, ())
        )
        top = key.split(".")[0]
        mutable = top in mutable_keys or top == "budget" or key.endswith(".sha256")
        yield Row(key, kind, default_of(key), allowed, example, doc, mutable)
