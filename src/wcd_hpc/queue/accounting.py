"""What Slurm says about a sweep's jobs: queue state (squeue) and accounting (sacct).

Used by ``sweep --wait`` to know when the array has ended, and by ``status`` for queue waits,
allocated GPU-hours and the idle fraction (allocated GPU time no trial spent training).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from optuna.trial import FrozenTrial

from wcd_hpc.errors import SlurmError
from wcd_hpc.queue.schema import TRIAL_SLURM_ARRAY_JOB_ID, TRIAL_SLURM_JOB_ID

SACCT_FIELDS = "JobID,State,Submit,Start,End,ElapsedRaw,AllocTRES,NodeList,ExitCode"


def _run(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmError(f"{cmd[0]} failed: {exc}") from None
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["no message"])[0]
        raise SlurmError(f"{' '.join(cmd[:2])} failed (exit {proc.returncode}): {first}")
    return proc.stdout


def queued(job_ids: Sequence[str]) -> list[tuple[str, str]]:
    """``(task id, state)`` of every task of these jobs that is still pending or running."""
    if not job_ids:
        return []
    out = _run(["squeue", "-h", "-r", "-j", ",".join(job_ids), "-o", "%i %T"])
    rows = [line.split() for line in out.splitlines() if line.strip()]
    return [(row[0], row[1] if len(row) > 1 else "") for row in rows]


def active_tasks(job_ids: Sequence[str]) -> int:
    """How many tasks of these jobs are still pending or running."""
    return len(queued(job_ids))


@dataclass(frozen=True)
class TaskRecord:
    """One array task as sacct reports it."""

    job_id: str
    state: str
    submit: datetime | None
    start: datetime | None
    end: datetime | None
    elapsed_s: int
    gpus: int
    node: str
    exit_code: str

    @property
    def queue_wait_s(self) -> float | None:
        if self.submit is None or self.start is None:
            return None
        return (self.start - self.submit).total_seconds()


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None  # "Unknown", "None" for tasks that never started


def _gpus(tres: str) -> int:
    match = re.search(r"gres/gpu=(\d+)", tres)
    return int(match.group(1)) if match else 0


def parse_sacct(text: str) -> list[TaskRecord]:
    """Parse ``sacct -X -n -P -o SACCT_FIELDS``; malformed lines raise SlurmError."""
    records = []
    width = len(SACCT_FIELDS.split(","))
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != width:
            raise SlurmError(
                f"unexpected sacct line ({len(parts)} fields, expected {width}): {line!r}"
            )
        job, state, submit, start, end, elapsed, tres, node, code = parts
        try:
            seconds = int(elapsed or 0)
        except ValueError:
            raise SlurmError(f"unexpected sacct ElapsedRaw {elapsed!r} for {job}") from None
        records.append(
            TaskRecord(
                job,
                state.split()[0] if state else "",
                _time(submit),
                _time(start),
                _time(end),
                seconds,
                _gpus(tres),
                node,
                code,
            )
        )
    return records


def sacct(job_ids: Sequence[str]) -> list[TaskRecord]:
    """Allocation records (one per array task) of the given jobs."""
    if not job_ids:
        return []
    out = _run(["sacct", "-X", "-n", "-P", "-j", ",".join(job_ids), "-o", SACCT_FIELDS])
    return parse_sacct(out)


def summarize_allocation(
    records: Iterable[TaskRecord], training_s: float, trained_gpu_h: float | None = None
) -> dict[str, Any]:
    """GPU-hours allocated, worker-hours, and the fraction of the allocation not spent training.

    With ``trained_gpu_h`` (the trials' GPU-hours, each its share of the GPU it trained on) the
    idle fraction is the part of the allocated GPU-hours no trial trained in: k workers sharing
    one GPU and all training leave none idle. Without it (a study whose trials record no share,
    or no GPUs), the part of the tasks' time not spent training.
    """
    records = list(records)
    worker_s = sum(r.elapsed_s for r in records)
    gpu_h = sum(r.elapsed_s * r.gpus for r in records) / 3600
    waits = [w for r in records if (w := r.queue_wait_s) is not None]
    if trained_gpu_h is not None and gpu_h > 0:
        idle: float | None = max(0.0, 1 - trained_gpu_h / gpu_h)
    else:
        idle = max(0.0, 1 - training_s / worker_s) if worker_s else None
    return {
        "tasks": len(records),
        "states": sorted({r.state for r in records}),
        "gpu_hours": round(gpu_h, 4),
        "worker_hours": round(worker_s / 3600, 4),
        "idle_fraction": round(idle, 4) if idle is not None else None,
        "max_queue_wait_s": max(waits) if waits else None,
    }


def jobs_of(recorded: Sequence[str], trials: Iterable[FrozenTrial]) -> list[str]:
    """The study's Slurm jobs: the arrays ``sweep`` recorded, plus any job a trial ran in (an
    array submitted by hand with ``sbatch worker.sbatch`` is known only from its trials)."""
    jobs = [str(j) for j in recorded]
    for t in trials:
        job = t.user_attrs.get(TRIAL_SLURM_ARRAY_JOB_ID) or t.user_attrs.get(TRIAL_SLURM_JOB_ID)
        if job and str(job) not in jobs:
            jobs.append(str(job))
    return jobs


def gpu_hours(jobs: Sequence[str]) -> float:
    """GPU-hours allocated so far to ``jobs`` (running tasks count up to now)."""
    records = sacct(jobs)
    return sum(r.elapsed_s * r.gpus for r in records) / 3600
