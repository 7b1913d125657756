"""``wcd-hpc simulate footprints|traces``: write simulated events to HDF5 (SWGO/LIP layout).

A simulated file can take an hour and a typo in ``--out`` is one keystroke, so the command never
replaces an existing file unless told to (``--force``), and never scatters directories across
the filesystem: missing directories are made below the working directory only, elsewhere when
asked (``--parents``). The file is simulated into a hidden name beside ``--out`` and moved into
place at the end (:func:`wcd_hpc.sim.h5io.publish`), so a failed or interrupted run leaves
nothing behind, and a file that appears at ``--out`` meanwhile is not replaced either.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

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
from wcd_hpc.output.files import disk_full_text, is_disk_full
from wcd_hpc.sim.footprints import PRIMARIES, write_footprints
from wcd_hpc.sim.h5io import MAX_EVENTS, MAX_SEED, publish
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


#: ``write(path, advance)`` simulates into ``path``, telling ``advance`` each chunk's size.
Writer = Callable[[Path, Callable[[int], None]], object]

OutOption = Annotated[
    Path, typer.Option("--out", "-o", help="HDF5 file to write.", show_default=False)
]
SeedOption = Annotated[
    int, typer.Option("--seed", min=0, max=MAX_SEED, help="Same seed, identical file.")
]
ForceOption = Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")]
ParentsOption = Annotated[
    bool,
    typer.Option(
        "--parents",
        help="Create missing directories of --out anywhere (default: below the working "
        "directory only).",
    ),
]


def _below_cwd(directory: Path) -> bool:
    return (Path.cwd() / directory).resolve().is_relative_to(Path.cwd().resolve())


def _check_out(out: Path, *, force: bool, parents: bool) -> list[Path]:
    """Refuse an ``--out`` the command must not touch; return the directories to make for it.

    The directories come innermost first (the order to remove them in). Whether they lie below
    the working directory is judged on the resolved path, so ``../x`` or a symlink out of it
    counts as elsewhere.
    """
    if out.is_dir():
        fail(f"--out {out}: is a directory, expected an .h5 file path")
    if os.path.lexists(out) and not force:
        fail(f"--out {out}: file exists; pass --force to replace it")
    missing: list[Path] = []
    for directory in (out.parent, *out.parent.parents):
        if os.path.lexists(directory):
            if not directory.is_dir():
                fail(f"--out {out}: {directory} is not a directory")
            break
        missing.append(directory)
    if missing and not parents and not all(_below_cwd(d) for d in missing):
        fail(
            f"--out {out}: directory {out.parent} does not exist and is outside the working "
            "directory; pass --parents to create it"
        )
    return missing


@contextmanager
def _staging(out: Path, missing: list[Path]) -> Iterator[Path]:
    """A hidden empty file beside ``out`` to simulate into; on failure it and ``missing`` go."""
    staging: Path | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
        os.close(fd)
        staging = Path(name)
        yield staging
    except BaseException:
        if staging is not None:
            staging.unlink(missing_ok=True)
        for directory in missing:  # innermost first; stop at one that holds something else
            try:
                directory.rmdir()
            except OSError:
                break
        raise


def _run(label: str, out: Path, events: int, write: Writer, *, force: bool, parents: bool) -> None:
    missing = _check_out(out, force=force, parents=parents)
    try:
        with _staging(out, missing) as staging:
            with _progress(label, events) as advance:
                write(staging, advance)
            try:
                publish(staging, out, replace=force)
            except FileExistsError:
                fail(f"--out {out}: a file appeared there while simulating; --force replaces it")
    except OSError as exc:
        cause = disk_full_text(out) if is_disk_full(exc) else f"{out}: {exc.strerror or exc}"
        fail(f"simulate {label}: {cause}")
    except ValueError as exc:  # the simulators' own parameter checks
        fail(f"simulate {label}: {exc}")
    err.print(f"wrote {events:,} {label} to {out} (data + info table)")


@app.command("footprints")
def footprints_cmd(
    out: OutOption,
    events: Annotated[
        int, typer.Option("--events", "-n", min=1, max=MAX_EVENTS, help="Number of showers.")
    ] = 10_000,
    primaries: Annotated[
        str,
        typer.Option(
            "--primaries",
            help=f"Comma-separated primaries from {', '.join(PRIMARIES)}; Y_class is the index.",
        ),
    ] = "gamma,proton",
    seed: SeedOption = 1234,
    grid: Annotated[
        int, typer.Option("--grid", min=4, max=512, help="Tanks per side (−160…160 m).")
    ] = 80,
    force: ForceOption = False,
    parents: ParentsOption = False,
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
        lambda path, advance: write_footprints(
            path, names, events, seed, grid=grid, progress=advance
        ),
        force=force,
        parents=parents,
    )


@app.command("traces")
def traces_cmd(
    out: OutOption,
    events: Annotated[
        int, typer.Option("--events", "-n", min=1, max=MAX_EVENTS, help="Number of station events.")
    ] = 10_000,
    seed: SeedOption = 1234,
    n_pmt: Annotated[int, typer.Option("--pmts", min=1, max=16, help="PMTs per tank.")] = 4,
    dt_ns: Annotated[
        float, typer.Option("--dt-ns", min=0.5, max=10.0, help="Sampling period, ns.")
    ] = 2.0,
    window_ns: Annotated[
        float, typer.Option("--window-ns", min=50, max=1000, help="Window, ns.")
    ] = 200.0,
    force: ForceOption = False,
    parents: ParentsOption = False,
) -> None:
    """Station traces (N, pmts, samples) in photoelectrons; Y_class 1 = muon present, 0 = EM."""
    cfg = TraceConfig(n_pmt=n_pmt, dt_ns=dt_ns, window_ns=window_ns)
    _run(
        "traces",
        out,
        events,
        lambda path, advance: write_traces(path, events, seed, config=cfg, progress=advance),
        force=force,
        parents=parents,
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="simulate")
