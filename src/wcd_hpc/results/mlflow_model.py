"""The best trial as an MLflow PyTorch model: rebuilt from its plugin, logged, registered.

A trial leaves only a ``state_dict`` (``model.pt``), which MLflow cannot load: loading needs the
module, and only the model plugin can build it. So ``sync`` rebuilds the module here, from the
plugin registry, the trial's parameters and its ``data_spec.json``, and logs it with MLflow's
PyTorch flavour (MLmodel, signature, input example, requirements), so that
``mlflow.pytorch.load_model("models:/wcd-hpc-<study>@best")`` works wherever wcd-hpc and the
model's plugin are installed.

The logged module is :class:`Probabilities`: the plugin's network followed by the softmax the
trial's own test predictions (``predictions.npz``) were made with, so an MLflow user gets class
probabilities (columns in ``class_names`` order, which the MLmodel metadata lists) from any
model, autoencoders included, whose raw outputs are not plain logits.

It is logged with the MLflow client, not with the fluent ``mlflow.pytorch.log_model``: that one
needs an *active* run and the *global* tracking URI (and would pick the default experiment
without them), which a library call made from inside someone else's program must not change.
The steps are the ones ``log_model`` takes: create a LoggedModel linked to the trial's run, save
the flavour into it, finalise it, record it as the run's output, register it by
``models:/<model_id>``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.pytorch
import numpy as np
import pandas as pd
import torch
from mlflow.entities import LoggedModel, LoggedModelOutput, LoggedModelStatus, Metric
from mlflow.models import Model, infer_signature
from mlflow.tracking import MlflowClient

from wcd_hpc import __version__
from wcd_hpc.api import DataSpec
from wcd_hpc.environ import environment
from wcd_hpc.errors import one_line
from wcd_hpc.plugins import Registry
from wcd_hpc.queue.schema import DATA_SPEC_FILE, INPUT_EXAMPLE_FILE, MODEL_FILE

__all__ = [
    "ALIAS",
    "LOGGED_MODEL_NAME",
    "Probabilities",
    "Rebuilt",
    "Unavailable",
    "find",
    "log",
    "rebuild",
    "register",
]

#: The LoggedModel's name (what the UI lists under the run's "Logged models").
LOGGED_MODEL_NAME = "model"
#: The registered model's alias for the study's best trial.
ALIAS = "best"
#: A logged model's tag listing its registered versions (what MLflow's own registration sets).
TAG_MODEL_VERSIONS = "mlflow.modelVersions"


class _PickleChosen(logging.Filter):
    """Drops MLflow's advice to use "pt2" each time: pickle is chosen deliberately (see
    :func:`log`), and the advice would be printed on every sync that logs a model."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Pickle or CloudPickle" not in record.getMessage()


class Unavailable(Exception):
    """Why a trial's model cannot be rebuilt where sync runs (one line, shown in the report)."""


