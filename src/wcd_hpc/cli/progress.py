"""Live progress views: a sweep's trials (local sweeps and ``sweep --wait``) and a sync."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import optuna
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column

from wcd_hpc.cli.common import err
from wcd_hpc.queue import study as studies


def _fixed(width: int) -> Column:
    return Column(no_wrap=True, min_width=width)


def _elastic() -> Column:
    return Column(no_wrap=True, overflow="ellipsis", ratio=4)


@contextmanager
def sweep_progress(
    study: optuna.Study, metric: str, direction: str | None
) -> Iterator[Callable[[str], None]]:
    """Yield ``tick(extra)``: refreshes finished/budget, running, failed and the best value."""
    # At 80 columns rich squeezed every column, the elapsed time to "0:0…"; now the counts and
    # the time keep their width, the bar shrinks, and only the text at the end is shortened.
    columns = (
        TextColumn("[bold]{task.description}", table_column=_fixed(6)),
        BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=10)),
        MofNCompleteColumn(table_column=_fixed(5)),
        TimeElapsedColumn(table_column=_fixed(7)),
        # holds metric names: user text
        TextColumn("{task.fields[info]}", markup=False, table_column=_elastic()),
    )
    budget = studies.budget_of(study)
    # Its numbers change when the caller ticks (every poll), so a few redraws a second suffice;
    # rich's default of 10 would keep a login-node core busier while the workers start.
    with Progress(
        *columns, console=err, transient=False, refresh_per_second=4, expand=True
    ) as progress:
        task = progress.add_task("trials", total=budget, info="starting")

        def tick(extra: str) -> None:
            trials = study.get_trials(deepcopy=False)
            c = studies.counts(trials)
            values = [t.value for t in trials if t.state.name == "COMPLETE" and t.value is not None]
            pick = min if direction == "minimize" else max
            best = f" best {metric} {pick(values):.4f}" if values else ""
            info = f"{extra}{c['RUNNING']} running, {c['PRUNED']} pruned, {c['FAIL']} failed{best}"
            done = studies.finished(trials)  # a lowered budget may be below it: never 4/1
            progress.update(task, completed=done, total=max(budget, done), info=info)

        yield tick


@contextmanager
def sync_progress() -> Iterator[Callable[[int, int], None]]:
    """Yield ``tick(done, total)`` for a sync's trial runs, drawn on stderr."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task("sync", total=None)

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield tick
