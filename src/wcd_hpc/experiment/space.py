"""The search-space language and its translation into Optuna distributions.

An experiment file writes a search space as short expressions (``loguniform(1e-4, 1e-2)``,
``randint(32, 256)``, ``choice(['adam', 'sgd'])``, lists of these, plain constants). They are parsed
with :mod:`ast` in ``eval`` mode and interpreted node by node, never evaluated, so an experiment
file cannot run code, and every mistake is reported with the parameter's name and what was expected
*before* a study is created or a job submitted. Which texts are constants, which are expressions,
and the limits that keep hostile text from raising anything but :class:`SpaceError`, are
:mod:`wcd_hpc.experiment.expressions`; bounds are limited here, so that Optuna and the midpoint of
``wcd-hpc train`` can compute with them.

A list parameter such as ``channels: "[randint(2, 20), randint(2, 20)]"`` becomes one Optuna
parameter per item (``channels.0``, ``channels.1``) because Optuna distributions are scalar;
:class:`Space` flattens for Optuna and reassembles the nested dict a model builder receives.
"""

from __future__ import annotations

import ast
import difflib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from wcd_hpc.errors import SpaceError, clip
from wcd_hpc.experiment import expressions
from wcd_hpc.experiment.expressions import (
    ECHO,
    EXAMPLE,
    KNOWN_FUNCTIONS,
    MAX_DEPTH,
    MAX_EXPRESSION,
    Literal,
    Number,
    Scalar,
    bound,
    check_constant,
    check_number,
    echo,
    literal,
    number_text,
    options_of,
    shown,
)

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
    "same_space",
]


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
# Parsing (text to tree: wcd_hpc.experiment.expressions; tree to Param: here)

#: Largest magnitude of an integer bound, and most steps of a float ``range()``: Optuna samples
#: integers and grid steps as floats, which count exactly only up to 2**53.
MAX_INT_BOUND = 2**53


def parse_param(key: str, value: object) -> Param:
    """Turn one search-space value into a :class:`Param`, or raise :class:`SpaceError`.

    ``value`` may be an expression string, a number/bool/None constant, a list (from YAML) whose
    items are expressions or constants, or an already parsed :class:`Param`. A plain word
    (``adam``, ``sgd-momentum``) is a string constant, so plain settings need no quoting; text
    that was meant as an expression but is not one of ours is refused, and so is a quoted string
    inside an expression that is itself an expression (the rules are in
    :mod:`wcd_hpc.experiment.expressions`).

    A list may come either way and means the same: ``"[randint(2, 20), 6]"`` (one string, the
    spelling that survives any YAML tool) or ``["randint(2, 20)", 6]`` (a YAML list whose items
    are read one by one).

    The canonical text of the entry is what a study stores and every worker parses again, so it
    must be readable too: a long YAML list, or hex numbers written out in decimal, can make it
    longer than the text that was read.
    """
    param = _parse_value(key, value, 1)
    size = len(param.describe())
    if size > MAX_EXPRESSION:
        raise SpaceError(
            key, f"entry of {size} characters when written out; at most {MAX_EXPRESSION}"
        )
    return param


def _parse_value(key: str, value: object, depth: int) -> Param:
    if isinstance(value, Param):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return Fixed(check_number(key, value))
    if isinstance(value, (list, tuple)):
        if depth > MAX_DEPTH:
            raise SpaceError(key, f"lists nested more than {MAX_DEPTH} levels deep")
        return ListOf(
            tuple(_parse_value(f"{key}[{i}]", item, depth + 1) for i, item in enumerate(value))
        )
    if isinstance(value, str):
        read = expressions.read(key, value)
        if isinstance(read, Literal):
            return Fixed(check_constant(key, read.value))
        return _parse_node(key, read)
    shown_value = f"{type(value).__name__} {clip(repr(value), ECHO)}"
    raise SpaceError(key, f"expected {EXAMPLE}, a constant or a list, got {shown_value}")


def _parse_node(key: str, node: ast.expr) -> Param:
    """Interpret one expression node: a call, a list, or a constant inside a list."""
    if isinstance(node, ast.Call):
        return _parse_call(key, node)
    if isinstance(node, (ast.List, ast.Tuple)):
        return ListOf(tuple(_parse_node(f"{key}[{i}]", item) for i, item in enumerate(node.elts)))
    if isinstance(node, (ast.Dict, ast.Set)):
        kind = "mapping" if isinstance(node, ast.Dict) else "set"
        raise SpaceError(key, f"a {kind} is not a search space; expected {EXAMPLE} or a list")
    constant = literal(node)
    if constant is not None:
        return Fixed(check_constant(key, constant.value))
    if isinstance(node, ast.Name):
        return Fixed(node.id)
    raise SpaceError(key, f"expected {EXAMPLE}, a number or a quoted string, got {shown(node)}")


