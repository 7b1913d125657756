"""Resuming a study whose objective was measured under an older definition of its metric.

The cut-based figures of merit (:data:`wcd_hpc.merit.CUT_METRICS`) changed meaning when
``metric.min_background`` came in: ``q_factor`` was the best ε_s/√ε_b over *all* cuts, with no
minimum of background events behind it, so its trials were compared on Poisson noise in the tail
(issue 23). A study created before then stored no ``metric.min_background``; read back, the
missing key takes its default and the experiment compares equal to today's, so without this check
a resumed sweep would go on adding trials of the new definition to trials of the old one, and the
sampler, the best trial and the finalists would rank the two together. Such a study is refused
with what to do instead: sweep under a new name (the old study stays as it is, readable).

A study that recorded the key is of the current definition; a changed value is a changed
experiment, which :func:`wcd_hpc.experiment.resume.changed_keys` already refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wcd_hpc import merit
from wcd_hpc.errors import StudyConflict

__all__ = ["MIN_BACKGROUND_KEY", "check_resume"]

#: The experiment key whose absence from a stored experiment dates the study's metric.
MIN_BACKGROUND_KEY = "metric.min_background"


def check_resume(stored: Mapping[str, Any], name: str, where: str) -> None:
    """Refuse to resume study ``name`` (in ``where``, a masked storage) when its stored
    experiment optimises a cut-based metric measured before the minimum background existed."""
    metric = stored.get("metric")
    if metric not in merit.CUT_METRICS or MIN_BACKGROUND_KEY in stored:
        return
    raise StudyConflict(
        f"study '{name}' in {where} optimises {metric} as measured before "
        f"{MIN_BACKGROUND_KEY} existed (no minimum of background events behind a cut): resuming "
        f"it would rank two definitions of {metric} together; sweep under a new name "
        f"(--set name={name}-v2) and, to start from its best configurations, "
        f"start_from: {name}"
    )
