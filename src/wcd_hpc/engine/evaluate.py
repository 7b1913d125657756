"""``evaluate`` as a library: apply a trained run to any HDF5 file in the SWGO/LIP layout.

The file holds ``data`` (N, …) float32 — (N, 80, 80) footprints, or (N, n_pmt, n_samples) traces
under another key given with ``data_key`` — and a pandas ``info`` table with ``Y_class`` and
``E0 (GeV)`` (or our simulators' ``E0``); a ``primary`` column is used when present. Events are read
and predicted in chunks of ``chunk`` rows, so a file far larger than memory is fine.
A file with NaN or inf in an event is refused, as training refuses it, before anything is written.

A run directory is a sweep trial (``runs/<study>/trials/<n>``: the experiment comes from its study,
by default the journal file two levels up, or ``storage``) or a ``train`` run (its own
``experiment.json``). The model is rebuilt from ``params.json`` and ``data_spec.json`` and loaded
from ``model.pt``. The training dataset's normalisation is re-applied when it can be from the
stored parameters alone (``log1p``, ``none``); a normalisation fitted on the training data
(``standard``) cannot and is refused, because silently skipping it would score garbage.
The signal class is the one the run was trained with (its experiment's ``signal_class``), so
the file's metrics and figures answer the same question as the trial's. So are the cuts: a run
keeps the cuts chosen on its validation split in ``cuts.json`` (overall and per energy bin), and
the file's cut-based figures of merit apply them, as the trial's test numbers do; a run without
``cuts.json`` (trained before it existed) has its cuts chosen on the file itself, and the output
says so (``cuts_chosen_on``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wcd_hpc import merit
from wcd_hpc.api import DataSpec, Metric
from wcd_hpc.default_plugins.h5check import check_block, inspect_file
from wcd_hpc.default_plugins.h5data import FOOTPRINTS, TRACES
from wcd_hpc.default_plugins.metrics import (
    default_signal_class,
    signal_index,
    with_settings,
    with_signal_class,
)
from wcd_hpc.engine.fit import default_logits, pick_device
from wcd_hpc.errors import DataError
from wcd_hpc.plugins import Registry
from wcd_hpc.queue import files
from wcd_hpc.queue import study as studies
from wcd_hpc.queue.schema import (
    BINNED_FILE,
    CUTS_FILE,
    DATA_SPEC_FILE,
    EVALUATION_METRICS_FILE,
    EVALUATIONS_DIR,
    EXPERIMENT_FILE,
    JOURNAL_FILE,
    MODEL_FILE,
    PARAMS_FILE,
)
from wcd_hpc.results import baseline
from wcd_hpc.results import provenance as origin
from wcd_hpc.results.baselinefile import file_sample
from wcd_hpc.results.evaluation import (
    Provenance,
    with_primary,
    write_evaluation_artifacts,
    write_json,
)
from wcd_hpc.store.storage import Storage

__all__ = ["EvaluateError", "Evaluation", "RunInfo", "evaluate_file", "load_run", "read_events"]

NORMALISERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "log1p": lambda x: np.log1p(np.clip(x, 0.0, None)),
    "none": lambda x: x,
}
ENERGY_COLUMNS = ("E0 (GeV)", "E0")


class EvaluateError(DataError):
    """A problem with the run directory or the file, as one line naming which and what."""


@dataclass(frozen=True)
class RunInfo:
    """What rebuilding a trained model needs."""

    run_dir: Path
    model: str
    params: dict[str, Any]
    spec: DataSpec
    dataset_params: dict[str, Any]
    #: For the figures' provenance: study name, ``trial 12`` / ``train run 0``, dataset.
    study: str = ""
    trial: str = ""
    dataset: str = ""
    #: The experiment's ``signal_class`` (``None``: the dataset's default).
    signal_class: str | None = None
    #: The run's ``cuts.json`` (``None``: the run has none; cuts are chosen on the file).
    cuts: dict[str, Any] | None = None
    #: The experiment's ``metric.min_background`` and ``metric.efficiency``.
    settings: merit.Settings = field(default_factory=merit.Settings)
    #: The run's own ``binned.json`` (``None``: none): the classical baseline's cuts, chosen on
    #: its training split, are applied to the file from it.
    binned: dict[str, Any] | None = None


@dataclass(frozen=True)
class Evaluation:
    """Metrics on the whole file, the per-energy-bin table, and where the files went."""

    out: Path
    events: int
    metrics: dict[str, Any]
    bins: list[dict[str, Any]]
    #: Where the cuts came from: ``validation split`` (the run's) or ``this sample``.
    cuts_chosen_on: str = "this sample"
    #: Why a gamma/hadron evaluation has no classical baseline, and how to get one.
    no_baseline: str | None = None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise EvaluateError(f"{path.parent}: not a trained run: {path.name} is missing") from None
    except json.JSONDecodeError as exc:
        raise EvaluateError(f"{path}: not valid JSON ({exc.msg})") from None


def _experiment(run_dir: Path, storage: str | None, registry: Registry) -> dict[str, Any]:
    own = run_dir / EXPERIMENT_FILE
    if own.exists():
        return dict(_read_json(own))
    study = str(_read_json(run_dir / PARAMS_FILE).get("study", ""))
    journal = run_dir.parent.parent / JOURNAL_FILE
    url = storage or f"journal:{journal.resolve()}"
    if storage is None and not journal.exists():
        raise EvaluateError(
            f"{run_dir}: no experiment.json and no journal.log two levels up; "
            "pass --storage URL for a study kept in a database"
        )
    where = Storage.parse(url)
    opened = studies.load(study, where, where.open())
    files.load_recorded(registry, opened, run_dir.parent.parent)  # a model from a file: its copy
    return studies.experiment_of(opened).to_dict()


def load_run(run_dir: Path, registry: Registry, storage: str | None = None) -> RunInfo:
    """Read what a run directory needs to rebuild its model (errors name the missing piece)."""
    if not run_dir.is_dir():
        raise EvaluateError(f"{run_dir}: no such run directory")
    exp = _experiment(run_dir, storage, registry)
    raw = _read_json(run_dir / DATA_SPEC_FILE)
    spec = DataSpec(tuple(raw["input_shape"]), int(raw["num_classes"]), tuple(raw["class_names"]))
    dataset = registry.datasets.get(exp["dataset"])
    defaults = dict(dataset.obj.defaults) if dataset is not None else {}
    recorded = dict(_read_json(run_dir / PARAMS_FILE))
    params = dict(recorded["params"])
    kind = "train run" if (run_dir / EXPERIMENT_FILE).exists() else "trial"
    cuts = _read_json(run_dir / CUTS_FILE) if (run_dir / CUTS_FILE).exists() else None
    binned = _read_json(run_dir / BINNED_FILE) if (run_dir / BINNED_FILE).exists() else None
    chosen = merit.Settings(
        min_background=int(exp.get("metric.min_background", merit.MIN_BACKGROUND)),
        efficiency=float(exp.get("metric.efficiency", merit.SIGNAL_EFFICIENCY)),
    )
    return RunInfo(
        run_dir,
        exp["model"],
        params,
        spec,
        {**defaults, **exp["dataset_params"]},
        study=str(exp.get("name", "")),
        trial=f"{kind} {recorded['trial']}" if "trial" in recorded else str(run_dir),
        dataset=str(exp.get("dataset", "")),
        signal_class=exp.get("signal_class"),
        cuts=cuts,
        settings=chosen,
        binned=binned if isinstance(binned, dict) else None,
    )


#: The ``info`` columns evaluate reads (and checks, as training does): those of both layouts.
EVALUATE_META: dict[str, tuple[str, ...]] = {**TRACES.meta, **FOOTPRINTS.meta}


def read_events(
    path: Path, data_key: str = "data", spec: DataSpec | None = None
) -> tuple[Any, np.ndarray, dict[str, np.ndarray]]:
    """The open h5py dataset (read lazily), the labels and per-event metadata of ``path``.

    The file is checked by the checker training uses (:func:`inspect_file`): structure, dtype,
    ``info`` table, labels, metadata; with ``spec``, its events must have the model's input
    shape (or that shape without its channel of one) and its labels the model's classes.
    """
    import h5py

    shapes: list[tuple[int, ...]] = []
    if spec is not None:
        shapes = [tuple(spec.input_shape)]
        if len(spec.input_shape) > 1 and spec.input_shape[0] == 1:
            shapes.append(tuple(spec.input_shape[1:]))
    try:
        found = inspect_file(
            path,
            kind="event",
            expected="(N, …) float32 events with a pandas 'info' table",
            default_classes=spec.class_names if spec is not None else (),
            classes=spec.class_names if spec is not None else None,
            meta=EVALUATE_META,
            data_key=data_key,
            sample_shapes=shapes,
            hint="; see --data-key",
            match_classes=True,
        )
    except DataError as exc:
        raise EvaluateError(str(exc)) from None
    info = found.info
    meta: dict[str, np.ndarray] = {}
    for column in ENERGY_COLUMNS:
        if column in info.columns:
            meta["energy"] = info[column].to_numpy(dtype=np.float64)
            break
    for column, key in (("theta0 (deg)", "zenith"), ("theta0", "zenith"), ("Nmuons", "Nmuons")):
        if column in info.columns and key not in meta:
            meta[key] = info[column].to_numpy(dtype=np.float64)
    if "primary" in info.columns:
        meta["primary"] = info["primary"].astype(str).to_numpy()
    labels = info["Y_class"].to_numpy(dtype=np.float64).astype(np.int64)
    return h5py.File(path, "r")[data_key], labels, meta


def evaluate_file(
    run: RunInfo,
    path: Path,
    registry: Registry,
    *,
    data_key: str = "data",
    normalise: str | None = None,
    out: Path | None = None,
    chunk: int = 4096,
) -> Evaluation:
    """Predict every event of ``path`` in chunks; write metrics, ``binned.json`` and plots."""
    kind = normalise or str(run.dataset_params.get("normalise", "none"))
    if kind not in NORMALISERS:
        raise EvaluateError(
            f"{run.run_dir}: the training data used normalise '{kind}', which cannot be "
            f"re-applied to a new file; use --normalise ({' | '.join(NORMALISERS)}) to override"
        )
    if run.model not in registry.models:
        raise EvaluateError(f"{run.run_dir}: model '{run.model}' is not installed")
    plugin = registry.models[run.model].obj
    model = plugin.build(run.params, run.spec)
    state = torch.load(run.run_dir / MODEL_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    device = pick_device()
    model.to(device).eval()
    data, labels, meta = read_events(path, data_key, run.spec)
    logits_fn = plugin.logits or default_logits
    norm = NORMALISERS[kind]
    parts = []
    try:
        with torch.no_grad():
            for start in range(0, data.shape[0], chunk):
                raw = np.asarray(data[start : start + chunk], dtype=np.float32)
                try:  # before the normalisation, which hides NaN (log1p clips -inf to 0)
                    check_block(path, raw, np.arange(start, start + len(raw)), data_key)
                except DataError as exc:
                    raise EvaluateError(str(exc)) from None
                x = torch.from_numpy(np.ascontiguousarray(norm(raw), dtype=np.float32))
                x = x.reshape(-1, *run.spec.input_shape).to(device)
                parts.append(torch.softmax(logits_fn(model(x)).float(), dim=1).cpu().numpy())
    finally:
        data.file.close()
    probs = np.concatenate(parts) if parts else np.zeros((0, run.spec.num_classes))
    names = run.spec.class_names
    signal = _signal(run, labels, meta)
    full = with_signal_class(with_primary(meta, labels, names), signal, labels.size)
    full = with_settings(full, run.settings, labels.size)
    metrics = _scores(labels, probs, full, registry)
    target = out or run.run_dir / EVALUATIONS_DIR / path.stem
    target.mkdir(parents=True, exist_ok=True)
    metric_objs = {name: entry.obj for name, entry in registry.metrics.items()}
    data = origin.data_provenance(run.dataset, {}, [path])
    where = "the run's validation split" if run.cuts is not None else "this file"
    provenance = Provenance(
        study=run.study,
        trial=run.trial,
        model=run.model,
        dataset=path.name,
        split=f"all events (trained on {run.dataset}; cuts chosen on {where})"
        if run.dataset
        else f"all events (cuts chosen on {where})",
        software=origin.software_text(origin.software()),
        data=origin.describe(data),
    )
    missing: list[str] = []

    def with_baseline(payload: dict[str, Any]) -> dict[str, Any] | None:
        added, why = _baseline(run, path, target, labels == signal, probs, signal, meta)
        missing.extend([why] if why else [])
        return added

    payload = write_evaluation_artifacts(
        target,
        labels,
        probs,
        meta,
        names,
        metric_objs,
        signal=signal,
        provenance=provenance,
        settings=run.settings,
        cuts=run.cuts,
        extend=with_baseline,
    )
    for key, value in payload["all"].items():
        if key in metrics or key[:-3] in metrics:
            metrics[key] = value
    record = {
        "file": str(path.resolve()),
        "events": int(labels.size),
        "metrics": metrics,
        "cuts_chosen_on": payload["cuts_chosen_on"],
        "provenance": {"software": origin.software(), "data": data},
    }
    undefined = _undefined(metrics, labels, names)
    if undefined:  # JSON has no NaN: the value is null, and here is why
        record["undefined"] = undefined
    write_json(target / EVALUATION_METRICS_FILE, record)
    return Evaluation(
        target,
        int(labels.size),
        metrics,
        payload["bins"],
        str(payload["cuts_chosen_on"]),
        missing[0] if missing else None,
    )


def _baseline(
    run: RunInfo,
    path: Path,
    out: Path,
    is_signal: np.ndarray,
    probs: np.ndarray,
    signal: int,
    meta: Mapping[str, np.ndarray],
) -> tuple[dict[str, Any] | None, str | None]:
    """The classical baseline on the file, for a gamma/hadron run: the cuts the run chose on
    its training split (its ``binned.json``) applied to the file's events, so that neither the
    model's cuts nor the baseline's are tuned on the file. Returns ``binned.json`` with it, or
    the one line that says why there is none and how to get one (``None`` for a run that is
    not gamma/hadron: no baseline is defined there)."""
    names = run.spec.class_names
    if not 0 <= signal < len(names) or str(names[signal]).lower() != "gamma":
        return None, None
    alone = f"wcd-hpc evaluate --baseline {path} --baseline-train TRAIN.h5"
    if run.binned is None or not baseline.recorded(run.binned):
        return None, (
            f"no classical baseline: {run.run_dir} records no baseline cut chosen on its "
            f"training split (its data had no footprint discriminants, or it was trained "
            f"before the baseline existed); the baseline alone on this file: {alone}"
        )
    try:
        sample = file_sample(path)
    except DataError as exc:
        return None, f"no classical baseline: {exc}"
    if not baseline.applies(names, signal, sample.meta):
        return None, f"no classical baseline: {path} gives no footprint discriminants"
    added = baseline.apply_recorded(
        out,
        run.binned,
        baseline.Sample(is_signal, sample.meta),
        scores=probs[:, signal],
        test_energy=meta.get("energy"),
        source=f"{run.run_dir / BINNED_FILE}",
    )
    return added, None


def _signal(run: RunInfo, labels: np.ndarray, meta: dict[str, np.ndarray]) -> int:
    """The run's signal class as an index of its classes (the default rule when unset)."""
    names = run.spec.class_names
    if run.signal_class is None:
        return default_signal_class(names, labels, meta)
    found = signal_index(run.signal_class, names)
    if found is None:
        raise EvaluateError(
            f"{run.run_dir}: its experiment's signal_class '{run.signal_class}' is not one of "
            f"the model's classes ({', '.join(names)})"
        )
    return found


def _scores(
    labels: np.ndarray, probs: np.ndarray, meta: Mapping[str, np.ndarray], registry: Registry
) -> dict[str, Any]:
    """Every metric on the file; ``None`` where it is undefined (NaN or inf: one class only)."""
    out: dict[str, Any] = {}
    for name, entry in sorted(registry.metrics.items()):
        metric: Metric = entry.obj
        try:
            value = float(metric.compute(labels, probs, meta))
        except Exception:  # a third-party metric that cannot score this file is left out
            continue
        out[name] = value if np.isfinite(value) else None
    return out


def _undefined(
    metrics: Mapping[str, float | None], labels: np.ndarray, names: Sequence[str]
) -> dict[str, str]:
    """Why each metric without a value has none, for ``metrics.json`` and the terminal."""
    present = np.unique(labels)
    if present.size == 1 and 0 <= int(present[0]) < len(names):
        why = f"undefined: every event is of class {names[int(present[0])]!r}"
    else:
        why = "undefined on this file (NaN or inf)"
    return {name: why for name, value in metrics.items() if value is None}