def _parse_call(key: str, node: ast.Call) -> Param:
    if not isinstance(node.func, ast.Name):
        raise SpaceError(key, f"expected a function name before '(', got {shown(node.func)}")
    func = node.func.id
    if func not in KNOWN_FUNCTIONS:
        close = difflib.get_close_matches(func, KNOWN_FUNCTIONS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SpaceError(
            key, f"unknown function {echo(func)}{hint} (known: {', '.join(KNOWN_FUNCTIONS)})"
        )
    if node.keywords:
        raise SpaceError(key, f"{func}() takes positional arguments only")
    args = node.args
    if func == "choice":
        return _parse_choice(key, args)
    if func == "range":
        return _parse_range(key, args)
    if len(args) != 2:
        raise SpaceError(key, f"{func}() takes 2 arguments (low, high), got {len(args)}")
    low, high = (bound(key, func, a) for a in args)
    if func == "randint":
        if not (isinstance(low, int) and isinstance(high, int)):
            raise SpaceError(key, f"randint() bounds must be integers, got {low!r}, {high!r}")
        _check_int_bounds(key, func, low, high)
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


def _parse_range(key: str, args: list[ast.expr]) -> Range:
    if len(args) not in (2, 3):
        raise SpaceError(key, f"range() takes 2 or 3 arguments (low, high, step), got {len(args)}")
    low, high = (bound(key, "range", a) for a in args[:2])
    step: Number = bound(key, "range", args[2]) if len(args) == 3 else 1
    if step <= 0:
        raise SpaceError(key, f"range() step must be positive, got {step!r}")
    if low > high:
        raise SpaceError(key, f"range() low must not exceed high, got {low!r} > {high!r}")
    if all(isinstance(v, int) for v in (low, high, step)):
        _check_int_bounds(key, "range", low, high)
    elif (high - low) / step > MAX_INT_BOUND:
        raise SpaceError(
            key, f"range() has more than 2**53 steps from {low!r} to {high!r}; use a larger step"
        )
    return Range(low, high, step)


def _check_int_bounds(key: str, func: str, low: Number, high: Number) -> None:
    for value in (low, high):
        if abs(value) > MAX_INT_BOUND:
            raise SpaceError(
                key, f"{func}() integer bounds must lie within ±2**53, got {number_text(value)}"
            )


def _parse_choice(key: str, args: list[ast.expr]) -> Choice:
    if len(args) != 1 or not isinstance(args[0], (ast.List, ast.Tuple)):
        raise SpaceError(key, "choice() takes one list of options, e.g. choice(['adam', 'sgd'])")
    options = options_of(key, args[0].elts)
    if not options:
        raise SpaceError(key, "choice() needs at least one option")
    for i, option in enumerate(options):
        # ``1`` and ``True`` compare equal, so compare type too.
        if any(type(option) is type(o) and option == o for o in options[:i]):
            raise SpaceError(key, f"choice() option {number_text(option)} is listed twice")
    return Choice(tuple(options))


# --------------------------------------------------------------------------------------------
# Space


#: Longest parameter name: names are echoed in every error and stored with every trial.
MAX_NAME = 100


def _check_key(key: object) -> str:
    """Names become Optuna parameter names; ``.`` and ``[`` would clash with flattened lists."""
    if not isinstance(key, str) or not key:
        raise SpaceError(clip(str(key), ECHO), "parameter names must be non-empty strings")
    if len(key) > MAX_NAME or not key.isprintable():
        raise SpaceError(
            clip(repr(key), 40), f"parameter names must be at most {MAX_NAME} printable characters"
        )
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

    def missing(self, flat: Mapping[str, object]) -> list[str]:
        """Optuna names of the sampled entries ``flat`` lacks: a trial whose drawing was cut
        short (an outage between two of its suggestions) has some of its parameters, not all."""
        return [name for name in self.distributions() if name not in flat]

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


def same_space(stored: Mapping[str, object] | None, space: Space | None) -> bool:
    """Whether a stored space (its :meth:`Space.describe`) is ``space``; unknown: not the same."""
    if stored is None or space is None:
        return False
    try:
        return Space.from_mapping(stored) == space
    except SpaceError:
        return False
