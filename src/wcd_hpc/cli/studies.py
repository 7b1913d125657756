"""``wcd-hpc studies``: every study under a runs directory (or in a storage), with its state.

The listing itself is :func:`wcd_hpc.queue.listing.list_studies`; this module prints it. It only
reads: no reaper runs (``status NAME`` does that), no directory or lock file is created, and a
damaged journal is one ``error:`` line while the others are still listed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from wcd_hpc.cli.common import RunsDirOption, err, out
from wcd_hpc.queue import study as studies
from wcd_hpc.queue.listing import list_studies
from wcd_hpc.store.storage import chosen_storage
from wcd_hpc.store.urls import ENV_STORAGE


def _cell(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def studies_cmd(
    runs_dir: RunsDirOption = Path("runs"),
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help=f"List the studies in this storage; default ${ENV_STORAGE}, else the journals "
            "RUNS_DIR/*/journal.log.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (a stable interface).")
    ] = False,
) -> None:
    """List studies with their state, budget, trial counts, best value and run directory.

    Reads only: nothing is created, and trials whose worker died still count as running until
    status NAME reaps them. Exits 1 after listing when a journal could not be read.
    """
    listing = list_studies(runs_dir, chosen_storage(storage))
    if as_json:
        payload = {
            "where": listing.where,
            "studies": [row.to_dict() for row in listing.studies],
            "damaged": listing.damaged,
        }
        print(json.dumps(payload, indent=2))
    elif not listing.studies:
        out.print(f"no studies in {listing.where}")
    else:
        # One line per study, not a table: legible in 80 columns, and each line greps whole.
        out.print(f"studies in {listing.where}:")
        for row in listing.studies:
            metric = row.metric or "value"
            best = "-" if row.best_value is None else f"{metric}={row.best_value:.4f}"
            out.print(
                f"{row.name}: {row.state}, {studies.finished_of(row.finished, row.budget)} "
                f"finished ({row.complete} "
                f"complete, {row.pruned} pruned, {row.failed} failed, {row.running} running), "
                f"best {best}, run dir {_cell(row.run_dir)}"
            )
    for line in listing.damaged:
        err.print(f"[bold red]error:[/] {escape(line)}", markup=True)
    if listing.damaged:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("studies")(studies_cmd)
