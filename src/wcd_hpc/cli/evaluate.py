"""``wcd-hpc evaluate``: metrics, per-energy-bin table and plots of a trained run on a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from wcd_hpc.cli.common import out, registry
from wcd_hpc.queue.urls import ENV_STORAGE


def _cell(value: object) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def evaluate_cmd(
    run_dir: Annotated[
        Path,
        typer.Argument(metavar="RUN_DIR", help="A trial or train run directory (holds model.pt)."),
    ],
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="HDF5 file in the SWGO/LIP layout (data + info)."),
    ],
    data_key: Annotated[
        str, typer.Option("--data-key", help="HDF5 dataset with the events.")
    ] = "data",
    normalise: Annotated[
        str | None,
        typer.Option(
            "--normalise",
            help="Override the training normalisation (log1p | none).",
            show_default=False,
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            envvar=ENV_STORAGE,
            help="Study storage of a sweep trial.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where to write (default RUN_DIR/evaluations/<file stem>).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Score a trained model on any file: metrics, a per-energy-bin table and plots."""
    from wcd_hpc.engine.evaluate import evaluate_file, load_run  # torch: only here
    from wcd_hpc.results.evaluation import BINNED_METRICS

    reg = registry()
    run = load_run(run_dir, reg, storage)
    result = evaluate_file(run, file, reg, data_key=data_key, normalise=normalise, out=output)
    out.print(f"{result.events} events from {file}, model {run.model} of {run_dir}")
    shown = (f"{k}={'undefined' if v is None else f'{v:.4f}'}" for k, v in result.metrics.items())
    out.print(", ".join(shown))
    if result.bins:
        table = Table(title="per energy bin, log10(E0/GeV)")
        names = [m for m in BINNED_METRICS if m in result.bins[0]]
        for column in ("bin", "events", *names):
            table.add_column(column, justify="right")
        for row in result.bins:
            edges = f"{row['log10_e_min']:.1f}–{row['log10_e_max']:.1f}"
            table.add_row(edges, str(row["events"]), *(_cell(row[m]) for m in names))
        out.print(table)
    else:
        out.print("no energy column in the file's info table: no per-bin table")
    out.print(f"files: {result.out}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_cmd)
