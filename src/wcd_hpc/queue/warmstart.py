"""Warm start (``start_from``): a new study's first trials are another study's best ones.

A study of a new simulation version, or of a changed dataset, rarely starts from nothing: the
configurations that won last time are the best guesses there are. ``start_from`` names that
study; its best ``top`` complete trials (by its own objective and direction) are enqueued in the
new study, the sampler continuing as usual after them. Enqueued trials are Optuna's WAITING
trials, which a worker's ``study.ask()`` takes before it samples anything.

Only what fits the new space is carried: a parameter the new space does not search, or whose
value lies outside its new range or choices, is left out (the sampler draws it, like a parameter
the old study did not have), with one warning line per parameter naming it. Copying an
out-of-range value would have Optuna warn and use it anyway, outside the space the person wrote.

The source is found and read when the sweep is planned, before anything is created, so a
missing study is one line at ``start_from``; the enqueueing happens once the study exists, under
the claim lock, and is recorded in the study (:data:`~wcd_hpc.queue.schema.STUDY_WARM_START`):
running ``sweep`` again never enqueues twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from wcd_hpc.errors import StudyNotFound
from wcd_hpc.experiment.space import Space
from wcd_hpc.queue import study as studies
from wcd_hpc.queue.opened import OpenedStudy
from wcd_hpc.queue.schema import STUDY_WARM_START, TRIAL_WARM_START
from wcd_hpc.store.storage import Storage, study_exists
from wcd_hpc.store.urls import resolve

__all__ = ["WarmStart", "done", "enqueue", "find", "source_of"]


@dataclass(frozen=True)
class WarmStart:
    """What ``start_from`` will enqueue: flat Optuna parameter sets, best first."""

    study: str
    source: Storage  # the source's storage: only its masked form is stored or printed
    configs: tuple[dict[str, Any], ...]
    trials: tuple[int, ...]  # the source trial each configuration comes from
    warnings: tuple[str, ...]

    def summary(self, planned: bool = False) -> str:
        """One line for people: what was (``planned``: what would be) enqueued."""
        numbers = ", ".join(str(n) for n in self.trials)
        verb = "would be" if planned else "are"
        return (
            f"warm start: the first {len(self.configs)} trials {verb} the best of study "
            f"'{self.study}' (its trials {numbers})"
        )


def source_of(spec: Mapping[str, Any], own: Storage, runs_dir: Path, *, per_study: bool) -> Storage:
    """The storage of the study ``spec`` (``start_from``'s mapping) names.

    Without ``spec["storage"]`` it is the new study's ``own``, except when that is the default
    per-study journal (``per_study``: the experiment's ``storage: journal``), where "the same
    storage" is the other study's journal in the same runs directory.
    """
    given = spec.get("storage")
    if given is None:
        if not per_study:
            return own
        return Storage.parse(resolve("journal", runs_dir / spec["study"]))
    return Storage.parse(resolve(str(given), runs_dir / spec["study"]))


def done(name: str, where: Storage) -> bool:
    """Whether study ``name`` in ``where`` exists and has had its warm start (creates nothing)."""
    if where.path is not None and not where.path.is_file():
        return False
    storage = where.open()
    if not study_exists(storage, name):
        return False
    return STUDY_WARM_START in optuna.load_study(study_name=name, storage=storage).user_attrs


def _open_source(name: str, where: Storage) -> optuna.Study:
    """The source study; a missing file or study is :class:`StudyNotFound`, never a new file."""
    if where.path is not None and not where.path.is_file():
        raise StudyNotFound(f"no study '{name}': {where.path} does not exist")
    return studies.load(name, where, where.open())


def _contains(dist: BaseDistribution, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def _best(source: optuna.Study) -> list[FrozenTrial]:
    """Complete trials with a finite value, best first by the source's own direction."""
    done = [
        t
        for t in source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]
    reverse = source.directions[0] == StudyDirection.MAXIMIZE
    done.sort(key=lambda t: (-t.value if reverse else t.value, t.number))  # type: ignore[operator]
    return done


def _leaves(space: Space) -> dict[str, str]:
    """Flat parameter name -> the new space's text for it (``channels.0`` -> ``randint(2, 20)``)."""
    return {
        name: leaf.describe()
        for key, param in space.params.items()
        for name, leaf in param.flatten(key)
    }


def find(spec: Mapping[str, Any], where: Storage, space: Space) -> WarmStart:
    """Read the source's best ``spec["top"]`` configurations that fit ``space``.

    Raises :class:`StudyNotFound` (with the names nearest to a typo) when the source is not
    there; the caller puts it on the ``start_from`` line.
    """
    name, top = str(spec["study"]), int(spec["top"])
    source = _open_source(name, where)
    dists = space.distributions()
    texts = _leaves(space)
    configs: list[dict[str, Any]] = []
    numbers: list[int] = []
    outside: dict[str, list[str]] = {}
    unsearched: dict[str, list[int]] = {}
    missing: set[str] = set()
    for trial in _best(source):
        if len(configs) >= top:
            break
        config = {}
        for param, value in trial.params.items():
            dist = dists.get(param)
            if dist is None:
                unsearched.setdefault(param, []).append(trial.number)
            elif not _contains(dist, value):
                outside.setdefault(param, []).append(f"{value!r} (trial {trial.number})")
            else:
                config[param] = value
        missing |= set(dists) - set(trial.params)
        if config and config not in configs:
            configs.append(config)
            numbers.append(trial.number)
    warned = _warnings(name, texts, outside, unsearched, missing)
    if not configs:
        warned += (f"start_from: study '{name}' has no complete trial to start from",)
    return WarmStart(name, where, tuple(configs), tuple(numbers), warned)


def _warnings(
    name: str,
    texts: Mapping[str, str],
    outside: Mapping[str, Sequence[str]],
    unsearched: Mapping[str, Sequence[int]],
    missing: set[str],
) -> tuple[str, ...]:
    lines = []
    for param, values in sorted(outside.items()):
        lines.append(
            f"start_from: parameter '{param}' skipped: {', '.join(values)} of study '{name}' "
            f"outside this space's {texts.get(param, '?')}; the sampler draws it"
        )
    for param, trials in sorted(unsearched.items()):
        why = "this space fixes it" if param in texts else "this space does not search it"
        lines.append(
            f"start_from: parameter '{param}' of study '{name}' skipped "
            f"(trials {', '.join(str(n) for n in trials)}): {why}"
        )
    for param in sorted(missing):
        lines.append(
            f"start_from: parameter '{param}' missing from study '{name}'; the sampler draws it"
        )
    return tuple(lines)


def enqueue(opened: OpenedStudy, warm: WarmStart) -> bool:
    """Enqueue ``warm``'s configurations in ``study`` unless a warm start was done before.

    Returns whether it enqueued now. Under the claim lock, so that two ``sweep`` commands
    started at once cannot both enqueue; the study attribute is written after the trials, so a
    crash in between repeats the enqueueing (extra trials) rather than losing it.
    """
    study = opened.study
    with opened.lock():
        if STUDY_WARM_START in study.user_attrs:
            return False
        for config, number in zip(warm.configs, warm.trials, strict=True):
            study.enqueue_trial(
                dict(config), user_attrs={TRIAL_WARM_START: f"{warm.study}#{number}"}
            )
        record = {
            "study": warm.study,
            "storage": warm.source.masked,
            "trials": list(warm.trials),
            "enqueued": len(warm.configs),
        }
        study.set_user_attr(STUDY_WARM_START, record)
    return True
