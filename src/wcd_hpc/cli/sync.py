"""``wcd-hpc sync NAME``: copy a study and its trial directories to MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wcd_hpc.cli.common import RunsDirOption, StorageOption, StudyArgument, out
from wcd_hpc.cli.progress import sync_progress
from wcd_hpc.queue import study as studies
from wcd_hpc.results.viewing import closing_lines
from wcd_hpc.store.storage import chosen_storage


def sync_cmd(
    name: StudyArgument,
    storage: StorageOption = None,
    runs_dir: RunsDirOption = Path("runs"),
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri",
            help="MLflow tracking URI; default $MLFLOW_TRACKING_URI, else "
            "sqlite:///RUNS_DIR/mlflow.db.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Copy every finished, pruned or failed trial of a study to MLflow and register the best
    one as an MLflow PyTorch model (safe to rerun)."""
    # mlflow takes a second or two to import: only this verb pays for it.
    from wcd_hpc.results.sync import connect, sync_study, tracking_uri_for

    uri = tracking_uri_for(tracking_uri, runs_dir)
    opened = studies.open_existing(name, chosen_storage(storage), runs_dir)
    connect(uri)  # before the progress bar, so an unreachable server is one line
    with sync_progress() as tick:
        report = sync_study(opened.study, opened.run_dir, uri, progress=tick)
    out.print(report.line())
    for line in closing_lines(uri, report.experiment_id, opened.storage.url, opened.run_dir):
        out.print(line, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("sync")(sync_cmd)
