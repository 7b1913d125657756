"""The ``wcd-hpc`` command: a thin typer app; every verb lives in its own module.

Errors are handled here and only here: :class:`App` turns a :class:`~wcd_hpc.errors.WcdHpcError`
into ``error: <one line>`` (secrets masked) and its exit status; any other exception is a bug
and keeps its traceback.

The habits every verb shares are set once, on the root: ``-h`` as well as ``--help`` (click
passes ``help_option_names`` down to every subcommand and group, plugin verbs included), and
shell completion (``--install-completion``, ``--show-completion``), whose script calls the
program by the name it is installed under, so :func:`main` names it ``wcd-hpc`` whichever way
it was started (``python -m wcd_hpc`` included). Help text is printed as written: docstrings of
commands are plain text, never reStructuredText (a test renders every ``--help``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from wcd_hpc import __version__
from wcd_hpc.cli import (
    control,
    evaluate,
    habits,
    journal,
    plugins,
    render,
    simulate,
    site,
    status,
    storage,
    studies,
    sweep,
    sync,
    train,
    worker,
)
from wcd_hpc.cli.common import err, registry
from wcd_hpc.engine.startup import configure_logging
from wcd_hpc.errors import WcdHpcError
from wcd_hpc.store.urls import mask_text


def report(exc: WcdHpcError) -> None:
    """Print one of our errors as the one line a user reads."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    err.print(f"[bold red]error:[/] {escape(mask_text(text))}", markup=True)


class App(typer.Typer):
    """The typer application, with the one place where our error family is caught."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except WcdHpcError as exc:
            report(exc)
            raise SystemExit(exc.exit_code) from None


app = App(
    name="wcd-hpc",
    help="Hyper-parameter sweeps of PyTorch classifiers for Water Cherenkov Detector data.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    cls=habits.Group,  # reflowed help, completion for the shell asked for, a --set hint
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: The program name in usage lines and in the completion script (whose variable is
#: ``_WCD_HPC_COMPLETE``), also when started as ``python -m wcd_hpc``.
PROG_NAME = "wcd-hpc"


def _version(value: bool) -> None:
    if value:
        print(f"wcd-hpc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Hyper-parameter sweeps of PyTorch classifiers for WCD data, on Slurm or locally."""


for module in (
    sweep,
    worker,
    status,
    studies,
    plugins,
    sync,
    render,
    site,
    train,
    evaluate,
    simulate,
    journal,
    control,
    storage,
    habits,
):
    module.register(app)


def main() -> None:
    """Run the CLI; the ``wcd-hpc`` command enters through :func:`wcd_hpc.__main__.main`."""
    configure_logging()
    registry(warn_problems=False).add_commands(app)
    app(prog_name=PROG_NAME)
