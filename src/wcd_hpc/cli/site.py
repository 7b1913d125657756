"""``wcd-hpc profiles`` and ``wcd-hpc doctor``: the site side of running sweeps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from wcd_hpc.cli.common import out, print_table
from wcd_hpc.errors import ConfigError
from wcd_hpc.experiment.config import DEFAULTS, validate_profile
from wcd_hpc.experiment.sources import load_profile
from wcd_hpc.launch.doctor import run_checks
from wcd_hpc.launch.settings import parse_site, profile_dirs, site_profile
from wcd_hpc.store.urls import mask, mask_text, resolve


def profiles_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the site profiles found and check each one.

    They are looked for in ./slurm/profiles, then ~/.config/wcd-hpc/profiles, then among those
    shipped with wcd-hpc; a name found twice is listed where --profile NAME finds it first.
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
        print_table(table)
        for r in rows:
            if r["error"]:
                out.print(f"[bold red]error:[/] {escape(r['error'])}", markup=True)
    if any(r["error"] for r in rows):
        raise typer.Exit(1)


def doctor_cmd(
    profile: Annotated[
        str | None,
        typer.Option("--profile", help="Site profile name or path.", show_default=False),
    ] = None,
    storage: Annotated[
        str | None, typer.Option("--storage", help="Storage URL to check.", show_default=False)
    ] = None,
    runs_dir: Annotated[
        Path | None, typer.Option("--runs-dir", help="Runs root to check.", show_default=False)
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help='Print {"ok", "checks": [...]} as JSON (a stable interface).'),
    ] = False,
) -> None:
    """Check sbatch/sacct, the container runtime and image, GPUs, storage and the runs root.

    Exits 1 when a required check fails; a failed optional check is a warning.
    """
    prof = site_profile(profile)
    data = prof or {}
    site = parse_site(prof, str(profile or "<profile>"))
    root = runs_dir or Path(str(data.get("runs_dir", DEFAULTS["runs_dir"])))
    url = resolve(storage or str(data.get("storage", "journal")), root / "doctor-check")
    slurm_required = data.get("executor", DEFAULTS["executor"]) == "slurm"
    checks = run_checks(site, url, root, slurm_required)
    failed = sum(1 for check in checks if not check.ok and check.required)
    if as_json:
        document = {
            "ok": not failed,
            "profile": profile,
            "storage": mask(url),
            "runs_dir": str(root),
            "checks": [
                {
                    "name": c.name,
                    "ok": c.ok,
                    "required": c.required,
                    "detail": mask_text(c.detail),
                    "fix": c.fix or None,
                }
                for c in checks
            ],
        }
        print(json.dumps(document, indent=2))
    for check in [] if as_json else checks:
        mark = (
            "[green]ok[/]  "
            if check.ok
            else ("[red]FAIL[/]" if check.required else "[yellow]warn[/]")
        )
        line = f"{mark} {escape(check.name)}: {escape(check.detail)}"
        if not check.ok and check.fix:
            line += f" — fix: {escape(check.fix)}"
        out.print(line, markup=True)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("profiles")(profiles_cmd)
    app.command("doctor")(doctor_cmd)
