"""``wcd-hpc plugins``: list the loaded plugin objects (the default) or scaffold a new plugin.

``plugins`` is a group whose callback lists when no subcommand is given, so ``wcd-hpc plugins``
and ``wcd-hpc plugins --json`` behave as they did before ``plugins new`` existed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from wcd_hpc.cli.common import err, fail, out, print_table, registry, warn
from wcd_hpc.scaffold import create

JSON_HELP = "Print JSON (a stable interface)."


JsonOption = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def plugins_cmd(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List models, datasets and metrics with the distribution that provides each.

    Exits 1 when a plugin failed to load, after listing everything that did load.
    """
    if ctx.invoked_subcommand is None:
        list_plugins(as_json)


def list_cmd(as_json: JsonOption = False) -> None:
    """List models, datasets and metrics with the distribution that provides each."""
    list_plugins(as_json)


def new_cmd(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME", help="Plugin, distribution and model name, e.g. demo-model."
        ),
    ],
    directory: Annotated[Path, typer.Option("--dir", help="Where to create NAME/.")] = Path("."),
) -> None:
    """Scaffold a plugin distribution NAME/ that pip-installs and passes its own tests."""
    try:
        target = create(name, directory, taken=set(registry(warn_problems=False).models))
    except OSError as exc:
        fail(f"{directory}: {exc.strerror or exc}")
    shown = str(target) if target.is_absolute() else f"./{target}"  # not a PyPI name to pip
    out.print(f"created {shown}: pip install '{shown}[test]' && pytest {shown}/tests", markup=False)


def list_plugins(as_json: bool) -> None:
    """Print the registry as a table or JSON; exit 1 after listing if any plugin failed."""
    reg = registry(warn_problems=False)
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
            "warnings": reg.warnings,
        }
        out.print_json(json.dumps(payload))
    else:
        table = Table(title="wcd-hpc plugins")
        for column in ("kind", "name", "distribution", "version", "description"):
            table.add_column(column)
        for e in rows:
            desc = getattr(e.obj, "description", "")
            table.add_row(e.kind, e.name, e.source.distribution, e.source.version, desc)
        print_table(table)
        for line in reg.warnings:
            warn(line)
        for line in reg.errors:
            err.print(f"[bold red]error:[/] {escape(line)}", markup=True)
    if reg.errors:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="List plugins (the default) or scaffold a new one.", add_completion=False
    )
    group.callback(invoke_without_command=True)(plugins_cmd)
    group.command("list")(list_cmd)
    group.command("new")(new_cmd)
    app.add_typer(group, name="plugins")
