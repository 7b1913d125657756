"""Resolving a validated experiment against the installed plugins: the last check before a study.

:mod:`wcd_hpc.experiment.config` checks what the settings say; this checks that they name plugins
that exist (with "did you mean" for a typo), that the model takes the parameters the experiment
sets, and merges the model's default search space with the experiment's overrides, whose every
value must lie in its parameter's domain (:mod:`wcd_hpc.experiment.domains`). Errors name
where the offending value was written: the file and line, or the flag that set it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from wcd_hpc.api import DEFAULT_SPACE, TRAINING_PARAMS
from wcd_hpc.errors import ConfigError, SpaceError
from wcd_hpc.experiment.config import DIRECTIONS, Experiment
from wcd_hpc.experiment.domains import domains_of, problems
from wcd_hpc.experiment.sources import got, suggest
from wcd_hpc.experiment.space import Space

__all__ = ["error_at", "resolve"]


def error_at(exp: Experiment, key: str, message: str) -> ConfigError:
    """An error about ``key`` where its value was written: the flag that set it, else the file
    and line (an error found after validation, such as an unknown plugin)."""
    top = key.split("[")[0]
    flag = exp.origins.get(top) or exp.origins.get(top.split(".")[0])
    if flag is not None:  # set on the command line: blame the flag, not the file
        return ConfigError(flag, key, None, message)
    line = exp.lines.get(top) or exp.lines.get(top.split(".")[0])
    return ConfigError(exp.source, key, line, message)


def resolve(exp: Experiment, registry: Any) -> tuple[Experiment, Space]:
    """Check plugin names, fill the metric direction, and build the final search space.

    This is the last check before anything is created: an unknown plugin or an impossible space
    (e.g. an override the model's default space cannot take) stops the sweep here.
    """

    def fail(key: str, message: str) -> ConfigError:
        return error_at(exp, key, message)

    def lookup(kind: str, key: str, name: str, table: Mapping[str, Any]) -> Any:
        if name in table:
            return table[name].obj
        known = sorted(table)
        hint = suggest(name, known)
        if known and "did you mean" in hint:
            hint += f" (known: {', '.join(known)})"
        raise fail(key, f"unknown {kind} {got(name)}{hint if known else ' (none installed)'}")

    model = lookup("model", "model", exp.model, registry.models)
    lookup("dataset", "dataset", exp.dataset, registry.datasets)
    metric = lookup("metric", "metric", exp.metric, registry.metrics)
    direction = exp.direction
    if direction is None:
        direction = getattr(metric, "direction", None)
        if direction not in DIRECTIONS:
            raise fail(
                "metric", f"metric {exp.metric!r} declares no valid direction ({direction!r})"
            )
    elif direction not in DIRECTIONS:
        raise fail("metric.direction", f"expected maximize or minimize, got {got(direction)}")
    variant = exp.setting("model.space")
    try:
        base = Space.from_mapping(_base_space(exp, model, fail))
    except SpaceError as exc:
        raise fail(
            "model", f"{variant} search space of model {exp.model!r} is invalid: {exc}"
        ) from None
    _check_param_names(exp, model, base, fail)
    try:
        space = base.merged(exp.param_space)
    except SpaceError as exc:
        raise fail(f"param_space.{exc.key}", exc.message) from None
    for key, message in problems(space, domains_of(model)):
        if key.split("[")[0] in exp.param_space:
            raise fail(f"param_space.{key}", message)
        raise fail("model", f"default search space of model {exp.model!r}: {key}: {message}")
    return dataclasses.replace(exp, direction=direction), space


def _base_space(
    exp: Experiment, model: Any, fail: Callable[[str, str], ConfigError]
) -> Mapping[str, Any]:
    """The space ``param_space`` overrides: the model's default, or the variant ``model.space``
    names (``predecessor``)."""
    variant = exp.setting("model.space")
    if variant == DEFAULT_SPACE:
        return getattr(model, "space", None) or {}
    spaces = getattr(model, "spaces", None) or {}
    if variant not in spaces:
        known = [DEFAULT_SPACE, *sorted(spaces)]
        message = f"model {exp.model!r} has no search space {got(variant)}"
        raise fail("model.space", message + suggest(variant, known))
    return spaces[variant]  # type: ignore[no-any-return]


def _check_param_names(
    exp: Experiment, model: Any, base: Space, fail: Callable[[str, str], ConfigError]
) -> None:
    """Refuse ``param_space`` keys the model does not take (a typo like ``lrr``)."""
    extra = getattr(model, "extra_params", ())
    if extra is True:
        return
    known = sorted({*base.params, *TRAINING_PARAMS, *(extra or ())})
    for key in exp.param_space:
        if key not in known:
            hint = suggest(key, known)
            if "did you mean" in hint:
                hint += f" (known: {', '.join(known)})"
            message = f"model {exp.model!r} takes no parameter {key!r}{hint}"
            raise fail(f"param_space.{key}", message)
