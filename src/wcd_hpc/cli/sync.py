"""``wcd-hpc sync NAME``: copy a study and its trial directories to MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from wcd_hpc import study as studies
from wcd_hpc.cli.common import err, fail, friendly, out
from wcd_hpc.cli.status import locate
from wcd_hpc.storage import ENV_STORAGE, open_storage

if TYPE_CHECKING:  # mlflow takes a second or two to import: only the sync verb pays for it
    from wcd_hpc.sync import SyncReport

EXIT_SYNC_FAILED = 1


def run_with_progress(st: optuna.Study, run_dir: Path, uri: str) -> SyncReport:
    """``sync_study`` with a rich progress bar on stderr (what ``sweep`` can reuse)."""
    from wcd_hpc.sync import sync_study

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task("sync", total=None)

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return sync_study(st, run_dir, uri, progress=tick)


@friendly
def sync_cmd(
    name: str = typer.Argument(..., help="Study name."),
    storage: str | None = typer.Option(
        None,
        "--storage",
        envvar=ENV_STORAGE,
        help="Storage URL; default: the study's journal under --runs-dir.",
        show_default=False,
    ),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Root of run directories."),
    tracking_uri: str | None = typer.Option(
        None,
        "--tracking-uri",
        help="MLflow tracking URI; default $MLFLOW_TRACKING_URI, else sqlite:///RUNS_DIR/mlflow.db.",
        show_default=False,
    ),
) -> None:
    """Copy every finished, pruned or failed trial of a study to MLflow (safe to rerun)."""
    from wcd_hpc.sync import SyncError, connect, tracking_uri_for

    url = locate(name, storage, runs_dir)
    st = studies.load(name, open_storage(url), url)
    run_dir = runs_dir / name
    if not run_dir.is_dir():
        run_dir = Path(str(st.user_attrs.get(studies.ATTR_RUN_DIR, run_dir)))
    uri = tracking_uri_for(tracking_uri, runs_dir)
    try:
        connect(uri)  # before the progress bar, so an unreachable server is one line
        report = run_with_progress(st, run_dir, uri)
    except SyncError as exc:
        fail(str(exc), code=EXIT_SYNC_FAILED)
    out.print(report.line())


def register(app: typer.Typer) -> None:
    app.command("sync")(sync_cmd)
