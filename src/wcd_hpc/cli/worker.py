"""``wcd-hpc worker``: join a study and work off its trials (what every launcher starts)."""

from __future__ import annotations

from typing import Annotated

import typer

from wcd_hpc.cli.common import err, registry
from wcd_hpc.engine.startup import paused_gc
from wcd_hpc.errors import StudyNotFound, UsageError
from wcd_hpc.queue.urls import ENV_STORAGE, from_env


def worker_cmd(
    study: Annotated[str, typer.Option("--study", help="Name of the study to work on.")],
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help=f"Storage URL (journal:PATH, sqlite:///…, postgresql://…); "
            f"default ${ENV_STORAGE}.",
            show_default=False,
        ),
    ] = None,
    worker_id: Annotated[str, typer.Option("--worker-id", help="Label shown in status.")] = "",
    max_trials: Annotated[
        int | None,
        typer.Option(min=1, help="Stop after this many trials even if budget remains."),
    ] = None,
) -> None:
    """Pull trials from the study until its global budget is met, then exit.

    Exit status: 0 budget met, 2 unusable input (not restarted), 3 too many failed trials in a
    row, 75 stopped by a signal with its trial suspended (a fresh worker resumes it).
    """
    with paused_gc():  # the worker engine imports torch: see wcd_hpc.engine.startup
        from wcd_hpc.engine.worker import run_worker

    registry()
    url = from_env(storage)
    try:
        summary = run_worker(study, url, worker=worker_id, max_trials=max_trials)
    except StudyNotFound as exc:
        # Status 1 elsewhere, but to a launcher 1 is a crash worth a restart; a worker started
        # for a study that is not there would fail the same way again (EXIT_USAGE, 2).
        raise UsageError(str(exc)) from None
    err.print(
        f"worker done: {summary.complete} complete, {summary.pruned} pruned, "
        f"{summary.failed} failed ({summary.reason or 'stopped'})"
    )
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker_cmd)
