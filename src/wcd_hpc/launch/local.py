"""The local executor: W worker processes on this machine, watched until the budget is met.

Workers are ordinary ``wcd-hpc worker`` processes, running the worker loop a Slurm array task
runs, so the local path exercises the same code. With G GPUs each worker is pinned to one through
``CUDA_VISIBLE_DEVICES``, round-robin, so ⌈W/G⌉ share a GPU at most (each is told how many share
its GPU, which bounds the memory its data may take there); every worker gets an equal share of
the CPU cores as torch and native threads. The storage URL travels in the environment, never on
the command line, so a password cannot show up in ``ps``.

An array task whose worker spec asks for k workers per GPU (``resources.trials_per_gpu``) starts
them with this same handle (:func:`run_task_workers`): one way to place, start, restart, reap and
stop a set of workers, whoever asked for them. It forwards Slurm's signals to all of them and
requeues the task once, after they have suspended their trials (:mod:`wcd_hpc.engine.preemption`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import optuna
from optuna.trial import TrialState

from wcd_hpc.engine.preemption import ENV_TASK_REQUEUES, own_task, requeue_own_task
from wcd_hpc.engine.startup import (
    ENV_THREADS,
    ENV_WORKERS_PER_GPU,
    THREAD_POOL_VARS,
    visible_gpus,
)
from wcd_hpc.errors import StorageUnavailable
from wcd_hpc.launch.base import Handle, Launcher, Outcome, Tick, WorkerInfo
from wcd_hpc.launch.spec import WorkerSpec
from wcd_hpc.queue import control
from wcd_hpc.queue import study as studies
from wcd_hpc.queue.reaper import fail_and_retry, max_retries
from wcd_hpc.queue.schema import (
    EXIT_STORAGE_LOST,
    EXIT_SUSPENDED,
    LOGS_DIR,
    RESTARTABLE,
    TRIAL_HOST,
    TRIAL_PID,
    TRIAL_SUSPENDED,
)
from wcd_hpc.store.rdb import retry_window
from wcd_hpc.store.storage import Storage
from wcd_hpc.store.urls import ENV_STORAGE, mask

log = logging.getLogger("wcd_hpc.launch")
#: What a worker's log says before the reason it gave the storage up (:mod:`wcd_hpc.engine.worker`).
STOPS = " stops: "
MAX_RESTARTS_PER_WORKER = 2


@dataclass
class Worker:
    index: int
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    restarts: int = 0


@dataclass(frozen=True)
class Pool:
    """How a set of workers is laid out: how many, on which GPUs, sharing which cores, named how.

    Worker ``i`` is labelled ``label_prefix + i`` and logs to ``log_prefix + i + .log``.
    """

    size: int
    #: GPU ids (as CUDA_VISIBLE_DEVICES names them) the workers are pinned to, round-robin;
    #: empty: CPU workers.
    gpus: tuple[str, ...] = ()
    #: Cores the workers share (None: this machine's).
    cores: int | None = None
    label_prefix: str = "local-"
    log_prefix: str = "worker-"
    #: Added to every worker's environment.
    env: Mapping[str, str] = field(default_factory=dict)
    #: Signals that stop the whole set; each is passed on to every worker.
    stop_signals: tuple[int, ...] = (signal.SIGTERM,)
    #: Start each worker in a session of its own, so that Ctrl-C at the terminal reaches only
    #: the launcher (which stops them in order). Not in an array task: Slurm may track a job's
    #: processes by process group, and a worker outside it would outlive the job.
    new_session: bool = True

    def label(self, index: int) -> str:
        return f"{self.label_prefix}{index}"

    def log_name(self, index: int) -> str:
        return f"{self.log_prefix}{index}.log".replace("/", "_")


def worker_env(
    index: int,
    workers: int,
    url: str,
    gpus: int | Sequence[str],
    *,
    cores: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for worker ``index`` of ``workers``: its GPU and its share of the cores.

    ``gpus`` is a count (ids 0 … n-1) or the ids themselves. Worker i gets GPU ``i mod G``, so at
    most ⌈W/G⌉ share one, and is told how many do (:data:`ENV_WORKERS_PER_GPU`). Torch threads
    are ``cores // workers`` (at least 1); the native pools get as many, or fewer where the
    environment already asks for fewer.
    """
    ids = [str(i) for i in range(gpus)] if isinstance(gpus, int) else [str(g) for g in gpus]
    env = dict(os.environ)
    env.update(extra or {})
    env[ENV_STORAGE] = url
    env["PYTHONUNBUFFERED"] = "1"
    if ids:
        slot = index % len(ids)
        env["CUDA_VISIBLE_DEVICES"] = ids[slot]
        env[ENV_WORKERS_PER_GPU] = str(len(range(slot, workers, len(ids))))
    else:
        env["CUDA_VISIBLE_DEVICES"] = ""
        env.pop(ENV_WORKERS_PER_GPU, None)
    threads = max(1, (cores or os.cpu_count() or 1) // workers)
    env[ENV_THREADS] = str(threads)
    for var in THREAD_POOL_VARS:
        asked = env.get(var, "")
        env[var] = (
            str(min(threads, int(asked))) if asked.isdigit() and int(asked) > 0 else str(threads)
        )
    return env


def _spawn(index: int, pool: Pool, study: str, url: str, logs: Path) -> Worker:
    logs.mkdir(parents=True, exist_ok=True)
    out = (logs / pool.log_name(index)).open("ab")
    cmd = WorkerSpec(study, label=pool.label(index)).command()
    env = worker_env(index, pool.size, url, pool.gpus, cores=pool.cores, extra=pool.env)
    proc = subprocess.Popen(
        cmd,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=pool.new_session,
    )
    return Worker(index, proc, out)


def reap_dead(study: optuna.Study, pid: int, code: int) -> list[int]:
    """Mark RUNNING trials of a worker process that died as FAIL, with how it died.

    Only this machine's local workers are reaped here (matched by host and pid); a worker of
    another machine is reaped when its heartbeat goes stale or Slurm says its job ended
    (:mod:`wcd_hpc.queue.reaper`).
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
    """``wcd-hpc worker`` processes on this machine, laid out by a :class:`Pool` and restarted
    when they crash.

    ``local_sweep``: these are a local sweep's workers, whose record on the study (what
    ``cancel`` stops first) is cleared when they end; an array task's are not.
    """

    def __init__(
        self, study: optuna.Study, url: str, pool: Pool, logs: Path, *, local_sweep: bool = True
    ) -> None:
        self.study, self.url, self.pool, self.logs = study, url, pool, logs
        self.local_sweep = local_sweep
        self.jobs: list[str] = []
        self.active = [self._spawn(i) for i in range(pool.size)]
        self.outcome = Outcome(exit_codes=[0] * pool.size)
        self._record()

    def _record(self) -> None:
        """A local sweep's record on the study names its current workers (``cancel``)."""
        if self.local_sweep:
            control.record_local_sweep(self.study, [w.proc.pid for w in self.active])

    def _spawn(self, index: int) -> Worker:
        return _spawn(index, self.pool, self.study.study_name, self.url, self.logs)

    def _why_lost(self, w: Worker) -> str:
        """What worker ``w`` said when it gave the storage up (its log's last "stops:" line)."""
        log_file = self.logs / self.pool.log_name(w.index)
        try:
            lines = log_file.read_text(errors="replace").splitlines()[-50:]
        except OSError:
            lines = []
        said = [line.split(STOPS, 1)[1] for line in lines if STOPS in line]
        if said:
            return said[-1].strip()
        return f"storage {mask(self.url)} unusable (worker {self.pool.label(w.index)}: {log_file})"

    def workers(self) -> list[WorkerInfo]:
        return [WorkerInfo(self.pool.label(w.index), "running") for w in self.active]

    def _budget_left(self) -> bool:
        return studies.work_left(self.study)  # the budget, or finalists still to run

    def _poll(self) -> None:
        for w in list(self.active):
            code = w.proc.poll()
            if code is None:
                continue
            w.log.close()
            self.active.remove(w)
            self.outcome.exit_codes[w.index] = code
            if code == EXIT_STORAGE_LOST:  # its trial is left for resumption; stop them all
                raise StorageUnavailable(self._why_lost(w))
            if code != 0:
                reap_dead(self.study, w.proc.pid, code)
                if _crashed(code) and w.restarts < MAX_RESTARTS_PER_WORKER and self._budget_left():
                    fresh = self._spawn(w.index)
                    fresh.restarts = w.restarts + 1
                    self.outcome.restarts += 1
                    self.active.append(fresh)
                    self._record()

    def wait(self, tick: Tick | None = None, poll_s: float = 0.5) -> Outcome:
        """Watch the workers until all have exited; Ctrl-C or a stop signal stops them.

        A stop signal (SIGTERM from ``wcd-hpc cancel`` or ``kill``; in an array task also
        Slurm's SIGUSR2) is passed on to every worker, which suspends its trial; the first one
        counts (``Outcome.signal``), later ones find the workers stopping already. Ctrl-C sends
        them SIGTERM. The same command resumes the suspended trials later.

        A storage outage (this process's own calls, or a worker's, unanswered for the whole
        retry window; a journal that cannot be written) stops every worker the same way before
        :class:`StorageUnavailable` is raised, one line that says so: no worker is left
        running unwatched, and each trial is either suspended or left with its outage note
        (:mod:`wcd_hpc.queue.outage`) to be resumed by the next sweep.
        """

        def stop(signum: int, frame: FrameType | None) -> None:
            if self.outcome.signal is None:
                self.outcome.signal = signum
                raise KeyboardInterrupt

        lost: StorageUnavailable | None = None
        previous = {sig: signal.signal(sig, stop) for sig in self.pool.stop_signals}
        try:
            while self.active:
                time.sleep(poll_s)
                self._poll()
                if tick is not None:
                    tick(f"{len(self.active)} workers, ")
        except KeyboardInterrupt:
            self.outcome.interrupted = True
            self.cancel(self.outcome.signal or signal.SIGTERM)
        except StorageUnavailable as exc:
            lost = exc
            log.warning("%s; stopping the workers", exc)
            self.outcome.interrupted = True
            # A worker may be inside a retrying call (one window) when the signal comes, and
            # suspending its trial is one more call: wait for both before killing it.
            self.cancel(signal.SIGTERM, timeout=2 * retry_window() + 30)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.local_sweep and lost is None:  # with the storage away: a stale record
                control.clear_local_sweep(self.study)  # that cancel recognises as ended
        if lost is not None:
            again = (
                "rerun the same `wcd-hpc sweep` command to resume"
                if self.local_sweep
                else "the next `wcd-hpc sweep` resumes their trials"
            )
            raise StorageUnavailable(f"{lost}; workers stopped; {again}") from lost
        return self.outcome

    def cancel(self, signum: int = signal.SIGTERM, timeout: float = 60) -> None:
        """Send ``signum`` to every worker and wait for them (``timeout`` s each, then SIGKILL)."""
        for w in self.active:
            if w.proc.poll() is None:
                w.proc.send_signal(signum)
        for w in self.active:
            try:
                w.proc.wait(timeout=timeout)
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
        return LocalHandle(study, url, Pool(workers, tuple(visible_gpus())), self.logs)


