"""Every experiment key, declared once: the table that validation, ``--set``, resume, the dry run,
site profiles and the key reference all read.

A key is a name (dotted inside a group: ``resources.gpus``), the rule its value must follow, its
default, whether a resumed study may change it, whether a site profile may set it, one line of
documentation and an example. Adding a key is one :class:`Key` in :data:`KEYS`: the layering
accepts it from a file, a profile (if allowed) or ``--set``; validation checks it; the resume
check compares it (unless mutable); the dry run shows it; the stored experiment keeps it
(:attr:`wcd_hpc.experiment.config.Experiment.extras` until code wants it as a typed attribute, when
it gets a field of the same name). A study stored before the key existed reads back with its
default.

Groups (:data:`GROUPS`) are the mappings whose sub-keys are keys of their own (``resources``,
``budget`` …); ``param_space`` and ``pruner`` are single keys whose values have a language of their
own (:mod:`wcd_hpc.experiment.space`, :mod:`wcd_hpc.experiment.pruning`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from wcd_hpc.api import DEFAULT_SPACE
from wcd_hpc.experiment import budget, checks, filerefs, pruning, training
from wcd_hpc.experiment.checks import Rule
from wcd_hpc.experiment.sources import Fail

__all__ = [
    "GROUPS",
    "KEYS",
    "REQUIRED",
    "Group",
    "Key",
    "default",
    "find",
    "profile_names",
    "raw_names",
    "reference",
    "required_names",
    "sub_keys",
    "top_names",
]


class _Required:
    """The default of a key the experiment must give."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Key:
    """One experiment key (the module docstring says who reads what)."""

    name: str
    rule: Rule
    default: Any
    doc: str
    example: str
    #: How the reference names the type (``integer``, ``string``, ``mapping`` …).
    type: str = ""
    #: A resumed study may change it: it says how the study is run, not what it is.
    mutable: bool = False
    #: A site profile may set it (a cluster's runs directory, its storage, its resources).
    profile: bool = False
    #: The :class:`~wcd_hpc.experiment.config.Experiment` attribute it fills: ``""`` for one
    #: named like the key, ``None`` for none (``budget.trials`` is merged into ``trials``).
    field: str | tuple[str, ...] | None = ""
    #: From ``--set`` (and unquoted in a file), the text is kept as written, not read as YAML:
    #: YAML 1.1 would read ``02:00:00`` as a base-60 integer.
    raw: bool = False
    #: A mapping that layers merge entry by entry (a file's ``param_space: {lr: …}`` keeps the
    #: profile's other entries); other values are replaced whole.
    merge: bool = False
    #: The value holds a secret: shown masked (the dry run, the reference's example).
    secret: bool = False

    @property
    def top(self) -> str:
        """The top-level name: ``resources`` for ``resources.gpus``."""
        return self.name.split(".")[0]

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def check(self, value: Any, fail: Fail) -> Any:
        """The value the experiment keeps, or ``fail(key, expectation)`` raised."""
        return self.rule(value, self.name, fail)


@dataclass(frozen=True)
class Group:
    """A mapping of keys (``resources: {gpus: 1}``)."""

    doc: str
    #: A plain value stands for this sub-key: ``model: lenet`` is ``model: {name: lenet}``.
    shorthand: str | None = None
    #: Layers merge it sub-key by sub-key (a profile's ``resources.gpus`` survives a file's
    #: ``resources: {cpus: 4}``); other values are replaced whole.
    merge: bool = False


# Bounds: far above any real sweep, far below what breaks a tool on the way (numpy seeds are
# below 2**32 · 4, a Slurm array of 100,000 tasks is split already, no node has 64 GPUs).
MAX_TRIALS = 1_000_000
MAX_EPOCHS = 100_000
MAX_SEED = 2**32 - 1
MAX_WORKERS = 100_000
#: Local workers are processes of this machine, each with its own torch and data: more than a
#: large node has cores is a typo (``workers: 1000`` with ``executor: local`` would start 1,000).
MAX_LOCAL_WORKERS = 256
MAX_GPUS = 64
MAX_CPUS = 4096
MAX_MEM_GB = 65_536
MAX_TRIALS_PER_GPU = 64
MAX_GPU_HOURS = 10_000_000
MAX_MIN_BACKGROUND = 1_000_000


