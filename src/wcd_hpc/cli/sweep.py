"""``wcd-hpc sweep``: validate an experiment, create or resume its study, start the workers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from pathlib import Path

import optuna
import typer
from rich.markup import escape

from wcd_hpc import study as studies
from wcd_hpc.cli.common import err, fail, friendly, out, registry, site_profile
from wcd_hpc.cli.dryrun import show_dry_run
from wcd_hpc.cli.progress import sweep_progress
from wcd_hpc.control import ATTR_LOCAL_SWEEP
from wcd_hpc.launch import slurm
from wcd_hpc.launch.accounting import SlurmError, active_tasks
from wcd_hpc.launch.local import Worker, run_local
from wcd_hpc.launch.render import Job
from wcd_hpc.launch.settings import parse_site
from wcd_hpc.status import ATTR_SLURM_JOBS
from wcd_hpc.storage import mask
from wcd_hpc.sweep import Plan, best_line, plan, start


def _flags(**values: object) -> list[str]:
    return [f"{k}={v}" for k, v in values.items() if v is not None]


def _describe(p: Plan) -> None:
    exp = p.exp
    out.print(
        f"study [bold]{escape(exp.name)}[/]: model {escape(exp.model)}, "
        f"dataset {escape(exp.dataset)}, "
        f"{exp.metric} ({exp.direction}), {exp.trials} trials × {exp.epochs} epochs, "
        f"executor {exp.executor}",
        markup=True,
    )
    out.print(f"storage {mask(p.url)}; run dir {p.run_dir}")


@friendly
def sweep_cmd(
    experiment: Path = typer.Argument(..., help="Experiment file (YAML)."),
    executor: str | None = typer.Option(None, "--executor", help="local or slurm."),
    workers: int | None = typer.Option(None, "--workers", "-w", min=1, help="Workers (tasks)."),
    trials: int | None = typer.Option(None, "--trials", min=1, help="Override the budget."),
    storage: str | None = typer.Option(None, "--storage", help="Override the storage URL."),
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="Override the runs root."),
    profile: str | None = typer.Option(None, "--profile", help="Site profile name or path."),
    sets: list[str] = typer.Option([], "--set", help="Override any key: --set epochs=3."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show everything; submit nothing."),
    wait: bool = typer.Option(False, "--wait", help="Slurm: follow the array until it ends."),
    no_sync: bool = typer.Option(
        False, "--no-sync", help="No MLflow sync at the end (on Slurm: no dependent sync job)."
    ),
) -> None:
    """Run a sweep: every worker pulls trials from the study until the budget is met.

    Running it again resumes the same study; a larger ``trials`` extends it. On Slurm it submits
    one array job and returns (``--wait`` follows it).
    """
    reg = registry()
    overrides = [
        *sets,
        *_flags(executor=executor, workers=workers, trials=trials, storage=storage),
        *_flags(runs_dir=runs_dir),
    ]
    prof = site_profile(profile)
    p = plan(experiment, reg, profile=prof, overrides=overrides)
    site = parse_site(prof, source=str(profile or "<profile>"))
    job = Job(p.exp, p.url, p.run_dir, p.exp.workers, site)
    if dry_run:
        show_dry_run(p, job)
        return
    if p.exp.executor == "slurm" and shutil.which("sbatch") is None:
        fail(f"{experiment}: executor: 'slurm' needs sbatch on PATH; use --executor local here")
    _describe(p)
    study, prep = start(p)
    if prep.created:
        out.print(f"created study {p.exp.name} with a budget of {prep.budget} trials")
    else:
        was = f" (budget was {prep.previous_budget})" if prep.previous_budget != prep.budget else ""
        out.print(
            f"resuming study {p.exp.name}: {prep.finished} of {prep.budget} trials finished{was}"
        )
    remaining = prep.budget - prep.finished
    if remaining > 0 and p.exp.executor == "slurm":
        # With --wait this command syncs at the end itself; a dependent job would race it.
        job = Job(p.exp, p.url, p.run_dir, min(p.exp.workers, remaining), site)
        _submit(p, study, job, wait=wait, sync=not no_sync and not wait)
        if not wait:
            return
    elif remaining > 0:
        _run_local(p, study, min(p.exp.workers, remaining))
    if not no_sync and remaining > 0:
        _sync(p, study)
    _finish(p, study, prep.budget)


def _sync(p: Plan, study: optuna.Study) -> None:
    """Copy the finished trials to MLflow; a failure is reported, the sweep's result stands."""
    from wcd_hpc.cli.sync import run_with_progress
    from wcd_hpc.sync import SyncError, connect, tracking_uri_for

    uri = tracking_uri_for(None, p.run_dir.parent)
    try:
        connect(uri)
        report = run_with_progress(study, p.run_dir, uri)
    except SyncError as exc:
        err.print(
            f"[yellow]warning:[/] {escape(str(exc))}; "
            f"run `wcd-hpc sync {escape(p.exp.name)}` later",
            markup=True,
        )
        return
    out.print(report.line())


