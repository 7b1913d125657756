"""Experiment files, site profiles and their validation.

A sweep is expensive to get wrong: a typo found on a compute node costs a queue wait and GPU hours.
So everything is checked here, on the login node, before a study is created, and every error is
one line naming the file, the line, the key and what was expected (``quick.yaml:7: trials: expected
a positive integer, got 'five'``).

What the keys are (their rules, defaults, whether a resume may change them, whether a site profile
may set them) is the one table in :mod:`wcd_hpc.experiment.keys`; this module layers the settings
and reads that table. Settings come in layers, later ones winning: the table's defaults < site
profile < experiment file < ``--set KEY=VALUE`` overrides. ``resources`` and ``param_space`` merge
key by key; every other key is replaced whole. ``runs_dir`` is kept as written, ``~`` expanded: a
relative path is relative to the current working directory of the command (not to the experiment
file), like every other CLI path.

The files themselves (YAML experiments, TOML site profiles, their syntax errors and key lines) are
read by :mod:`wcd_hpc.experiment.sources`; this module decides what the settings mean.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wcd_hpc.experiment import budget, keys
from wcd_hpc.experiment.checks import DIRECTIONS, NAME_RULE, valid_name
from wcd_hpc.experiment.keys import GROUPS, Key, default, find
from wcd_hpc.experiment.sources import (
    ConfigError,
    anchor_holder,
    compose,
    got,
    key_text,
    load_profile,
    read_text,
    read_value,
    suggest,
)

__all__ = [
    "DEFAULTS",
    "DIRECTIONS",
    "NAME_RULE",
    "ConfigError",
    "Experiment",
    "Resources",
    "load_experiment",
    "load_profile",
    "settings_of",
    "valid_name",
    "validate_profile",
]

#: Every key's default, by dotted name (``DEFAULTS["resources.gpus"]``); from the key table.
DEFAULTS: dict[str, Any] = {k.name: k.default for k in keys.KEYS if not k.required}


@dataclass
class Resources:
    """What one worker asks the scheduler for; ``time`` is a Slurm time limit."""

    gpus: int = default("resources.gpus")
    cpus: int = default("resources.cpus")
    mem_gb: float = default("resources.mem_gb")
    time: str = default("resources.time")
    #: Workers each array task runs per GPU it holds (``wcd_hpc.experiment.training``).
    trials_per_gpu: int = default("resources.trials_per_gpu")


@dataclass
class Experiment:
    """A fully validated experiment: what a study records and every worker reads back.

    Typed attributes for the keys code reads by name; a key of the table without an attribute
    of its name is kept in :attr:`extras` (read it with :meth:`setting`). Defaults come from
    the key table (:mod:`wcd_hpc.experiment.keys`).
    """

    name: str
    dataset: str
    dataset_params: dict[str, Any]
    model: str
    metric: str
    direction: str | None
    trials: int
    epochs: int
    param_space: dict[str, Any]
    sampler: str = default("sampler")
    pruner: str = default("pruner")
    #: The knobs the experiment set for its pruner (defaults: ``wcd_hpc.experiment.pruning``).
    pruner_options: dict[str, float] = field(default_factory=dict)
    storage: str = default("storage")
    seed: int = default("seed")
    runs_dir: str = default("runs_dir")
    workers: int = default("workers")
    executor: str = default("executor")
    resources: Resources = field(default_factory=Resources)
    #: The class every metric and plot treats as the signal ("positive"); ``None``: the default.
    signal_class: str | None = default("signal_class")
    #: Cap in GPU-hours allocated to the study's Slurm jobs (``budget.gpu_hours``), if any.
    gpu_hours: float | None = default("budget.gpu_hours")
    #: How trials use a GPU (``wcd_hpc.experiment.training``): autocast precision, the data on
    #: the device, torch.compile.
    precision: str = default("precision")
    data_on_device: bool | str = default("data_on_device")
    compile: bool = default("compile")
    source: str = "<defaults>"
    #: Values of table keys without an attribute of their own, by dotted key name (their
    #: defaults unless given, so that an experiment built by hand equals one loaded from a file).
    extras: dict[str, Any] = field(default_factory=lambda: _extra_defaults())
    # Key -> line in ``source``, for errors found later (resolve); not part of the experiment.
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    # Key -> the flag that set it last (``--set``, ``--workers``, ``$WCD_HPC_STORAGE``), so
    # that a later error blames the flag, not the file; not part of the experiment either.
    origins: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    # Every dotted key some layer set (profile, file, ``--set``, flag): a knob added since a
    # study was created that is not among them keeps its old meaning on resume
    # (:mod:`wcd_hpc.experiment.resume`); not part of the experiment either.
    given: frozenset[str] = field(default_factory=frozenset, compare=False, repr=False)

    def setting(self, name: str) -> Any:
        """The value of key ``name`` (dotted), wherever this experiment keeps it."""
        key = find(name)
        if key is None:
            raise KeyError(name)
        kind, where = _place(key)
        if kind == "merged":
            return self.trials  # budget.trials is merged into trials
        if kind == "attrs":
            return {attr: getattr(self, attr) for attr in where}
        if kind == "resources":
            return getattr(self.resources, where)
        if kind == "extras":
            return self.extras.get(where, default(name))
        return getattr(self, where)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (study user attrs, MLflow artifact); see :meth:`from_dict`.

        A key kept in :attr:`extras` is stored under its dotted name.
        """
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in _stored_fields()}
        out["resources"] = dataclasses.asdict(self.resources)
        out.update(copy.deepcopy(self.extras))
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Experiment:
        """Rebuild an experiment written by :meth:`to_dict` (it was validated when first loaded).

        A key the table gained since the experiment was stored reads back as its default.
        """
        names = {f.name for f in _stored_fields()}
        extra_names = {k.name for k in keys.KEYS if _place(k)[0] == "extras"}
        unknown = sorted(set(d) - names - extra_names)
        if unknown:
            source = str(d.get("source", "<dict>"))
            raise ConfigError(source, unknown[0], None, "unknown key in a stored experiment")
        kwargs = {k: copy.deepcopy(v) for k, v in d.items() if k in names}
        kwargs["resources"] = Resources(**dict(d.get("resources", {})))
        kwargs["extras"] = {n: copy.deepcopy(d[n]) if n in d else default(n) for n in extra_names}
        return cls(**kwargs)


