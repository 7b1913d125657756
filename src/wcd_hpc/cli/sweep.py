"""``wcd-hpc sweep``: validate an experiment, create or resume its study, start the workers.

All of it is :mod:`wcd_hpc.launch.sweep`; this module parses the flags and prints.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import optuna
import typer
from rich.markup import escape

from wcd_hpc.cli.common import (
    ExperimentArgument,
    ProfileOption,
    SetOption,
    StorageOption,
    command_for,
    err,
    fail,
    out,
    registry,
    warn,
)
from wcd_hpc.cli.dryrun import print_dry_run_json, show_dry_run
from wcd_hpc.cli.progress import sweep_progress, sync_progress
from wcd_hpc.launch.base import Handle, Launcher, Tick
from wcd_hpc.launch.slurm import SlurmHandle
from wcd_hpc.launch.sweep import Plan, SyncProgress, best_line, plan, run_sweep
from wcd_hpc.queue import finalists
from wcd_hpc.queue import study as studies
from wcd_hpc.queue.claims import gpu_budget_spent, gpu_hours_used
from wcd_hpc.queue.schema import SLURM_DIR
from wcd_hpc.store.urls import mask

EXIT_INTERRUPTED = 130


class Printer:
    """The sweep's :class:`~wcd_hpc.launch.sweep.Reporter` on the terminal."""

    def prepared(self, p: Plan, prep: studies.Prepared) -> None:
        if prep.created:
            out.print(f"created study {p.exp.name} with a budget of {prep.budget} trials")
        if prep.warm_started and p.warm is not None:
            out.print(p.warm.summary())
        if prep.created:
            return
        was = ""
        if prep.previous_budget is not None and prep.previous_budget != prep.budget:
            was = f" (budget was {prep.previous_budget})"
        done = f"{prep.finished} of {prep.budget}"
        if prep.finished > prep.budget:
            done = f"{prep.finished}, more than the budget of {prep.budget},"
        out.print(f"resuming study {p.exp.name}: {done} trials finished{was}")

    def launched(self, p: Plan, launcher: Launcher, handle: Handle) -> None:
        if not isinstance(handle, SlurmHandle):
            return
        sub = handle.submission
        ids = ", ".join(sub.arrays)
        per_task, per_gpu = p.job().workers_per_task, p.exp.resources.trials_per_gpu
        each = f" tasks × {per_task} workers ({per_gpu} per GPU)" if per_task > 1 else " workers"
        out.print(f"submitted array job {ids}: {sub.tasks}{each}")
        if sub.sync:
            out.print(f"submitted sync job {sub.sync} (runs after the array ends)")
        follow = ["wcd-hpc", "status", p.exp.name, "--runs-dir", str(p.run_dir.parent), "--watch"]
        out.print(f"follow it: {shlex.join(follow)}")
        jobs = ",".join(sub.arrays)
        out.print(
            f"       or: squeue -j {jobs}; sacct -j {jobs}; "
            f"logs in {shlex.quote(str(p.run_dir / SLURM_DIR))}"
        )

    @contextmanager
    def progress(self, study: optuna.Study, p: Plan) -> Iterator[Tick]:
        with sweep_progress(study, p.exp.metric, p.exp.direction) as tick:
            yield tick

    @contextmanager
    def sync_progress(self) -> Iterator[SyncProgress]:
        with sync_progress() as tick:
            yield tick

    def warning(self, message: str) -> None:
        warn(message)


def _describe(p: Plan) -> None:
    exp = p.exp
    out.print(
        f"study [bold]{escape(exp.name)}[/]: model {escape(exp.model)}, "
        f"dataset {escape(exp.dataset)}, "
        f"{escape(exp.metric)} ({exp.direction}), {exp.trials} trials × {exp.epochs} epochs, "
        f"executor {exp.executor}",
        markup=True,
    )
    out.print(f"storage {mask(p.url)}; run dir {p.run_dir}")


def _summary(p: Plan, study: optuna.Study, budget: int) -> None:
    trials = study.get_trials(deepcopy=False)
    ordinary = [t for t in trials if not studies.is_finalist(t)]
    counts = studies.counts(ordinary)
    extra = len(trials) - len(ordinary)
    out.print(
        f"{studies.finished_of(studies.finished(trials), budget)} trials finished: "
        f"{counts['COMPLETE']} complete, "
        f"{counts['PRUNED']} pruned, {counts['FAIL']} failed"
        + (f"; {extra} finalist trials apart from the budget" if extra else "")
    )
    if gpu_budget_spent(study):
        used = gpu_hours_used(study) or 0.0
        out.print(f"GPU-hour budget spent: {used:.3f} of {p.exp.gpu_hours:g} GPU-hours allocated")
    line = best_line(study, p.exp.metric)
    if line:
        out.print(line)
    final = finalists.report(study, trials, p.run_dir)
    if final is not None:
        out.print(finalists.line(final))
        for row in finalists.bin_lines(final):
            out.print(row)
    details = command_for(["wcd-hpc", "status", p.exp.name], p.url, p.run_dir.parent)
    out.print(f"details: {details}")


def sweep_cmd(
    experiment: ExperimentArgument,
    executor: Annotated[str | None, typer.Option(help="local or slurm.")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", min=1, help="Workers (array tasks).")
    ] = None,
    trials: Annotated[int | None, typer.Option(min=1, help="Override the budget.")] = None,
    storage: StorageOption = None,
    runs_dir: Annotated[
        Path | None, typer.Option("--runs-dir", help="Override the runs root.")
    ] = None,
    profile: ProfileOption = None,
    sets: SetOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show everything; submit nothing.")
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="With --dry-run: print it as JSON (a stable interface)."),
    ] = False,
    wait: Annotated[bool, typer.Option(help="Slurm: follow the array until it ends.")] = False,
    no_sync: Annotated[
        bool,
        typer.Option(
            "--no-sync", help="No MLflow sync at the end (on Slurm: no dependent sync job)."
        ),
    ] = False,
) -> None:
    """Run a sweep: every worker pulls trials from the study until the budget is met.

    Running it again resumes the same study; a larger budget extends it. On Slurm it submits
    one array job and returns (--wait follows it).
    """
    if as_json and not dry_run:
        fail("--json needs --dry-run: a running sweep prints progress, not a document")
    flags = {
        "executor": ("--executor", executor),
        "workers": ("--workers", workers),
        "trials": ("--trials", trials),
        "storage": ("--storage", storage),
        "runs_dir": ("--runs-dir", runs_dir),
    }
    given = {k: v for k, v in flags.items() if v[1] is not None or k == "storage"}
    p = plan(experiment, registry(), profile=profile, sets=sets or [], flags=given)
    if dry_run:
        print_dry_run_json(p) if as_json else show_dry_run(p)
        return
    _describe(p)
    for line in p.warnings():
        warn(line)
    result = run_sweep(p, wait=wait, sync=not no_sync, reporter=Printer())
    if not result.following:
        return
    if result.interrupted:
        err.print("interrupted: workers stopped; run the same command again to resume")
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.synced:
        out.print(result.synced)
    _summary(p, result.study, result.prepared.budget)
    for line in result.looking:
        out.print(line, soft_wrap=True)
    result.require_budget(p.run_dir)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_cmd)
