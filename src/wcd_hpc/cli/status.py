"""``wcd-hpc status NAME``: counts, best trial, running trials and failures of a study."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from wcd_hpc import study as studies
from wcd_hpc.cli.common import fail, friendly, out
from wcd_hpc.engine.reaper import reap
from wcd_hpc.status import summarize
from wcd_hpc.storage import ENV_STORAGE, kind, mask, open_storage, resolve


def locate(name: str, storage: str | None, runs_dir: Path) -> str:
    """The study's storage URL: the given one, else its journal under ``runs_dir``.

    A journal that does not exist is an error here, not an empty new file: ``status`` of a
    misspelt study must not create anything.
    """
    url = storage or resolve("journal", runs_dir / name)
    if kind(url) == "journal" and not Path(url.removeprefix("journal:")).exists():
        fail(
            f"no study '{name}': {url.removeprefix('journal:')} does not exist "
            f"(pass --storage URL or --runs-dir DIR)"
        )
    return url


def render(info: dict[str, Any]) -> Group:
    """The human view of :func:`wcd_hpc.status.summarize`'s dict."""
    c = info["counts"]
    head = Text.assemble(
        (f"{info['study']}", "bold"),
        f"  {info['model']} on {info['dataset']}, {info['metric']} ({info['direction']})\n",
        f"finished {info['finished']}/{info['budget']}  ",
        f"complete {c['COMPLETE']}  pruned {c['PRUNED']}  failed {c['FAIL']}  ",
        f"running {c['RUNNING']}  waiting {c['WAITING']}",
    )
    parts: list[Any] = [head]
    if info["throughput_per_h"]:
        parts.append(Text(f"throughput {info['throughput_per_h']:.1f} trials/h"))
    best = info["best"]
    if best:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in best["params"].items())
        parts.append(
            Text(f"best trial {best['number']}: {info['metric']}={best['value']:.4f}  {params}")
        )
    if info["running"]:
        table = Table(title="running", title_justify="left")
        for col in ("trial", "host", "pid", "worker", "elapsed", "epoch", "state"):
            table.add_column(col)
        for r in info["running"]:
            table.add_row(
                str(r["number"]),
                str(r["host"]),
                str(r["pid"]),
                str(r["worker"]),
                f"{r['elapsed_s']:.0f}s" if r["elapsed_s"] is not None else "-",
                str(r["last_epoch"] if r["last_epoch"] is not None else "-"),
                "suspended (resumes on the next worker)" if r.get("suspended") else "training",
            )
        parts.append(table)
    slurm = info.get("slurm")
    if slurm:
        parts.append(_slurm_view(slurm, info["trials"]))
    if info["failures"]:
        table = Table(title="failures", title_justify="left")
        table.add_column("trial")
        table.add_column("cause")
        for f in info["failures"]:
            table.add_row(str(f["number"]), f["cause"])
        parts.append(table)
    return Group(*parts)


def _slurm_view(slurm: dict[str, Any], trials: list[dict[str, Any]]) -> Group:
    if "error" in slurm:
        return Group(Text(f"slurm jobs {', '.join(slurm['jobs'])}: {slurm['error']}"))
    idle = slurm["idle_fraction"]
    head = Text(
        f"slurm jobs {', '.join(slurm['jobs'])}: {slurm['tasks']} tasks "
        f"({', '.join(slurm['states'])}), {slurm['gpu_hours']:.3f} GPU-hours allocated, "
        f"idle fraction {'-' if idle is None else f'{idle:.0%}'}"
    )
    table = Table(title="trials", title_justify="left")
    for col in ("trial", "state", "value", "array task", "node", "queue wait"):
        table.add_column(col)
    for t in trials:
        task = (
            f"{t['slurm_array_job_id']}_{t['slurm_array_task_id']}"
            if t["slurm_array_job_id"]
            else "-"
        )
        wait = t["queue_wait_s"]
        table.add_row(
            str(t["number"]),
            t["state"],
            "-" if t["value"] is None else f"{t['value']:.4f}",
            task,
            str(t["node"] or "-"),
            "-" if wait is None else f"{wait:.0f}s",
        )
    return Group(head, table)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@friendly
def status_cmd(
    name: str = typer.Argument(..., help="Study name."),
    storage: str | None = typer.Option(
        None,
        "--storage",
        envvar=ENV_STORAGE,
        help="Storage URL; default: the study's journal.",
        show_default=False,
    ),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Root of run directories."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (a stable interface)."),
    watch: bool = typer.Option(False, "--watch", help="Refresh until the study is done."),
    interval: float = typer.Option(2.0, "--interval", min=0.2, help="Seconds between refreshes."),
) -> None:
    """Show a study: counts by state, best trial, running trials, failures and their causes."""
    url = locate(name, storage, runs_dir)
    st = studies.load(name, open_storage(url), url)
    reap(st, url)  # a trial whose worker is gone is failed (and retried) before it is shown
    if as_json:
        print(json.dumps(summarize(st), indent=2, default=str))
        return
    if not watch:
        out.print(render(summarize(st)))
        return
    info = summarize(st)
    # The live view crops long lines to the terminal and, piped, prints nothing until it ends;
    # it is transient, and the last state is printed in full once it stops.
    with Live(render(info), console=out, refresh_per_second=4, transient=True) as live:
        try:
            while not (info["done"] and not info["running"]):
                time.sleep(interval)
                reap(st, url)
                info = summarize(st)
                live.update(render(info))
        except KeyboardInterrupt:
            pass
    out.print(render(info))
    out.print(f"storage: {mask(url)}")


def register(app: typer.Typer) -> None:
    app.command("status")(status_cmd)
