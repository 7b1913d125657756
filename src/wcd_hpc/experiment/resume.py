"""What a resumed study may change, and what it keeps from the day it was created.

A study's trials are only comparable while they run one experiment, so a resume may change
only the keys the key table marks mutable (:func:`changed_keys`). Defaults move between
releases, though, and a study created under the old ones must resume from its unchanged file:
a knob added since (:data:`LEGACY_KNOBS`) that the user never wrote keeps the meaning it had
when the study was created (:func:`carried_over`) rather than being refused as a change nobody
made, or silently switching the study's remaining trials to a new rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from wcd_hpc.experiment.config import ConfigError, Experiment, mutable_names
from wcd_hpc.experiment.space import Space, SpaceError, same_space

__all__ = ["carried_over", "changed_keys"]

#: Knobs a release added to a mapping key with a default that differs from how the studies
#: stored before it behave: key -> {knob: the value a stored mapping without it means}.
#: ``prune_chance.min_steps`` came with 0 and became 16 (the race of 2026-12-06/07).
LEGACY_KNOBS: dict[str, dict[str, Any]] = {"prune_chance": {"min_steps": 0}}


def carried_over(stored: Mapping[str, Any], exp: Experiment) -> Experiment:
    """``exp`` without each legacy knob that the study's ``stored`` experiment predates and the
    user did not write, so that it means there what it meant when the study was created: a
    resume from an unchanged file neither refuses nor changes how the remaining trials are
    treated.

    A knob the user wrote (file, profile, ``--set``) stays as written, and :func:`changed_keys`
    compares it with what the study meant; a knob the study stored compares as usual (removing
    it from the file is a change, as for any key).
    """
    extras = dict(exp.extras)
    for key, knobs in LEGACY_KNOBS.items():
        old, new = stored.get(key), extras.get(key)
        if not isinstance(old, Mapping) or not isinstance(new, Mapping):
            continue
        value = dict(new)
        for knob in knobs:
            if knob not in old and f"{key}.{knob}" not in exp.given:
                value.pop(knob, None)
        extras[key] = value
    return dataclasses.replace(exp, extras=extras)


def changed_keys(
    stored: Mapping[str, Any],
    exp: Experiment,
    *,
    stored_space: Mapping[str, Any] | None = None,
    space: Space | None = None,
) -> list[str]:
    """What makes ``exp`` a different experiment from the one a study ``stored``: the keys a
    resume may not change (the table's ``mutable``) that differ.

    A key the table gained since the study was stored compares as its default, and a legacy
    knob missing from a stored mapping as the value it meant then (:data:`LEGACY_KNOBS`);
    search spaces compare as spaces (``randint(32,64)`` is ``randint(32, 64)``). Given the
    study's whole search space (``stored_space``) and the one ``exp`` resolves to (``space``),
    overrides that differ only in spelling out the model's default (``lr: loguniform(1e-4,
    1e-2)`` written or not) are no change either: the space sampled is the same.
    """
    try:
        old = Experiment.from_dict(stored).to_dict()
    except (ConfigError, TypeError):
        old = dict(stored)
    new = exp.to_dict()
    changed = []
    for name in sorted((set(old) | set(new)) - mutable_names()):
        before, after = _meant(name, old.get(name)), _meant(name, new.get(name))
        if name == "param_space" and isinstance(before, dict) and isinstance(after, dict):
            if _space_changes(before, after) and not same_space(stored_space, space):
                changed.append(name)
        elif before != after:
            changed.append(name)
    return changed


def _meant(name: str, value: Any) -> Any:
    """A stored value with its legacy knobs filled in as they were meant."""
    knobs = LEGACY_KNOBS.get(name)
    if knobs and isinstance(value, Mapping):
        return {**knobs, **value}
    return value


def _space_changes(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two ``param_space`` overrides differ as spaces, not as text."""
    try:
        return Space.from_mapping(old) != Space.from_mapping(new)
    except SpaceError:
        return old != new
