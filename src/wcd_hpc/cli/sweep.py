"""``wcd-hpc sweep``: validate an experiment, create or resume its study, run the workers."""

from __future__ import annotations

from pathlib import Path

import optuna
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from wcd_hpc import study as studies
from wcd_hpc.cli.common import err, fail, friendly, out, registry, site_profile
from wcd_hpc.launch.local import Worker, run_local
from wcd_hpc.storage import mask
from wcd_hpc.sweep import Plan, best_line, plan, start


def _flags(**values: object) -> list[str]:
    return [f"{k}={v}" for k, v in values.items() if v is not None]


def _describe(p: Plan) -> None:
    exp = p.exp
    out.print(
        f"study [bold]{exp.name}[/]: model {exp.model}, dataset {exp.dataset}, "
        f"{exp.metric} ({exp.direction}), {exp.trials} trials × {exp.epochs} epochs",
        markup=True,
    )
    out.print(f"storage {mask(p.url)}; run dir {p.run_dir}")


@friendly
def sweep_cmd(
    experiment: Path = typer.Argument(..., help="Experiment file (YAML)."),
    executor: str | None = typer.Option(None, "--executor", help="local (slurm: coming)."),
    workers: int | None = typer.Option(None, "--workers", "-w", min=1, help="Worker processes."),
    trials: int | None = typer.Option(None, "--trials", min=1, help="Override the budget."),
    storage: str | None = typer.Option(None, "--storage", help="Override the storage URL."),
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="Override the runs root."),
    profile: str | None = typer.Option(None, "--profile", help="Site profile name or path."),
    sets: list[str] = typer.Option([], "--set", help="Override any key: --set epochs=3."),
) -> None:
    """Run a sweep: every worker pulls trials from the study until the budget is met.

    Running it again resumes the same study; a larger ``trials`` extends it.
    """
    reg = registry()
    overrides = [
        *sets,
        *_flags(executor=executor, workers=workers, trials=trials, storage=storage),
        *_flags(runs_dir=runs_dir),
    ]
    p = plan(experiment, reg, profile=site_profile(profile), overrides=overrides)
    if p.exp.executor != "local":
        fail(
            f"{experiment}: executor: '{p.exp.executor}' is not available yet; use --executor local"
        )
    _describe(p)
    study, prep = start(p)
    if prep.created:
        out.print(f"created study {p.exp.name} with a budget of {prep.budget} trials")
    else:
        out.print(
            f"resuming study {p.exp.name}: {prep.finished} of {prep.budget} trials finished"
            + (
                f" (budget was {prep.previous_budget})"
                if prep.previous_budget != prep.budget
                else ""
            )
        )
    remaining = prep.budget - prep.finished
    if remaining > 0:
        _run(p, study, min(p.exp.workers, remaining))
    trials_now = study.get_trials(deepcopy=False)
    done = studies.finished(trials_now)
    counts = studies.counts(trials_now)
    out.print(
        f"{done}/{prep.budget} trials finished: {counts['COMPLETE']} complete, "
        f"{counts['PRUNED']} pruned, {counts['FAIL']} failed"
    )
    line = best_line(study, p.exp.metric)
    if line:
        out.print(line)
    out.print(f"details: wcd-hpc status {p.exp.name} --runs-dir {p.run_dir.parent}")
    if done < prep.budget:
        fail(
            f"sweep ended with {done} of {prep.budget} trials finished; see wcd-hpc status "
            f"{p.exp.name} and the worker logs in {p.run_dir / 'logs'}",
            code=1,
        )


def _run(p: Plan, study: optuna.Study, workers: int) -> None:
    budget = studies.budget_of(study)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task("trials", total=budget, info="starting workers")

        def tick(active: list[Worker]) -> None:
            trials = study.get_trials(deepcopy=False)
            c = studies.counts(trials)
            best = [t.value for t in trials if t.state.name == "COMPLETE" and t.value is not None]
            pick = max if p.exp.direction == "maximize" else min
            best_text = f" best {p.exp.metric} {pick(best):.4f}" if best else ""
            info = (
                f"{len(active)} workers, {c['RUNNING']} running, {c['PRUNED']} pruned, "
                f"{c['FAIL']} failed{best_text}"
            )
            progress.update(task, completed=studies.finished(trials), info=info)

        def budget_left() -> bool:
            return studies.finished(study.get_trials(deepcopy=False)) < budget

        outcome = run_local(
            study, p.url, workers, p.run_dir / "logs", budget_left=budget_left, on_tick=tick
        )
    if outcome.interrupted:
        err.print("interrupted: workers stopped; run the same command again to resume")
        raise typer.Exit(130)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep_cmd)