def _extra_defaults() -> dict[str, Any]:
    """The defaults of the table keys :class:`Experiment` keeps in ``extras``."""
    return {k.name: default(k.name) for k in keys.KEYS if _place(k)[0] == "extras"}


def _stored_fields() -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(Experiment) if f.name not in _NOT_KEYS | {"extras"}]


_FIELDS = frozenset(f.name for f in dataclasses.fields(Experiment))
#: Attributes that record where settings came from, not settings: never stored or compared.
_NOT_KEYS = frozenset({"lines", "origins", "given"})
_RESOURCE_FIELDS = frozenset(f.name for f in dataclasses.fields(Resources))


def _place(key: Key) -> tuple[str, Any]:
    """Where :class:`Experiment` keeps ``key``: ``("attr", name)``, ``("attrs", names)`` (one
    value per attribute), ``("resources", field)``, ``("extras", dotted name)`` or
    ``("merged", None)`` (``budget.trials``, merged into ``trials``).

    A key's attribute is its ``field``, else its name with ``_`` for ``.`` (``dataset.params``
    is ``dataset_params``); a key with no such attribute is kept in :attr:`Experiment.extras`.
    """
    if key.field is None:
        return "merged", None
    if isinstance(key.field, tuple):
        return "attrs", key.field
    attr = key.field or key.name.replace(".", "_")
    if attr in _FIELDS and attr not in _NOT_KEYS | {"extras", "resources", "source"}:
        return "attr", attr
    top, _, sub = key.name.partition(".")
    if top == "resources" and sub in _RESOURCE_FIELDS:
        return "resources", sub
    return "extras", key.name


