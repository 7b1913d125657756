"""Shared CLI plumbing: consoles, the one-line error convention, and registry loading."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from wcd_hpc.config import ConfigError, load_profile
from wcd_hpc.launch.settings import SHIPPED_PROFILES
from wcd_hpc.plugins import Registry, get_registry
from wcd_hpc.space import SpaceError
from wcd_hpc.storage import StorageError, mask
from wcd_hpc.study import StudyConflict

# Markup off by default: what we print is full of user text (search spaces such as
# "[randint(2, 20), randint(2, 20)]", file names, error causes) that rich would take for style
# tags and swallow. Styled lines opt in with markup=True and escape() what they interpolate.
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

ENV_PROFILE = "WCD_HPC_PROFILE"
EXIT_USAGE = 2
F = TypeVar("F", bound=Callable[..., Any])

USER_ERRORS = (ConfigError, SpaceError, StorageError, StudyConflict, KeyError, FileNotFoundError)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one error line (credentials masked) and exit with ``code``."""
    err.print(f"[bold red]error:[/] {escape(mask(message))}", markup=True)
    raise typer.Exit(code)


def friendly(func: F) -> F:
    """Turn expected user errors into one line and a non-zero exit instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as exc:
            text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            fail(str(text))

    return wrapper  # type: ignore[return-value]


def registry(warn: bool = True) -> Registry:
    """The plugin registry; load problems are printed as warnings, one line each."""
    reg = get_registry()
    if warn:
        for line in reg.errors:
            err.print(f"[yellow]warning:[/] {escape(line)}", markup=True)
    return reg


def profile_dirs() -> list[Path]:
    """Where named site profiles are looked up, first match wins: the project's slurm/profiles,
    the user's, then the ones shipped with wcd-hpc (dev, local and the university template), so
    that ``--profile university`` and ``wcd-hpc profiles`` work from any directory."""
    dirs = [Path.cwd() / "slurm" / "profiles"]
    config = os.environ.get("XDG_CONFIG_HOME", str(Path.home() / ".config"))
    dirs.append(Path(config) / "wcd-hpc" / "profiles")
    dirs.append(SHIPPED_PROFILES)
    return dirs


def site_profile(name: str | None) -> dict[str, Any] | None:
    chosen = name or os.environ.get(ENV_PROFILE)
    if not chosen:
        return None
    return load_profile(chosen, profile_dirs())
