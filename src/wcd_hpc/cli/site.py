"""``wcd-hpc profiles`` and ``wcd-hpc doctor``: the site side of running sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from wcd_hpc.cli.common import out
from wcd_hpc.errors import ConfigError
from wcd_hpc.experiment.config import DEFAULTS, validate_profile
from wcd_hpc.experiment.sources import load_profile
from wcd_hpc.launch.doctor import run_checks
from wcd_hpc.launch.settings import parse_site, profile_dirs, site_profile
from wcd_hpc.queue.urls import resolve


def profiles_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the site profiles found and check them: ./slurm/profiles, then
    ~/.config/wcd-hpc/profiles, then those shipped with wcd-hpc; a name found twice is listed
    where ``--profile NAME`` finds it first.

    Exits 1 when a profile is invalid; each problem is one line naming file and key.
    """
    rows = []
    seen: set[str] = set()
    for directory in profile_dirs():
        for path in sorted(directory.glob("*.toml")) if directory.is_dir() else []:
            if path.stem in seen:
                continue
            seen.add(path.stem)
            try:
                data = load_profile(str(path), [])
                validate_profile(data, str(path))
                site = parse_site(data, str(path))
                problem = ""
            except ConfigError as exc:
                data, site, problem = {}, None, str(exc)
            rows.append(
                {
                    "name": path.stem,
                    "path": str(path),
                    "executor": data.get("executor", DEFAULTS["executor"]),
                    "partition": site.slurm.partition if site else None,
                    "image": site.container.image if site else None,
                    "description": data.get("description", ""),
                    "error": problem or None,
                }
            )
    if as_json:
        print(json.dumps({"profiles": rows}, indent=2))
    else:
        table = Table(title="site profiles")
        for col in ("name", "executor", "partition", "image", "path", "status"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                r["name"],
                str(r["executor"]),
                r["partition"] or "-",
                r["image"] or "-",
                r["path"],
                Text("invalid", style="red") if r["error"] else Text("ok", style="green"),
            )
        out.print(table)
        for r in rows:
            if r["error"]:
                out.print(f"[bold red]error:[/] {escape(r['error'])}", markup=True)
    if any(r["error"] for r in rows):
        raise typer.Exit(1)


def doctor_cmd(
    profile: str | None = typer.Option(None, "--profile", help="Site profile name or path."),
    storage: str | None = typer.Option(None, "--storage", help="Storage URL to check."),
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="Runs root to check."),
) -> None:
    """Check sbatch/sacct, the container runtime and image, GPUs, storage and the runs root."""
    prof = site_profile(profile)
    data = prof or {}
    site = parse_site(prof, str(profile or "<profile>"))
    root = runs_dir or Path(str(data.get("runs_dir", DEFAULTS["runs_dir"])))
    url = resolve(storage or str(data.get("storage", "journal")), root / "doctor-check")
    slurm_required = data.get("executor", DEFAULTS["executor"]) == "slurm"
    failed = 0
    for check in run_checks(site, url, root, slurm_required):
        mark = (
            "[green]ok[/]  "
            if check.ok
            else ("[red]FAIL[/]" if check.required else "[yellow]warn[/]")
        )
        line = f"{mark} {escape(check.name)}: {escape(check.detail)}"
        if not check.ok and check.fix:
            line += f" — fix: {escape(check.fix)}"
        out.print(line, markup=True)
        failed += int(not check.ok and check.required)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("profiles")(profiles_cmd)
    app.command("doctor")(doctor_cmd)
