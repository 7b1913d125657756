"""What one Slurm array task runs (submitit pickles :func:`array_task` by reference).

Unpickling the job imports this module before anything else of ours, and it imports nothing
heavy: optuna, the CLI and torch load inside :func:`wcd_hpc.__main__.preload_cli` and the
worker's own start-up, with the garbage collector paused, instead of here with it running.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from types import FrameType


def array_task(command: list[str]) -> int:
    """Body of one array task: run the worker, pass SIGUSR2 / SIGTERM on, return its status.

    Without a container the worker runs in this very process (one interpreter start and one
    torch import fewer per task); in an image it is a child process that gets the signals.
    """
    if command[:3] == [sys.executable, "-m", "wcd_hpc"]:
        # The array task is an entry point like ``wcd-hpc`` itself: the import contract names
        # this one upward import as its exception.
        from wcd_hpc.__main__ import run_in_process

        code = run_in_process(command[3:])
        if code != 0:
            raise RuntimeError(f"worker exited with status {code}")
        return code
    proc = subprocess.Popen(command)

    def forward(signum: int, frame: FrameType | None) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    for sig in (signal.SIGUSR2, signal.SIGTERM):
        signal.signal(sig, forward)
    code = proc.wait()
    if code != 0:
        raise RuntimeError(f"worker exited with status {code}")
    return code
