"""``wcd-hpc`` and ``python -m wcd_hpc``: the process entry points, above every layer.

The entry point lives outside :mod:`wcd_hpc.cli` so that the CLI's imports and the plugin
registry load with the garbage collector paused (see :mod:`wcd_hpc.engine.startup`). No module
of the package imports this one: a Slurm array task, the other entry point, starts from a
worker spec (:mod:`wcd_hpc.launch.task`) and never passes through the CLI.

Before anything else, both put :class:`~wcd_hpc.output.masking.MaskedStream` in front of stdout and
stderr: whatever the process prints from then on — our lines, click's usage errors, a plugin's
output, the traceback of a bug — reaches the terminal or the log file with its secrets masked.
"""

from __future__ import annotations

from wcd_hpc.engine.startup import paused_gc
from wcd_hpc.output.masking import mask_standard_streams
from wcd_hpc.store.urls import SECRET_VARIABLES


def preload_cli() -> None:
    """Import the CLI (optuna, typer, rich, …) and load the plugin registry with GC paused.

    None of it imports torch (plugins import it when they build a model or load data), so a
    command on a login node answers in a fraction of a second and ``sweep`` submits before any
    torch import.
    """
    with paused_gc():
        import wcd_hpc.cli  # noqa: F401
        from wcd_hpc.plugins import get_registry

        get_registry()


def main() -> None:
    mask_standard_streams(*SECRET_VARIABLES)
    preload_cli()
    from wcd_hpc.cli import main as run_cli

    run_cli()


if __name__ == "__main__":
    main()
