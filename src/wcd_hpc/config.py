"""Experiment files, site profiles and their validation.

A sweep is expensive to get wrong: a typo found on a compute node costs a queue wait and GPU hours.
So everything is checked here, on the login node, before a study is created, and every error is
one line naming the file, the line, the key and what was expected (``quick.yaml:7: trials: expected
a positive integer, got 'five'``).

Settings come in layers, later ones winning: built-in :data:`DEFAULTS` < site profile < experiment
file < ``--set KEY=VALUE`` overrides. ``resources`` and ``param_space`` merge key by key; every
other key is replaced whole. ``runs_dir`` is kept as written: a relative path is relative to the
current working directory of the command (not to the experiment file), like every other CLI path.

The file is read with ``yaml.compose`` as well as constructed, for two reasons: the node tree gives
each key's line for error messages, and ``param_space`` values must be taken from the *source
text*: ``[randint(2, 20), randint(2, 20)]`` is a YAML flow sequence that YAML would split at every
comma, so its raw text is handed to :mod:`wcd_hpc.space` instead.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from wcd_hpc.space import Space, SpaceError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "DEFAULTS",
    "ConfigError",
    "Experiment",
    "Resources",
    "load_experiment",
    "load_profile",
    "resolve",
]

SAMPLERS = ("tpe", "random", "cmaes", "grid", "qmc")
PRUNERS = ("median", "hyperband", "none")
EXECUTORS = ("local", "slurm")
DIRECTIONS = ("maximize", "minimize")
STORAGE_URL_PREFIXES = ("sqlite:///", "postgresql://", "postgresql+psycopg2://", "mysql://")
REQUIRED = ("name", "dataset", "model", "trials")
TOP_KEYS = (
    "name", "dataset", "model", "metric", "trials", "epochs", "param_space", "sampler",
    "pruner", "storage", "seed", "runs_dir", "workers", "executor", "resources",
)  # fmt: skip
# A site profile also carries launcher settings (partition, image …); these are experiment keys.
PROFILE_KEYS = ("runs_dir", "storage", "workers", "executor", "resources", "sampler", "pruner")
SUB_KEYS = {
    "dataset": ("name", "params"),
    "model": ("name",),
    "metric": ("name", "direction"),
    "resources": ("gpus", "cpus", "mem_gb", "time"),
}
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
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
    "executor": "local",
    "resources": {"gpus": 0, "cpus": 2, "mem_gb": 8, "time": "02:00:00"},
}


class ConfigError(ValueError):
    """A setting that cannot be used, located as precisely as is known (file, line, key)."""

    def __init__(self, file: str, key: str | None, line: int | None, message: str) -> None:
        self.file, self.key, self.line, self.message = file, key, line, message
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


@dataclass
class Resources:
    """What one worker asks the scheduler for; ``time`` is a Slurm time limit."""

    gpus: int = 0
    cpus: int = 2
    mem_gb: float = 8
    time: str = "02:00:00"


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
    storage: str = "journal"
    seed: int = 0
    runs_dir: str = "runs"
    workers: int = 1
    executor: str = "local"
    resources: Resources = field(default_factory=Resources)
    source: str = "<defaults>"
    # Key -> line in ``source``, for errors found later (resolve); not part of the experiment.
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

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
    return [f for f in dataclasses.fields(Experiment) if f.name != "lines"]


def _got(value: object) -> str:
    """How a wrong value is shown after 'got': short, and with its YAML-visible kind."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return f"a list {list(value)!r}"
    return repr(value)


