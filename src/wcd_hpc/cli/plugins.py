"""``wcd-hpc plugins``: every loaded plugin object with its kind, distribution and version."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from wcd_hpc.cli.common import err, out, registry


def plugins_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print JSON (a stable interface)."),
) -> None:
    """List models, datasets and metrics with the distribution that provides each.

    Exits 1 when a plugin failed to load, after listing everything that did load.
    """
    reg = registry(warn=False)
    rows = sorted(reg.entries(), key=lambda e: (e.kind, e.name))
    if as_json:
        payload = {
            "plugins": [
                {
                    "kind": e.kind,
                    "name": e.name,
                    "plugin": e.source.plugin,
                    "distribution": e.source.distribution,
                    "version": e.source.version,
                    "description": getattr(e.obj, "description", ""),
                }
                for e in rows
            ],
            "errors": reg.errors,
        }
        out.print_json(json.dumps(payload))
    else:
        table = Table(title="wcd-hpc plugins")
        for column in ("kind", "name", "distribution", "version", "description"):
            table.add_column(column)
        for e in rows:
            desc = getattr(e.obj, "description", "")
            table.add_row(e.kind, e.name, e.source.distribution, e.source.version, desc)
        out.print(table)
        for line in reg.errors:
            err.print(f"[bold red]error:[/] {line}", markup=True)
    if reg.errors:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("plugins")(plugins_cmd)