def task_cores(env: Mapping[str, str] = os.environ) -> int:
    """The cores an array task's workers share: its torch threads as the sbatch script set them
    (``--cpus-per-task``, or the profile's setup lines), else the cores it may run on."""
    for var in (ENV_THREADS, "SLURM_CPUS_PER_TASK"):
        value = env.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def task_label() -> str:
    """``slurm-<job>_<task>`` for an array task (what ``worker.sbatch`` passes), else host:pid."""
    task = own_task()
    return f"slurm-{task}" if task else f"{socket.gethostname()}:{os.getpid()}"


def task_pool(per_gpu: int, label: str, env: Mapping[str, str] = os.environ) -> Pool:
    """The workers of one array task: ``per_gpu`` on each GPU Slurm gave it, labelled
    ``<label>/<slot>``, sharing its cores, and leaving the requeue to the task."""
    gpus = tuple(visible_gpus(env))
    if not gpus:
        log.warning(
            "no GPU visible to array task %s: its %d workers share its CPUs", label, per_gpu
        )
    return Pool(
        per_gpu * max(1, len(gpus)),
        gpus,
        cores=task_cores(env),
        label_prefix=f"{label}/",
        log_prefix=f"{label}.",
        env={ENV_TASK_REQUEUES: "1"},
        stop_signals=(signal.SIGTERM, signal.SIGUSR2),
        new_session=False,
    )


