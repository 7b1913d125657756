"""The pruner of an experiment: which one, and its knobs, as the experiment file writes them.

Pruning is where a parallel sweep saves GPU-hours: a trial that is clearly worse than its peers
after an epoch or two gives its slot to the next one. Four pruners, each with the knobs a user
may set (anything else is refused with the file, line and key):

- ``asha`` — asynchronous successive halving (Optuna's ``SuccessiveHalvingPruner``): at rungs of
  ``min_epochs · reduction_factor^k`` epochs a trial goes on only if it is in the top
  1/``reduction_factor`` of the trials that reached that rung. It never waits for a cohort, so it
  suits an array of workers that start and finish trials at different times.
- ``hyperband`` — several successive-halving brackets with different minimum resources; more
  robust when the right ``min_epochs`` is unknown, but each bracket sees fewer trials.
- ``median`` — prune a trial whose best value so far is below the median of the other trials at
  the same epoch, once ``startup_trials`` trials have finished and after ``warmup_epochs``.
- ``none``.

Short form ``pruner: asha``, or ``pruner: {name: asha, min_epochs: 1, reduction_factor: 3}``.
With ``report_every`` below 1 (reports inside the epoch, steps in samples seen) ``min_epochs``
may be a fraction of an epoch: ``{name: asha, min_epochs: 0.25}`` puts the first rung after a
quarter of an epoch (:func:`wcd_hpc.engine.search.make_pruner` turns epochs into samples).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wcd_hpc.experiment.sources import Fail, got, one_of

#: Each pruner's knobs and their defaults (None: chosen from the epochs, see ``median_defaults``).
KNOBS: dict[str, dict[str, float | None]] = {
    "asha": {"min_epochs": 1, "reduction_factor": 3},
    "hyperband": {"min_epochs": 1, "reduction_factor": 3},
    "median": {"startup_trials": 2, "warmup_epochs": None},
    "none": {},
}
PRUNERS = tuple(KNOBS)
#: The least each knob may be: a reduction factor of 1 would keep every trial at every rung.
MINIMUM = {"min_epochs": 1, "reduction_factor": 2, "startup_trials": 0, "warmup_epochs": 0}
#: Knobs that may be a fraction of an epoch (above 0): with ``report_every`` below 1 the first
#: rung may sit inside the first epoch (``min_epochs: 0.25``); steps are then samples seen.
FRACTIONAL = ("min_epochs",)
MAX_FRACTIONAL = 100_000


def median_warmup(epochs: int) -> int:
    """Epochs during which the median pruner never prunes: the first third, rounded up.

    CNNs on footprints often sit at chance for an epoch or two before they learn; judging them
    then would prune the trials that were about to become the best ones. Optuna prunes from
    ``step >= n_warmup_steps`` and our steps are epochs counted from 1, hence the ``+ 1``.
    """
    return epochs // 3 + 1


def parse(value: Any, fail: Fail) -> tuple[str, dict[str, float]]:
    """``(name, options)`` from ``pruner: NAME`` or ``pruner: {name: NAME, knob: value, …}``.

    Options hold only the knobs the user wrote; defaults are applied when the pruner is built,
    so that a stored experiment reads back the same.
    """
    if value is None:
        return "none", {}
    if isinstance(value, str):
        raw: Mapping[str, Any] = {"name": value}
    elif isinstance(value, Mapping):
        raw = value
    else:
        raise fail("pruner", f"expected a pruner name or a mapping with 'name', got {got(value)}")
    name_key = "pruner.name" if isinstance(value, Mapping) else "pruner"
    name = one_of(raw.get("name"), PRUNERS, name_key, fail)
    options: dict[str, float] = {}
    for key, knob in raw.items():
        if key == "name":
            continue
        if key not in KNOBS[name]:
            known = ", ".join(KNOBS[name]) or "none"
            raise fail(f"pruner.{key}", f"unknown knob of pruner {name!r} (its knobs: {known})")
        least = MINIMUM[key]
        if key in FRACTIONAL:
            number = isinstance(knob, (int, float)) and not isinstance(knob, bool)
            if not number or not 0 < knob <= MAX_FRACTIONAL:
                raise fail(
                    f"pruner.{key}",
                    f"expected a number of epochs above 0 (a fraction with report_every), "
                    f"got {got(knob)}",
                )
        elif isinstance(knob, bool) or not isinstance(knob, int) or knob < least:
            raise fail(f"pruner.{key}", f"expected an integer >= {least}, got {got(knob)}")
        options[key] = knob
    return name, options


def options_with_defaults(name: str, options: Mapping[str, float], epochs: int) -> dict[str, float]:
    """The knobs a pruner is built with: the user's, else the defaults (epochs-dependent ones
    resolved)."""
    full: dict[str, float] = {}
    for key, default in KNOBS[name].items():
        if key in options:
            full[key] = options[key] if key in FRACTIONAL else int(options[key])
        elif default is not None:
            full[key] = default
        elif key == "warmup_epochs":
            full[key] = median_warmup(epochs)
    return full


#: ``prune_chance``'s knobs and defaults: judged from the first report on, once the trial has
#: taken 16 optimizer steps; a trial is at chance when 0.5 lies within its ROC AUC's 68 %
#: interval widened by ``auc_margin``. A stored mapping without ``min_steps`` was written
#: before it existed and means 0 (:data:`wcd_hpc.experiment.resume.LEGACY_KNOBS`).
CHANCE_DEFAULTS: dict[str, int | float] = {"after": 1, "auc_margin": 0.0, "min_steps": 16}
CHANCE_KNOBS = "after, auc_margin, min_steps"
MAX_AUC_MARGIN = 0.5


def parse_chance(value: Any, fail: Fail) -> dict[str, int | float] | bool:
    """``prune_chance``: ``true`` (the defaults), ``false`` (off) or ``{after: N, auc_margin: M,
    min_steps: S}``.

    Kept as ``false`` or as the full mapping, so a stored experiment reads back the same.
    ``min_steps`` 16, the default, is twice the 4-8 steps for which slow starters' outputs
    were seen to stay constant; it was measured against 0 in the races of
    ``docs/benchmarks.md`` (2026-12-06).
    """
    if value is None or value is True:
        return dict(CHANCE_DEFAULTS)
    if value is False:
        return False
    if not isinstance(value, Mapping):
        raise fail("prune_chance", f"expected true, false or {{{CHANCE_KNOBS}}}, got {got(value)}")
    options = dict(CHANCE_DEFAULTS)
    for key, knob in value.items():
        where = f"prune_chance.{key}"
        if key == "after":
            if isinstance(knob, bool) or not isinstance(knob, int) or knob < 1:
                raise fail(where, f"expected a report number >= 1, got {got(knob)}")
        elif key == "min_steps":
            if isinstance(knob, bool) or not isinstance(knob, int) or knob < 0:
                raise fail(where, f"expected a number of optimizer steps >= 0, got {got(knob)}")
        elif key == "auc_margin":
            number = isinstance(knob, (int, float)) and not isinstance(knob, bool)
            if not number or not 0 <= knob <= MAX_AUC_MARGIN:
                raise fail(where, f"expected a number from 0 to {MAX_AUC_MARGIN}, got {got(knob)}")
            knob = float(knob)
        else:
            raise fail(where, f"unknown knob of prune_chance (its knobs: {CHANCE_KNOBS})")
        options[str(key)] = knob
    return options


def report_fraction(value: Any, key: str, fail: Fail) -> float:
    """``report_every``: the fraction of an epoch between two reports, above 0 and at most 1."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not 0 < value <= 1:
        raise fail(key, f"expected a fraction of an epoch above 0 and at most 1, got {got(value)}")
    return float(value)
