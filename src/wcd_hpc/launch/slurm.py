"""The Slurm launcher: the whole sweep as one GPU array job, submitted through submitit.

Each array task runs :func:`wcd_hpc.launch.task.array_task`, which starts the same ``wcd-hpc
worker`` command that a hand-submitted ``worker.sbatch`` runs (inside the image when the profile
names one) and forwards Slurm's signals to it. The storage URL reaches the tasks through the job
environment (``WCD_HPC_STORAGE``, exported by sbatch), never through submitit's pickles or the
sbatch file.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from wcd_hpc.launch.container import digest_env
from wcd_hpc.launch.render import THREAD_EXPORTS, Job, mem_mb, render_sync, time_minutes
from wcd_hpc.launch.task import array_task
from wcd_hpc.storage import ENV_STORAGE

DEFAULT_MAX_ARRAY_SIZE = 1001


@dataclass(frozen=True)
class Submission:
    """Job ids of one submission: one per array chunk, and the dependent sync job if any."""

    arrays: list[str]
    tasks: int
    sync: str | None = None


def max_array_size() -> int:
    """The cluster's MaxArraySize (``scontrol show config``), or Slurm's default."""
    try:
        out = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return DEFAULT_MAX_ARRAY_SIZE
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.M)
    return int(match.group(1)) if match else DEFAULT_MAX_ARRAY_SIZE


def chunks(total: int, limit: int) -> list[int]:
    """Split ``total`` array tasks into arrays of at most ``limit`` tasks."""
    sizes = []
    while total > 0:
        sizes.append(min(total, limit))
        total -= sizes[-1]
    return sizes


@contextmanager
def _submission_env(job: Job) -> Iterator[None]:
    """sbatch exports the submitting environment: put the storage URL (and image digest) there."""
    extra = {ENV_STORAGE: job.url, **digest_env(job.site.container)}
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def executor_parameters(job: Job, tasks: int) -> dict[str, object]:
    """submitit parameters for an array of ``tasks`` workers."""
    r, s = job.exp.resources, job.site.slurm
    params: dict[str, object] = {
        "job_name": f"wcd-{job.exp.name}",
        "time": time_minutes(r.time),
        "cpus_per_task": r.cpus,
        "mem": f"{mem_mb(r)}MB",
        "signal_delay_s": s.grace_s,
        "array_parallelism": min(tasks, job.parallelism),
        "setup": [*THREAD_EXPORTS, *s.setup],
        "additional_parameters": {"requeue": True, **dict(s.extra)},
        "stderr_to_stdout": True,
    }
    gres = s.gres_for(r.gpus)
    if gres:
        params["gres"] = gres
    for key in ("partition", "account", "qos", "constraint"):
        value = getattr(s, key)
        if value:
            params[key] = value
    return params


def submit(job: Job, *, sync: bool = True) -> Submission:
    """Submit the worker array (split at MaxArraySize) and, optionally, the dependent sync job."""
    import submitit

    folder = job.run_dir / "slurm"
    folder.mkdir(parents=True, exist_ok=True)
    command = job.worker_command()
    arrays: list[str] = []
    with _submission_env(job):
        for size in chunks(job.workers, max_array_size()):
            executor = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=3)
            executor.update_parameters(**executor_parameters(job, size))
            jobs = executor.map_array(array_task, [command] * size)
            arrays.append(jobs[0].job_id.split("_")[0])
        sync_id = submit_sync(job, arrays) if sync else None
    return Submission(arrays, job.workers, sync_id)


def submit_sync(job: Job, arrays: list[str]) -> str:
    """The MLflow sync job, started once every worker array has ended (``afterany``)."""
    script = job.run_dir / "slurm" / "sync.sbatch"
    script.write_text(render_sync(job))
    dependency = "afterany:" + ":".join(arrays)
    out = subprocess.run(
        ["sbatch", "--parsable", f"--dependency={dependency}", str(script)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.strip().split(";")[0]
