"""mkdocs hooks (``hooks:`` in mkdocs.yml): the reference pages generated from the code itself.

A page that holds a marker ``<!-- generated: NAME -->`` gets it replaced, at every build, by
what :data:`GENERATORS` makes from the code: the CLI from the typer application, every
experiment key from the validator's table (``wcd_hpc.experiment.keys``), every
site-profile key from the profile dataclasses, every plugin hook from ``wcd_hpc.hookspecs``.
Nothing generated is committed, so nothing generated can go stale; a key the validator accepts
without documentation makes the build fail. The tests import this module and check its output.
"""

from __future__ import annotations

import dataclasses
import html
import inspect
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!-- generated: ([a-z-]+) -->")
#: Files outside docs/ that pages show: every figure a benchmark wrote (``benchmarks/*.png``),
#: at ``assets/NAME`` in the site, so a new sitting's plot needs no entry here.
FIGURES = "benchmarks/*.png"


def extra_files() -> list[tuple[str, str]]:
    """(source in the repository, path in the site) of each file :data:`FIGURES` matches."""
    return [
        (str(path.relative_to(ROOT)), f"assets/{path.name}") for path in sorted(ROOT.glob(FIGURES))
    ]


def _cell(text: object) -> str:
    """Text fit for one cell of a Markdown table."""
    return " ".join(str(text).split()).replace("|", "\\|")


# --------------------------------------------------------------------------------------------
# The CLI


def commands() -> Iterator[tuple[list[str], Any]]:
    """Every visible command of ``wcd-hpc``, depth first, as (path, click command)."""
    import typer.main

    from wcd_hpc.cli import app

    def walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
        if getattr(command, "hidden", False):
            return
        if path:
            yield path, command
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, [*path, name])

    yield from walk(typer.main.get_command(app), [])


KINDS = {"int": "integer", "float": "number", "str": "text", "Path": "path", "bool": "flag"}


def _kind(param: Any) -> str:
    """A parameter's type in words, from what typer read off the command's annotations."""
    if getattr(param, "is_flag", False):
        return "flag"
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    base = getattr(annotation, "__origin__", None)
    if base in (list, tuple) or getattr(param, "multiple", False):
        inner = args[0] if args else str
        return f"{KINDS.get(getattr(inner, '__name__', ''), 'text')}, repeatable"
    named = args[0] if args and base is not None else annotation
    kind = KINDS.get(getattr(named, "__name__", ""), getattr(named, "__name__", "") or "text")
    if getattr(param, "min", None) is not None:
        kind += f" ≥ {param.min}"
    return kind


def _param_row(param: Any) -> str:
    names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
    if getattr(param, "param_type_name", "") == "argument":
        names = f"`{param.name.upper()}`"
    kind = _kind(param)
    default = param.default
    if getattr(param, "is_flag", False) or default in (None, (), []):
        default = ""
    shown = f"`{default}`" if default != "" else ""
    required = " (required)" if param.required else ""
    meaning = html.escape(param.help or "", quote=False)  # help texts write <stem> as text
    return f"| {names}{required} | {_cell(kind)} | {_cell(shown)} | {_cell(meaning)} |"


def cli_reference() -> str:
    """One section per command: what it does, its usage, its arguments and options."""
    from wcd_hpc.cli.habits import reflow

    parts = []
    for path, command in commands():
        title = " ".join(["wcd-hpc", *path])
        parts.append(f"## `{title}`\n")
        text = (reflow(command.help) or "").replace("\b\n", "")
        parts.append(html.escape(text, quote=False) + "\n")
        subs = getattr(command, "commands", None)
        if subs:
            listed = ", ".join(f"`{n}`" for n, c in sorted(subs.items()) if not c.hidden)
            parts.append(f"Subcommands: {listed}.\n")
            continue
        args = [p for p in command.params if getattr(p, "param_type_name", "") == "argument"]
        usage = " ".join([title, "[OPTIONS]", *(p.name.upper() for p in args)])
        parts.append(f"```\n{usage}\n```\n")
        rows = [_param_row(p) for p in command.params if not getattr(p, "hidden", False)]
        rows.append("| `-h`, `--help` |  |  | Show the help and exit. |")
        parts.append("| argument or option | type | default | meaning |\n|---|---|---|---|")
        parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# Experiment keys and site-profile keys


