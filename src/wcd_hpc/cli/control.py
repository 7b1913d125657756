"""``wcd-hpc cancel NAME`` and ``wcd-hpc retry NAME``."""

from __future__ import annotations

from pathlib import Path

import typer

from wcd_hpc import study as studies
from wcd_hpc.cli.common import friendly, out
from wcd_hpc.cli.status import locate
from wcd_hpc.control import cancel, retry
from wcd_hpc.storage import ENV_STORAGE, open_storage

STORAGE = typer.Option(
    None,
    "--storage",
    envvar=ENV_STORAGE,
    show_default=False,
    help="Storage URL; default: the study's journal under --runs-dir.",
)
RUNS = typer.Option(Path("runs"), "--runs-dir", help="Root of run directories.")


@friendly
def cancel_cmd(
    name: str = typer.Argument(..., help="Study name."),
    storage: str | None = STORAGE,
    runs_dir: Path = RUNS,
) -> None:
    """Cancel the study's Slurm jobs and local workers; its running trials are marked failed."""
    url = locate(name, storage, runs_dir)
    result = cancel(studies.load(name, open_storage(url), url), url)
    out.print(
        f"scancel: {', '.join(result.jobs) or 'no Slurm jobs'}; "
        f"local workers stopped: {len(result.local_pids)}; "
        f"running trials marked failed: {len(result.trials)}"
    )
    out.print(
        f"finished trials are kept; resume with: wcd-hpc sweep <experiment>  "
        f"(or retry the failed ones: wcd-hpc retry {name})"
    )


@friendly
def retry_cmd(
    name: str = typer.Argument(..., help="Study name."),
    storage: str | None = STORAGE,
    runs_dir: Path = RUNS,
) -> None:
    """Enqueue the parameters of failed trials again; the next workers run them first."""
    url = locate(name, storage, runs_dir)
    numbers = retry(studies.load(name, open_storage(url), url), url)
    listed = ", ".join(map(str, numbers)) if numbers else "none"
    out.print(f"re-enqueued {len(numbers)} failed trial(s): {listed}")
    if numbers:
        out.print("run `wcd-hpc sweep <experiment>` (or sbatch worker.sbatch) to work them off")


def register(app: typer.Typer) -> None:
    app.command("cancel")(cancel_cmd)
    app.command("retry")(retry_cmd)
