"""The rules the key table (:mod:`wcd_hpc.experiment.keys`) checks values with.

A :class:`Rule` is a check and the words for what it allows: the check turns a raw value from a
file, a profile or a flag into the value the experiment keeps (or raises the error its ``fail``
builds, naming the key), and the words go into the key reference, so that what the docs say a
key accepts is what the check accepts. Rules for one kind of value (an integer in a range, one
word of a list, a string) are built here; rules with knowledge of their own (a storage URL, a
pruner, a search space) wrap the modules that hold that knowledge.

Every bound is finite: a value comes from hostile input as often as from a careful user, and a
number no cluster could honour (10**20 trials, 10**6 GPUs) is a typo to say now, not a traceback
from deep inside numpy or Slurm later.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from wcd_hpc.experiment.addresses import GRPC_SCHEME, grpc_address
from wcd_hpc.experiment.sources import Fail, got, one_of
from wcd_hpc.experiment.space import Space, SpaceError

__all__ = [
    "STORAGE_URL_PREFIXES",
    "Rule",
    "boolean",
    "choice",
    "integer",
    "mapping",
    "optional",
    "path",
    "positive",
    "text",
]

#: ``(value, key, fail) -> kept value``: ``key`` is the dotted name errors blame.
Check = Callable[[Any, str, Fail], Any]


@dataclass(frozen=True)
class Rule:
    """A check and the words for the values it allows (the key reference shows them)."""

    allowed: str
    check: Check

    def __call__(self, value: Any, key: str, fail: Fail) -> Any:
        return self.check(value, key, fail)


def integer(least: int, most: int) -> Rule:
    """An integer from ``least`` to ``most`` (YAML's true/false are not integers)."""
    kind = "a positive integer" if least == 1 else f"an integer >= {least}"

    def check(value: Any, key: str, fail: Fail) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise fail(key, f"expected {kind}, got {got(value)}")
        if value > most:
            raise fail(key, f"expected {kind} of at most {most:,}, got {got(value)}")
        return value

    return Rule(f"integer, {least} to {most:,}", check)


def positive(most: float, unit: str = "") -> Rule:
    """A finite number above zero and at most ``most`` (``unit`` as the message says it)."""
    what = f"a positive number{unit}"

    def check(value: Any, key: str, fail: Fail) -> float | int:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not value > 0:
            raise fail(key, f"expected {what}, got {got(value)}")
        if value > most:
            raise fail(key, f"expected {what} of at most {most:,g}, got {got(value)}")
        return value  # type: ignore[no-any-return]

    return Rule(f"number above 0, at most {most:,g}", check)


def choice(options: Sequence[str]) -> Rule:
    """One word of ``options``, with a "did you mean" for a near miss."""

    def check(value: Any, key: str, fail: Fail) -> str:
        return one_of(value, options, key, fail)

    return Rule(" | ".join(options), check)


def _text(value: Any, key: str, fail: Fail) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail(key, f"expected a non-empty string, got {got(value)}")
    return value


text = Rule("non-empty string", _text)


def _path(value: Any, key: str, fail: Fail) -> str:
    """A path as written, ``~`` expanded (a shell would have; a file or a flag in quotes does
    not, and a directory literally named ``~`` is never what was meant)."""
    return os.path.expanduser(_text(value, key, fail))


path = Rule("path (~ is expanded; relative to the current directory)", _path)


def _boolean(value: Any, key: str, fail: Fail) -> bool:
    if not isinstance(value, bool):
        raise fail(key, f"expected true or false, got {got(value)}")
    return value


boolean = Rule("true | false", _boolean)


def optional(rule: Rule) -> Rule:
    """``rule``, or null (the key's default meaning)."""

    def check(value: Any, key: str, fail: Fail) -> Any:
        return None if value is None else rule(value, key, fail)

    return Rule(f"{rule.allowed}, or null", check)


def _mapping(value: Any, key: str, fail: Fail) -> dict[str, Any]:
    """Plain data only: it is stored in the study as JSON and handed to a plugin."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(key, f"expected a mapping, got {got(value)}")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise fail(key, "values must be plain numbers, strings, lists or mappings") from None
    return copy.deepcopy(value)


mapping = Rule("mapping of plain values", _mapping)


# --------------------------------------------------------------------------------------------
# Rules with knowledge of their own

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
NAME_RULE = (
    "expected a study name of letters, digits, '.', '_' or '-' (starting with a letter or "
    "digit, at most 64 characters)"
)


def valid_name(name: object) -> bool:
    """Whether ``name`` may name a study: it becomes a directory name, so no ``/`` or ``..``."""
    return isinstance(name, str) and bool(_NAME_RE.fullmatch(name)) and len(name) <= 64


def _study_name(value: Any, key: str, fail: Fail) -> str:
    if not valid_name(value):
        raise fail(key, f"{NAME_RULE}, got {got(value)}")
    return str(value)


study_name = Rule(
    "letters, digits, . _ - (at most 64, starting with a letter or digit)", _study_name
)

DIRECTIONS = ("maximize", "minimize")


def _direction(value: Any, key: str, fail: Fail) -> str | None:
    if value is not None and value not in DIRECTIONS:
        raise fail(key, f"expected maximize or minimize, got {got(value)}")
    return value  # type: ignore[no-any-return]


direction = Rule("maximize | minimize, or null (the metric's own)", _direction)

STORAGE_URL_PREFIXES = (
    "sqlite:///",
    "postgresql://",
    "postgresql+psycopg://",
    "postgresql+psycopg2://",
    "mysql://",
    GRPC_SCHEME,
)


def _storage(value: Any, key: str, fail: Fail) -> str:
    ok = isinstance(value, str) and (
        value == "journal"
        or (value.startswith("journal:") and len(value) > len("journal:"))
        or value.startswith(STORAGE_URL_PREFIXES)
    )
    if not ok:
        raise fail(
            key,
            "expected journal, journal:PATH or a URL starting with "
            f"{', '.join(STORAGE_URL_PREFIXES)}, got {got(value)}",
        )
    if value.startswith(GRPC_SCHEME):
        try:
            grpc_address(value)
        except ValueError as exc:
            raise fail(key, str(exc)) from None
    return str(value)


storage = Rule(
    "journal | journal:PATH | sqlite:///PATH | postgresql://… | mysql://… | grpc://HOST:PORT",
    _storage,
)

_TIME_RE = re.compile(r"(?:(\d+)-)?(\d+):([0-5]\d):([0-5]\d)")


def _time(value: Any, key: str, fail: Fail) -> str:
    match = _TIME_RE.fullmatch(value) if isinstance(value, str) else None
    if match is not None and not any(int(g or 0) for g in match.groups()):
        raise fail(key, f"expected a time limit above zero, got {got(value)}")
    if match is None or (match.group(1) is not None and int(match.group(2)) > 23):
        raise fail(key, f"expected a time limit HH:MM:SS or D-HH:MM:SS, got {got(value)}")
    return str(value)


slurm_time = Rule("Slurm time limit HH:MM:SS or D-HH:MM:SS, above zero", _time)


def _signal_class(value: Any, key: str, fail: Fail) -> str | None:
    """A class name, or ``None`` for the dataset's default.

    Whether the dataset has that class is known only once its data are loaded (datasets do not
    declare their classes), so the trial checks it before training; here only its type.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise fail(key, f"expected a class name such as gamma, got {got(value)}")
    return value


signal_class = Rule(
    "a class name of the dataset, or null (gamma, else muon, else class 1)", _signal_class
)


def _param_space(value: Any, key: str, fail: Fail) -> dict[str, Any]:
    """Check the overrides parse on their own; the merged space is checked again by resolve."""
    if not isinstance(value, dict):
        raise fail(key, f"expected a mapping of names to expressions, got {got(value)}")
    for name, entry in value.items():
        try:
            Space.from_mapping({name: entry})
        except SpaceError as exc:
            raise fail(f"{key}.{exc.key}", exc.message) from None
    return copy.deepcopy(value)


param_space = Rule("mapping of parameter names to search expressions or constants", _param_space)


#: How many of the source study's best configurations ``start_from`` enqueues unless told.
START_FROM_TOP = 4
MAX_START_FROM_TOP = 1000


def _start_from(value: Any, key: str, fail: Fail) -> dict[str, Any] | None:
    """``NAME`` or ``{study: NAME, storage: URL, top: K}``, kept as the full mapping (``storage``
    null: the new study's own storage; ``top`` the number of best configurations)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"study": value}
    if not isinstance(value, dict):
        raise fail(
            key, f"expected a study name or {{study: NAME, storage: URL, top: K}}, got {got(value)}"
        )
    extra = sorted(set(value) - {"study", "storage", "top"})
    if extra:
        raise fail(f"{key}.{extra[0]}", "unknown; expected study, storage or top")
    if "study" not in value:
        raise fail(f"{key}.study", "missing: the name of the study to start from")
    top = value.get("top", START_FROM_TOP)
    storage = value.get("storage")
    return {
        "study": _study_name(value["study"], f"{key}.study", fail),
        "storage": None if storage is None else _storage(storage, f"{key}.storage", fail),
        "top": integer(1, MAX_START_FROM_TOP)(top, f"{key}.top", fail),
    }


start_from = Rule(
    "a study name, or {study: NAME, storage: URL, top: K} (top: 4 unless given), or null",
    _start_from,
)