def run_task_workers(study_name: str, url: str, per_gpu: int, label: str = "") -> int:
    """Body of an array task with k workers per GPU: start them, wait, requeue once if asked.

    The workers are started like a local sweep's (:class:`LocalHandle`: crashed ones restarted
    while budget is left, dead ones reaped). SIGUSR2 (Slurm's warning before a time limit or
    preemption) and SIGTERM reach every worker, which suspends its trial; after SIGUSR2 the
    task requeues itself once they have all exited. Returns the task's exit status:
    :data:`EXIT_SUSPENDED` when stopped by a signal, else the first failing worker's, else 0.
    """
    opened = studies.open_study(study_name, Storage.parse(url))
    study = opened.study
    label = label or task_label()
    pool = task_pool(per_gpu, label)
    logs = opened.run_dir / LOGS_DIR
    handle = LocalHandle(study, url, pool, logs, local_sweep=False)
    log.info(
        "array task %s: %d workers on GPUs %s (%d per GPU), logs %s",
        label,
        pool.size,
        ",".join(pool.gpus) or "none",
        per_gpu,
        logs / pool.log_name(0),
    )
    outcome = handle.wait(poll_s=1.0)
    if outcome.signal == signal.SIGUSR2:
        requeue_own_task()  # once, now that every worker has suspended its trial
    if outcome.interrupted:
        return EXIT_SUSPENDED
    return next((code for code in outcome.exit_codes if code != 0), 0)
