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
    "TRAINING_PARAMS",
    "DataSpec",
    "Dataset",
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


#: Parameters the training loop itself reads (learning rate, batch size, optimizer, weight decay):
#: every model accepts them in ``param_space``, whether or not its default space has them.
TRAINING_PARAMS = ("lr", "batch_size", "optimizer", "reg")

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
    """

    name: str
    build: ModelBuilder
    space: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    loss: LossFn | None = None
    logits: LogitsFn | None = None
    extra_params: tuple[str, ...] | bool = ()


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
