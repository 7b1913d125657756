"""What one Slurm array task runs: a worker spec, in the task's own process.

submitit pickles :func:`run_task` by reference, with the task's :class:`WorkerSpec`. Without an
image the task *is* the worker (one interpreter start and one torch import fewer per task), or
the process that starts its k workers per GPU and stands in for them towards Slurm
(:func:`wcd_hpc.launch.local.run_task_workers`); either way it calls the library, never the
CLI. With an image the worker runs inside it, a child process that gets the task's signals.

Unpickling the job imports this module and :mod:`wcd_hpc.launch.spec` before anything else of
ours, and neither imports anything heavy: the worker loop (torch) loads inside :func:`work`
with the garbage collector paused (:mod:`wcd_hpc.engine.startup`), the pool (optuna) only when
there is one.

:func:`array_task` is what tasks queued before specs existed were pickled with: it reads their
command back into a spec.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from types import FrameType

from wcd_hpc.engine.startup import configure_logging, paused_gc
from wcd_hpc.errors import StudyNotFound, UsageError, WcdHpcError
from wcd_hpc.launch.spec import WorkerSpec, from_command
from wcd_hpc.output.masking import mask_standard_streams
from wcd_hpc.store.urls import SECRET_VARIABLES, from_env, mask_text

log = logging.getLogger("wcd_hpc.launch")


def run_task(spec: WorkerSpec) -> int:
    """Body of one array task: run ``spec``, return 0 or raise with the status it ended with.

    A non-zero status raises, so that submitit and ``sacct`` see the task fail. One of our
    errors (a study that is not there, no storage given) is the same one line the CLI prints.
    Like ``wcd-hpc`` itself, the task masks secrets in whatever it prints (its Slurm log).
    """
    mask_standard_streams(*SECRET_VARIABLES)
    configure_logging()
    if spec.container.image:
        return _checked(_run_process(spec.command()))
    try:
        code = work(spec)
    except WcdHpcError as exc:
        print(f"error: {mask_text(' '.join(str(exc).split()))}", file=sys.stderr, flush=True)
        code = exc.exit_code
    return _checked(code)


def array_task(command: list[str]) -> int:
    """Body of an array task queued before worker specs: its pickle holds this and a command.

    ``… -m wcd_hpc worker`` / ``task-workers`` commands become the spec they stand for; a
    command in an image runs as the process it always was.
    """
    spec = from_command(command)
    if spec is None:
        mask_standard_streams(*SECRET_VARIABLES)
        configure_logging()
        return _checked(_run_process(command))
    return run_task(spec)


def work(spec: WorkerSpec) -> int:
    """Run ``spec`` in this process and return its exit status (as ``wcd-hpc worker``'s).

    A study that is not there is a :class:`UsageError` (status 2): to a launcher, status 1 is a
    crash worth a restart, and a worker started for a missing study would fail the same way.
    """
    url = from_env(spec.storage)
    try:
        if spec.per_gpu is not None:
            from wcd_hpc.launch.local import run_task_workers

            return run_task_workers(spec.study, url, spec.per_gpu, spec.label)
        return _one_worker(spec, url)
    except StudyNotFound as exc:
        raise UsageError(str(exc)) from None


def _one_worker(spec: WorkerSpec, url: str) -> int:
    with paused_gc():  # the worker engine imports torch, plugins load: see engine.startup
        from wcd_hpc.engine.worker import run_worker
        from wcd_hpc.plugins import get_registry

        registry = get_registry()
    for line in [*registry.warnings, *registry.errors]:
        log.warning("%s", line)
    summary = run_worker(spec.study, url, worker=spec.label, max_trials=spec.max_trials)
    log.info(
        "worker done: %d complete, %d pruned, %d failed (%s)",
        summary.complete,
        summary.pruned,
        summary.failed,
        summary.reason or "stopped",
    )
    return summary.exit_code


def _run_process(command: list[str]) -> int:
    """Run ``command`` as a child that gets the task's SIGUSR2 / SIGTERM; its exit status."""
    proc = subprocess.Popen(command)

    def forward(signum: int, frame: FrameType | None) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGUSR2, signal.SIGTERM)}
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _checked(code: int) -> int:
    if code != 0:
        raise RuntimeError(f"worker exited with status {code}")
    return code