def _pruner(value: Any, key: str, fail: Fail) -> tuple[str, dict[str, float]]:
    return pruning.parse(value, fail)


def _report_every(value: Any, key: str, fail: Fail) -> float:
    return pruning.report_fraction(value, key, fail)


def _prune_chance(value: Any, key: str, fail: Fail) -> dict[str, int | float] | bool:
    return pruning.parse_chance(value, fail)


def _budget_trials(value: Any, key: str, fail: Fail) -> Any:
    """Checked as ``trials``, which it becomes (:func:`wcd_hpc.experiment.budget.merge_trials`)."""
    return value


GROUPS: dict[str, Group] = {
    "dataset": Group("the data: a dataset plugin and its parameters", shorthand="name"),
    "model": Group("the model plugin, with its default search space", shorthand="name"),
    "metric": Group("the metric the sweep optimises", shorthand="name"),
    "resources": Group("what one worker asks the scheduler for", merge=True),
    "budget": Group("the budget in trials and GPU-hours"),
}

KEYS: tuple[Key, ...] = (
    Key("name", checks.study_name, REQUIRED, "the study's name (also its directory)",
        "footprint-lenet", "string"),
    Key("dataset.name", checks.text, REQUIRED, "the dataset plugin", "footprint-sim", "string",
        field="dataset"),
    Key("dataset.params", checks.mapping, {}, "the dataset plugin's parameters",
        "{primaries: [gamma, proton], events: 20000}", "mapping"),
    Key("model.name", checks.text, REQUIRED,
        "the model plugin, or a Python file PATH.py:NAME (relative to the experiment file) "
        "holding a wcd_hpc.Model or a function build(params, spec)", "lenet", "string",
        field="model"),
    Key("model.space", checks.text, DEFAULT_SPACE,
        "which of the model's search spaces param_space overrides: default, or a named variant "
        "(the built-in models' predecessor: the SWGO/LIP study's ranges)", "predecessor",
        "string"),
    Key("metric.name", checks.text, "accuracy", "the metric plugin the sweep optimises", "f1",
        "string", field="metric"),
    Key("metric.direction", checks.direction, None, "maximize or minimize; null: the metric's own",
        "maximize", "string", field="direction"),
    Key("metric.min_background", checks.integer(1, MAX_MIN_BACKGROUND), 10,
        "fewest background events behind a Q optimum or a gamma efficiency at fixed survival "
        "(wcd_hpc.merit)", "10", "integer"),
    Key("metric.efficiency", checks.positive(1.0), 0.5,
        "the signal efficiency of q_at_eff's cut", "0.5", "number"),
    Key("metric.per_bin", checks.optional(checks.choice(("mean",))), None,
        "mean: the objective is the metric's mean over the energy bins with enough events",
        "mean", "string"),
    Key("trials", checks.integer(1, MAX_TRIALS), REQUIRED,
        "the budget: finished (complete or pruned) trials, over all workers and resumes", "64",
        "integer", mutable=True),
    Key("epochs", checks.integer(1, MAX_EPOCHS), 10, "epochs each trial trains at most", "5",
        "integer"),
    Key("param_space", checks.param_space, {},
        "overrides of the model's default search space, entry by entry",
        "{lr: 'loguniform(1e-4, 1e-2)'}", "mapping", merge=True),
    Key("sampler", checks.choice(("tpe", "tpe-independent", "random", "cmaes", "grid", "qmc")),
        "tpe", "Optuna's sampler (tpe models the parameters jointly, tpe-independent one by one)",
        "tpe", "string", profile=True),
    Key("pruner", Rule("median | hyperband | asha | none, or {name: …, knobs}", _pruner),
        "median", "the pruner and its knobs", "{name: asha, min_epochs: 1, reduction_factor: 3}",
        "string or mapping", profile=True, field=("pruner", "pruner_options")),
    Key("prune_chance",
        Rule("true | false | {after: N, auc_margin: M, min_steps: S}", _prune_chance),
        {"after": 1, "auc_margin": 0.0, "min_steps": 16},
        "prune a trial at chance level (constant predictions, or 0.5 within its ROC AUC's "
        "68 % interval widened by auc_margin) from report `after` on (reports inside an epoch "
        "count) and once it has taken min_steps optimizer steps (default 16), before any "
        "pruner's warm-up; a NaN/inf loss is pruned whatever this says",
        "{after: 1, auc_margin: 0.02}", "boolean or mapping", profile=True, merge=True),
    Key("report_every", Rule("number above 0, at most 1", _report_every), 1.0,
        "epochs between two reports to the pruner: below 1, reports inside the epoch on a "
        "fixed validation subsample (report_subsample events), steps in samples seen",
        "0.25", "number"),
    Key("report_subsample", checks.integer(1, 10_000_000), 1000,
        "validation events (a fixed, seeded subsample) scored at a report inside an epoch",
        "2000", "integer"),
    Key("keep", checks.choice(("best", "last")), "best",
        "which epoch's weights a trial keeps: the best validation objective (ties: the earlier "
        "epoch) or the last", "last", "string"),
    Key("trial_plots", checks.boolean, True,
        "each finished trial draws its figures (confusion, ROC, Q, against energy; PNG and "
        "PDF), 1-3 CPU-s a trial; false: ordinary trials draw none, nor does sync for them "
        "(finalists and train runs still do)", "false", "boolean", mutable=True),
    Key("start_from", checks.start_from, None,
        "warm start: the first trials of a new study are another study's best configurations "
        "(top, default 4) that fit this space, enqueued once; storage null: this study's own "
        "(for journal: that study's journal beside this one)",
        "{study: gamma-hadron-v1, top: 4}", "string or mapping", mutable=True, secret=True),
    Key("storage", checks.storage, "journal", "where the study lives", "journal", "string",
        mutable=True, profile=True, secret=True),
    Key("seed", checks.integer(0, MAX_SEED), 0, "seed of the sampler, data splits and training",
        "0", "integer"),
    Key("runs_dir", checks.path, "runs", "root of the run directories (~ expanded)", "runs",
        "path", mutable=True, profile=True),
    Key("workers", checks.integer(1, MAX_WORKERS), 1,
        "workers (Slurm array tasks, or local processes: at most 256)", "8", "integer",
        mutable=True, profile=True),
    Key("executor", checks.choice(("auto", "local", "slurm")), "auto",
        "where workers run; auto: slurm when sbatch is on PATH, else local", "slurm", "string",
        mutable=True, profile=True),
    Key("resources.gpus", checks.integer(0, MAX_GPUS), 0, "GPUs per worker", "1", "integer",
        mutable=True, profile=True),
    Key("resources.cpus", checks.integer(1, MAX_CPUS), 2, "CPUs per worker", "4", "integer",
        mutable=True, profile=True),
    Key("resources.mem_gb", checks.positive(MAX_MEM_GB), 8, "memory per worker in GB", "16",
        "number", mutable=True, profile=True),
    Key("resources.time", checks.slurm_time, "02:00:00", "time limit of a worker's job",
        "'02:00:00'", "string", mutable=True, profile=True, raw=True),
    Key("resources.trials_per_gpu", checks.integer(1, MAX_TRIALS_PER_GPU), 1,
        "workers each array task runs per GPU it holds", "2", "integer", mutable=True,
        profile=True),
    Key("signal_class", checks.signal_class, None,
        "the class metrics and plots treat as the signal", "gamma", "string"),
    Key("budget.trials", Rule("as trials", _budget_trials), None,
        "the trial budget, as trials (give it once)", "64", "integer", mutable=True,
        field=None),
    Key("budget.gpu_hours", Rule(f"number above 0, at most {MAX_GPU_HOURS:,}, or null",
                                 budget.gpu_hours(MAX_GPU_HOURS)),
        None, "cap in GPU-hours allocated to the study's Slurm jobs", "10", "number",
        mutable=True, field="gpu_hours"),
    Key("finalists", Rule("null, or {top: K, seeds: S} with K, S from 1 to "
                          f"{budget.MAX_FINALISTS:,}", budget.finalists),
        None, "once the budget is spent, retrain the K best configurations with S new seeds "
        "each (counted apart from the budget); the final pick is the best mean on validation",
        "{top: 3, seeds: 3}", "mapping or null"),
    Key("precision", checks.choice(training.PRECISIONS), "auto",
        "autocast precision of training; auto: bf16 where supported, fp16, else fp32", "bf16",
        "string", mutable=True),
    Key("data_on_device", Rule("auto | true | false", training.data_on_device), "auto",
        "keep a worker's data on its GPU (auto: when it fits)", "true", "boolean or auto",
        mutable=True),
    Key("compile", checks.boolean, False, "run the model through torch.compile", "false",
        "boolean", mutable=True),
    # A model, dataset or metric from a file: the content it must have. Mutable: naming the
    # new content is how a resumed sweep is told to go on with a changed file.
    *(Key(f"{kind}.sha256", filerefs.SHA256, None,
          f"for a {kind} from a file: the content it must have (a prefix of its sha256); "
          "acknowledges a changed file on resume", "'9b1c2d3e'", "string", mutable=True,
          raw=True) for kind in filerefs.KINDS),
)  # fmt: skip

