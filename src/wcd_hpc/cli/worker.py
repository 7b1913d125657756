"""``wcd-hpc worker``: join a study and work off its trials (what every launcher starts).

``wcd-hpc task-workers`` (hidden) runs the workers of one array task (``resources.trials_per_gpu``,
or several GPUs): it starts them the way a local sweep does and stands in for them towards
Slurm. A submitit array task does the same from a worker spec without this CLI; the verb is
what a hand-submitted ``worker.sbatch`` and the image run. Both verbs build the spec and call
:func:`wcd_hpc.launch.task.work`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from wcd_hpc.experiment.keys import MAX_TRIALS, MAX_TRIALS_PER_GPU
from wcd_hpc.launch.spec import WorkerSpec
from wcd_hpc.launch.task import work
from wcd_hpc.store.urls import ENV_STORAGE


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
        typer.Option(
            min=1, max=MAX_TRIALS, help="Stop after this many trials even if budget remains."
        ),
    ] = None,
) -> None:
    """Pull trials from the study until its global budget is met, then exit.

    Exit status: 0 budget met, 2 unusable input (not restarted), 3 too many failed trials in a
    row, 75 stopped by a signal with its trial suspended (a fresh worker resumes it), 69 the
    storage unreachable for the whole retry window (its trial is left to be resumed).
    """
    code = work(WorkerSpec(study, storage, label=worker_id, max_trials=max_trials))
    if code:
        raise typer.Exit(code)


def task_workers_cmd(
    study: Annotated[str, typer.Option("--study", help="Name of the study to work on.")],
    per_gpu: Annotated[
        int,
        typer.Option(
            "--per-gpu", min=1, max=MAX_TRIALS_PER_GPU, help="Workers per GPU the task holds."
        ),
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
    code = work(WorkerSpec(study, storage, per_gpu=per_gpu, label=worker_id))
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker_cmd)
    app.command("task-workers", hidden=True)(task_workers_cmd)
