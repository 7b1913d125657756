"""The objects a plugin hands to ``register``: models, datasets and metrics.

They are plain dataclasses rather than base classes so that a plugin author writes a function and
a few fields, never subclasses engine internals; the core validates them when they are registered
(see :mod:`wcd_hpc.plugins`) so a malformed plugin is reported once, at load time, naming its
distribution, instead of failing deep inside a trial on a compute node.

Nothing here imports torch at run time: ``wcd-hpc sweep``, ``status`` and ``plugins`` load every
plugin on a login node and should answer in a fraction of a second, so plugins (built-ins
included) import torch inside ``build`` / ``load``, not at module level.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # torch only for annotations: registering plugins must not import it
    import torch

__all__ = [
    "DEFAULT_SPACE",
    "TRAINING_DOMAINS",
    "TRAINING_PARAMS",
    "DataSpec",
    "Dataset",
    "Domain",
    "LazyInputs",
    "Metric",
    "Model",
    "Split",
    "Splits",
]


@dataclass(frozen=True)
class DataSpec:
    """What a model builder needs to know about the data: shapes and classes, nothing else."""

    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]


@runtime_checkable
class LazyInputs(Protocol):
    """Inputs read on demand (e.g. from an HDF5 file) instead of held in memory.

    ``x[a:b]`` returns the float32 tensor of events a…b−1; ``block`` is the number of consecutive
    events worth reading at once (the training loop shuffles whole blocks, then events within a
    window of blocks, so memory stays bounded); ``shape`` is (N, *input_shape).
    """

    block: int
    shape: tuple[int, ...]

    def __len__(self) -> int: ...

    def __getitem__(self, key: slice) -> torch.Tensor: ...


@dataclass
class Split:
    """One split of a dataset: inputs as a tensor or as :class:`LazyInputs`, labels as a tensor.

    ``meta`` carries per-event truth (energy, zenith, primary, muon count …) as numpy arrays of the
    same length, so metrics can be binned without the model ever seeing it.
    """

    x: torch.Tensor | LazyInputs
    y: torch.Tensor
    meta: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class Splits:
    """What a dataset loader returns: train / validation / test splits and the data spec."""

    train: Split
    val: Split
    test: Split
    spec: DataSpec
    #: How raw inputs (what a user has: VEM footprints) became the model's inputs, for whoever
    #: applies the trained model to raw data: ``{"kind": "log1p"}``, ``{"kind": "standard",
    #: "mean": m, "std": s}`` (fitted on the training events), ``{"kind": "none"}``, optionally
    #: with ``"raw_shape"``, one event's shape in the file; empty when the dataset does not say
    #: (the experiment's ``normalise`` parameter is used then).
    transform: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Domain:
    """The values a parameter may take, declared with the parameter so that validation refuses
    ``batch_size: 0`` or ``lr: uniform(-1, 1)`` on the login node, naming the file and line,
    instead of every trial failing (or training nonsense) on a compute node.

    Build one with :meth:`integer`, :meth:`number`, :meth:`choice` or :meth:`list_of`. A model
    plugin declares them in :attr:`Model.domains`; the training loop's own parameters have
    theirs in :data:`TRAINING_DOMAINS`. Validation checks a constant against its domain, and a
    search expression by its reach: both bounds of ``uniform``/``loguniform``/``randint``, the
    grid of ``range`` and every option of ``choice``.
    """

    kind: str  # "integer" | "number" | "choice" | "list"
    low: float | None = None
    high: float | None = None
    #: ``low`` (``high``) itself is outside: ``lr`` is above 0, dropout below 1.
    low_open: bool = False
    high_open: bool = False
    options: tuple[Any, ...] = ()
    #: A word of :attr:`options` matches whatever its case (``Adam`` is ``adam``).
    ignore_case: bool = False
    #: The domain of each item of a list, and how many items it may have.
    item: Domain | None = None
    min_items: int = 1
    max_items: int | None = None

    @classmethod
    def integer(cls, low: int | None = None, high: int | None = None) -> Domain:
        """An integer from ``low`` to ``high`` (both included; ``None``: unbounded)."""
        return cls("integer", low, high)

    @classmethod
    def number(
        cls,
        low: float | None = None,
        high: float | None = None,
        *,
        low_open: bool = False,
        high_open: bool = False,
    ) -> Domain:
        """A finite number between ``low`` and ``high``, each end excluded when ``*_open``."""
        return cls("number", low, high, low_open=low_open, high_open=high_open)

    @classmethod
    def choice(cls, options: tuple[Any, ...] | list[Any], *, ignore_case: bool = False) -> Domain:
        """One of ``options`` (words, numbers, booleans)."""
        return cls("choice", options=tuple(options), ignore_case=ignore_case)

    @classmethod
    def list_of(cls, item: Domain, *, min_items: int = 1, max_items: int | None = None) -> Domain:
        """A list of ``min_items`` to ``max_items`` values, each in ``item``."""
        return cls("list", item=item, min_items=min_items, max_items=max_items)

    def describe(self) -> str:
        """What the domain allows, as an error message says it: ``an integer from 1 to 4,096``."""
        if self.kind == "choice":
            return "one of " + ", ".join(str(o) for o in self.options)
        if self.kind == "list":
            most = self.max_items
            count = (
                f"{most}"
                if most == self.min_items
                else f"{self.min_items} or more"
                if most is None
                else f"{self.min_items} to {most}"
            )
            item = self.item.describe() if self.item is not None else "any value"
            return f"a list of {count} items, each {item}"
        what = "an integer" if self.kind == "integer" else "a number"
        lo, hi = _bound_text(self.low), _bound_text(self.high)
        if lo and hi:
            if self.low_open or self.high_open:
                opening, closing = "(" if self.low_open else "[", ")" if self.high_open else "]"
                return f"{what} in {opening}{lo}, {hi}{closing}"
            return f"{what} from {lo} to {hi}"
        if lo:
            return f"{what} {'above' if self.low_open else '>='} {lo}"
        if hi:
            return f"{what} {'below' if self.high_open else '<='} {hi}"
        return what

    def holds(self, value: Any) -> bool:
        """Whether the constant ``value`` lies in the domain (a list: every item)."""
        if self.kind == "list":
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                return False
            count_ok = len(value) >= self.min_items and (
                self.max_items is None or len(value) <= self.max_items
            )
            return count_ok and (self.item is None or all(self.item.holds(v) for v in value))
        if self.kind == "choice":
            return any(self._same(value, o) for o in self.options)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "integer" and not isinstance(value, int):
            return False
        return self.reaches(value)

    def reaches(self, number: float) -> bool:
        """Whether the number lies within the bounds (the type aside): a bound of a range."""
        if number != number or number in (float("inf"), float("-inf")):
            return False
        lo, hi = self.low, self.high
        if lo is not None and (number < lo or (self.low_open and number == lo)):
            return False
        return not (hi is not None and (number > hi or (self.high_open and number == hi)))

    def _same(self, value: Any, option: Any) -> bool:
        if self.ignore_case and isinstance(value, str) and isinstance(option, str):
            return value.lower() == option.lower()
        return type(value) is type(option) and bool(value == option)


def _bound_text(bound: float | None) -> str:
    """``1,000,000`` for an integer bound, ``0.5`` for another, ``""`` for none."""
    if bound is None:
        return ""
    return f"{bound:,}" if isinstance(bound, int) else f"{bound:g}"


#: The domains of the parameters the training loop itself reads (learning rate, batch size,
#: optimizer, weight decay): every model takes them, whatever its own space and domains say.
TRAINING_DOMAINS: Mapping[str, Domain] = {
    "lr": Domain.number(0, 10, low_open=True),
    "batch_size": Domain.integer(1, 1_000_000),
    "optimizer": Domain.choice(("adam", "adamw", "sgd"), ignore_case=True),
    "reg": Domain.number(0, 10),
}

#: Parameters the training loop itself reads: every model accepts them in ``param_space``,
#: whether or not its default space has them.
TRAINING_PARAMS = tuple(TRAINING_DOMAINS)
#: ``model.space`` naming a model's own ``space`` (the other names are its ``spaces``).
DEFAULT_SPACE = "default"

ModelBuilder = Callable[[Mapping[str, Any], DataSpec], "torch.nn.Module"]
LossFn = Callable[[Any, "torch.Tensor", "torch.Tensor"], "torch.Tensor"]
LogitsFn = Callable[[Any], "torch.Tensor"]
DatasetLoader = Callable[[Mapping[str, Any], int, str], Splits]
MetricFn = Callable[[np.ndarray, np.ndarray, Mapping[str, np.ndarray]], float]


@dataclass(frozen=True)
class Model:
    """A model plugin.

    ``space`` is the default search space in the search-space language
    (docs/reference/experiment.md), e.g. ``{"lr": "loguniform(1e-4, 1e-2)", "channels":
    ["randint(2, 20)", "randint(2, 20)"]}``; an experiment file overrides it key by key.
    ``build(params, spec)`` returns a fresh module. ``loss(outputs, x, y)`` is only needed by
    models whose outputs are not plain class logits (autoencoder + classifier); ``logits(outputs)``
    then extracts the class logits.

    An experiment's ``param_space`` may only name parameters the model takes: those of its
    ``space``, :data:`TRAINING_PARAMS`, and ``extra_params``, the optional ones ``build`` reads
    with a default (``("dropout",)``); ``extra_params=True`` accepts any name. So a typo such as
    ``lrr`` is refused before a study exists instead of becoming a parameter nothing reads.

    ``spaces`` holds named variants of the default space that an experiment picks with
    ``model: {name: NAME, space: VARIANT}`` (the built-in models' ``predecessor``: the SWGO/LIP
    study's ranges, which SCIENCE.md cites); ``param_space`` then overrides the variant.
    """

    name: str
    build: ModelBuilder
    space: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    loss: LossFn | None = None
    logits: LogitsFn | None = None
    extra_params: tuple[str, ...] | bool = ()
    #: What each parameter may be (:class:`Domain`), by name: validation refuses a constant or
    #: a search range outside it before a study exists. The training parameters' domains
    #: (:data:`TRAINING_DOMAINS`) apply to every model and are not declared here.
    domains: Mapping[str, Domain] = field(default_factory=dict)
    spaces: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset:
    """A dataset plugin.

    ``load(params, seed, cache_dir)`` returns :class:`Splits`. ``params`` are the experiment's
    ``dataset.params`` merged over ``defaults``; ``cache_dir`` is a shared directory where a
    dataset may keep what it generated or converted, keyed by its parameters.
    ``check(params)``, when given, validates the parameters and any input files quickly (headers,
    not contents) and raises ``ValueError`` with one line naming the file and the problem, so a
    sweep can refuse a broken dataset before it submits anything.
    """

    name: str
    load: DatasetLoader
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    check: Callable[[Mapping[str, Any]], None] | None = None
    #: Parameters that hold file paths. wcd-hpc makes relative ones absolute (from the working
    #: directory of ``sweep``) before the study records them, since workers start elsewhere.
    path_params: tuple[str, ...] = ()


@dataclass(frozen=True)
class Metric:
    """A metric plugin: ``compute(y_true, y_score, meta)`` where ``y_score`` is (N, classes).

    ``meta`` holds the split's per-event arrays (:attr:`Split.meta`, each of length N) plus one
    reserved key that wcd-hpc adds: ``meta["signal_class"]``, the index of the experiment's
    signal class (its ``signal_class`` key, or the dataset's default) repeated N times as an int
    array — a per-event array like the others, so that slicing ``meta`` (per energy bin) keeps
    it. A metric that has a "positive" class should score that one
    (``int(meta["signal_class"][0])`` when N > 0); a metric that ignores it keeps working
    unchanged. A dataset must not put its own array under that name.
    """

    name: str
    direction: str
    compute: MetricFn
    description: str = ""
