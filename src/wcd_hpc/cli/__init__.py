"""The ``wcd-hpc`` command: a thin typer app; every verb lives in its own module."""

from __future__ import annotations

import logging

import typer

from wcd_hpc import __version__
from wcd_hpc.cli import plugins, status, sweep, worker
from wcd_hpc.cli.common import registry

app = typer.Typer(
    name="wcd-hpc",
    help="Hyper-parameter sweeps of PyTorch classifiers for Water Cherenkov Detector data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"wcd-hpc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Hyper-parameter sweeps of PyTorch classifiers for WCD data, on Slurm or locally."""


for module in (sweep, worker, status, plugins):
    module.register(app)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("optuna").setLevel(logging.WARNING)
    registry(warn=False).add_commands(app)
    app()
