"""A stored experiment in the spelling of the experiment file, for what people read and type.

:meth:`Experiment.to_dict` keeps the validated fields (``dataset_params``, ``direction``,
``gpu_hours``, ``pruner_options``); a person writes ``dataset.params.events``,
``metric.direction``, ``budget.gpu_hours`` and ``pruner: {name, min_epochs}``, and types the same
in ``--set``. Wherever a stored experiment is shown as flat keys (MLflow parameters), it is
first put back into that spelling, so that one name means one thing everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Stored field -> the dotted key the experiment file (and ``--set``) spells it with.
WRITTEN = {
    "dataset_params": "dataset.params",
    "direction": "metric.direction",
    "gpu_hours": "budget.gpu_hours",
}


def as_written(stored: Mapping[str, Any]) -> dict[str, Any]:
    """``stored`` (an :meth:`Experiment.to_dict`) with the file's keys, dotted where nested."""
    out: dict[str, Any] = {}
    for key, value in stored.items():
        if key == "pruner_options":
            out.update({f"pruner.{k}": v for k, v in dict(value).items()})
        else:
            out[WRITTEN.get(key, key)] = value
    return out
