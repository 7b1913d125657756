"""The best trial of a sync as a registered MLflow model (apart from the run bookkeeping of
:mod:`wcd_hpc.results.sync`, so each stays small).

The module is rebuilt from its plugin with the input transform of its training in front
(:mod:`wcd_hpc.results.mlflow_model`), logged once per trial run, and registered under the
study's registered model (:mod:`wcd_hpc.results.identity`: ``wcd-hpc-<study>``, or with the
study's identity in the name for a second study of the same name), aliased ``best``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import optuna
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial

from wcd_hpc.plugins import Registry, get_registry
from wcd_hpc.queue import files, finalists
from wcd_hpc.queue import study as studies
from wcd_hpc.queue.schema import STUDY_ID, trial_dir
from wcd_hpc.results.identity import TAG_STUDY_ID, Target
from wcd_hpc.results.syncdata import TAG_STUDY, TAG_TRIAL, clean, flatten


class Syncing(Protocol):
    """What of a sync in progress (``sync._Syncer``) registering its best trial reads."""

    client: MlflowClient
    study: optuna.Study
    run_dir: Path
    uri: str
    registry: Registry | None
    name: str
    exp: dict[str, Any]

    @property
    def ident(self) -> Target: ...

    def metrics(self, trial: FrozenTrial, folder: Path) -> list[Metric]: ...


class Reporting(Protocol):
    """Where the outcome goes (``sync.SyncReport``)."""

    registered: tuple[str, str] | None
    not_logged: str | None


__all__ = ["dataset_params", "register_best"]


def dataset_params(exp: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """The experiment's dataset parameters over its plugin's defaults (``normalise``)."""
    entry = registry.datasets.get(str(exp.get("dataset")))
    defaults = dict(entry.obj.defaults) if entry is not None else {}
    return {**defaults, **(exp.get("dataset_params") or {})}


def register_best(
    s: Syncing, best: FrozenTrial, run_id: str, exp_id: str, report: Reporting
) -> None:
    """The best trial as an MLflow PyTorch model, a version of the study's registered model
    aliased ``best``; where its model plugin is missing, ``report.not_logged`` says so instead.

    A trial run's model is logged once and registered once (both are found again by the
    run and the ``models:/`` source), so a version is only added when the best trial
    changed since the last sync, or when an older sync registered bare weights.
    """
    from wcd_hpc.results import mlflow_model  # imports torch: only when a model is due

    ident = {TAG_STUDY: s.name, TAG_STUDY_ID: s.ident.study_id}
    folder = trial_dir(s.run_dir, best.number)
    logged = mlflow_model.find(s.client, exp_id, run_id)
    if logged is None:
        model = str(s.exp.get("model"))
        missing = studies.missing_params(s.study, best)
        if missing:  # e.g. a trial told COMPLETE by plain Optuna: nothing to build from
            report.not_logged = (
                f"best trial {best.number} not logged as an MLflow model: "
                f"it has no value for {', '.join(missing)}"
            )
            return
        params = studies.params_of(s.study, best)
        try:
            registry = s.registry if s.registry is not None else get_registry()
            files.load_recorded(registry, s.study, s.run_dir)  # a model from a file
            rebuilt = mlflow_model.rebuild(
                registry, model, params, folder, dataset_params(s.exp, registry)
            )
        except mlflow_model.Unavailable as exc:
            report.not_logged = f"best trial {best.number} not logged as an MLflow model: {exc}"
            return
        finals = [
            m for m in s.metrics(best, folder) if m.key == "objective" or m.key.startswith("test_")
        ]
        logged = mlflow_model.log(
            s.client,
            exp_id,
            run_id,
            rebuilt,
            params=clean(flatten(params)),
            tags={**ident, TAG_TRIAL: str(best.number), "wcd_hpc.model": model},
            meta={
                "study": s.name,
                STUDY_ID: s.ident.study_id,
                "trial": best.number,
                "model": model,
            },
            metrics=finals,
        )
    metric = str(s.exp.get("metric", "objective"))
    final = finalists.report(s.study, run_dir=s.run_dir)  # the pick's mean ± std, per bin too
    per_bin = "" if final is None else "".join(f"\n{row}" for row in finalists.bin_lines(final))
    report.registered = mlflow_model.register(
        s.client,
        s.uri,
        s.ident.model_name,
        logged.model_id,
        run_id,
        model_tags={**ident, "metric": metric},
        model_description=f"Best trial of wcd-hpc study {s.name} by validation {metric}."
        + ("" if final is None else f" {finalists.line(final)}.{per_bin}"),
        tags={**ident, TAG_TRIAL: str(best.number), metric: f"{best.value}"},
        description=f"trial {best.number}: validation {metric} = {best.value}"
        + ("" if final is None else f"; {finalists.line(final)}"),
    )