class Probabilities(torch.nn.Module):
    """Raw inputs in, class probabilities out: the training's input transform, the trained
    network and the softmax its trial's predictions were made with.

    ``logits`` is the model plugin's ``Model.logits`` (autoencoders return more than logits),
    ``None`` for a plain classifier; a module-level function, so it pickles by reference.
    ``transform`` is what the dataset did to raw inputs (:attr:`wcd_hpc.api.Splits.transform`):
    ``log1p`` (negative values clipped to 0 first), ``standard`` with its fitted mean and std, or
    ``none``; ``input_shape`` (the model's, without the batch axis) lets raw events come in any
    layout of the same size, such as (N, 80, 80) footprints for a model that takes (N, 1, 80, 80).
    """

    def __init__(
        self,
        net: torch.nn.Module,
        logits: Callable[[Any], torch.Tensor] | None = None,
        transform: Mapping[str, Any] | None = None,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.logits = logits
        self.transform = dict(transform or {"kind": "none"})
        self.input_shape = input_shape

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Raw inputs as the network saw them in training."""
        x = x.float()
        kind = self.transform.get("kind", "none")
        if kind == "log1p":
            x = torch.log1p(torch.clamp(x, min=0.0))
        elif kind == "standard":
            x = (x - float(self.transform["mean"])) / float(self.transform["std"])
        shape = getattr(self, "input_shape", None)  # None in a module pickled before it existed
        return x.reshape(-1, *shape) if shape else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prepare(x) if hasattr(self, "transform") else x
        out = self.net(x)
        if self.logits is not None:
            out = self.logits(out)
        return torch.softmax(out.float(), dim=1)


@dataclass
class Rebuilt:
    """A trial's module, ready to log, with what the MLmodel says about it."""

    module: Probabilities
    spec: DataSpec
    requirements: list[str]
    #: The input transform the module applies, and the class the trial was scored for.
    transform: dict[str, Any] = field(default_factory=lambda: {"kind": "none"})
    signal_class: str | None = None
    #: Real raw events for the input example (None for a trial that saved none).
    example: np.ndarray | None = None


def read_spec(folder: Path) -> DataSpec:
    """The shapes and classes the trial's model was built for (``data_spec.json``)."""
    raw = json.loads((folder / DATA_SPEC_FILE).read_text())
    return DataSpec(tuple(raw["input_shape"]), int(raw["num_classes"]), tuple(raw["class_names"]))


def transform_of(raw_spec: Mapping[str, Any], dataset_params: Mapping[str, Any]) -> dict[str, Any]:
    """The input transform a trial trained with: as its dataset recorded it in
    ``data_spec.json``, else the experiment's ``normalise`` (a trial of an older wcd-hpc, a
    dataset plugin that records none). A fitted ``standard`` without its numbers cannot be
    applied, and a model that silently skipped it would score garbage: :class:`Unavailable`."""
    recorded = raw_spec.get("transform")
    if isinstance(recorded, Mapping) and recorded.get("kind"):
        return dict(recorded)
    kind = str(dataset_params.get("normalise") or "none")
    if kind not in ("log1p", "none"):
        raise Unavailable(
            f"the trial's input transform '{kind}' was not recorded with it (trained by an "
            "older wcd-hpc); retrain to log a model that takes raw inputs"
        )
    return {"kind": kind}


def raw_example(folder: Path, transform: Mapping[str, Any]) -> np.ndarray | None:
    """The trial's saved test events (``input_example.npy``, as the model saw them) turned back
    into raw inputs: ``expm1`` undoes ``log1p``, ``x·std + mean`` undoes ``standard``."""
    path = folder / INPUT_EXAMPLE_FILE
    if not path.exists():
        return None
    seen: np.ndarray = np.load(path).astype(np.float64)
    kind = transform.get("kind")
    if kind == "log1p":
        seen = np.expm1(seen)
    elif kind == "standard":
        seen = seen * float(transform["std"]) + float(transform["mean"])
    raw_shape = transform.get("raw_shape")
    if raw_shape:  # the file's layout, e.g. (80, 80) footprints for a (1, 80, 80) model
        seen = seen.reshape(-1, *raw_shape)
    return seen.astype(np.float32)


def rebuild(
    registry: Registry,
    model: str,
    params: Mapping[str, Any],
    folder: Path,
    dataset_params: Mapping[str, Any] | None = None,
) -> Rebuilt:
    """The trial's trained module, from its plugin, ``data_spec.json`` and ``model.pt``, with
    the input transform of its training in front (``dataset_params``: the experiment's, for a
    trial whose data spec does not record it).

    Raises :class:`Unavailable` (a reason, never a traceback) when the plugin is not installed
    here, the weights do not fit what it builds now (a plugin changed since training), or the
    input transform cannot be reproduced.
    """
    entry = registry.models.get(model)
    if entry is None:
        raise Unavailable(f"model plugin '{model}' is not installed where sync runs")
    for name in (MODEL_FILE, DATA_SPEC_FILE):
        if not (folder / name).exists():
            raise Unavailable(f"the trial has no {name}")
    raw_spec = json.loads((folder / DATA_SPEC_FILE).read_text())
    transform = transform_of(raw_spec, dataset_params or {})
    try:
        spec = read_spec(folder)
        net = entry.obj.build(dict(params), spec)
        net.load_state_dict(torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True))
    except Exception as exc:
        raise Unavailable(
            f"cannot rebuild model '{model}' from {MODEL_FILE}: {one_line(exc)}"
        ) from exc
    module = Probabilities(net.cpu(), entry.obj.logits, transform, spec.input_shape).eval()
    return Rebuilt(
        module,
        spec,
        requirements(entry.source.distribution, entry.source.version),
        transform=transform,
        signal_class=raw_spec.get("signal_class"),
        example=raw_example(folder, transform),
    )


def requirements(distribution: str, version: str) -> list[str]:
    """What loading the pickled module needs: wcd-hpc (the wrapper), the plugin, torch.

    Given explicitly: MLflow would otherwise infer them by loading the model again in a
    subprocess (seconds of torch import per sync) and could not know the plugin's distribution.
    """
    pins = {"wcd-hpc": __version__, distribution: version}
    pins["torch"] = torch.__version__.split("+")[0]
    pins["cloudpickle"] = metadata.version("cloudpickle")
    return [f"{name}=={pin}" for name, pin in pins.items() if pin and pin != "?"]


def find(client: MlflowClient, exp_id: str, run_id: str) -> LoggedModel | None:
    """The finished MLflow model already logged for ``run_id`` by an earlier sync, if any.

    One left PENDING by a killed sync is ignored (its upload may be incomplete).
    """
    models = client.search_logged_models(
        experiment_ids=[exp_id], filter_string=f"source_run_id = '{run_id}'"
    )
    ready = [
        m for m in models if m.name == LOGGED_MODEL_NAME and m.status == LoggedModelStatus.READY
    ]
    return min(ready, key=lambda m: m.creation_timestamp) if ready else None