def _stored_names(key: Key) -> tuple[str, ...]:
    """The top-level names :meth:`Experiment.to_dict` stores ``key`` under."""
    kind, where = _place(key)
    return {"merged": (), "attrs": where, "resources": ("resources",)}.get(kind, (where,))  # type: ignore[no-any-return]


def mutable_names() -> set[str]:
    """Stored names a resumed study may change: those whose every key is mutable (and the file)."""
    every = {n for k in keys.KEYS for n in _stored_names(k)}
    return {"source"} | every - {n for k in keys.KEYS if not k.mutable for n in _stored_names(k)}


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
            if key not in keys.top_names():
                line = lines.get(str(key))
                raise ConfigError(file, key_text(key), line, _unknown(str(key), keys.top_names()))
            group = GROUPS.get(key)
            if group is not None and group.shorthand and not isinstance(value, Mapping):
                value = {group.shorthand: value}
            merge = _merges(key)
            if merge and value is None:
                value = {}
            value = copy.deepcopy(dict(value) if isinstance(value, Mapping) else value)
            old = self.values.get(key)
            if merge and isinstance(old, dict):
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
        if top not in keys.top_names():
            raise ConfigError("--set", key_text(key), None, _unknown(top, keys.top_names()))
        if not path:
            self.apply({top: value}, "--set", {})
            return
        node = self.values.setdefault(top, {} if top in GROUPS or _merges(top) else None)
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


def _merges(top: str) -> bool:
    group, key = GROUPS.get(top), find(top)
    return bool((group is not None and group.merge) or (key is not None and key.merge))


def _unknown(key: str, known: Sequence[str]) -> str:
    """``unknown key`` with the likely fix, or the keys (:func:`suggest` cuts a long list to one
    line and says how many more there are)."""
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
    data, lines, raw_space = compose(read_text(Path(path)), file, raw=keys.raw_names())
    if not isinstance(data, dict):
        raise ConfigError(file, None, 1, f"expected a mapping of settings, got {got(data)}")
    if raw_space is not None:
        data["param_space"] = raw_space
    data = {k: v for k, v in data.items() if not anchor_holder(k)}
    settings = _Settings()
    if profile:
        settings.apply(_profile_settings(profile), "<profile>", {})
    settings.apply(data, file, lines)
    if profile and "executor" in profile:
        # Where to run is the site's to say: ``--profile dev`` on a file written for a laptop
        # runs on the cluster. ``--set executor=…`` and flags still win (and a cluster profile
        # with local workers is warned about: Plan.warnings).
        settings.apply({"executor": profile["executor"]}, PROFILE_ORIGIN, {})
    for item in overrides:
        _apply_override(settings, item)
    for key, (flag, value) in (flags or {}).items():
        settings.apply({key: str(value) if isinstance(value, Path) else value}, flag, {})
    budget.merge_trials(settings.values, settings.origin, file)
    for key in keys.required_names():
        if key not in settings.values:
            raise ConfigError(file, key, None, "missing required key")
    exp = _validate(settings)
    exp.source = file
    exp.lines = lines
    exp.origins = {k: f for k, (f, _) in settings.origin.items() if f.startswith(("-", "$"))}
    exp.given = frozenset(settings.origin)
    return exp


#: Where an experiment's ``executor`` came from when its ``--profile`` set it.
PROFILE_ORIGIN = "--profile"


def _profile_settings(profile: Mapping[str, Any]) -> dict[str, Any]:
    """A profile's experiment keys; its other tables (``[slurm]`` …) are the launcher's."""
    allowed = keys.profile_names()
    return {k: v for k, v in profile.items() if k in allowed}


