"""``wcd-hpc status NAME``: counts, best trial, running trials and failures of a study."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from wcd_hpc import merit
from wcd_hpc.cli.common import RunsDirOption, StorageOption, StudyArgument, out, print_table
from wcd_hpc.queue import finalists
from wcd_hpc.queue import study as studies
from wcd_hpc.queue.reaper import reap
from wcd_hpc.queue.schema import (
    TRIAL_GPU,
    TRIAL_HOST,
    TRIAL_KEPT_EPOCH,
    TRIAL_NODE,
    TRIAL_OBJECTIVE_INTERVAL,
    TRIAL_PID,
    TRIAL_PRUNED_BECAUSE,
    TRIAL_SLURM_ARRAY_JOB_ID,
    TRIAL_SLURM_ARRAY_TASK_ID,
    TRIAL_SUSPENDED,
    TRIAL_WORKER,
)
from wcd_hpc.queue.status import summarize
from wcd_hpc.store.storage import chosen_storage

#: Trials listed in the human view's table, the latest ones: drawing all 10,000 rows of a large
#: study took longer than reading the study, and nobody reads them in a terminal.
SHOWN_TRIALS = 50


def render(info: dict[str, Any], shown: int | None = SHOWN_TRIALS) -> Group:
    """The human view of :func:`wcd_hpc.queue.status.summarize`'s dict; the per-trial table
    lists the last ``shown`` trials (None: all)."""
    c = info["counts"]
    head = Text.assemble(
        (f"{info['study']}", "bold"),
        f"  {info['model']} on {info['dataset']}, {info['metric']} ({info['direction']})\n",
        f"finished {studies.finished_of(info['finished'], info['budget'])}  ",
        f"complete {c['COMPLETE']}  pruned {c['PRUNED']}  failed {c['FAIL']}  ",
        f"running {c['RUNNING']}  waiting {c['WAITING']}",
    )
    parts: list[Any] = [head]
    reasons = info.get(TRIAL_PRUNED_BECAUSE) or {}
    if reasons:
        listed = ", ".join(f"{why} {n}" for why, n in reasons.items())
        parts.append(Text(f"pruned because: {listed}"))
    if info.get("gpu_hours_budget") is not None:
        used = info.get("gpu_hours_used")
        hours = "unknown (no Slurm accounting yet)" if used is None else f"{used:.3f}"
        spent = (
            " (spent: no new trials)"
            if used is not None and used >= info["gpu_hours_budget"]
            else ""
        )
        parts.append(Text(f"GPU-hours {hours} of a budget of {info['gpu_hours_budget']:g}{spent}"))
    if info["throughput_per_h"]:
        parts.append(Text(f"throughput {info['throughput_per_h']:.1f} trials/h"))
    best = info["best"]
    if best:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in best["params"].items())
        epoch = best.get(TRIAL_KEPT_EPOCH)
        at = f" (epoch {epoch})" if epoch is not None else ""
        lo, hi = best.get(TRIAL_OBJECTIVE_INTERVAL) or (None, None)
        value = merit.rounded(best["value"], lo, hi)
        parts.append(Text(f"best trial {best['number']}: {info['metric']}={value}{at}  {params}"))
    if info.get("finalists"):
        fin = info["finalists"]
        parts.append(
            Text(
                f"finalists: top {fin['top']} × {fin['seeds']} seeds, "
                f"{len(fin['trials'])} trials, {fin['left']} left"
            )
        )
    if info.get("final"):
        parts.append(Text(finalists.line(info["final"])))
        parts.extend(Text(row) for row in finalists.bin_lines(info["final"]))
    if info["running"]:
        table = Table(title="running", title_justify="left")
        for col in ("trial", "host", "pid", "worker", "elapsed", "epoch", "state"):
            table.add_column(col)
        for r in info["running"]:
            table.add_row(
                str(r["number"]),
                str(r[TRIAL_HOST]),
                str(r[TRIAL_PID]),
                str(r[TRIAL_WORKER]),
                f"{r['elapsed_s']:.0f}s" if r["elapsed_s"] is not None else "-",
                str(r["last_epoch"] if r["last_epoch"] is not None else "-"),
                "suspended (resumes on the next worker)" if r.get(TRIAL_SUSPENDED) else "training",
            )
        parts.append(table)
    slurm = info.get("slurm")
    if slurm:
        parts.append(_slurm_view(slurm))
    if info["trials"]:
        parts.append(_trials_view(info["trials"], shown, bool(slurm and "error" not in slurm)))
    if info["failures"]:
        table = Table(title="failures", title_justify="left")
        table.add_column("trial")
        table.add_column("cause")
        for f in info["failures"]:
            table.add_row(str(f["number"]), f["cause"])
        parts.append(table)
    return Group(*parts)


def _slurm_view(slurm: dict[str, Any]) -> Text:
    if "error" in slurm:
        return Text(f"slurm jobs {', '.join(slurm['jobs'])}: {slurm['error']}")
    idle = slurm["idle_fraction"]
    return Text(
        f"slurm jobs {', '.join(slurm['jobs'])}: {slurm['tasks']} tasks "
        f"({', '.join(slurm['states'])}), {slurm['gpu_hours']:.3f} GPU-hours allocated, "
        f"idle fraction {'-' if idle is None else f'{idle:.0%}'}"
    )


def _trials_view(trials: list[dict[str, Any]], shown: int | None, slurm: bool) -> Table:
    """Every trial's line, local or on Slurm: what happened to it, how long, where (the first
    look at dead trials: a failed or pruned one shows its reason here, not only in a dashboard).
    The value carries its 68 % interval where the trial has one, rounded to it, so two trials
    a hair apart are not read as a ranking.
    """
    table = Table(title="trials", title_justify="left")
    columns = ["trial", "state", "value", "epochs", "seconds", "worker", "pruned because"]
    if slurm:
        columns += ["array task", "node", "GPU", "queue wait"]
    for col in columns:
        table.add_column(col)
    listed = trials if shown is None else trials[-shown:]
    for t in listed:
        row = [
            str(t["number"]),
            t["state"],
            _value(t),
            _or_dash(t.get("epochs")),
            "-" if t.get("seconds") is None else f"{t['seconds']:.0f}",
            str(t[TRIAL_WORKER] or "-"),
            str(t.get(TRIAL_PRUNED_BECAUSE) or "-"),
        ]
        if slurm:
            job, task_id = t[TRIAL_SLURM_ARRAY_JOB_ID], t[TRIAL_SLURM_ARRAY_TASK_ID]
            wait = t["queue_wait_s"]
            row += [
                f"{job}_{task_id}" if job else "-",
                str(t[TRIAL_NODE] or "-"),
                str(t[TRIAL_GPU] or "-"),
                "-" if wait is None else f"{wait:.0f}s",
            ]
        table.add_row(*row)
    hidden = len(trials) - len(listed)
    if hidden > 0:
        table.caption = f"{hidden} earlier trials not shown (status --all lists every trial)"
    return table


def _value(t: dict[str, Any]) -> str:
    """A trial's objective rounded to its interval (shown beside it), as it is without one."""
    if t["value"] is None:
        return "-"
    return merit.rounded(t["value"], t.get("value_lo"), t.get("value_hi"))


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def status_cmd(
    name: StudyArgument,
    storage: StorageOption = None,
    runs_dir: RunsDirOption = Path("runs"),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (a stable interface).")
    ] = False,
    watch: Annotated[bool, typer.Option(help="Refresh until the study is done.")] = False,
    interval: Annotated[
        float, typer.Option(min=0.2, max=3600, help="Seconds between refreshes.")
    ] = 2.0,
    show_all: Annotated[
        bool,
        typer.Option("--all", help=f"List every trial (default: the last {SHOWN_TRIALS})."),
    ] = False,
) -> None:
    """Show a study: counts by state, best trial, running trials, failures and their causes."""
    opened = studies.open_existing(name, chosen_storage(storage), runs_dir)
    st, run_dir = opened.study, opened.run_dir

    def current() -> dict[str, Any]:
        # A trial whose worker is gone is failed (and retried) before it is shown.
        reap(opened)
        return summarize(st, run_dir)

    if as_json:
        print(json.dumps(current(), indent=2, default=str))
        return
    info = current()
    shown = None if show_all else SHOWN_TRIALS
    if not watch:
        print_table(render(info, shown))
        return
    # The live view crops long lines to the terminal and, piped, prints nothing until it ends;
    # it is transient, and the last state is printed in full once it stops.
    with Live(render(info, shown), console=out, refresh_per_second=4, transient=True) as live:
        try:
            while not (info["done"] and not info["running"]):
                time.sleep(interval)
                info = current()
                live.update(render(info, shown))
        except KeyboardInterrupt:
            pass
    print_table(render(info, shown))
    out.print(f"storage: {opened.storage.masked}")


def register(app: typer.Typer) -> None:
    app.command("status")(status_cmd)