def log(
    client: MlflowClient,
    exp_id: str,
    run_id: str,
    rebuilt: Rebuilt,
    *,
    params: Mapping[str, str],
    tags: Mapping[str, str],
    meta: Mapping[str, Any],
    metrics: list[Metric],
) -> LoggedModel:
    """Log ``rebuilt`` as a LoggedModel of ``run_id``; ``metrics`` are linked to it too.

    The module is pickled (cloudpickle; classes by reference), not exported with MLflow's
    default "pt2" format: an export traces the network and fails on models that pickling
    always handles (data-dependent control flow in a third-party plugin). The price is that
    loading needs wcd-hpc and the model's plugin, which the requirements name.
    """
    spec = rebuilt.spec
    example = rebuilt.example
    probe = example if example is not None else np.zeros((1, *spec.input_shape), np.float32)
    with torch.no_grad():
        output = rebuilt.module(torch.from_numpy(probe)).numpy()
    names = [str(c) for c in spec.class_names]
    # The output's columns are the classes, by name (what a reader of the signature needs).
    signature = infer_signature(probe, pd.DataFrame(output, columns=names))
    logged = client.create_logged_model(
        exp_id,
        name=LOGGED_MODEL_NAME,
        source_run_id=run_id,
        tags=dict(tags),
        params=dict(params),
        model_type="classifier",
    )
    described = {
        **meta,
        "input_shape": list(spec.input_shape),
        "class_names": list(spec.class_names),
        "signal_class": rebuilt.signal_class,
        "transform": rebuilt.transform,
        "input": "raw inputs as in the data file (e.g. VEM footprints); the transform is "
        "applied by the model",
        "output": "class probabilities (softmax), one column per class_names entry",
    }
    quiet, flavour_log = _PickleChosen(), logging.getLogger(mlflow.pytorch.__name__)
    flavour_log.addFilter(quiet)
    try:
        with tempfile.TemporaryDirectory(prefix="wcd-hpc-model-") as tmp:
            path = Path(tmp) / LOGGED_MODEL_NAME
            mlflow.pytorch.save_model(
                rebuilt.module,
                str(path),
                mlflow_model=Model(
                    artifact_path=logged.artifact_location,
                    model_uuid=logged.model_id,
                    run_id=run_id,
                    model_id=logged.model_id,
                ),
                metadata={"wcd_hpc": described},
                signature=signature,
                input_example=example,
                pip_requirements=rebuilt.requirements,
                serialization_format="pickle",
            )
            client.log_model_artifacts(logged.model_id, str(path))
    finally:
        flavour_log.removeFilter(quiet)
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    linked = [
        Metric(m.key, m.value, m.timestamp, m.step, model_id=logged.model_id) for m in metrics
    ]
    if linked:
        client.log_batch(run_id, metrics=linked)
    return logged


@contextlib.contextmanager
def pinned_tracking_uri(uri: str) -> Iterator[None]:
    """Make ``uri`` MLflow's global tracking URI for the block, then restore what it was.

    MLflow's SQL model registry looks the logged model of a ``models:/<model_id>`` source up
    with a client of the *global* tracking URI, not the registry's own store; for a local
    SQLite store that would be the wrong database (a server resolves it on its side).
    """
    try:
        from mlflow.tracking._tracking_service.utils import _use_tracking_uri
    except ImportError:  # pragma: no cover - a private helper; the variable works too
        with environment({"MLFLOW_TRACKING_URI": uri}):
            yield
        return
    with _use_tracking_uri(uri):
        yield


def register(
    client: MlflowClient,
    uri: str,
    name: str,
    model_id: str,
    run_id: str,
    *,
    model_tags: Mapping[str, str],
    model_description: str,
    tags: Mapping[str, str],
    description: str,
) -> tuple[str, str]:
    """Logged model ``model_id`` as a version of registered model ``name`` (created once, found
    again by its ``models:/`` source), aliased :data:`ALIAS`; returns (name, version)."""
    source = f"models:/{model_id}"
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name, tags=dict(model_tags), description=model_description)
    versions = client.search_model_versions(f"name = '{name}'")
    version = next((v for v in versions if v.source == source), None)
    if version is None:
        with pinned_tracking_uri(uri):
            version = client.create_model_version(
                name,
                source=source,
                run_id=run_id,
                tags=dict(tags),
                description=description,
                model_id=model_id,
            )
        link = [{"name": name, "version": str(version.version)}]
        client.set_logged_model_tags(model_id, {TAG_MODEL_VERSIONS: json.dumps(link)})
    client.set_registered_model_alias(name, ALIAS, str(version.version))
    return name, str(version.version)
