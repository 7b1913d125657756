"""The budget of a sweep: finished trials, and optionally GPU-hours.

``trials: 64`` is the budget in trials; ``budget: {trials: 64, gpu_hours: 10}`` says the same
and adds a cap in compute: once the study's Slurm jobs have been allocated ``gpu_hours`` (what
``status`` reports from ``sacct``), workers stop claiming trials and finish the ones they run.
Users pay in GPU-hours, and a sweep that prunes well or trains a slow model should not have to
be sized in trials alone. Where both ``trials`` and ``budget.trials`` are given, the one set
later (file < ``--set`` < ``--trials``) wins; the same layer giving two values is an error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from wcd_hpc.errors import ConfigError
from wcd_hpc.experiment.sources import Fail, got

#: Which settings layer wins, by the origin label the layering records (higher is later).
_LATER = {"<defaults>": 0, "<profile>": 1, "--set": 3}


def _rank(origin: str, file: str) -> int:
    return 2 if origin == file else _LATER.get(origin, 4)


def merge_trials(
    values: dict[str, Any], origin: Mapping[str, tuple[str, int | None]], file: str
) -> None:
    """Make ``budget.trials`` and ``trials`` one value in ``values['trials']``."""
    budget = values.get("budget")
    if not isinstance(budget, dict) or "trials" not in budget:
        return
    nested = origin.get("budget.trials", origin.get("budget", (file, None)))
    if "trials" in values and values["trials"] != budget["trials"]:
        top = origin.get("trials", (file, None))
        if _rank(top[0], file) == _rank(nested[0], file):
            raise ConfigError(
                nested[0],
                "budget.trials",
                nested[1],
                f"the trial budget is given twice ({values['trials']} as trials); give it once",
            )
        if _rank(top[0], file) > _rank(nested[0], file):
            return
    values["trials"] = budget["trials"]


def gpu_hours(most: float) -> Callable[[Any, str, Fail], float | None]:
    """The check of ``budget.gpu_hours``: None, or a positive finite number up to ``most``."""

    def check(value: Any, key: str, fail: Fail) -> float | None:
        if value is None:
            return None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value <= 0:
            raise fail(key, f"expected a positive number of GPU-hours, got {got(value)}")
        if value > most:
            raise fail(key, f"expected at most {most:,g} GPU-hours, got {got(value)}")
        return float(value)

    return check


#: Most configurations and seeds a study retrains as finalists (far above any real use).
MAX_FINALISTS = 1000


def finalists(value: Any, key: str, fail: Fail) -> dict[str, int] | None:
    """The check of ``finalists``: null (off), or ``{top: K, seeds: S}`` with K, S ≥ 1.

    Once the budget is spent, the K best configurations are retrained with S new seeds each,
    as trials of the same study counted apart from the budget (the winner's curse: the best of
    N noisy trials is luckier than it is good; :mod:`wcd_hpc.queue.finalists`).
    """
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"top", "seeds"}:
        raise fail(key, f"expected null or {{top: K, seeds: S}}, got {got(value)}")
    out = {}
    for name in ("top", "seeds"):
        n = value[name]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_FINALISTS:
            raise fail(f"{key}.{name}", f"expected an integer 1 to {MAX_FINALISTS}, got {got(n)}")
        out[name] = n
    return out
