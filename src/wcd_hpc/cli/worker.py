"""``wcd-hpc worker``: join a study and work off its trials (what every launcher starts).

``wcd-hpc task-workers`` (hidden) is what an array task runs instead when it holds several
workers (``resources.trials_per_gpu``, or several GPUs): it starts them the way a local sweep
does and stands in for them towards Slurm.
"""

from __future__ import annotations

from typing import Annotated

import typer

from wcd_hpc.cli.common import err, registry
from wcd_hpc.engine.startup import paused_gc
from wcd_hpc.errors import StudyNotFound, UsageError
from wcd_hpc.launch.local import run_task_workers
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


def task_workers_cmd(
    study: Annotated[str, typer.Option("--study", help="Name of the study to work on.")],
    per_gpu: Annotated[
        int, typer.Option("--per-gpu", min=1, help="Workers per GPU the task holds.")
    ] = 1,
    storage: Annotated[
        str | None,
        typer.Option("--storage", help=f"Storage URL; default ${ENV_STORAGE}.", show_default=False),
    ] = None,
    worker_id: Annotated[
        str,
        typer.Option("--worker-id", help="Label of the task; its workers add /0, /1, …"),
    ] = "",
) -> None:
    """Run one array task's workers: per-gpu on each GPU Slurm gave the task.

    Each worker is pinned to one GPU and gets its share of the task's cores; SIGUSR2 and
    SIGTERM reach all of them, and after SIGUSR2 the task requeues itself once. Exit status as
    for worker (75: stopped by a signal, its workers' trials suspended).
    """
    url = from_env(storage)
    try:
        code = run_task_workers(study, url, per_gpu, worker_id)
    except StudyNotFound as exc:
        raise UsageError(str(exc)) from None
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker_cmd)
    app.command("task-workers", hidden=True)(task_workers_cmd)
