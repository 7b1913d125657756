"""``wcd-hpc cancel NAME`` and ``wcd-hpc retry NAME``."""

from __future__ import annotations

from pathlib import Path

import typer

from wcd_hpc.cli.common import (
    RunsDirOption,
    StorageOption,
    StudyArgument,
    command_for,
    out,
    warn,
)
from wcd_hpc.queue import study as studies
from wcd_hpc.queue.control import cancel, retry
from wcd_hpc.store.storage import chosen_storage


def cancel_cmd(
    name: StudyArgument, storage: StorageOption = None, runs_dir: RunsDirOption = Path("runs")
) -> None:
    """Cancel the study's Slurm jobs and local workers; its running trials are marked failed."""
    opened = studies.open_existing(name, chosen_storage(storage), runs_dir)
    result = cancel(opened)
    out.print(
        f"scancel: {', '.join(result.jobs) or 'no Slurm jobs'}; "
        f"local workers stopped: {len(result.local_pids)}; "
        f"running trials marked failed: {len(result.trials)}"
    )
    if result.unverified:
        pids = " ".join(map(str, result.unverified))
        warn(
            f"not signalled: local process(es) {pids}, whose identity cannot be verified "
            f"({result.why_unverified}); stop them yourself if they are this study's"
        )
    again = command_for(["wcd-hpc", "retry", name], opened.storage.url, opened.run_dir.parent)
    out.print(
        "finished trials are kept; resume with: wcd-hpc sweep <experiment>  "
        f"(or retry the failed ones: {again})"
    )


def retry_cmd(
    name: StudyArgument, storage: StorageOption = None, runs_dir: RunsDirOption = Path("runs")
) -> None:
    """Enqueue the parameters of failed trials again; the next workers run them first."""
    opened = studies.open_existing(name, chosen_storage(storage), runs_dir)
    numbers = retry(opened)
    listed = ", ".join(map(str, numbers)) if numbers else "none"
    out.print(f"re-enqueued {len(numbers)} failed trial(s): {listed}")
    if numbers:
        out.print("run `wcd-hpc sweep <experiment>` (or sbatch worker.sbatch) to work them off")


def register(app: typer.Typer) -> None:
    app.command("cancel")(cancel_cmd)
    app.command("retry")(retry_cmd)
