"""Habits users bring from git, uv, pip and Hydra, kept in one place for every verb.

- ``wcd-hpc help [COMMAND …]`` prints what ``COMMAND -h`` prints (git and uv have it).
- ``sweep exp.yaml epochs=5`` (Hydra's spelling) is refused by click as an extra argument; the
  refusal adds ``did you mean `--set epochs=5`?`` for commands that take ``--set``.
- Help texts are reflowed: a docstring's line breaks are where its source was wrapped, not where
  a terminal should break, so single line breaks inside a paragraph become spaces.
- ``--show-completion SHELL`` and ``--install-completion SHELL`` take the shell asked for
  (typer's own options ignore it and detect the current shell); without one they detect it.
- A path starting with ``~`` is expanded, whichever verb (a plugin's too) receives it: a shell
  leaves ``--runs-dir ~/x`` alone when quoted or written ``--runs-dir=~/x``, and a directory
  literally named ``~`` is never what was meant. Keys of an experiment file are expanded by
  their rule (:func:`wcd_hpc.experiment.checks.path`).

:class:`Group` is the root command's click class (``cls=`` of the typer app), which is where
click builds the tree of commands, parses the root's options and raises usage errors.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Annotated, Any

import typer

# typer (>= 0.29) builds its commands from its own copy of click: these are that copy's classes.
from typer._click.core import Command, Context, Parameter
from typer._click.exceptions import UsageError
from typer.completion import install_callback, show_callback
from typer.core import TyperGroup

from wcd_hpc.cli.common import fail
from wcd_hpc.experiment.sources import suggest

_KEY_VALUE = re.compile(r"[A-Za-z_][\w.]*=")


def reflow(text: str | None) -> str | None:
    """A help text with each paragraph on one line (a paragraph starting with ``\\b`` kept)."""
    if not text:
        return text
    shown, cut, rest = inspect.cleandoc(text).partition("\f")
    paragraphs = [
        p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines())
        for p in shown.split("\n\n")
    ]
    return "\n\n".join(paragraphs) + cut + rest


def expand_user(value: Any) -> Any:
    """``value`` with a leading ``~`` expanded if it is a path (or a list of paths)."""
    if isinstance(value, PurePath) and str(value).startswith("~"):
        return Path(os.path.expanduser(value))
    if isinstance(value, (list, tuple)) and any(isinstance(v, PurePath) for v in value):
        return type(value)(expand_user(v) for v in value)
    return value


def _expanding(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def call(*args: Any, **kwargs: Any) -> Any:
        return callback(*args, **{k: expand_user(v) for k, v in kwargs.items()})

    call.__wcd_expands__ = True  # type: ignore[attr-defined]
    return call


def _prepare_tree(command: Command) -> None:
    """Every command of the tree: paths expanded (``~``), help reflowed."""
    if command.callback is not None and not hasattr(command.callback, "__wcd_expands__"):
        command.callback = _expanding(command.callback)
    command.help = reflow(command.help)
    for param in command.params:
        if getattr(param, "help", None):
            param.help = reflow(param.help)  # type: ignore[attr-defined]
    for sub in getattr(command, "commands", {}).values():
        _prepare_tree(sub)


#: The completion options, their callbacks (which print or install, then exit) and help.
COMPLETION = {
    "--install-completion": (install_callback, "Install tab completion"),
    "--show-completion": (show_callback, "Print the tab-completion script"),
}
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")


def _completion_for(ctx: Context, args: list[str]) -> None:
    """Honour ``--show-completion SHELL`` (or ``=SHELL``): typer's flag would detect the shell
    and leave the name to fail as an extra argument; typer's callbacks accept a shell name."""
    for i, arg in enumerate(args):
        flag, _, value = arg.partition("=")
        if flag in COMPLETION:
            shell = value or (args[i + 1] if i + 1 < len(args) else "")
            if shell in SHELLS:
                callback, _ = COMPLETION[flag]
                callback(ctx, None, shell)  # type: ignore[arg-type]  # prints, or installs; exits


class Group(TyperGroup):
    """The root of ``wcd-hpc``: reflowed help, shell-aware completion, a ``--set`` hint."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _prepare_tree(self)  # subcommands and plugin verbs are built before the root; ~ expanded

    def get_params(self, ctx: Context) -> list[Parameter]:
        params = super().get_params(ctx)
        for param in params:
            for flag, (_, what) in COMPLETION.items():
                if flag in getattr(param, "opts", ()):
                    shells = ", ".join(SHELLS[:4])
                    param.help = f"{what}: for SHELL ({shells}) or the current one."  # type: ignore[attr-defined]
        return params

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        _completion_for(ctx, args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Context) -> Any:
        args = [*ctx._protected_args, *ctx.args]  # the invocation empties them
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            exc.message += set_hint(exc, args)
            raise


def set_hint(exc: UsageError, args: list[str]) -> str:
    """``did you mean `--set KEY=VALUE`?`` for a bare ``KEY=VALUE`` a command took as extra."""
    command = exc.ctx.command if exc.ctx is not None else None
    takes_set = command is not None and any(
        "--set" in getattr(p, "opts", ()) for p in command.params
    )
    if not takes_set or "extra argument" not in exc.message:
        return ""
    for before, arg in zip(["", *args], args, strict=False):
        if before != "--set" and _KEY_VALUE.match(arg):
            return f"; did you mean `--set {arg}`?"
    return ""


def help_cmd(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None, typer.Argument(metavar="[COMMAND]...", help="A command, e.g. sweep.")
    ] = None,
) -> None:
    """Show the help of a command (the same as COMMAND -h), or of wcd-hpc itself."""
    root = ctx.find_root()
    current: Command = root.command
    context = root
    for name in command or []:
        subs = getattr(current, "commands", {})
        if name not in subs:
            known = sorted(subs)
            fail(f"no command {name!r}{suggest(name, known)}; wcd-hpc -h lists them")
        current = subs[name]
        context = Context(current, info_name=name, parent=context)
    # As -h does: typer's rich help prints itself and returns "", which click echoes too.
    typer.echo(current.get_help(context))


def register(app: typer.Typer) -> None:
    app.command("help")(help_cmd)