# Everything below reads KEYS when called, never a copy made at import: the table is the one
# place a key is declared (a test adds one and sees every reader take it).


def find(name: str) -> Key | None:
    """The key named ``name`` (dotted), if there is one."""
    return next((key for key in KEYS if key.name == name), None)


def default(name: str) -> Any:
    """A fresh copy of the default of key ``name`` (a dataclass default reads it from here)."""
    key = find(name)
    if key is None:
        raise KeyError(name)
    return copy.deepcopy(key.default)


def top_names() -> tuple[str, ...]:
    """Top-level names, in table order (the order "unknown key" lists them in)."""
    return tuple(dict.fromkeys(key.top for key in KEYS))


def sub_keys(group: str) -> tuple[str, ...]:
    """The sub-key names of ``group``: ``('gpus', 'cpus', …)`` for ``resources``."""
    return tuple(k.name.split(".", 1)[1] for k in KEYS if k.top == group and "." in k.name)


def profile_names() -> tuple[str, ...]:
    """Top-level names a site profile may set."""
    return tuple(dict.fromkeys(k.top for k in KEYS if k.profile))


def required_names() -> tuple[str, ...]:
    """Top-level names an experiment must give (a required sub-key makes its group required)."""
    return tuple(dict.fromkeys(k.top for k in KEYS if k.required))


def raw_names() -> tuple[str, ...]:
    """Keys whose unquoted text a file and ``--set`` keep as written (``resources.time``)."""
    return tuple(k.name for k in KEYS if k.raw)


def reference() -> list[dict[str, Any]]:
    """One row per key for the key reference page: name, type, default, allowed values, mutable
    on resume, settable by a site profile, doc, example."""
    rows = []
    for key in KEYS:
        rows.append(
            {
                "name": key.name,
                "type": key.type,
                "default": "required" if key.required else key.default,
                "allowed": key.rule.allowed,
                "mutable": key.mutable,
                "profile": key.profile,
                "doc": key.doc,
                "example": key.example,
            }
        )
    return rows
