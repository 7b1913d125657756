"""``wcd-hpc render``: write the exact sbatch scripts a sweep would use, for hand submission."""

from __future__ import annotations

from pathlib import Path

import typer

from wcd_hpc.cli.common import friendly, out, registry, site_profile
from wcd_hpc.launch.render import Job, write_scripts
from wcd_hpc.launch.settings import parse_site
from wcd_hpc.sweep import plan, start


@friendly
def render_cmd(
    experiment: Path = typer.Argument(..., help="Experiment file (YAML)."),
    out_dir: Path = typer.Option(..., "--out", help="Directory for worker.sbatch and sync.sbatch."),
    workers: int | None = typer.Option(None, "--workers", "-w", min=1, help="Array tasks."),
    profile: str | None = typer.Option(None, "--profile", help="Site profile name or path."),
    sets: list[str] = typer.Option([], "--set", help="Override any key: --set epochs=3."),
) -> None:
    """Write worker.sbatch and sync.sbatch; ``sbatch DIR/worker.sbatch`` joins the same study.

    It also creates the study (or resumes it, as ``sweep`` would) so that hand-submitted workers
    find it and its budget; nothing is submitted.
    """
    reg = registry()
    overrides = [*sets, *([f"workers={workers}"] if workers else [])]
    prof = site_profile(profile)
    p = plan(experiment, reg, profile=prof, overrides=overrides)
    job = Job(p.exp, p.url, p.run_dir, p.exp.workers, parse_site(prof, str(profile or "<profile>")))
    start(p)
    for path in write_scripts(job, out_dir):
        out.print(f"wrote {path}")
    out.print(f"submit: sbatch {out_dir / 'worker.sbatch'}")


def register(app: typer.Typer) -> None:
    app.command("render")(render_cmd)
