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

import logging
import os
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
from wcd_hpc.errors import WcdHpcError
from wcd_hpc.queue.urls import MaskSecrets, mask_text


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


def _configure_logging() -> None:
    """Our own INFO lines (worker progress) on stderr; other libraries only from WARNING up, so
    that a user error stays one line whatever pandas, numexpr or mlflow like to announce."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskSecrets) for f in handler.filters):
            handler.addFilter(MaskSecrets())
    logging.getLogger("wcd_hpc").setLevel(logging.INFO)
    for chatty in ("optuna", "mlflow", "alembic"):  # they bring handlers of their own
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # mlflow resets its logger to INFO when it is first imported (lazily, by `sync`), unless told
    # otherwise; a user's own MLFLOW_LOGGING_LEVEL wins.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def main() -> None:
    """Run the CLI; the ``wcd-hpc`` command enters through :func:`wcd_hpc.__main__.main`."""
    _configure_logging()
    registry(warn_problems=False).add_commands(app)
    app(prog_name=PROG_NAME)


def run(args: list[str]) -> int:
    """Run the CLI in this process with ``args`` and return its exit status.

    Slurm array tasks use it to start the worker without a second Python interpreter (and a
    second torch import) when no container is involved.
    """
    _configure_logging()
    try:
        # Without standalone mode click *returns* the status of a ``typer.Exit`` (how ``fail``
        # leaves) instead of raising it; a worker's one-line error must still fail the task.
        code = app(args=args, standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return code if isinstance(code, int) else 0
