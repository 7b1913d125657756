"""Checking a search space against the domains of its parameters (:class:`wcd_hpc.api.Domain`).

A model's parameters and the training loop's own (``lr``, ``batch_size``, ``optimizer``,
``reg``) have domains: ``batch_size`` is a positive integer, ``dropout`` lies in [0, 1). A value
outside would fail every trial on a compute node (or, worse, train nonsense), so validation
refuses it on the login node, for a constant and for the reach of a search expression: both
bounds of ``uniform``/``loguniform``/``randint``, every point ``range`` can give, every option
of ``choice``, every item of a list. The domains are declared once, beside the parameters they
govern (:data:`wcd_hpc.api.TRAINING_DOMAINS`, :attr:`wcd_hpc.api.Model.domains`); this module
only reads them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from wcd_hpc.api import TRAINING_DOMAINS, Domain
from wcd_hpc.experiment.expressions import number_text
from wcd_hpc.experiment.sources import suggest
from wcd_hpc.experiment.space import (
    Choice,
    Fixed,
    ListOf,
    LogUniform,
    Param,
    RandInt,
    Range,
    Space,
    Uniform,
)

__all__ = ["domains_of", "problems"]


def domains_of(model: Any) -> dict[str, Domain]:
    """A model's domains with the training loop's (which no model can widen)."""
    own = getattr(model, "domains", None) or {}
    return {**dict(own), **TRAINING_DOMAINS}


def problems(space: Space, domains: Mapping[str, Domain]) -> Iterator[tuple[str, str]]:
    """``(entry key, why)`` for each entry of ``space`` that reaches outside its domain; the key
    names the list item (``hidden[1]``) when one item is at fault."""
    for name, param in space.params.items():
        domain = domains.get(name)
        if domain is None:
            continue
        found = _problem(name, param, domain)
        if found is not None:
            yield found


def _problem(key: str, param: Param, domain: Domain) -> tuple[str, str] | None:
    expected = f"expected {domain.describe()}"
    if domain.kind == "list":
        if not isinstance(param, ListOf):
            return key, f"{expected}, got {param.describe()}"
        count = len(param.items)
        most = domain.max_items
        if count < domain.min_items or (most is not None and count > most):
            return key, f"{expected}, got {count} items: {param.describe()}"
        if domain.item is not None:
            for i, item in enumerate(param.items):
                found = _problem(f"{key}[{i}]", item, domain.item)
                if found is not None:
                    return found
        return None
    if isinstance(param, ListOf):
        return key, f"{expected}, got a list: {param.describe()}"
    if isinstance(param, Fixed):
        if domain.holds(param.value):
            return None
        hint = ""
        if domain.kind == "choice" and isinstance(param.value, str):
            hint = suggest(param.value, [str(o) for o in domain.options])
        return key, f"{expected}, got {_shown(param.value)}{hint}"
    if isinstance(param, Choice):
        for option in param.options:
            if not domain.holds(option):
                return key, f"{expected}; {param.describe()} offers {_shown(option)}"
        return None
    if domain.kind == "choice":
        return key, f"{expected}; {param.describe()} draws numbers"
    return _reach(key, param, domain, expected)


def _reach(key: str, param: Param, domain: Domain, expected: str) -> tuple[str, str] | None:
    """A numeric distribution: integers where the domain wants them, both ends inside it."""
    if domain.kind == "integer":
        fractional = isinstance(param, (Uniform, LogUniform)) or (
            isinstance(param, Range) and not param.is_int
        )
        if fractional:
            use = "use randint() or a range() of integers"
            return key, f"{expected}; {param.describe()} draws fractions; {use}"
    if isinstance(param, (Uniform, LogUniform, RandInt)):
        ends: tuple[Any, ...] = (param.low, param.high)
    elif isinstance(param, Range):
        ends = (param.low, param.top)
    else:  # a plugin's own Param: nothing known of its reach
        return None
    for end in ends:
        if not domain.reaches(end):
            return key, f"{expected}; {param.describe()} reaches {number_text(end)}"
    return None


def _shown(value: object) -> str:
    return number_text(value) if isinstance(value, (int, float)) else repr(value)
