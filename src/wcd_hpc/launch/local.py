"""The local executor: W worker processes on this machine, watched until the budget is met.

Workers are ordinary ``wcd-hpc worker`` processes, exactly what a Slurm array task runs, so the
local path exercises the same code. Each gets one GPU through ``CUDA_VISIBLE_DEVICES`` when GPUs
exist, otherwise an equal share of the CPU cores as torch threads. The storage URL travels in the
environment, never on the command line, so a password cannot show up in ``ps``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import optuna
from optuna.trial import TrialState

from wcd_hpc.engine.reaper import ATTR_MAX_RETRIES, DEFAULT_MAX_RETRIES, fail_and_retry
from wcd_hpc.startup import ENV_THREADS, THREAD_POOL_VARS
from wcd_hpc.storage import ENV_STORAGE

MAX_RESTARTS_PER_WORKER = 2


@dataclass
class Worker:
    index: int
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    restarts: int = 0


@dataclass
class Outcome:
    """How the local run ended: exit codes of the last process of each worker slot."""

    exit_codes: list[int] = field(default_factory=list)
    restarts: int = 0
    interrupted: bool = False


def gpu_count() -> int:
    try:
        import torch

        return int(torch.cuda.device_count())
    except Exception:
        return 0


def worker_env(index: int, workers: int, url: str, gpus: int) -> dict[str, str]:
    """Environment for worker ``index``: its GPU, or its share of CPU threads."""
    env = dict(os.environ)
    env[ENV_STORAGE] = url
    env["PYTHONUNBUFFERED"] = "1"
    env["CUDA_VISIBLE_DEVICES"] = str(index % gpus) if gpus > 0 else ""
    threads = max(1, (os.cpu_count() or 1) // workers)
    env[ENV_THREADS] = str(threads)
    for var in THREAD_POOL_VARS:
        env.setdefault(var, str(threads))
    return env


def _spawn(index: int, workers: int, study: str, url: str, logs: Path, gpus: int) -> Worker:
    logs.mkdir(parents=True, exist_ok=True)
    log = (logs / f"worker-{index}.log").open("ab")
    cmd = [
        sys.executable,
        "-m",
        "wcd_hpc",
        "worker",
        "--study",
        study,
        "--worker-id",
        f"local-{index}",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=worker_env(index, workers, url, gpus),
        start_new_session=True,
    )
    return Worker(index, proc, log)


def reap_dead(study: optuna.Study, pid: int, code: int) -> list[int]:
    """Mark RUNNING trials of a worker process that died as FAIL, with how it died.

    Only this machine's local workers are reaped here (matched by host and pid); issue-level
    heartbeats for remote workers live elsewhere.
    """
    host = socket.gethostname()
    cause = f"worker process {pid} died ({_describe_exit(code)})"
    retries = int(study.user_attrs.get(ATTR_MAX_RETRIES, DEFAULT_MAX_RETRIES))
    reaped = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        mine = t.user_attrs.get("pid") == pid and t.user_attrs.get("host") == host
        if mine and not t.user_attrs.get("suspended"):
            fail_and_retry(study, t, cause, retries)
            reaped.append(t.number)
    return reaped


def _crashed(code: int) -> bool:
    """Killed by a signal (OOM killer, kill -9), an unhandled exception, or stopped by a signal
    after suspending its trial (75): worth a restart, and the new worker resumes the trial.

    A worker that exits on purpose (usage error 2, too many failed trials 3) is not restarted,
    since a fresh process would only repeat the same thing.
    """
    return code < 0 or code in (1, 75)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def run_local(
    study: optuna.Study,
    url: str,
    workers: int,
    logs: Path,
    *,
    budget_left: Callable[[], bool],
    on_tick: Callable[[list[Worker]], Any] = lambda w: None,
    poll_s: float = 0.5,
) -> Outcome:
    """Run ``workers`` worker processes until they all exit; restart crashed ones while needed.

    ``budget_left()`` says whether finished trials are still short of the budget; a worker that
    crashed is replaced (at most ``MAX_RESTARTS_PER_WORKER`` times per slot) only then.
    """
    gpus = gpu_count()
    name = study.study_name
    active = [_spawn(i, workers, name, url, logs, gpus) for i in range(workers)]
    outcome = Outcome(exit_codes=[0] * workers)
    try:
        while active:
            time.sleep(poll_s)
            for w in list(active):
                code = w.proc.poll()
                if code is None:
                    continue
                w.log.close()
                active.remove(w)
                outcome.exit_codes[w.index] = code
                if code != 0:
                    reap_dead(study, w.proc.pid, code)
                    if _crashed(code) and w.restarts < MAX_RESTARTS_PER_WORKER and budget_left():
                        fresh = _spawn(w.index, workers, name, url, logs, gpus)
                        fresh.restarts = w.restarts + 1
                        outcome.restarts += 1
                        active.append(fresh)
            on_tick(active)
    except KeyboardInterrupt:
        outcome.interrupted = True
        for w in active:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        for w in active:
            try:
                w.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
            outcome.exit_codes[w.index] = w.proc.returncode
            w.log.close()
    return outcome
