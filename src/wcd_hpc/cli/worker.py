"""``wcd-hpc worker``: join a study and work off its trials (what every launcher starts)."""

from __future__ import annotations

import typer

from wcd_hpc.cli.common import err, friendly, registry
from wcd_hpc.startup import preload_worker
from wcd_hpc.storage import ENV_STORAGE, from_env


@friendly
def worker_cmd(
    study: str = typer.Option(..., "--study", help="Name of the study to work on."),
    storage: str | None = typer.Option(
        None,
        "--storage",
        help=f"Storage URL (journal:PATH, sqlite:///…, postgresql://…); default ${ENV_STORAGE}.",
        show_default=False,
    ),
    worker_id: str = typer.Option("", "--worker-id", help="Label shown in status."),
    max_trials: int | None = typer.Option(
        None, "--max-trials", min=1, help="Stop after this many trials even if budget remains."
    ),
) -> None:
    """Pull trials from the study until its global budget is met, then exit."""
    preload_worker()
    from wcd_hpc.engine.worker import EXIT_SUSPENDED, EXIT_TOO_MANY_FAILURES, run_worker

    registry()
    url = from_env(storage)
    summary = run_worker(study, url, worker=worker_id, max_trials=max_trials)
    err.print(
        f"worker done: {summary.complete} complete, {summary.pruned} pruned, "
        f"{summary.failed} failed ({summary.reason or 'stopped'})"
    )
    if summary.interrupted:
        raise typer.Exit(EXIT_SUSPENDED)
    if not summary.ok:
        raise typer.Exit(EXIT_TOO_MANY_FAILURES)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker_cmd)