def _value(value: Any) -> str:
    """A default as the reference shows it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value in ({}, [], ""):
        return "empty"
    return f"`{value}`"


def experiment_reference() -> str:
    """Every key of the validator's table: type, default, allowed values, example, meaning.

    A key declared without its documentation (doc or example) stops the build.
    """
    from wcd_hpc.experiment import keys

    rows = keys.reference()
    missing = [r["name"] for r in rows if not str(r["doc"]).strip() or not str(r["example"])]
    if missing:
        where = "wcd_hpc.experiment.keys"
        raise LookupError(f"experiment keys without documentation in {where}: {', '.join(missing)}")
    lines = [
        "| key | type | default | allowed values | example | may change on resume "
        "| in a site profile | meaning |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        default = "required" if r["default"] == "required" else _value(r["default"])
        lines.append(
            f"| `{r['name']}` | {_cell(r['type'])} | {_cell(default)} | {_cell(r['allowed'])} | "
            f"`{_cell(r['example'])}` | {'yes' if r['mutable'] else 'no'} | "
            f"{'yes' if r['profile'] else 'no'} | {_cell(r['doc'])} |"
        )
    return "\n".join(lines) + "\n"


def _fields_table(table: str, cls: type) -> list[str]:
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default
        shown = "none" if default is None else ("empty" if default == () else f"`{default}`")
        if isinstance(default, bool):
            shown = f"`{str(default).lower()}`"
        lines.append(f"| `{table}.{f.name}` | {shown} | {_cell(f.metadata['doc'])} |")
    return lines


def profile_reference() -> str:
    """The keys of a site profile: its experiment keys, ``[slurm]`` and ``[container]``."""
    from wcd_hpc.experiment.keys import profile_names
    from wcd_hpc.launch.settings import ContainerSettings, SlurmSettings

    lines = ["| key | default | meaning |", "|---|---|---|"]
    lines.append("| `description` | none | One line `wcd-hpc profiles` shows. |")
    for key in profile_names():
        lines.append(
            f"| `{key}` | as in an experiment | The experiment key "
            f"[`{key}`](experiment.md#keys), as a default under the experiment file. |"
        )
    lines += _fields_table("slurm", SlurmSettings)
    lines += _fields_table("container", ContainerSettings)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Plugin hooks


def hooks_reference() -> str:
    """Every hook specification: its signature and its documentation."""
    from wcd_hpc import hookspecs

    parts = []
    for name, func in inspect.getmembers(hookspecs, inspect.isfunction):
        if not name.startswith("register_"):
            continue
        args = ", ".join(inspect.signature(func).parameters)
        parts.append(f"## `{name}({args})`\n")
        parts.append(inspect.getdoc(func) or "")
        parts.append(f"\n```python\n{name}{inspect.signature(func)}\n```\n")
    return "\n".join(parts)


GENERATORS: dict[str, Callable[[], str]] = {
    "cli": cli_reference,
    "experiment-keys": experiment_reference,
    "profile-keys": profile_reference,
    "hooks": hooks_reference,
}


def generate(markdown: str) -> str:
    """``markdown`` with every marker replaced by its generated text."""
    return MARKER.sub(lambda m: GENERATORS[m.group(1)](), markdown)


# --------------------------------------------------------------------------------------------
# mkdocs events


def on_page_markdown(markdown: str, **_: Any) -> str:
    return generate(markdown)


def on_files(files: Any, config: Any) -> Any:
    """Add the repository files that pages show (a benchmark's figure) to the site."""
    from mkdocs.structure.files import File

    for source, target in extra_files():
        files.append(File.generated(config, target, abs_src_path=str(ROOT / source)))
    return files
