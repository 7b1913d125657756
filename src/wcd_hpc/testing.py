"""A conformance kit for plugin authors: check a plugin's models, datasets and metrics in one call.

A plugin that breaks the object contracts fails on a compute node, in a trial, hours after it was
submitted. The kit finds those breaks in the author's own test-suite instead::

    from wcd_hpc.testing import assert_conforms

    def test_my_plugin_conforms():
        assert_conforms("myplugin")          # the entry-point name (or the plugin module itself)

The plugin is loaded through the same path as ``wcd-hpc`` itself
(:func:`wcd_hpc.plugins.load_plugin` and :meth:`~wcd_hpc.plugins.Registry.collect`, after the
built-ins), so a name clash, a malformed object or a wrong entry point fails here exactly as it
would in a sweep. Every check runs even when
an earlier one failed, and every violation is reported, each naming the object and the check.
"""

from __future__ import annotations

import importlib
import math
import numbers
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import numpy as np
import torch

from wcd_hpc import hookspecs
from wcd_hpc.api import Dataset, DataSpec, LazyInputs, Metric, Model, Split, Splits
from wcd_hpc.engine.fit import default_logits, default_loss, logits_problem, make_optimizer
from wcd_hpc.errors import one_line
from wcd_hpc.experiment.space import Space
from wcd_hpc.plugins import (
    Entry,
    Registry,
    Source,
    entry_point_source,
    load_builtins,
    load_plugin,
    new_registry,
)

__all__ = [
    "FOOTPRINT_SPEC",
    "ConformanceError",
    "Report",
    "Violation",
    "assert_conforms",
    "check_plugin",
]

#: The shape models are built for when neither the caller nor the plugin names a dataset: one
#: channel of an 80x80 footprint image and two classes, as ``footprint-sim`` delivers by default.
FOOTPRINT_SPEC = DataSpec(input_shape=(1, 80, 80), num_classes=2, class_names=("gamma", "proton"))


class ConformanceError(AssertionError):
    """Raised by :func:`assert_conforms`; the message lists every violation, one per line."""


@dataclass(frozen=True)
class Violation:
    """One broken contract: which object, which check, and what went wrong."""

    subject: str  # "model 'vit'", "dataset 'toy'", "metric 'f1'" or "plugin 'x'"
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.check}: {self.message}"


@dataclass
class Report:
    """What :func:`check_plugin` found: the source, what was checked, and every violation."""

    source: Source
    checked: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def __str__(self) -> str:
        head = f"{self.source}: checked {', '.join(self.checked) or 'nothing'}"
        if self.ok:
            return f"{head}; conforms"
        lines = [f"{head}; {len(self.violations)} violation(s):"]
        return "\n".join([*lines, *(f"  - {v}" for v in self.violations)])


def _resolve(plugin: str | ModuleType) -> tuple[Source, Any]:
    """A plugin given as an entry-point name, a module path, or a module -> source and loader."""
    if isinstance(plugin, ModuleType):
        return Source(plugin.__name__, _distribution_of(plugin.__name__), "?"), lambda: plugin
    for ep in metadata.entry_points(group=hookspecs.PROJECT):
        if plugin in (ep.name, ep.value):
            return entry_point_source(ep), ep.load
    return Source(plugin, _distribution_of(plugin), "?"), lambda: importlib.import_module(plugin)


def _distribution_of(module: str) -> str:
    dists = metadata.packages_distributions().get(module.split(".")[0], [])
    return dists[0] if dists else "unknown"


def _own(table: Mapping[str, Entry], source: Source) -> list[Entry]:
    return [e for e in table.values() if e.source.plugin == source.plugin]


