"""The public plugin API: the pluggy markers and the hook specifications.

Collection hooks receive a ``register`` callback instead of returning objects, so the core alone
decides what a name clash or a malformed object means and can attribute every problem to the
distribution that caused it. Each hook is documented in the plugin guide
(docs/how-to/write-a-plugin.md; a test keeps the two in step), and the reference page of the hooks
is generated from this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from wcd_hpc.api import Dataset, Metric, Model

PROJECT = "wcd_hpc"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_models(register: Callable[[Model], None]) -> None:
    """Register model plugins: call ``register(Model(...))`` once per model."""


@hookspec
def register_datasets(register: Callable[[Dataset], None]) -> None:
    """Register dataset plugins: call ``register(Dataset(...))`` once per dataset."""


@hookspec
def register_metrics(register: Callable[[Metric], None]) -> None:
    """Register metric plugins: call ``register(Metric(...))`` once per metric."""


@hookspec
def register_commands(app: Any) -> None:
    """Add CLI verbs to the ``wcd-hpc`` typer application ``app`` (``@app.command()``)."""
