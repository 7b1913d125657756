"""``wcd-hpc journal``: check a study's journal file; salvage the valid part of a damaged one."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from wcd_hpc.cli.common import out
from wcd_hpc.errors import StorageError
from wcd_hpc.queue.journal import check_journal, salvage

app = typer.Typer(help="Check or salvage a journal-file study.", no_args_is_help=True)


@app.command("check")
def check_cmd(path: Path = typer.Argument(..., help="The journal file (journal.log).")) -> None:
    """Read the whole journal and report the first bad line (file:line), if any."""
    if not path.is_file():
        raise StorageError(f"{path}: no such journal file")
    check_journal(path)
    out.print(f"{path}: ok")


@app.command("salvage")
def salvage_cmd(
    path: Path = typer.Argument(..., help="The damaged journal file."),
    new: Path | None = typer.Option(
        None, "--out", help="Where to write the valid prefix [default: PATH.salvaged]."
    ),
) -> None:
    """Write the longest valid prefix of PATH to a new file; PATH itself is never modified."""
    done = salvage(path, new)
    if not done.problem:
        out.print(f"{path}: no damage found; copied all {done.kept} line(s) to {done.out}")
        return
    out.print(
        f"wrote {done.out}: kept {done.kept} valid line(s), dropped {done.dropped} "
        f"from {done.problem}"
    )
    out.print(
        "Stop every worker of this study, then keep the damaged log and use the salvaged one:"
    )
    damaged = path.with_name(path.name + ".damaged")
    keep = shlex.join(["mv", str(path), str(damaged)])
    swap = shlex.join(["mv", str(done.out), str(path)])
    out.print(f"  {keep} && {swap}")
    out.print("Trials that were running become RUNNING without a worker; the reaper retries them.")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="journal")