def check_plugin(
    plugin: str | ModuleType,
    *,
    spec: DataSpec | None = None,
    dataset: str | None = None,
    dataset_params: Mapping[str, Any] | None = None,
    samples: int = 2,
    batch: int = 4,
    seed: int = 0,
) -> Report:
    """Load ``plugin`` as wcd-hpc would and check every object it registers.

    Models are built for ``spec`` if given, else for the data of ``dataset`` (any registered
    dataset, built-ins included, loaded with ``dataset_params`` over its defaults), else for the
    plugin's own first dataset, else for :data:`FOOTPRINT_SPEC` with random inputs. ``samples``
    parameter sets are drawn from each model's default space; each is built and trained for one
    step on ``batch`` events. The plugin's own datasets are loaded with ``dataset_params`` too.
    """
    source, loader = _resolve(plugin)
    registry = new_registry()
    load_builtins(registry)
    report = Report(source)
    # A built-in (checked by wcd-hpc's own tests) is already loaded; anything else loads now.
    if source.plugin not in registry.sources and not load_plugin(registry, source, loader):
        line = registry.errors[-1].removeprefix(f"{source}: ")
        report.violations.append(Violation(f"plugin '{source.plugin}'", "load", line))
        return report
    report.source = registry.sources[source.plugin]
    registry.collect()
    prefix = f"{report.source}: "
    for line in registry.errors:
        if line.startswith(prefix):
            report.violations.append(
                Violation(f"plugin '{source.plugin}'", "registration", line[len(prefix) :])
            )
    models = _own(registry.models, source)
    datasets = _own(registry.datasets, source)
    metrics = _own(registry.metrics, source)
    if not (models or datasets or metrics) and report.ok:
        report.violations.append(
            Violation(
                f"plugin '{source.plugin}'",
                "registration",
                "registered no model, dataset or metric (are the hooks decorated with @hookimpl?)",
            )
        )
    with tempfile.TemporaryDirectory(prefix="wcd-hpc-conformance-") as cache:
        loaded: dict[str, Splits] = {}
        for entry in datasets:
            report.checked.append(f"dataset '{entry.name}'")
            splits = _check_dataset(entry.obj, dataset_params or {}, seed, cache, report)
            if splits is not None:
                loaded[entry.name] = splits
        data = _data_for_models(
            registry, spec, dataset, dataset_params, loaded, seed, cache, report
        )
        for entry in models:
            report.checked.append(f"model '{entry.name}'")
            if data is not None:
                _check_model(entry.obj, data, samples, batch, seed, report)
        for entry in metrics:
            report.checked.append(f"metric '{entry.name}'")
            _check_metric(entry.obj, data[0].num_classes if data else 2, seed, report)
    return report


def assert_conforms(plugin: str | ModuleType, **options: Any) -> Report:
    """:func:`check_plugin`, raising :class:`ConformanceError` listing every violation."""
    report = check_plugin(plugin, **options)
    if not report.ok:
        raise ConformanceError(str(report))
    return report


def _data_for_models(
    registry: Registry,
    spec: DataSpec | None,
    dataset: str | None,
    params: Mapping[str, Any] | None,
    loaded: Mapping[str, Splits],
    seed: int,
    cache: str,
    report: Report,
) -> tuple[DataSpec, Split | None] | None:
    """The spec models are built for and, when a dataset supplies them, real events."""
    if spec is not None:
        return spec, None
    if dataset is not None:
        entry = registry.datasets.get(dataset)
        if entry is None:
            known = ", ".join(sorted(registry.datasets))
            report.violations.append(
                Violation(f"dataset '{dataset}'", "lookup", f"not registered (known: {known})")
            )
            return None
        subject = f"dataset '{dataset}'"
        try:
            splits = entry.obj.load({**entry.obj.defaults, **(params or {})}, seed, cache)
        except Exception as exc:
            report.violations.append(Violation(subject, "load", one_line(exc)))
            return None
        return splits.spec, splits.train
    for splits in loaded.values():
        return splits.spec, splits.train
    return FOOTPRINT_SPEC, None


