"""Preemption under Slurm: which array task a process belongs to, and requeueing it once.

Slurm sends ``SIGUSR2`` ``grace_s`` seconds before a time limit or preemption. The worker owns
what follows (see :mod:`wcd_hpc.launch.slurm`): it suspends its trial and runs ``scontrol
requeue`` on its own array task. When a task runs several workers (``resources.trials_per_gpu``)
each of them gets the signal, but the task must be requeued once, after all of them have
suspended their trials: requeueing kills the job, so a first worker's requeue would kill its
peers before they had checkpointed, and later ones would requeue the already requeued job again.
So the process that started them marks them with :data:`ENV_TASK_REQUEUES`, they leave the
requeue to it, and it requeues once they have all exited.

Imports nothing heavy: the process that starts a task's workers never loads torch.
"""

from __future__ import annotations

import logging
import os
import subprocess

log = logging.getLogger("wcd_hpc.worker")

#: Set (to any non-empty value) in workers started by an array task that requeues itself.
ENV_TASK_REQUEUES = "WCD_HPC_TASK_REQUEUES"


def own_task() -> str | None:
    """This process's Slurm array task (``12_3``), or its plain job id, or None outside Slurm."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{job}_{task}" if job and task else os.environ.get("SLURM_JOB_ID") or None


def worker_requeues() -> bool:
    """Whether this worker requeues its own task (False when the task that started it does)."""
    return not os.environ.get(ENV_TASK_REQUEUES)


def requeue_own_task() -> bool:
    """``scontrol requeue`` this process's task; False outside Slurm or when it failed."""
    target = own_task()
    if target is None:
        return False
    try:
        proc = subprocess.run(
            ["scontrol", "requeue", target], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("scontrol requeue %s: %s", target, exc)
        return False
    log.warning("scontrol requeue %s: %s", target, (proc.stderr or "ok").strip())
    return proc.returncode == 0