def _finish(p: Plan, study: optuna.Study, budget: int) -> None:
    trials_now = study.get_trials(deepcopy=False)
    done = studies.finished(trials_now)
    counts = studies.counts(trials_now)
    out.print(
        f"{done}/{budget} trials finished: {counts['COMPLETE']} complete, "
        f"{counts['PRUNED']} pruned, {counts['FAIL']} failed"
    )
    line = best_line(study, p.exp.metric)
    if line:
        out.print(line)
    out.print(f"details: wcd-hpc status {p.exp.name} --runs-dir {p.run_dir.parent}")
    if done < budget:
        fail(
            f"sweep ended with {done} of {budget} trials finished; see wcd-hpc status "
            f"{p.exp.name} and the worker logs in {p.run_dir / 'logs'}",
            code=1,
        )


def _submit(p: Plan, study: optuna.Study, job: Job, *, wait: bool, sync: bool) -> None:
    submission = slurm.submit(job, sync=sync)
    jobs = list(study.user_attrs.get(ATTR_SLURM_JOBS, [])) + submission.arrays
    study.set_user_attr(ATTR_SLURM_JOBS, jobs)
    ids = ", ".join(submission.arrays)
    out.print(f"submitted array job {ids}: {submission.tasks} workers")
    if submission.sync:
        out.print(f"submitted sync job {submission.sync} (runs after the array ends)")
    out.print(f"follow it: wcd-hpc status {p.exp.name} --runs-dir {p.run_dir.parent} --watch")
    out.print(f"       or: squeue -j {ids}; sacct -j {ids}; logs in {p.run_dir / 'slurm'}")
    if wait:
        _follow(p, study, submission.arrays)


def _follow(p: Plan, study: optuna.Study, arrays: list[str]) -> None:
    with sweep_progress(study, p.exp.metric, p.exp.direction) as tick:
        while True:
            try:
                left = active_tasks(arrays)
            except SlurmError as exc:
                err.print(f"warning: {exc}")
                left = -1
            tick(f"{left} tasks queued/running, " if left >= 0 else "")
            if left == 0:
                break
            time.sleep(2)


def _run_local(p: Plan, study: optuna.Study, workers: int) -> None:
    budget = studies.budget_of(study)
    study.set_user_attr(ATTR_LOCAL_SWEEP, {"host": socket.gethostname(), "pid": os.getpid()})
    # `wcd-hpc cancel` (or kill) sends SIGTERM: stop the workers as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with sweep_progress(study, p.exp.metric, p.exp.direction) as tick:

        def on_tick(active: list[Worker]) -> None:
            tick(f"{len(active)} workers, ")

        def budget_left() -> bool:
            return studies.finished(study.get_trials(deepcopy=False)) < budget

        outcome = run_local(
            study, p.url, workers, p.run_dir / "logs", budget_left=budget_left, on_tick=on_tick
        )
    if outcome.interrupted:
        err.print("interrupted: workers stopped; run the same command again to resume")
        raise typer.Exit(130)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_cmd)
