"""A study's identity: what tells two studies with the same name apart.

A study's name is chosen by people and repeats: the quickstart is called ``quickstart`` in every
runs directory, and two users of one shared MLflow may both call theirs ``lenet-gamma``. Anything
that outlives the study's storage (trial files copied elsewhere, MLflow runs, registered model
versions) therefore carries the study's *identity*, a UUID written into the study when it is
created, and is matched by it, never by the name alone.

The identity is the first attribute a new study gets (before the experiment and the budget, which
a worker waits for), so no study that a worker or ``sync`` can see lacks one. A study created by
an older wcd-hpc gets one from its next ``sweep`` or ``sync`` (:func:`ensure`), marked
``study_id_adopted`` so that ``sync`` lets it take over the runs that older syncs left without an
identity (:mod:`wcd_hpc.results.identity`).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import optuna

from wcd_hpc.queue.schema import STUDY_CREATED, STUDY_ID, STUDY_ID_ADOPTED

__all__ = ["created_of", "ensure", "identity_of", "stamp_new"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def stamp_new(study: optuna.Study) -> str:
    """Give a study that was just created its identity and creation time; returns the identity."""
    ident = str(uuid.uuid4())
    study.set_user_attr(STUDY_ID, ident)
    study.set_user_attr(STUDY_CREATED, _now())
    return ident


def identity_of(study: optuna.Study) -> str | None:
    value = study.user_attrs.get(STUDY_ID)
    return str(value) if value else None


def created_of(study: optuna.Study) -> str:
    """When the study was created, as recorded (ISO 8601); empty when unknown."""
    return str(study.user_attrs.get(STUDY_CREATED) or "")


def ensure(study: optuna.Study) -> str:
    """The study's identity, given now (and marked adopted) when an older wcd-hpc made it.

    Its creation time is then the start of its first trial, the best evidence left.
    """
    ident = identity_of(study)
    if ident is not None:
        return ident
    starts = [t.datetime_start for t in study.get_trials(deepcopy=False) if t.datetime_start]
    utc = timezone.utc
    created = min(starts).astimezone(utc).isoformat(timespec="seconds") if starts else _now()
    ident = str(uuid.uuid4())
    study.set_user_attr(STUDY_ID_ADOPTED, True)
    study.set_user_attr(STUDY_CREATED, created)
    study.set_user_attr(STUDY_ID, ident)  # last: a study with an identity is complete
    return ident
