"""``wcd-hpc evaluate``: metrics, per-energy-bin table and plots of a trained run on a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from wcd_hpc.cli.common import fail, out, print_table, registry
from wcd_hpc.store.urls import ENV_STORAGE


def _cell(row: dict[str, object], name: str) -> str:
    """A table cell: the value rounded to its interval, ``–`` without one, ``≥`` at the reach."""
    from wcd_hpc import merit

    value, lo, hi = row.get(name), row.get(f"{name}_lo"), row.get(f"{name}_hi")
    if not isinstance(value, (int, float)):
        return "–"
    text = merit.rounded(
        float(value),
        float(lo) if isinstance(lo, (int, float)) else None,
        float(hi) if isinstance(hi, (int, float)) else None,
    )
    reach = row.get("at_reach" if name == "q_factor" else f"{name}_at_reach")
    return f"≥ {text}" if reach else text


def evaluate_cmd(
    run_dir: Annotated[
        Path | None,
        typer.Argument(
            metavar="RUN_DIR",
            help="A trial or train run directory (holds model.pt).",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Argument(
            metavar="FILE",
            help="HDF5 file in the SWGO/LIP layout (data + info).",
            show_default=False,
        ),
    ] = None,
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
            help="Where to write (default RUN_DIR/evaluations/<file stem>; with --baseline "
            "./baseline-<file stem>).",
            show_default=False,
        ),
    ] = None,
    baseline_file: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            metavar="FILE.h5",
            help="Evaluate the classical baseline alone (compactness / muon-like hits, no "
            "model) on this gamma/hadron footprint file.",
            show_default=False,
        ),
    ] = None,
    baseline_train: Annotated[
        Path | None,
        typer.Option(
            "--baseline-train",
            metavar="TRAIN.h5",
            help="With --baseline: choose the cuts on this file (default: on half of FILE.h5, "
            "quoted on the other half).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Score a trained model on any file: metrics, a per-energy-bin table and plots.

    With --baseline FILE.h5 and no run: the classical gamma/hadron baseline alone.
    """
    if baseline_file is not None:
        if run_dir is not None or file is not None:
            fail("--baseline FILE.h5 evaluates the baseline alone: give no RUN_DIR or FILE")
        _baseline(baseline_file, baseline_train, output)
        return
    if baseline_train is not None:
        fail("--baseline-train needs --baseline FILE.h5")
    if run_dir is None or file is None:
        fail("give RUN_DIR and FILE (or --baseline FILE.h5)")
    from wcd_hpc.engine.evaluate import evaluate_file, load_run  # torch: only here
    from wcd_hpc.results.evaluation import BINNED_METRICS

    reg = registry()
    run = load_run(run_dir, reg, storage)
    result = evaluate_file(run, file, reg, data_key=data_key, normalise=normalise, out=output)
    out.print(f"{result.events} events from {file}, model {run.model} of {run_dir}")
    from wcd_hpc import merit

    out.print(f"cuts chosen on {result.cuts_chosen_on}; 68 % intervals")
    out.print(merit.format_values(result.metrics))
    if result.bins:
        table = Table(title="per energy bin, log10(E0/GeV)")
        names = [m for m in BINNED_METRICS if m in result.bins[0]]
        compared = any("baseline_q_at_eff" in row for row in result.bins)
        extra = ("baseline q_at_eff", "gain") if compared else ()
        for column in ("bin", "events", *names, *extra):
            table.add_column(column, justify="right")
        for row in result.bins:
            edges = f"{row['log10_e_min']:.1f}–{row['log10_e_max']:.1f}"
            cells = [_cell(row, m) for m in names]
            if compared:
                gain = row.get("gain_q_at_eff")
                cells += [
                    _cell(row, "baseline_q_at_eff"),
                    f"{gain:.2f}" if isinstance(gain, (int, float)) else "–",
                ]
            table.add_row(edges, str(row["events"]), *cells)
        print_table(table)
        if compared:
            out.print("baseline: the run's classical cuts (chosen on its training split)")
    else:
        out.print("no energy column in the file's info table: no per-bin table")
    if result.no_baseline:
        out.print(result.no_baseline)
    out.print(f"files: {result.out}")


def _baseline(path: Path, train: Path | None, output: Path | None) -> None:
    from wcd_hpc.results.baselinefile import evaluate_baseline

    result = evaluate_baseline(path, train=train, out=output)
    out.print(f"classical baseline on {result.events} events of {path}")
    out.print(f"cuts chosen on {result.chosen_on}; Q at 50% gamma efficiency:")
    table = Table(title="per energy bin, log10(E0/GeV)")
    for column in ("bin", "events", "baseline", "Q (68 % interval)"):
        table.add_column(column, justify="right")
    for row in [{"log10_e_min": None, **result.overall}, *result.bins]:
        lo = row.get("log10_e_min")
        edges = "all" if lo is None else f"{lo:.1f}–{row['log10_e_max']:.1f}"
        table.add_row(
            edges,
            str(row.get("events", result.events if lo is None else "–")),
            str(row.get("baseline_variant", "–")),
            _cell(row, "baseline_q_at_eff"),
        )
    print_table(table)
    out.print(f"files: {result.out}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_cmd)
