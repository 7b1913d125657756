"""``wcd-hpc simulate footprints|traces``: write simulated events to HDF5 (SWGO/LIP layout)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from wcd_hpc.cli.common import err, fail
from wcd_hpc.sim.footprints import PRIMARIES, write_footprints
from wcd_hpc.sim.traces import TraceConfig, write_traces

app = typer.Typer(
    help="Simulate WCD footprints or station traces into an HDF5 file.", no_args_is_help=True
)


@contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(label, total=total, rate="")

        def advance(n: int) -> None:
            bar.advance(task, n)
            speed = bar.tasks[task].speed
            bar.update(task, rate=f"{speed:,.0f} events/s" if speed else "")

        yield advance


Writer = Callable[[Callable[[int], None]], Path]


def _run(label: str, out: Path, events: int, write: Writer) -> None:
    if out.exists() and out.is_dir():
        fail(f"--out {out}: is a directory, expected an .h5 file path")
    try:
        with _progress(label, events) as advance:
            path = write(advance)
    except OSError as exc:
        fail(f"simulate {label}: {out}: {exc.strerror or exc}")
    except ValueError as exc:  # the simulators' own parameter checks
        fail(f"simulate {label}: {exc}")
    err.print(f"wrote {events:,} {label} to {path} (data + info table)")


@app.command("footprints")
def footprints_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="HDF5 file to write."),
    events: int = typer.Option(10_000, "--events", "-n", min=1, help="Number of showers."),
    primaries: str = typer.Option(
        "gamma,proton",
        "--primaries",
        help=f"Comma-separated primaries from {', '.join(PRIMARIES)}; Y_class is the index.",
    ),
    seed: int = typer.Option(1234, "--seed", min=0, help="Same seed, identical file."),
    grid: int = typer.Option(80, "--grid", min=4, max=512, help="Tanks per side (−160…160 m)."),
) -> None:
    """Shower footprints (N, grid, grid) in VEM plus the info table, written in chunks."""
    names = [p.strip() for p in primaries.split(",") if p.strip()]
    bad = [p for p in names if p not in PRIMARIES]
    if bad or len(names) < 1 or len(set(names)) != len(names):
        fail(f"--primaries: expected distinct names from {', '.join(PRIMARIES)}, got {primaries!r}")
    _run(
        "footprints",
        out,
        events,
        lambda advance: write_footprints(out, names, events, seed, grid=grid, progress=advance),
    )


@app.command("traces")
def traces_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="HDF5 file to write."),
    events: int = typer.Option(10_000, "--events", "-n", min=1, help="Number of station events."),
    seed: int = typer.Option(1234, "--seed", min=0, help="Same seed, identical file."),
    n_pmt: int = typer.Option(4, "--pmts", min=1, max=16, help="PMTs per tank."),
    dt_ns: float = typer.Option(2.0, "--dt-ns", min=0.5, max=10.0, help="Sampling period, ns."),
    window_ns: float = typer.Option(200.0, "--window-ns", min=50, max=1000, help="Window, ns."),
) -> None:
    """Station traces (N, pmts, samples) in photoelectrons; Y_class 1 = muon present, 0 = EM."""
    cfg = TraceConfig(n_pmt=n_pmt, dt_ns=dt_ns, window_ns=window_ns)
    _run(
        "traces",
        out,
        events,
        lambda advance: write_traces(out, events, seed, config=cfg, progress=advance),
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="simulate")
