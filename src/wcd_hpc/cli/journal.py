"""``wcd-hpc journal``: check a study's journal file; salvage the valid part of a damaged one."""

from __future__ import annotations

import contextlib
import json
import shlex
from pathlib import Path
from typing import Annotated

import typer

from wcd_hpc.cli.common import out
from wcd_hpc.errors import StorageError
from wcd_hpc.output.files import not_a_file
from wcd_hpc.queue.salvage import salvage
from wcd_hpc.store.journal import JournalCorrupt, check_journal, scan

app = typer.Typer(help="Check or salvage a journal-file study.", no_args_is_help=True)


@app.command("check")
def check_cmd(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="The journal file (journal.log).")],
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help='Print {"path", "ok", "lines", "bad_line", "problem"} as JSON.'
        ),
    ] = False,
) -> None:
    """Read the whole journal and report the first bad line (file:line), if any.

    The exit status is the same with --json: 0 for a sound journal, 2 for a damaged one.
    """
    _check_file(path)
    if not as_json:
        check_journal(path)
        out.print(f"{path}: ok")
        return
    with contextlib.suppress(JournalCorrupt):  # a bad last line is looked at again, locked
        check_journal(path)
    found = scan(path)
    document = {
        "path": str(path),
        "ok": found.ok,
        "lines": found.good_lines,
        "bad_line": found.bad_line,
        "problem": found.problem or None,
    }
    print(json.dumps(document, indent=2))
    if not found.ok:
        raise typer.Exit(JournalCorrupt.exit_code)


def _check_file(path: Path) -> None:
    """A journal is a regular file: say what else PATH is (a FIFO would block the read)."""
    problem = not_a_file(path)
    if problem == "file not found":
        raise StorageError(f"{path}: no such journal file")
    if problem is not None:
        raise StorageError(f"{path}: {problem}")


@app.command("salvage")
def salvage_cmd(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="The damaged journal file.")],
    new: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where to write the valid prefix (default: PATH.salvaged).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write the longest valid prefix of PATH to a new file; PATH itself is never modified."""
    _check_file(path)
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
    out.print(
        "Trials running at the cut are failed in the salvaged copy (the reason is in status; "
        "wcd-hpc retry runs their parameters again); suspended ones resume from their checkpoints."
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="journal")