def _apply_override(settings: _Settings, item: str) -> None:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        message = "expected KEY=VALUE, e.g. trials=100"
        raise ConfigError("--set", key_text(item) if item else None, None, message)
    value: Any
    declared = find(key)
    if key.startswith("param_space."):
        if key.count(".") != 1:
            raise ConfigError("--set", key, None, "expected param_space.NAME=EXPRESSION")
        value = text.strip()  # raw text: YAML would split a flow list at its commas
    elif declared is not None and declared.raw:
        value = text.strip()  # e.g. YAML 1.1 reads 02:00:00 as a base-60 integer
    else:
        value = read_value(text, "--set", key)
    settings.set_dotted(key, value)


#: Tells a key the settings do not give from one given as null.
_MISSING = object()


def _validate(s: _Settings) -> Experiment:
    """Check every key of the table, in its order; build the experiment from the kept values."""
    checked: dict[str, Any] = {}
    seen: set[str] = set()
    for key in keys.KEYS:
        if key.top in GROUPS and key.top not in seen:
            _check_group(s, key.top)
        seen.add(key.top)
        value = _raw(s, key)
        checked[key.name] = key.check(default(key.name) if value is _MISSING else value, s.error)
    return _build(checked)


def _check_group(s: _Settings, name: str) -> None:
    value = s.values.get(name, _MISSING)
    if value is _MISSING:
        return
    subs = keys.sub_keys(name)
    if not isinstance(value, dict):
        raise s.error(name, f"expected a mapping with keys {', '.join(subs)}")
    for sub in value:
        if sub not in subs:
            raise s.error(f"{name}.{key_text(sub)}", _unknown(str(sub), subs))


def _raw(s: _Settings, key: Key) -> Any:
    """The layered value of ``key``, or :data:`_MISSING`; a missing required sub-key is refused."""
    top, _, sub = key.name.partition(".")
    value = s.values.get(top, _MISSING)
    if sub and value is not _MISSING:
        value = value.get(sub, _MISSING)
    if value is _MISSING and key.required:
        raise s.error(top, f"missing required key {sub!r}" if sub else "missing required key")
    return value


def _build(checked: Mapping[str, Any]) -> Experiment:
    kwargs: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for key in keys.KEYS:
        (kind, where), value = _place(key), checked[key.name]
        if kind == "attrs":
            kwargs.update(zip(where, value, strict=True))
        elif kind != "merged":
            {"attr": kwargs, "resources": resources, "extras": extras}[kind][where] = value
    return Experiment(**kwargs, resources=Resources(**resources), extras=extras)


def settings_of(exp: Experiment) -> dict[str, tuple[Any, bool]]:
    """Every key's value in ``exp`` and whether it is the default, by dotted name in table order
    (what a dry run shows; ``budget.trials`` is ``trials``)."""
    out = {}
    for key in keys.KEYS:
        kind, where = _place(key)
        if kind == "merged":
            continue
        value, fallback = exp.setting(key.name), None
        if not key.required:
            fallback = key.check(default(key.name), _defaults_fail)
            fallback = dict(zip(where, fallback, strict=True)) if kind == "attrs" else fallback
        out[key.name] = (value, not key.required and value == fallback)
    return out


def _defaults_fail(key: str, message: str) -> ConfigError:
    return ConfigError("<defaults>", key, None, message)  # a bug in the key table


def validate_profile(profile: Mapping[str, Any], source: str) -> None:
    """Check a site profile's experiment keys as ``load_experiment`` would use them.

    Its ``[slurm]`` and ``[container]`` tables are checked by ``wcd_hpc.launch.settings``.
    """
    allowed = (*keys.profile_names(), "slurm", "container", "description")
    for key in profile:
        if key not in allowed:
            raise ConfigError(source, key_text(key), None, _unknown(key, allowed))
    settings = _Settings()
    settings.apply(_profile_settings(profile), source, {})
    settings.apply({"name": "check", "dataset": "x", "model": "x", "trials": 1}, "<check>", {})
    _validate(settings)
