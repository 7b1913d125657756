"""The search-space language and its translation into Optuna distributions.

An experiment file writes a search space as short expressions (``loguniform(1e-4, 1e-2)``,
``randint(32, 256)``, ``choice(['adam', 'sgd'])``, lists of these, plain constants). They are parsed
with :mod:`ast` in ``eval`` mode and interpreted node by node, never evaluated, so an experiment
file cannot run code, and every mistake is reported with the parameter's name and what was expected
*before* a study is created or a job submitted.

A list parameter such as ``channels: [randint(2, 20), randint(2, 20)]`` becomes one Optuna parameter
per item (``channels.0``, ``channels.1``) because Optuna distributions are scalar; :class:`Space`
flattens for Optuna and reassembles the nested dict a model builder receives.
"""

from __future__ import annotations

import ast
import difflib
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeAlias

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from wcd_hpc.errors import SpaceError

__all__ = [
    "KNOWN_FUNCTIONS",
    "Choice",
    "Fixed",
    "ListOf",
    "LogUniform",
    "Param",
    "RandInt",
    "Range",
    "Space",
    "SpaceError",
    "Uniform",
    "parse_param",
]

Number: TypeAlias = int | float
Scalar: TypeAlias = int | float | str | bool | None

KNOWN_FUNCTIONS: tuple[str, ...] = ("choice", "loguniform", "randint", "range", "uniform")
_EXAMPLE = "an expression like loguniform(1e-4, 1e-2), randint(2, 20) or choice(['adam', 'sgd'])"


class Param(ABC):
    """One entry of a search space: a distribution, a constant, or a list of entries."""

    @abstractmethod
    def describe(self) -> str:
        """Canonical text of the entry; parsing it again gives an equal entry."""

    def distribution(self) -> BaseDistribution | None:
        """The Optuna distribution of a scalar entry; ``None`` for constants and lists."""
        return None

    @abstractmethod
    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> object:
        """Ask ``trial`` for this entry's value under the flattened Optuna name ``name``."""

    def rebuild(self, flat: Mapping[str, object], name: str) -> object:
        """Read this entry's value back from a flat Optuna params dict."""
        if name not in flat:
            raise SpaceError(name, "missing from the trial's parameters")
        return flat[name]

    def flatten(self, name: str) -> Iterator[tuple[str, Param]]:
        """Yield ``(optuna_name, leaf)`` pairs; lists override this to recurse."""
        yield name, self


@dataclass(frozen=True)
class Uniform(Param):
    """Continuous, evenly weighted on ``[low, high]``."""

    low: float
    high: float

    def describe(self) -> str:
        return f"uniform({self.low!r}, {self.high!r})"

    def distribution(self) -> BaseDistribution:
        return FloatDistribution(self.low, self.high)

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> object:
        return trial.suggest_float(name, self.low, self.high)


@dataclass(frozen=True)
class LogUniform(Param):
    """Continuous, evenly weighted in log space: learning rates, weight decays."""

    low: float
    high: float

    def describe(self) -> str:
        return f"loguniform({self.low!r}, {self.high!r})"

    def distribution(self) -> BaseDistribution:
        return FloatDistribution(self.low, self.high, log=True)

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> object:
        return trial.suggest_float(name, self.low, self.high, log=True)


@dataclass(frozen=True)
class RandInt(Param):
    """An integer on ``[low, high]``, both ends included."""

    low: int
    high: int

    def describe(self) -> str:
        return f"randint({self.low!r}, {self.high!r})"

    def distribution(self) -> BaseDistribution:
        return IntDistribution(self.low, self.high)

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> object:
        return trial.suggest_int(name, self.low, self.high)


