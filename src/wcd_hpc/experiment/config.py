"""Experiment files, site profiles and their validation.

A sweep is expensive to get wrong: a typo found on a compute node costs a queue wait and GPU hours.
So everything is checked here, on the login node, before a study is created, and every error is
one line naming the file, the line, the key and what was expected (``quick.yaml:7: trials: expected
a positive integer, got 'five'``).

Settings come in layers, later ones winning: built-in :data:`DEFAULTS` < site profile < experiment
file < ``--set KEY=VALUE`` overrides. ``resources`` and ``param_space`` merge key by key; every
other key is replaced whole. ``runs_dir`` is kept as written: a relative path is relative to the
current working directory of the command (not to the experiment file), like every other CLI path.

The files themselves (YAML experiments, TOML site profiles, their syntax errors and key lines) are
read by :mod:`wcd_hpc.experiment.sources`; this module decides what the settings mean.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wcd_hpc.experiment import budget, filerefs, pruning, training
from wcd_hpc.experiment.addresses import GRPC_SCHEME, grpc_address
from wcd_hpc.experiment.sources import (
    ConfigError,
    compose,
    got,
    key_text,
    load_profile,
    one_of,
    read_text,
    read_value,
    suggest,
)
from wcd_hpc.experiment.space import Space, SpaceError

__all__ = [
    "DEFAULTS",
    "ConfigError",
    "Experiment",
    "Resources",
    "load_experiment",
    "load_profile",
]

SAMPLERS = ("tpe", "random", "cmaes", "grid", "qmc")
EXECUTORS = ("auto", "local", "slurm")
DIRECTIONS = ("maximize", "minimize")
STORAGE_URL_PREFIXES = (
    "sqlite:///",
    "postgresql://",
    "postgresql+psycopg://",
    "postgresql+psycopg2://",
    "mysql://",
    GRPC_SCHEME,
)
REQUIRED = ("name", "dataset", "model", "trials")
TOP_KEYS = (
    "name", "dataset", "model", "metric", "trials", "epochs", "param_space", "sampler",
    "pruner", "storage", "seed", "runs_dir", "workers", "executor", "resources", "signal_class",
    "budget", "precision", "data_on_device", "compile",
)  # fmt: skip
# A site profile also carries launcher settings (partition, image …); these are experiment keys.
PROFILE_KEYS = ("runs_dir", "storage", "workers", "executor", "resources", "sampler", "pruner")
SUB_KEYS = {
    "dataset": ("name", "params", "sha256"),
    "model": ("name", "sha256"),
    "metric": ("name", "direction", "sha256"),
    "resources": ("gpus", "cpus", "mem_gb", "time", "trials_per_gpu"),
    "budget": ("trials", "gpu_hours"),
}
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
NAME_RULE = (
    "expected a study name of letters, digits, '.', '_' or '-' (starting with a letter or "
    "digit, at most 64 characters)"
)
_TIME_RE = re.compile(r"(?:(\d+)-)?(\d+):([0-5]\d):([0-5]\d)")

DEFAULTS: dict[str, Any] = {
    "metric": "accuracy",
    "epochs": 10,
    "param_space": {},
    "sampler": "tpe",
    "pruner": "median",
    "storage": "journal",
    "seed": 0,
    "runs_dir": "runs",
    "workers": 1,
    # "auto": slurm when sbatch is on PATH (a login node), else local; resolved by sweep.plan.
    "executor": "auto",
    "resources": {"gpus": 0, "cpus": 2, "mem_gb": 8, "time": "02:00:00", "trials_per_gpu": 1},
    # None: the dataset's default signal class (gamma, else muon, else class 1), chosen once the
    # class names are known (wcd_hpc.default_plugins.metrics.default_signal_class).
    "signal_class": None,
    "budget": {},
    # How trials use a GPU (wcd_hpc.experiment.training); each worker resolves "auto".
    "precision": "auto",
    "data_on_device": "auto",
    "compile": False,
}


@dataclass
class Resources:
    """What one worker asks the scheduler for; ``time`` is a Slurm time limit."""

    gpus: int = 0
    cpus: int = 2
    mem_gb: float = 8
    time: str = "02:00:00"
    #: Workers each array task runs per GPU it holds (``wcd_hpc.experiment.training``).
    trials_per_gpu: int = 1


@dataclass
class Experiment:
    """A fully validated experiment: what a study records and every worker reads back."""

    name: str
    dataset: str
    dataset_params: dict[str, Any]
    model: str
    metric: str
    direction: str | None
    trials: int
    epochs: int
    param_space: dict[str, Any]
    sampler: str = "tpe"
    pruner: str = "median"
    #: The knobs the experiment set for its pruner (defaults: ``wcd_hpc.experiment.pruning``).
    pruner_options: dict[str, int] = field(default_factory=dict)
    storage: str = "journal"
    seed: int = 0
    runs_dir: str = "runs"
    workers: int = 1
    executor: str = "local"
    resources: Resources = field(default_factory=Resources)
    #: The class every metric and plot treats as the signal ("positive"); ``None``: the default.
    signal_class: str | None = None
    #: Cap in GPU-hours allocated to the study's Slurm jobs (``budget.gpu_hours``), if any.
    gpu_hours: float | None = None
    #: How trials use a GPU (``wcd_hpc.experiment.training``): autocast precision, the data on
    #: the device, torch.compile.
    precision: str = "auto"
    data_on_device: bool | str = "auto"
    compile: bool = False
    #: Kind (model, dataset, metric) -> the checksum (a hex prefix) its file must have: how a
    #: resumed sweep is told to go on with a file that changed (``wcd_hpc.queue.files``).
    sha256: dict[str, str] = field(default_factory=dict)
    source: str = "<defaults>"
    # Key -> line in ``source``, for errors found later (resolve); not part of the experiment.
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    # Key -> the flag that set it last (``--set``, ``--workers``, ``$WCD_HPC_STORAGE``), so
    # that a later error blames the flag, not the file; not part of the experiment either.
    origins: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (study user attrs, MLflow artifact); see :meth:`from_dict`."""
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in _stored_fields()}
        out["resources"] = dataclasses.asdict(self.resources)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Experiment:
        """Rebuild an experiment written by :meth:`to_dict` (it was validated when first loaded)."""
        names = {f.name for f in _stored_fields()}
        unknown = sorted(set(d) - names)
        if unknown:
            source = str(d.get("source", "<dict>"))
            raise ConfigError(source, unknown[0], None, "unknown key in a stored experiment")
        kwargs = {k: copy.deepcopy(v) for k, v in d.items()}
        kwargs["resources"] = Resources(**dict(d.get("resources", {})))
        return cls(**kwargs)


