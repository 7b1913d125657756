"""The one launcher interface: start W workers for a study, then ask, wait or cancel.

Workers are interchangeable (they need only the study name and storage URL), so a launcher has
little to do: start them somewhere and keep a handle. Local processes and a Slurm array look
the same from above, the way submitit gives local and Slurm jobs one executor/job shape, so
:mod:`wcd_hpc.launch.sweep` drives either without knowing which.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna

#: Called on every poll while a handle waits, with a short description of the workers
#: ("3 workers, " / "4 tasks queued/running, ") for a progress line.
Tick = Callable[[str], None]


@dataclass(frozen=True)
class WorkerInfo:
    """One worker (a local process or an array task) as its launcher sees it."""

    label: str  # local-0, or 1234_5 for task 5 of array 1234
    state: str  # running, exited 0, PENDING, RUNNING, …


@dataclass
class Outcome:
    """How waiting ended: the exit codes of the last process of each local worker slot (empty
    for Slurm, where sacct has them), restarts, and whether it was interrupted (Ctrl-C, or a
    signal)."""

    exit_codes: list[int] = field(default_factory=list)
    restarts: int = 0
    interrupted: bool = False
    #: The signal that stopped the workers (SIGTERM, or SIGUSR2 in an array task), if any.
    signal: int | None = None


class Handle(ABC):
    """The workers one launcher started for one study."""

    #: The Slurm job ids of the arrays (empty for local workers).
    jobs: list[str]

    @abstractmethod
    def workers(self) -> list[WorkerInfo]:
        """The workers (or array tasks) that still exist, with their state."""

    @abstractmethod
    def wait(self, tick: Tick | None = None, poll_s: float = 0.5) -> Outcome:
        """Block until every worker has ended; ``tick`` is called on each poll."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop every worker; each suspends its running trial (SIGTERM) before it exits."""


class Launcher(ABC):
    """Starts workers for a study."""

    name: str

    @abstractmethod
    def start(self, study: optuna.Study, url: str, workers: int) -> Handle:
        """Start ``workers`` workers on ``study`` (stored at ``url``) and return their handle."""