def _suggest(word: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"


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
                raise ConfigError(file, str(key), lines.get(str(key)), _unknown(str(key), TOP_KEYS))
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
            raise ConfigError("--set", key, None, _unknown(top, TOP_KEYS))
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
    return "unknown key" + _suggest(key, known)


# --------------------------------------------------------------------------------------------
# Reading files


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        message = {
            FileNotFoundError: "no such file",
            IsADirectoryError: "is a directory, expected a file",
            UnicodeDecodeError: "is not UTF-8 text",
        }.get(type(exc), f"cannot read: {getattr(exc, 'strerror', exc)}")
        raise ConfigError(str(path), None, None, message) from None


def _compose(text: str, file: str) -> tuple[Any, dict[str, int], dict[str, Any]]:
    """Construct the document; also return key lines and the raw-text ``param_space``."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(file, None, None, "is empty; expected a mapping of settings")
        data = loader.construct_document(node)
        lines: dict[str, int] = {}
        _key_lines(node, "", lines, file)
        space = _raw_param_space(loader, text, node, file)
        if isinstance(data, dict):
            _raw_time(node, data)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(file, exc) from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, None, None, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return data, lines, space


def _yaml_error(file: str, exc: yaml.MarkedYAMLError) -> ConfigError:
    """YAML marks the token where it gave up; say also what it was parsing, and where."""
    mark, problem = exc.problem_mark or exc.context_mark, exc.problem or "not valid YAML"
    if exc.context and exc.context_mark and exc.context_mark.line != getattr(mark, "line", None):
        problem += f" ({exc.context} at line {exc.context_mark.line + 1})"
    source = mark.buffer.splitlines() if mark and mark.buffer else []
    if "flow" in (exc.context or "") and mark and "(" in "".join(source[mark.line : mark.line + 1]):
        problem += "; quote search-space expressions that contain brackets or commas"
    return ConfigError(file, None, mark.line + 1 if mark else None, f"invalid YAML: {problem}")


def _key_lines(node: yaml.Node, prefix: str, lines: dict[str, int], file: str) -> None:
    if not isinstance(node, yaml.MappingNode):
        return
    for knode, vnode in node.value:
        if not isinstance(knode, yaml.ScalarNode):
            continue
        key = f"{prefix}.{knode.value}" if prefix else str(knode.value)
        line = knode.start_mark.line + 1
        if key in lines:  # YAML itself keeps the last silently; that hides mistakes.
            raise ConfigError(file, key, line, f"duplicate key (first at line {lines[key]})")
        lines[key] = line
        _key_lines(vnode, key, lines, file)


def _mapping_value(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for knode, vnode in node.value:
            if isinstance(knode, yaml.ScalarNode) and knode.value == key:
                return cast(yaml.Node, vnode)
    return None


def _raw_time(root: yaml.Node, data: dict[str, Any]) -> None:
    """Unquoted ``02:00:00`` is a base-60 integer to YAML 1.1; keep the text the user wrote."""
    time = _mapping_value(_mapping_value(root, "resources"), "time")
    if isinstance(time, yaml.ScalarNode) and time.style is None:
        data["resources"]["time"] = time.value


def _raw_param_space(loader: yaml.SafeLoader, text: str, root: yaml.Node, file: str) -> Any:
    node = _mapping_value(root, "param_space")
    if not isinstance(node, yaml.MappingNode):
        return None
    out: dict[str, Any] = {}
    for knode, vnode in node.value:
        key = str(knode.value)
        out[key] = _raw_value(loader, text, vnode, file, f"param_space.{key}")
    return out


def _raw_value(loader: yaml.SafeLoader, text: str, node: yaml.Node, file: str, key: str) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_object(node, deep=True)
    if isinstance(node, yaml.SequenceNode) and not node.flow_style:
        return [_raw_value(loader, text, item, file, key) for item in node.value]
    if isinstance(node, yaml.SequenceNode):
        return text[node.start_mark.index : node.end_mark.index]
    raise ConfigError(
        file,
        key,
        node.start_mark.line + 1,
        "expected an expression, a constant or a list, got a mapping",
    )


# --------------------------------------------------------------------------------------------
# Loading and validation


def load_experiment(
    path: str | Path,
    *,
    profile: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
) -> Experiment:
    """Read, layer and validate an experiment; raise :class:`ConfigError` on the first problem."""
    file = str(path)
    data, lines, raw_space = _compose(_read_text(Path(path)), file)
    if not isinstance(data, dict):
        raise ConfigError(file, None, 1, f"expected a mapping of settings, got {_got(data)}")
    if raw_space is not None:
        data["param_space"] = raw_space
    settings = _Settings()
    settings.apply(DEFAULTS, "<defaults>", {})
    if profile:
        settings.apply({k: v for k, v in profile.items() if k in PROFILE_KEYS}, "<profile>", {})
    settings.apply(data, file, lines)
    for item in overrides:
        _apply_override(settings, item)
    for key in REQUIRED:
        if key not in settings.values:
            raise ConfigError(file, key, None, "missing required key")
    exp = _validate(settings, file)
    exp.lines = lines
    return exp


def _apply_override(settings: _Settings, item: str) -> None:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError("--set", item or None, None, "expected KEY=VALUE, e.g. trials=100")
    value: Any
    if key.startswith("param_space."):
        if key.count(".") != 1:
            raise ConfigError("--set", key, None, "expected param_space.NAME=EXPRESSION")
        value = text.strip()  # raw text: YAML would split a flow list at its commas
    elif key == "resources.time":
        value = text.strip()  # YAML 1.1 reads 02:00:00 as a base-60 integer
    else:
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "not a YAML value"
            raise ConfigError("--set", key, None, f"cannot read {text!r}: {problem}") from None
    settings.set_dotted(key, value)


def _validate(s: _Settings, file: str) -> Experiment:
    v = s.values
    name = v["name"]
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or len(name) > 64:
        raise s.error(
            "name",
            "expected a study name of letters, digits, '.', '_' or '-' (starting with a letter or "
            f"digit, at most 64 characters), got {_got(name)}",
        )
    for key in SUB_KEYS:
        _check_sub_keys(s, key)
    dataset_params = v["dataset"].get("params") or {}
    if not isinstance(dataset_params, dict):
        raise s.error("dataset.params", f"expected a mapping, got {_got(dataset_params)}")
    try:
        json.dumps(dataset_params)
    except (TypeError, ValueError):
        message = "values must be plain numbers, strings, lists or mappings"
        raise s.error("dataset.params", message) from None
    direction = v["metric"].get("direction")
    if direction is not None and direction not in DIRECTIONS:
        raise s.error("metric.direction", f"expected maximize or minimize, got {_got(direction)}")
    pruner = "none" if v["pruner"] is None else v["pruner"]
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
        pruner=_one_of(s, "pruner", pruner, PRUNERS),
        storage=_storage(s),
        seed=_int(s, "seed", v["seed"], 0),
        runs_dir=_text(s, "runs_dir", v["runs_dir"]),
        workers=_int(s, "workers", v["workers"], 1),
        executor=_one_of(s, "executor", v["executor"], EXECUTORS),
        resources=_resources(s),
        source=file,
    )


def _check_sub_keys(s: _Settings, key: str) -> None:
    value = s.values.get(key)
    if not isinstance(value, dict):
        raise s.error(key, f"expected a mapping with keys {', '.join(SUB_KEYS[key])}")
    for sub in value:
        if sub not in SUB_KEYS[key]:
            raise s.error(f"{key}.{sub}", _unknown(str(sub), SUB_KEYS[key]))


def _name(s: _Settings, key: str) -> str:
    if "name" not in s.values[key]:
        raise s.error(key, "missing required key 'name'")
    return _text(s, f"{key}.name", s.values[key]["name"])


def _text(s: _Settings, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise s.error(key, f"expected a non-empty string, got {_got(value)}")
    return value


def _int(s: _Settings, key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise s.error(key, f"expected {kind}, got {_got(value)}")
    return value


def _one_of(s: _Settings, key: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        hint = _suggest(value, allowed) if isinstance(value, str) else ""
        raise s.error(key, f"expected one of {', '.join(allowed)}, got {_got(value)}{hint}")
    return str(value)


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
            f"{', '.join(STORAGE_URL_PREFIXES)}, got {_got(value)}",
        )
    return str(value)


def _resources(s: _Settings) -> Resources:
    r = s.values["resources"]
    gpus, cpus = (
        _int(s, "resources.gpus", r.get("gpus"), 0),
        _int(s, "resources.cpus", r.get("cpus"), 1),
    )
    mem_gb, time = r.get("mem_gb"), r.get("time")
    if isinstance(mem_gb, bool) or not isinstance(mem_gb, (int, float)) or not mem_gb > 0:
        raise s.error("resources.mem_gb", f"expected a positive number, got {_got(mem_gb)}")
    match = _TIME_RE.fullmatch(time) if isinstance(time, str) else None
    if match is None or (match.group(1) is not None and int(match.group(2)) > 23):
        raise s.error(
            "resources.time", f"expected a time limit HH:MM:SS or D-HH:MM:SS, got {_got(time)}"
        )
    return Resources(gpus=gpus, cpus=cpus, mem_gb=mem_gb, time=time)


def _param_space(s: _Settings) -> dict[str, Any]:
    """Check the overrides parse on their own; the merged space is checked again by resolve."""
    space = s.values["param_space"]
    if not isinstance(space, dict):
        raise s.error(
            "param_space", f"expected a mapping of names to expressions, got {_got(space)}"
        )
    for key, value in space.items():
        try:
            Space.from_mapping({key: value})
        except SpaceError as exc:
            raise s.error(f"param_space.{exc.key}", exc.message) from None
    return copy.deepcopy(space)


# --------------------------------------------------------------------------------------------
# Profiles and plugin resolution


def load_profile(name_or_path: str, search_dirs: Sequence[Path]) -> dict[str, Any]:
    """Read a TOML site profile given by path or by name (``<name>.toml`` in ``search_dirs``)."""
    path = Path(name_or_path)
    if path.suffix != ".toml" and "/" not in name_or_path:
        found = [Path(d) / f"{name_or_path}.toml" for d in search_dirs]
        existing = [p for p in found if p.is_file()]
        if not existing:
            known = sorted(
                {p.stem for d in search_dirs if Path(d).is_dir() for p in Path(d).glob("*.toml")}
            )
            where = ", ".join(str(d) for d in search_dirs) or "no directories"
            hint = _suggest(name_or_path, known) if known else ""
            raise ConfigError(name_or_path, None, None, f"no such profile in {where}{hint}")
        path = existing[0]
    text = _read_text(path)
    try:
        profile: dict[str, Any] = tomllib.loads(text)
        return profile
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(m.group(1)) if m else None
        message = message[: m.start()].strip() if m else message
        raise ConfigError(str(path), None, line, f"invalid TOML: {message}") from None


def resolve(exp: Experiment, registry: Any) -> tuple[Experiment, Space]:
    """Check plugin names, fill the metric direction, and build the final search space.

    This is the last check before anything is created: an unknown plugin or an impossible space
    (e.g. an override the model's default space cannot take) stops the sweep here.
    """

    def fail(key: str, message: str) -> ConfigError:
        top = key.split("[")[0]
        line = exp.lines.get(top) or exp.lines.get(top.split(".")[0])
        return ConfigError(exp.source, key, line, message)

    def lookup(kind: str, key: str, name: str, table: Mapping[str, Any]) -> Any:
        if name in table:
            return table[name].obj
        known = sorted(table)
        hint = _suggest(name, known)
        if known and "did you mean" in hint:
            hint += f" (known: {', '.join(known)})"
        raise fail(key, f"unknown {kind} {name!r}{hint if known else ' (none installed)'}")

    model = lookup("model", "model", exp.model, registry.models)
    lookup("dataset", "dataset", exp.dataset, registry.datasets)
    metric = lookup("metric", "metric", exp.metric, registry.metrics)
    direction = exp.direction
    if direction is None:
        direction = getattr(metric, "direction", None)
        if direction not in DIRECTIONS:
            raise fail(
                "metric", f"metric {exp.metric!r} declares no valid direction ({direction!r})"
            )
    elif direction not in DIRECTIONS:
        raise fail("metric.direction", f"expected maximize or minimize, got {_got(direction)}")
    try:
        base = Space.from_mapping(getattr(model, "space", None) or {})
    except SpaceError as exc:
        raise fail(
            "model", f"default search space of model {exp.model!r} is invalid: {exc}"
        ) from None
    try:
        space = base.merged(exp.param_space)
    except SpaceError as exc:
        raise fail(f"param_space.{exc.key}", exc.message) from None
    return dataclasses.replace(exp, direction=direction), space