@dataclass(frozen=True)
class Range(Param):
    """A grid ``low, low + step, …`` up to ``high`` (included when it lies on the grid).

    Integer when all three numbers are integers, otherwise a stepped float.
    """

    low: Number
    high: Number
    step: Number

    @property
    def is_int(self) -> bool:
        """Whether Optuna should see an integer distribution."""
        return all(isinstance(v, int) for v in (self.low, self.high, self.step))

    @property
    def top(self) -> Number:
        """The last grid point not above ``high``; Optuna warns unless high is on the grid."""
        if self.is_int:
            return int(self.low + (int(self.high) - int(self.low)) // int(self.step) * self.step)
        low, high, step = (Decimal(repr(float(v))) for v in (self.low, self.high, self.step))
        return float(low + ((high - low) // step) * step)

    def describe(self) -> str:
        return f"range({self.low!r}, {self.high!r}, {self.step!r})"

    def distribution(self) -> BaseDistribution:
        if self.is_int:
            return IntDistribution(int(self.low), int(self.top), step=int(self.step))
        return FloatDistribution(float(self.low), float(self.top), step=float(self.step))

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> object:
        if self.is_int:
            return trial.suggest_int(name, int(self.low), int(self.top), step=int(self.step))
        return trial.suggest_float(name, float(self.low), float(self.top), step=float(self.step))


@dataclass(frozen=True)
class Choice(Param):
    """One of a fixed set of options (numbers, strings, booleans, ``None``)."""

    options: tuple[Scalar, ...]

    def describe(self) -> str:
        return f"choice({list(self.options)!r})"

    def distribution(self) -> BaseDistribution:
        return CategoricalDistribution(self.options)

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> object:
        return trial.suggest_categorical(name, self.options)


@dataclass(frozen=True)
class Fixed(Param):
    """A constant: passed to the model unchanged and never shown to Optuna."""

    value: Scalar

    def describe(self) -> str:
        return repr(self.value)

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> object:
        return self.value

    def rebuild(self, flat: Mapping[str, object], name: str) -> object:
        return self.value


@dataclass(frozen=True)
class ListOf(Param):
    """A list whose items are entries of their own, e.g. one channel count per layer."""

    items: tuple[Param, ...]

    def describe(self) -> str:
        return "[" + ", ".join(item.describe() for item in self.items) + "]"

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> object:
        return [item.suggest(trial, f"{name}.{i}") for i, item in enumerate(self.items)]

    def rebuild(self, flat: Mapping[str, object], name: str) -> object:
        return [item.rebuild(flat, f"{name}.{i}") for i, item in enumerate(self.items)]

    def flatten(self, name: str) -> Iterator[tuple[str, Param]]:
        for i, item in enumerate(self.items):
            yield from item.flatten(f"{name}.{i}")


# --------------------------------------------------------------------------------------------
# Parsing


def _looks_like_expression(text: str) -> bool:
    """A string that fails to parse is a constant unless it was clearly meant as an expression."""
    return "(" in text or ")" in text or text.startswith("[")


def parse_param(key: str, value: object) -> Param:
    """Turn one search-space value into a :class:`Param`, or raise :class:`SpaceError`.

    ``value`` may be an expression string, a number/bool/None constant, a list (from YAML) whose
    items are expressions or constants, or an already parsed :class:`Param`. A string that is not a
    call, list or number (``adam``) is a string constant, so plain settings need no quoting.
    """
    if isinstance(value, Param):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return Fixed(_check_finite(key, value))
    if isinstance(value, (list, tuple)):
        return ListOf(tuple(parse_param(f"{key}[{i}]", item) for i, item in enumerate(value)))
    if isinstance(value, str):
        return _parse_text(key, value)
    raise SpaceError(
        key, f"expected {_EXAMPLE}, a constant or a list, got {type(value).__name__} {value!r}"
    )


def _check_finite(key: str, value: Scalar) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise SpaceError(key, f"expected a finite number, got {value!r}")
    return value


def _parse_text(key: str, value: str) -> Param:
    text = value.strip()
    if not text:
        return Fixed(value)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        if not _looks_like_expression(text):
            return Fixed(value)
        where = f" at column {exc.offset}" if exc.offset else ""
        raise SpaceError(
            key, f"syntax error{where} in {text!r}: {exc.msg}; expected {_EXAMPLE}"
        ) from None
    node = tree.body
    if isinstance(node, (ast.Call, ast.List, ast.Tuple, ast.Dict, ast.Set)):
        return _parse_node(key, node)
    number = _literal_number(node)
    if number is not None:
        return Fixed(_check_finite(key, number))
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, str)):
        return Fixed(node.value)
    # Anything else (``adam``, ``relu6``, ``sgd-momentum``) is the literal text the user wrote.
    return Fixed(value)


def _literal_number(node: ast.expr) -> Number | None:
    """The value of a numeric literal, with an optional sign; ``None`` for anything else."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -1 if isinstance(node.op, ast.USub) else 1
        node = node.operand
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    ):
        return sign * node.value
    return None


def _parse_node(key: str, node: ast.expr) -> Param:
    """Interpret one expression node: a call, a list, or a constant inside a list."""
    if isinstance(node, ast.Call):
        return _parse_call(key, node)
    if isinstance(node, (ast.List, ast.Tuple)):
        return ListOf(tuple(_parse_node(f"{key}[{i}]", item) for i, item in enumerate(node.elts)))
    if isinstance(node, (ast.Dict, ast.Set)):
        kind = "mapping" if isinstance(node, ast.Dict) else "set"
        raise SpaceError(key, f"a {kind} is not a search space; expected {_EXAMPLE} or a list")
    number = _literal_number(node)
    if number is not None:
        return Fixed(_check_finite(key, number))
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, str)):
        return Fixed(node.value)
    if isinstance(node, ast.Name):
        return Fixed(node.id)
    raise SpaceError(
        key, f"expected {_EXAMPLE}, a number or a quoted string, got {ast.unparse(node)!r}"
    )


def _parse_call(key: str, node: ast.Call) -> Param:
    if not isinstance(node.func, ast.Name):
        raise SpaceError(
            key, f"expected a function name before '(', got {ast.unparse(node.func)!r}"
        )
    func = node.func.id
    if func not in KNOWN_FUNCTIONS:
        close = difflib.get_close_matches(func, KNOWN_FUNCTIONS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SpaceError(
            key, f"unknown function {func!r}{hint} (known: {', '.join(KNOWN_FUNCTIONS)})"
        )
    if node.keywords:
        raise SpaceError(key, f"{func}() takes positional arguments only")
    args = node.args
    if func == "choice":
        return _parse_choice(key, args)
    if func == "range":
        if len(args) not in (2, 3):
            raise SpaceError(
                key, f"range() takes 2 or 3 arguments (low, high, step), got {len(args)}"
            )
        low, high = (_bound(key, func, a) for a in args[:2])
        step: Number = _bound(key, func, args[2]) if len(args) == 3 else 1
        if step <= 0:
            raise SpaceError(key, f"range() step must be positive, got {step!r}")
        if low > high:
            raise SpaceError(key, f"range() low must not exceed high, got {low!r} > {high!r}")
        return Range(low, high, step)
    if len(args) != 2:
        raise SpaceError(key, f"{func}() takes 2 arguments (low, high), got {len(args)}")
    low, high = (_bound(key, func, a) for a in args)
    if func == "randint":
        if not (isinstance(low, int) and isinstance(high, int)):
            raise SpaceError(key, f"randint() bounds must be integers, got {low!r}, {high!r}")
        if low > high:
            raise SpaceError(key, f"randint() low must not exceed high, got {low!r} > {high!r}")
        return RandInt(low, high)
    if low >= high:
        raise SpaceError(key, f"{func}() low must be below high, got {low!r} >= {high!r}")
    if func == "loguniform":
        if low <= 0:
            raise SpaceError(key, f"loguniform() low must be positive, got {low!r}")
        return LogUniform(float(low), float(high))
    return Uniform(float(low), float(high))


def _bound(key: str, func: str, node: ast.expr) -> Number:
    number = _literal_number(node)
    if number is None:
        raise SpaceError(key, f"{func}() bounds must be numbers, got {ast.unparse(node)!r}")
    if not math.isfinite(number):
        raise SpaceError(key, f"{func}() bounds must be finite, got {number!r}")
    return number


def _parse_choice(key: str, args: list[ast.expr]) -> Choice:
    if len(args) != 1 or not isinstance(args[0], (ast.List, ast.Tuple)):
        raise SpaceError(key, "choice() takes one list of options, e.g. choice(['adam', 'sgd'])")
    options: list[Scalar] = []
    for item in args[0].elts:
        number = _literal_number(item)
        if number is not None:
            options.append(_check_finite(key, number))
        elif isinstance(item, ast.Constant) and (
            item.value is None or isinstance(item.value, (str, bool))
        ):
            options.append(item.value)
        else:
            raise SpaceError(
                key,
                "choice() options must be numbers, quoted strings, booleans or None, "
                f"got {ast.unparse(item)!r}",
            )
    if not options:
        raise SpaceError(key, "choice() needs at least one option")
    for i, option in enumerate(options):
        # ``1`` and ``True`` compare equal, so compare type too.
        if any(type(option) is type(o) and option == o for o in options[:i]):
            raise SpaceError(key, f"choice() option {option!r} is listed twice")
    return Choice(tuple(options))


# --------------------------------------------------------------------------------------------
# Space


def _check_key(key: object) -> str:
    """Names become Optuna parameter names; ``.`` and ``[`` would clash with flattened lists."""
    if not isinstance(key, str) or not key:
        raise SpaceError(str(key), "parameter names must be non-empty strings")
    if any(c in key for c in ".[]"):
        raise SpaceError(key, "parameter names must not contain '.', '[' or ']'")
    return key


class Space:
    """A parsed search space: named entries, their Optuna view, and the way back."""

    def __init__(self, params: Mapping[str, Param] | None = None) -> None:
        self.params: dict[str, Param] = dict(params or {})

    def __repr__(self) -> str:
        return f"Space({self.describe()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.params == other.params

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, object]) -> Space:
        """Parse every entry; the first bad one raises :class:`SpaceError` naming its key."""
        return cls({_check_key(k): parse_param(k, v) for k, v in mapping.items()})

    def merged(self, overrides: Mapping[str, object]) -> Space:
        """A new space whose entries are replaced key by key by ``overrides``.

        This is how an experiment file narrows or changes a model's default space without having
        to repeat the entries it keeps.
        """
        params = dict(self.params)
        for key, value in overrides.items():
            params[_check_key(key)] = parse_param(key, value)
        return Space(params)

    def _leaves(self) -> Iterator[tuple[str, Param]]:
        for key, param in self.params.items():
            yield from param.flatten(key)

    def distributions(self) -> dict[str, BaseDistribution]:
        """The flat Optuna view (``channels.0``, ``channels.1`` …); constants are left out."""
        out: dict[str, BaseDistribution] = {}
        for name, leaf in self._leaves():
            dist = leaf.distribution()
            if dist is not None:
                out[name] = dist
        return out

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, object]:
        """Ask ``trial`` for every entry; returns the nested dict a model builder receives."""
        return {key: param.suggest(trial, key) for key, param in self.params.items()}

    def rebuild(self, flat: Mapping[str, object]) -> dict[str, object]:
        """Nested parameters from a flat Optuna dict (e.g. ``FrozenTrial.params``)."""
        return {key: param.rebuild(flat, key) for key, param in self.params.items()}

    def describe(self) -> dict[str, str]:
        """Canonical text of every entry, for dry runs and the resolved experiment."""
        return {key: param.describe() for key, param in self.params.items()}

    def sample(self, n: int, seed: int) -> list[dict[str, object]]:
        """Draw ``n`` parameter sets at random, reproducibly, without touching any storage.

        Used by dry runs to show what trials would receive; an in-memory study with Optuna's own
        RandomSampler exercises exactly the suggest path a worker uses.
        """
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
            samples = []
            for _ in range(n):
                trial = study.ask()
                samples.append(self.suggest(trial))
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return samples
        finally:
            optuna.logging.set_verbosity(verbosity)
