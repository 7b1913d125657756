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
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import optuna
from optuna.trial import TrialState

from wcd_hpc.engine.startup import ENV_THREADS, THREAD_POOL_VARS
from wcd_hpc.launch.base import Handle, Launcher, Outcome, Tick, WorkerInfo
from wcd_hpc.queue import control
from wcd_hpc.queue import study as studies
from wcd_hpc.queue.reaper import fail_and_retry, max_retries
from wcd_hpc.queue.schema import LOGS_DIR, RESTARTABLE, TRIAL_HOST, TRIAL_PID, TRIAL_SUSPENDED
from wcd_hpc.queue.urls import ENV_STORAGE

MAX_RESTARTS_PER_WORKER = 2


@dataclass
class Worker:
    index: int
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    restarts: int = 0


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
    retries = max_retries(study)
    reaped = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        mine = t.user_attrs.get(TRIAL_PID) == pid and t.user_attrs.get(TRIAL_HOST) == host
        if mine and not t.user_attrs.get(TRIAL_SUSPENDED):
            fail_and_retry(study, t, cause, retries)
            reaped.append(t.number)
    return reaped


def _crashed(code: int) -> bool:
    """Killed by a signal (OOM killer, kill -9), an unhandled exception, or stopped by a signal
    after suspending its trial: worth a restart, and the new worker resumes the trial.

    A worker that exits on purpose (a user or data error, too many failed trials) is not
    restarted, since a fresh process would only repeat the same thing.
    """
    return code < 0 or code in RESTARTABLE


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class LocalHandle(Handle):
    """W ``wcd-hpc worker`` processes on this machine, restarted when they crash."""

    def __init__(self, study: optuna.Study, url: str, workers: int, logs: Path) -> None:
        self.study, self.url, self.count, self.logs = study, url, workers, logs
        self.jobs: list[str] = []
        self.gpus = gpu_count()
        self.active = [self._spawn(i) for i in range(workers)]
        self.outcome = Outcome(exit_codes=[0] * workers)

    def _spawn(self, index: int) -> Worker:
        name = self.study.study_name
        return _spawn(index, self.count, name, self.url, self.logs, self.gpus)

    def workers(self) -> list[WorkerInfo]:
        return [WorkerInfo(f"local-{w.index}", "running") for w in self.active]

    def _budget_left(self) -> bool:
        trials = self.study.get_trials(deepcopy=False)
        return studies.finished(trials) < studies.budget_of(self.study)

    def _poll(self) -> None:
        for w in list(self.active):
            code = w.proc.poll()
            if code is None:
                continue
            w.log.close()
            self.active.remove(w)
            self.outcome.exit_codes[w.index] = code
            if code != 0:
                reap_dead(self.study, w.proc.pid, code)
                if _crashed(code) and w.restarts < MAX_RESTARTS_PER_WORKER and self._budget_left():
                    fresh = self._spawn(w.index)
                    fresh.restarts = w.restarts + 1
                    self.outcome.restarts += 1
                    self.active.append(fresh)

    def wait(self, tick: Tick | None = None, poll_s: float = 0.5) -> Outcome:
        """Watch the workers until all have exited; Ctrl-C or SIGTERM stops them.

        SIGTERM (``wcd-hpc cancel``, ``kill``) is handled like Ctrl-C while waiting: each worker
        suspends its trial, and the same command resumes it later.
        """
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            while self.active:
                time.sleep(poll_s)
                self._poll()
                if tick is not None:
                    tick(f"{len(self.active)} workers, ")
        except KeyboardInterrupt:
            self.outcome.interrupted = True
            self.cancel()
        finally:
            signal.signal(signal.SIGTERM, previous)
            control.clear_local_sweep(self.study)
        return self.outcome

    def cancel(self) -> None:
        for w in self.active:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        for w in self.active:
            try:
                w.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
            self.outcome.exit_codes[w.index] = w.proc.returncode
            w.log.close()
        self.active = []


class LocalLauncher(Launcher):
    """Workers as processes of this machine, logs in ``<run dir>/logs/worker-<i>.log``."""

    name = "local"

    def __init__(self, run_dir: Path) -> None:
        self.logs = run_dir / LOGS_DIR

    def start(self, study: optuna.Study, url: str, workers: int) -> LocalHandle:
        control.record_local_sweep(study)  # ``cancel`` stops this process first
        return LocalHandle(study, url, workers, self.logs)
