"""The Slurm launcher: the whole sweep as one GPU array job, submitted through submitit.

Each array task runs :func:`wcd_hpc.launch.task.run_task` with the sweep's worker spec
(:meth:`wcd_hpc.launch.render.Job.spec`), in the task's own process: one worker, or with
``resources.trials_per_gpu`` the task's k workers per GPU, started the way the local launcher
starts its workers. A hand-submitted ``worker.sbatch`` runs the same spec as a command. The
storage URL reaches the tasks through the job environment (``WCD_HPC_STORAGE``, exported by
sbatch), never through submitit's pickles or the sbatch file.

Preemption has one owner per task: on ``SIGUSR2`` (``--signal=USR2@grace``) each worker
checkpoints and suspends its trial, and the task is requeued once with ``scontrol requeue``
(``--requeue`` is set) by the worker, or by the task itself when it started several
(:mod:`wcd_hpc.engine.preemption`). submitit's own requeue-on-timeout (``max_num_timeout``) is
off: its signal handler is replaced by the worker's, so it could never fire, and two owners
could requeue one task twice.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import subprocess
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass

import optuna

from wcd_hpc.environ import environment
from wcd_hpc.errors import SlurmError
from wcd_hpc.launch.base import Handle, Launcher, Outcome, Tick, WorkerInfo
from wcd_hpc.launch.container import digest_env
from wcd_hpc.launch.render import THREAD_EXPORTS, Job, mem_mb, render_sync, time_minutes
from wcd_hpc.launch.task import run_task
from wcd_hpc.queue import accounting
from wcd_hpc.queue.schema import SLURM_DIR, SYNC_SCRIPT
from wcd_hpc.queue.study import record_slurm_jobs
from wcd_hpc.store.urls import ENV_STORAGE

log = logging.getLogger("wcd_hpc.slurm")
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


def _submission_env(job: Job) -> AbstractContextManager[None]:
    """sbatch exports the submitting environment: put the storage URL (and image digest) there."""
    return environment({ENV_STORAGE: job.url, **digest_env(job.site.container)})


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
        # The worker owns preemption (module docstring): submitit never requeues on its own.
        "max_num_timeout": 0,
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

    folder = job.run_dir / SLURM_DIR
    folder.mkdir(parents=True, exist_ok=True)
    spec = job.spec()
    arrays: list[str] = []
    with _submission_env(job):
        for size in chunks(job.workers, max_array_size()):
            params = executor_parameters(job, size)
            executor = submitit.SlurmExecutor(
                folder=folder / "%j", max_num_timeout=int(str(params.pop("max_num_timeout")))
            )
            executor.update_parameters(**params)
            jobs = executor.map_array(run_task, [spec] * size)
            arrays.append(jobs[0].job_id.split("_")[0])
        sync_id = submit_sync(job, arrays) if sync else None
    return Submission(arrays, job.workers, sync_id)


def submit_sync(job: Job, arrays: list[str]) -> str:
    """The MLflow sync job, started once every worker array has ended (``afterany``)."""
    script = job.run_dir / SLURM_DIR / SYNC_SCRIPT
    script.write_text(render_sync(job))
    dependency = "afterany:" + ":".join(arrays)
    out = subprocess.run(
        ["sbatch", "--parsable", f"--dependency={dependency}", str(script)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.strip().split(";")[0]


class SlurmHandle(Handle):
    """The array jobs of one submission (and its dependent sync job, if any)."""

    def __init__(self, submission: Submission) -> None:
        self.submission = submission
        self.jobs = list(submission.arrays)

    def workers(self) -> list[WorkerInfo]:
        return [WorkerInfo(job, state) for job, state in accounting.queued(self.jobs)]

    def wait(self, tick: Tick | None = None, poll_s: float = 2.0) -> Outcome:
        """Follow the arrays until no task is pending or running (``sweep --wait``)."""
        while True:
            try:
                left = accounting.active_tasks(self.jobs)
            except SlurmError as exc:
                log.warning("%s", exc)
                left = -1
            if tick is not None:
                tick(f"{left} tasks queued/running, " if left >= 0 else "")
            if left == 0:
                return Outcome()
            time.sleep(poll_s)

    def cancel(self) -> None:
        subprocess.run(["scancel", *self.jobs], capture_output=True, text=True, timeout=60)


class SlurmLauncher(Launcher):
    """Workers as the tasks of one array job (split at the cluster's MaxArraySize)."""

    name = "slurm"

    def __init__(self, job: Job, *, sync: bool) -> None:
        self.job, self.sync = job, sync

    def start(self, study: optuna.Study, url: str, workers: int) -> SlurmHandle:
        job = dataclasses.replace(self.job, url=url, workers=workers)
        submission = submit(job, sync=self.sync)
        record_slurm_jobs(study, submission.arrays)
        return SlurmHandle(submission)
