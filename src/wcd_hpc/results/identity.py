"""Which MLflow experiment, runs and registered model belong to a study: matched by identity.

A study's name repeats (every runs directory has its ``quickstart``; two users of one shared
MLflow may both run ``lenet-gamma``), so sync never matches by name alone: every experiment, run,
registered model and model version it makes carries the study's identity
(:mod:`wcd_hpc.queue.identity`) as the tag ``wcd_hpc.study_id``, and it finds them by that tag.

- The first study of a name gets the experiment named after it, and the registered model
  ``wcd-hpc-<name>``.
- Another study of the same name gets an experiment of its own, named so a person can tell the
  two apart, ``<name> (runs dir <dir>, created <when>)``, and the registered model
  ``wcd-hpc-<name>-<first 8 characters of its identity>``; runs are never merged, and ``@best``
  only ever moves between versions of one study.
- A study made before identities existed is given one on its next sync (that is the one write
  sync makes to a study); it then takes over the experiment an older sync made for its name,
  unless another study with an identity has it already, and tags the runs found there. Runs of
  two older studies that an older sync has mixed cannot be told apart any more and stay where
  they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
from mlflow.entities import Experiment, ViewType
from mlflow.tracking import MlflowClient

from wcd_hpc.errors import SyncError
from wcd_hpc.queue import identity
from wcd_hpc.queue.schema import STUDY_ID_ADOPTED
from wcd_hpc.results.syncdata import TAG_STUDY, local_artifacts
from wcd_hpc.store.urls import mask

__all__ = ["TAG_STUDY_ID", "Target", "target"]

#: The study identity on every experiment, run, registered model and version sync makes.
TAG_STUDY_ID = "wcd_hpc.study_id"
#: MLflow's limit on an experiment name is 500 characters; a deep runs directory is shortened.
NAME_ROOM = 400
# An experiment without this tag opens in MLflow 3's GenAI view; the UI's own value for
# "machine learning" (its selector writes it too).
TAG_KIND, KIND = "mlflow.experimentKind", "custom_model_development"


@dataclass(frozen=True)
class Target:
    """Where one study's results go in one MLflow, and how to recognise what is its own."""

    study_id: str
    experiment_id: str
    experiment_name: str
    model_name: str
    #: The study was given its identity after it was created: runs without one are its own.
    adopted: bool

    def owns(self, tags: dict[str, str]) -> bool:
        """Whether a run (or model) with these tags belongs to this study."""
        found = tags.get(TAG_STUDY_ID)
        return found == self.study_id if found else self.adopted


def _distinct_name(study: optuna.Study, run_dir: Path) -> str:
    created = identity.created_of(study).replace("T", " ").removesuffix("+00:00")
    where = str(run_dir.resolve().parent)
    if len(where) > NAME_ROOM:
        where = "…" + where[-NAME_ROOM:]
    return f"{study.study_name} (runs dir {where}, created {created or 'unknown'} UTC)"


def _active(found: Experiment, uri: str) -> str:
    if found.lifecycle_stage != "active":
        raise SyncError(
            f"MLflow experiment '{found.name}' at {mask(uri)} is deleted; restore it "
            f"(mlflow experiments restore --experiment-id {found.experiment_id}) and rerun"
        )
    return str(found.experiment_id)


def _tagged(client: MlflowClient, ident: str) -> Experiment | None:
    found = client.search_experiments(
        view_type=ViewType.ALL, filter_string=f"tags.`{TAG_STUDY_ID}` = '{ident}'"
    )
    return min(found, key=lambda e: int(e.experiment_id)) if found else None


def target(client: MlflowClient, study: optuna.Study, run_dir: Path, uri: str) -> Target:
    """The study's experiment (found by identity, claimed, or created) and registered model."""
    ident = identity.ensure(study)
    adopted = bool(study.user_attrs.get(STUDY_ID_ADOPTED))
    name = study.study_name
    tags = {TAG_STUDY: name, TAG_STUDY_ID: ident, TAG_KIND: KIND}
    found = _tagged(client, ident)
    if found is None:
        plain = client.get_experiment_by_name(name)
        legacy = plain is not None and TAG_STUDY in plain.tags and TAG_STUDY_ID not in plain.tags
        if plain is None:
            exp_id = client.create_experiment(
                name, artifact_location=local_artifacts(uri, name), tags=tags
            )
            found = client.get_experiment(exp_id)
        elif legacy and adopted:  # what an older sync made for this study: take it over
            client.set_experiment_tag(plain.experiment_id, TAG_STUDY_ID, ident)
            found = plain
        else:  # another study's (or not ours): one of its own, never a merge
            distinct = _distinct_name(study, run_dir)
            if client.get_experiment_by_name(distinct) is not None:
                distinct = f"{distinct} [{ident[:8]}]"
            folder = f"{name}-{ident[:8]}"
            exp_id = client.create_experiment(
                distinct, artifact_location=local_artifacts(uri, folder), tags=tags
            )
            found = client.get_experiment(exp_id)
    exp_id = _active(found, uri)
    if TAG_KIND not in found.tags:  # made by an older sync; a kind chosen in the UI stays
        client.set_experiment_tag(exp_id, TAG_KIND, KIND)
    model = f"wcd-hpc-{name}" if found.name == name else f"wcd-hpc-{name}-{ident[:8]}"
    model = _model_name(client, model, ident)
    return Target(ident, exp_id, str(found.name), model, adopted)


def _model_name(client: MlflowClient, model: str, ident: str) -> str:
    """``model``, unless a registered model of that name belongs to another study.

    Only the study that has the experiment named after it asks for the plain name, so a
    registered model of that name without an identity is what an older sync made for it.
    """
    existing = client.search_registered_models(f"name = '{model}'")
    if not existing:
        return model
    owner = existing[0].tags.get(TAG_STUDY_ID)
    if owner == ident:
        return model
    if owner is None:  # an older sync's, for the study whose experiment this one has
        client.set_registered_model_tag(model, TAG_STUDY_ID, ident)
        return model
    return f"{model}-{ident[:8]}"
