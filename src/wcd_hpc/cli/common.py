"""Shared CLI plumbing: consoles, options every verb spells the same way, registry loading.

Errors are not handled here: a command raises a :class:`wcd_hpc.errors.WcdHpcError` and the
application (:class:`wcd_hpc.cli.App`) turns exactly that family into one line, once.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from wcd_hpc.errors import UsageError
from wcd_hpc.plugins import Registry, get_registry
from wcd_hpc.store.urls import ENV_STORAGE, has_secret, kind, without_secrets

# Markup and emoji codes off by default: what we print is full of user text (search spaces such
# as "[randint(2, 20), randint(2, 20)]", file names with ':100:' in file:line, error causes) that
# rich would take for style tags or emoji and swallow. Styled lines opt in with markup=True and
# escape() what they interpolate.
out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)
#: Width tables get when the output is not a terminal (a pipe, a file, a test's runner): rich
#: would assume 80 columns there and wrap or cut a trial's value and state inside its cell.
PIPED_WIDTH = 240


def print_table(renderable: Any) -> None:
    """Print tables at the terminal's width, or unwrapped where there is no terminal (a console
    of that width on the same stream: ``print(width=…)`` can only narrow a console)."""
    if out.is_terminal:
        out.print(renderable)
        return
    wide = Console(
        file=out.file, width=PIPED_WIDTH, highlight=False, soft_wrap=True, markup=False, emoji=False
    )
    wide.print(renderable)


# Options several verbs share, spelled once.
StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help=f"Storage URL; default ${ENV_STORAGE}, else the study's journal under --runs-dir.",
        show_default=False,
    ),
]
RunsDirOption = Annotated[Path, typer.Option("--runs-dir", help="Root of run directories.")]
ProfileOption = Annotated[
    str | None, typer.Option("--profile", help="Site profile name or path.", show_default=False)
]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override any key: --set epochs=3.")
]
# Arguments are named in capitals, as the help texts and the README refer to them; typer
# writes a required one in braces in the usage line ({EXPERIMENT}), an optional one in [ ].
StudyArgument = Annotated[str, typer.Argument(metavar="NAME", help="Study name.")]
ExperimentArgument = Annotated[
    Path, typer.Argument(metavar="EXPERIMENT", help="Experiment file (YAML).")
]


def fail(message: str) -> NoReturn:
    """Stop the command with a one-line usage error (exit status 2)."""
    raise UsageError(message)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}", markup=True)


def registry(warn_problems: bool = True) -> Registry:
    """The plugin registry; load problems are printed as warnings, one line each."""
    reg = get_registry()
    if warn_problems:
        for line in [*reg.warnings, *reg.errors]:
            warn(line)
    return reg


def command_for(args: list[str], url: str, runs_root: Path) -> str:
    """A command line to copy that finds the study at ``url`` again, in this same shell.

    A URL that ``$WCD_HPC_STORAGE`` holds is left to it: the shell has it, password and all,
    whereas ``--storage`` spelled without the password would override it and fail. A journal is
    found from its runs root (``--runs-dir``). Any other storage is named again without its
    password: a command to copy must not teach putting one on a command line (``ps``, shell
    history), so the note points at ``~/.pgpass`` instead.
    """
    if os.environ.get(ENV_STORAGE) == url:
        return f"{shlex.join(args)}  (storage: ${ENV_STORAGE})"
    if kind(url) == "journal":
        return shlex.join([*args, "--runs-dir", str(runs_root)])
    line = shlex.join([*args, "--storage", without_secrets(url)])
    return f"{line}  (password: ~/.pgpass)" if has_secret(url) else line
