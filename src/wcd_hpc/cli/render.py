"""``wcd-hpc render``: write the exact sbatch scripts a sweep would use, for hand submission."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from wcd_hpc.cli.common import (
    ExperimentArgument,
    ProfileOption,
    SetOption,
    StorageOption,
    out,
    registry,
)
from wcd_hpc.launch.render import render_scripts, write_scripts
from wcd_hpc.launch.sweep import plan, start
from wcd_hpc.queue.schema import WORKER_SCRIPT


def render_cmd(
    experiment: ExperimentArgument,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Directory for worker.sbatch and sync.sbatch.")
    ],
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", min=1, help="Array tasks.")
    ] = None,
    storage: StorageOption = None,
    runs_dir: Annotated[
        Path | None, typer.Option("--runs-dir", help="Override the runs root.")
    ] = None,
    profile: ProfileOption = None,
    sets: SetOption = None,
) -> None:
    """Write worker.sbatch and sync.sbatch; sbatch DIR/worker.sbatch joins the same study.

    It also creates the study (or resumes it, as sweep would) so that hand-submitted workers
    find it and its budget; nothing is submitted.
    """
    flags: dict[str, tuple[str, Any]] = {"storage": ("--storage", storage)}
    if workers is not None:
        flags["workers"] = ("--workers", workers)
    if runs_dir is not None:  # as sweep takes it: the scripts and the study are the same
        flags["runs_dir"] = ("--runs-dir", runs_dir)
    p = plan(experiment, registry(), profile=profile, sets=sets or [], flags=flags)
    scripts = render_scripts(p.job())  # a value no script can hold is refused before the study
    start(p)
    for path in write_scripts(p.job(), out_dir, scripts):
        out.print(f"wrote {path}")
    out.print(f"submit: {shlex.join(['sbatch', str(out_dir / WORKER_SCRIPT)])}")


def register(app: typer.Typer) -> None:
    app.command("render")(render_cmd)