def _tiny_batch(
    spec: DataSpec, split: Split | None, batch: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    if split is not None and len(split) > 0:
        return split.x[:batch], split.y[:batch].long()
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((batch, *spec.input_shape), generator=gen)
    return x, torch.arange(batch) % spec.num_classes


def _check_model(
    model: Model,
    data: tuple[DataSpec, Split | None],
    samples: int,
    batch: int,
    seed: int,
    report: Report,
) -> None:
    subject = f"model '{model.name}'"
    try:
        space = Space.from_mapping(dict(model.space))
    except Exception as exc:
        report.violations.append(Violation(subject, "default space parses", one_line(exc)))
        return
    try:
        drawn = space.sample(samples, seed)
    except Exception as exc:
        report.violations.append(Violation(subject, "default space samples", one_line(exc)))
        return
    spec, split = data
    x, y = _tiny_batch(spec, split, batch, seed)
    for params in drawn:
        problem = _train_step(model, params, spec, x, y)
        if problem is not None:
            check, message = problem
            report.violations.append(Violation(subject, check, f"{message} (params {params})"))


def _train_step(
    model: Model, params: Mapping[str, Any], spec: DataSpec, x: torch.Tensor, y: torch.Tensor
) -> tuple[str, str] | None:
    """Build, forward, loss, backward and one optimizer step; the first problem, or None."""
    torch.manual_seed(0)
    try:
        net = model.build(params, spec)
    except Exception as exc:
        return "build", one_line(exc)
    if not isinstance(net, torch.nn.Module):
        return "build", f"expected a torch.nn.Module, got {type(net).__name__}"
    try:
        optimizer = make_optimizer(net, params)
    except Exception as exc:
        return "optimizer", one_line(exc)
    try:
        net.train()
        outputs = net(x)
    except Exception as exc:
        return "forward", one_line(exc)
    try:
        logits = (model.logits or default_logits)(outputs)
    except Exception as exc:
        return "logits", one_line(exc)
    problem = logits_problem(logits, x.shape[0], spec.num_classes)
    if problem is not None:
        return "outputs", problem
    try:
        loss = (model.loss or default_loss)(outputs, x, y)
        if not math.isfinite(float(loss.detach())):
            return "loss", f"not finite: {float(loss.detach())}"
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    except Exception as exc:
        return "backward", one_line(exc)
    if not any(p.grad is not None for p in net.parameters()):
        return "backward", "no parameter received a gradient"
    return None


def _check_dataset(
    dataset: Dataset, params: Mapping[str, Any], seed: int, cache: str, report: Report
) -> Splits | None:
    subject = f"dataset '{dataset.name}'"
    try:
        splits = dataset.load({**dataset.defaults, **params}, seed, cache)
    except Exception as exc:
        report.violations.append(Violation(subject, "load", one_line(exc)))
        return None
    if not isinstance(splits, Splits):
        got = type(splits).__name__
        report.violations.append(Violation(subject, "load", f"expected Splits, got {got}"))
        return None
    problems = _spec_problems(splits.spec)
    if not problems:
        for name in ("train", "val", "test"):
            problems += [
                f"{name}: {p}" for p in _split_problems(getattr(splits, name), splits.spec)
            ]
    report.violations += [Violation(subject, "splits", p) for p in problems]
    return None if problems else splits


def _spec_problems(spec: object) -> list[str]:
    if not isinstance(spec, DataSpec):
        return [f"spec must be a wcd_hpc.DataSpec, got {type(spec).__name__}"]
    problems = []
    if spec.num_classes < 2:
        problems.append(f"spec.num_classes must be at least 2, got {spec.num_classes}")
    if len(spec.class_names) != spec.num_classes:
        problems.append(
            f"spec.class_names has {len(spec.class_names)} names for {spec.num_classes} classes"
        )
    return problems


def _split_problems(split: object, spec: DataSpec) -> list[str]:
    if not isinstance(split, Split):
        return [f"expected a wcd_hpc.Split, got {type(split).__name__}"]
    if not isinstance(split.x, (torch.Tensor, LazyInputs)) or not isinstance(split.y, torch.Tensor):
        return ["x must be a torch tensor or LazyInputs, y a torch tensor"]
    n = int(split.y.shape[0])
    problems = []
    if n == 0:
        problems.append("is empty")
    if int(split.x.shape[0]) != n:
        problems.append(f"x has {split.x.shape[0]} events but y has {n}")
    if tuple(split.x.shape[1:]) != tuple(spec.input_shape):
        problems.append(
            f"x events have shape {tuple(split.x.shape[1:])}, spec.input_shape is "
            f"{tuple(spec.input_shape)}"
        )
    if split.y.dtype.is_floating_point or split.y.dtype == torch.bool:
        problems.append(f"y must hold integer class indices, got dtype {split.y.dtype}")
    elif n and (int(split.y.min()) < 0 or int(split.y.max()) >= spec.num_classes):
        problems.append(
            f"y must be in [0, {spec.num_classes}), got [{int(split.y.min())}, "
            f"{int(split.y.max())}]"
        )
    # Lazily read inputs are checked on their first block only: reading all would defeat them.
    sample = split.x if isinstance(split.x, torch.Tensor) else split.x[0 : min(n, 64)]
    if sample.is_floating_point() and not bool(torch.isfinite(sample).all()):
        problems.append("x holds NaN or infinite values")
    for key, values in split.meta.items():
        length = len(values) if isinstance(values, (np.ndarray, Sequence)) else None
        if length != n:
            problems.append(f"meta['{key}'] has length {length}, expected {n} (one per event)")
    return problems


def _check_metric(metric: Metric, classes: int, seed: int, report: Report) -> None:
    """Score perfect, inverse and random predictions; the perfect one must win."""
    subject = f"metric '{metric.name}'"
    rng = np.random.default_rng(seed)
    # Enough events of each class that the cut metrics are measurable: the efficiency at a
    # background survival of 10⁻³ needs ``min_background`` (10) background events behind it,
    # and a Q with that minimum is otherwise pinned at the same reach for perfect and inverse.
    n = 12_000 * classes
    y_true = rng.permutation(np.arange(n) % classes)
    eye = np.eye(classes)
    # Scores spread over an interval, not two values: a cut metric with a minimum of background
    # events must find a cut between the events, as on real scores.
    w = rng.uniform(0.2, 0.9, n)[:, None]
    cases = {
        "perfect": eye[y_true] * w + (1 - w) / classes,
        "inverse": eye[(y_true + 1) % classes] * w + (1 - w) / classes,
        "random": rng.dirichlet(np.ones(classes), size=n),
    }
    meta = {
        "energy": rng.uniform(1e3, 1e5, n),
        "zenith": rng.uniform(0.0, 0.7, n),
        "primary": y_true.copy(),
        "Nmuons": rng.integers(0, 50, n),
    }
    values: dict[str, float] = {}
    for case, y_score in cases.items():
        try:
            value = metric.compute(y_true, y_score, meta)
        except Exception as exc:
            report.violations.append(Violation(subject, f"{case} predictions", one_line(exc)))
            continue
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            got = type(value).__name__
            report.violations.append(
                Violation(subject, f"{case} predictions", f"must return a float, got {got}")
            )
        elif not math.isfinite(float(value)):
            report.violations.append(
                Violation(subject, f"{case} predictions", f"not finite: {value}")
            )
        else:
            values[case] = float(value)
    if "perfect" in values and "inverse" in values:
        perfect, inverse = values["perfect"], values["inverse"]
        better = perfect > inverse if metric.direction == "maximize" else perfect < inverse
        if not better:
            report.violations.append(
                Violation(
                    subject,
                    "direction",
                    f"direction is {metric.direction} but perfect predictions score {perfect:.4g} "
                    f"and inverse ones {inverse:.4g}",
                )
            )