def _stored_fields() -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(Experiment) if f.name not in ("lines", "origins")]


class _Settings:
    """Layered raw settings plus where each (dotted) key last came from, for error messages."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.origin: dict[str, tuple[str, int | None]] = {}

    def where(self, key: str) -> tuple[str, int | None]:
        candidates = [key, key.split("[")[0]]
        parts = candidates[-1].split(".")
        candidates += [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]
        for k in candidates:
            if k in self.origin:
                return self.origin[k]
        return ("<defaults>", None)

    def error(self, key: str, message: str) -> ConfigError:
        file, line = self.where(key)
        return ConfigError(file, key, line, message)

    def apply(self, data: Mapping[str, Any], file: str, lines: Mapping[str, int]) -> None:
        """Lay ``data`` over the current values; shorthands become their mapping form."""
        for key, value in data.items():
            if key not in TOP_KEYS:
                line = lines.get(str(key))
                raise ConfigError(file, key_text(key), line, _unknown(str(key), TOP_KEYS))
            if key in ("dataset", "model", "metric") and not isinstance(value, Mapping):
                value = {"name": value}
            if key in ("resources", "param_space") and value is None:
                value = {}
            value = copy.deepcopy(dict(value) if isinstance(value, Mapping) else value)
            old = self.values.get(key)
            if key in ("resources", "param_space") and isinstance(old, dict):
                self.values[key] = {**old, **value} if isinstance(value, dict) else value
            else:
                self.origin = {k: v for k, v in self.origin.items() if not k.startswith(key + ".")}
                self.values[key] = value
            self._record(key, value, file, lines)

    def _record(
        self, key: str, value: Any, file: str, lines: Mapping[str, int], parent: int | None = None
    ) -> None:
        """Remember where ``key`` and its sub-keys came from (a shorthand: its parent's line)."""
        line = lines.get(key, parent)
        self.origin[key] = (file, line)
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                self._record(f"{key}.{sub}", subvalue, file, lines, line)

    def set_dotted(self, key: str, value: Any) -> None:
        """Apply one ``--set a.b.c=value``; intermediate mappings must already be mappings."""
        top, *path = key.split(".")
        if top not in TOP_KEYS:
            raise ConfigError("--set", key_text(key), None, _unknown(top, TOP_KEYS))
        if not path:
            self.apply({top: value}, "--set", {})
            return
        node = self.values.setdefault(top, {} if top in SUB_KEYS or top == "param_space" else None)
        for i, part in enumerate(path):
            if not isinstance(node, dict):
                where = ".".join([top, *path[:i]])
                raise ConfigError(
                    "--set", key, None, f"{where} is not a mapping; use {where}=VALUE"
                )
            if i == len(path) - 1:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        self.origin[key] = ("--set", None)


def _unknown(key: str, known: Sequence[str]) -> str:
    return "unknown key" + suggest(key, known)


# --------------------------------------------------------------------------------------------
# Loading and validation


def load_experiment(
    path: str | Path,
    *,
    profile: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    flags: Mapping[str, tuple[str, Any]] | None = None,
) -> Experiment:
    """Read, layer and validate an experiment; raise :class:`ConfigError` on the first problem.

    ``overrides`` are ``--set KEY=VALUE`` texts (values read as YAML); ``flags`` maps top-level
    keys to ``(flag, value)`` with values already typed by the command line (``--runs-dir
    2024-01-01`` stays a string), applied last so that an error in one names the flag.
    """
    file = str(path)
    data, lines, raw_space = compose(read_text(Path(path)), file)
    if not isinstance(data, dict):
        raise ConfigError(file, None, 1, f"expected a mapping of settings, got {got(data)}")
    if raw_space is not None:
        data["param_space"] = raw_space
    settings = _Settings()
    settings.apply(DEFAULTS, "<defaults>", {})
    if profile:
        settings.apply({k: v for k, v in profile.items() if k in PROFILE_KEYS}, "<profile>", {})
    settings.apply(data, file, lines)
    for item in overrides:
        _apply_override(settings, item)
    for key, (flag, value) in (flags or {}).items():
        settings.apply({key: str(value) if isinstance(value, Path) else value}, flag, {})
    budget.merge_trials(settings.values, settings.origin, file)
    for key in REQUIRED:
        if key not in settings.values:
            raise ConfigError(file, key, None, "missing required key")
    exp = _validate(settings, file)
    exp.lines = lines
    exp.origins = {k: f for k, (f, _) in settings.origin.items() if f.startswith(("-", "$"))}
    return exp


def _apply_override(settings: _Settings, item: str) -> None:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        message = "expected KEY=VALUE, e.g. trials=100"
        raise ConfigError("--set", key_text(item) if item else None, None, message)
    value: Any
    if key.startswith("param_space."):
        if key.count(".") != 1:
            raise ConfigError("--set", key, None, "expected param_space.NAME=EXPRESSION")
        value = text.strip()  # raw text: YAML would split a flow list at its commas
    elif key == "resources.time" or key.endswith(".sha256"):
        # YAML 1.1 reads 02:00:00 as a base-60 integer, and hex digits may read as a number.
        value = text.strip()
    else:
        value = read_value(text, "--set", key)
    settings.set_dotted(key, value)


def _validate(s: _Settings, file: str) -> Experiment:
    v = s.values
    name = v["name"]
    if not valid_name(name):
        raise s.error("name", f"{NAME_RULE}, got {got(name)}")
    for key in SUB_KEYS:
        _check_sub_keys(s, key)
    dataset_params = v["dataset"].get("params") or {}
    if not isinstance(dataset_params, dict):
        raise s.error("dataset.params", f"expected a mapping, got {got(dataset_params)}")
    try:
        json.dumps(dataset_params)
    except (TypeError, ValueError):
        message = "values must be plain numbers, strings, lists or mappings"
        raise s.error("dataset.params", message) from None
    direction = v["metric"].get("direction")
    if direction is not None and direction not in DIRECTIONS:
        raise s.error("metric.direction", f"expected maximize or minimize, got {got(direction)}")
    pruner, pruner_options = pruning.parse(v["pruner"], s.error)
    return Experiment(
        name=name,
        dataset=_name(s, "dataset"),
        dataset_params=dataset_params,
        model=_name(s, "model"),
        metric=_name(s, "metric"),
        direction=direction,
        trials=_int(s, "trials", v["trials"], 1),
        epochs=_int(s, "epochs", v["epochs"], 1),
        param_space=_param_space(s),
        sampler=_one_of(s, "sampler", v["sampler"], SAMPLERS),
        pruner=pruner,
        pruner_options=pruner_options,
        storage=_storage(s),
        seed=_int(s, "seed", v["seed"], 0),
        runs_dir=_text(s, "runs_dir", v["runs_dir"]),
        workers=_int(s, "workers", v["workers"], 1),
        executor=_one_of(s, "executor", v["executor"], EXECUTORS),
        resources=_resources(s),
        signal_class=_signal_class(s),
        gpu_hours=budget.gpu_hours(v["budget"].get("gpu_hours"), s.error),
        precision=training.precision(v["precision"], s.error),
        data_on_device=training.data_on_device(v["data_on_device"], s.error),
        compile=training.compile_model(v["compile"], s.error),
        sha256=filerefs.checksums(v, s.error),
        source=file,
    )


def valid_name(name: object) -> bool:
    """Whether ``name`` may name a study: it becomes a directory name, so no ``/`` or ``..``."""
    return isinstance(name, str) and bool(_NAME_RE.fullmatch(name)) and len(name) <= 64


def _check_sub_keys(s: _Settings, key: str) -> None:
    value = s.values.get(key)
    if not isinstance(value, dict):
        raise s.error(key, f"expected a mapping with keys {', '.join(SUB_KEYS[key])}")
    for sub in value:
        if sub not in SUB_KEYS[key]:
            raise s.error(f"{key}.{key_text(sub)}", _unknown(str(sub), SUB_KEYS[key]))


def _name(s: _Settings, key: str) -> str:
    if "name" not in s.values[key]:
        raise s.error(key, "missing required key 'name'")
    return _text(s, f"{key}.name", s.values[key]["name"])


def _text(s: _Settings, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise s.error(key, f"expected a non-empty string, got {got(value)}")
    return value


def _int(s: _Settings, key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise s.error(key, f"expected {kind}, got {got(value)}")
    return value


def _one_of(s: _Settings, key: str, value: Any, allowed: Sequence[str]) -> str:
    return one_of(value, allowed, key, s.error)


def _storage(s: _Settings) -> str:
    value = s.values["storage"]
    ok = isinstance(value, str) and (
        value == "journal"
        or (value.startswith("journal:") and len(value) > len("journal:"))
        or value.startswith(STORAGE_URL_PREFIXES)
    )
    if not ok:
        raise s.error(
            "storage",
            "expected journal, journal:PATH or a URL starting with "
            f"{', '.join(STORAGE_URL_PREFIXES)}, got {got(value)}",
        )
    if value.startswith(GRPC_SCHEME):
        try:
            grpc_address(value)
        except ValueError as exc:
            raise s.error("storage", str(exc)) from None
    return str(value)


def _resources(s: _Settings) -> Resources:
    r = s.values["resources"]
    gpus, cpus = (
        _int(s, "resources.gpus", r.get("gpus"), 0),
        _int(s, "resources.cpus", r.get("cpus"), 1),
    )
    mem_gb, time = r.get("mem_gb"), r.get("time")
    if isinstance(mem_gb, bool) or not isinstance(mem_gb, (int, float)) or not mem_gb > 0:
        raise s.error("resources.mem_gb", f"expected a positive number, got {got(mem_gb)}")
    match = _TIME_RE.fullmatch(time) if isinstance(time, str) else None
    if match is not None and not any(int(g or 0) for g in match.groups()):
        raise s.error("resources.time", f"expected a time limit above zero, got {got(time)}")
    if match is None or (match.group(1) is not None and int(match.group(2)) > 23):
        raise s.error(
            "resources.time", f"expected a time limit HH:MM:SS or D-HH:MM:SS, got {got(time)}"
        )
    per_gpu = _int(s, "resources.trials_per_gpu", r.get("trials_per_gpu"), 1)
    return Resources(gpus=gpus, cpus=cpus, mem_gb=mem_gb, time=time, trials_per_gpu=per_gpu)


def _signal_class(s: _Settings) -> str | None:
    """A class name, or ``None`` for the dataset's default.

    Whether the dataset has that class is known only once its data are loaded (datasets do not
    declare their classes), so the trial checks it before training; here only its type.
    """
    value = s.values["signal_class"]
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise s.error("signal_class", f"expected a class name such as gamma, got {got(value)}")
    return value


def _param_space(s: _Settings) -> dict[str, Any]:
    """Check the overrides parse on their own; the merged space is checked again by resolve."""
    space = s.values["param_space"]
    if not isinstance(space, dict):
        raise s.error(
            "param_space", f"expected a mapping of names to expressions, got {got(space)}"
        )
    for key, value in space.items():
        try:
            Space.from_mapping({key: value})
        except SpaceError as exc:
            raise s.error(f"param_space.{exc.key}", exc.message) from None
    return copy.deepcopy(space)


def validate_profile(profile: Mapping[str, Any], source: str) -> None:
    """Check a site profile's experiment keys as ``load_experiment`` would use them.

    Its ``[slurm]`` and ``[container]`` tables are checked by ``wcd_hpc.launch.settings``.
    """
    allowed = (*PROFILE_KEYS, "slurm", "container", "description")
    for key in profile:
        if key not in allowed:
            raise ConfigError(source, key_text(key), None, _unknown(key, allowed))
    settings = _Settings()
    settings.apply(DEFAULTS, "<defaults>", {})
    settings.apply({k: v for k, v in profile.items() if k in PROFILE_KEYS}, source, {})
    settings.apply({"name": "check", "dataset": "x", "model": "x", "trials": 1}, "<check>", {})
    _validate(settings, source)
