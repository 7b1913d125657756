"""What a worker is started from: a typed value, not a command line.

A Slurm array task receives a :class:`WorkerSpec` (submitit pickles it with the task) and runs
it in its own process (:mod:`wcd_hpc.launch.task`): one worker through the worker loop, or k
per GPU through the local launcher's pool. ``resources.trials_per_gpu`` is read once, when the
experiment is loaded, and travels here as :attr:`WorkerSpec.per_gpu`.

A command line is written from a spec only where a process must start
(:meth:`WorkerSpec.command`): a pool's workers, a worker inside the image, and the
``worker.sbatch`` that ``render`` writes for hand submission; :func:`from_command` reads the
commands that array tasks queued before specs existed back into one. The storage URL is never
part of a command (a password would show in ``ps`` and in a script): a process takes it from
``$WCD_HPC_STORAGE``, which sbatch exports and the local launcher sets.

Jobs already queued hold a pickled spec by reference to this module's class: a field added
later needs a default, and a field is never renamed or removed while such jobs may exist.

Imports nothing heavy: unpickling a job imports this module before the task decides what to load.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from wcd_hpc.launch.container import wrap
from wcd_hpc.launch.settings import ContainerSettings

#: The two ``wcd-hpc`` verbs a spec is rendered as: one worker, or a task's pool of them.
WORKER_VERB = "worker"
POOL_VERB = "task-workers"


@dataclass(frozen=True)
class WorkerSpec:
    """One worker, or the workers of one array task, on one study."""

    study: str
    #: Storage URL for a worker run in this process (``worker --storage``); None: the one in
    #: ``$WCD_HPC_STORAGE``. Never rendered, and None in what the Slurm launcher pickles.
    storage: str | None = None
    #: None: one worker. k: k workers on each GPU the task holds (``resources.trials_per_gpu``),
    #: started, restarted and signalled the way a local sweep's are.
    per_gpu: int | None = None
    #: Shown in ``status``; a task's workers add ``/0``, ``/1``, … Empty: ``slurm-<job>_<task>``
    #: for a task's workers, ``host:pid`` for a single worker.
    label: str = ""
    #: Stop after this many trials even if budget remains (a single worker only).
    max_trials: int | None = None
    #: The image the worker runs in; ``image=None``: directly on the node.
    container: ContainerSettings = field(default_factory=ContainerSettings)
    #: The root of the run directories, bound into the image so trials can write there.
    runs_dir: Path | None = None
    #: The interpreter a rendered command starts outside an image.
    python: str = sys.executable

    @property
    def pooled(self) -> bool:
        return self.per_gpu is not None

    def args(self) -> list[str]:
        """The ``wcd-hpc`` arguments that run this spec in a process of its own."""
        if self.per_gpu is not None:
            args = [POOL_VERB, "--study", self.study, "--per-gpu", str(self.per_gpu)]
        else:
            args = [WORKER_VERB, "--study", self.study]
        if self.max_trials is not None:
            args += ["--max-trials", str(self.max_trials)]
        if self.label:
            args += ["--worker-id", self.label]
        return args

    def command(self) -> list[str]:
        """The whole command line: ``wcd-hpc`` in the image when one is configured, else this
        (or the given) interpreter's ``-m wcd_hpc``."""
        base = ["wcd-hpc"] if self.container.image else [self.python, "-m", "wcd_hpc"]
        binds = [self.runs_dir] if self.runs_dir is not None else []
        return wrap([*base, *self.args()], self.container, binds)


#: The options a command queued before specs could hold.
_OPTIONS = ("--study", "--per-gpu", "--worker-id")


def from_command(command: list[str]) -> WorkerSpec | None:
    """The spec of a command an array task was queued with before specs existed, else None.

    Those commands were ``<python> -m wcd_hpc worker --study S`` or ``… task-workers --study S
    --per-gpu K``, run in the task's own process (the interpreter was always the task's); any
    other command (one wrapped in an image) is not a spec and still runs as a process.
    """
    if command[1:3] != ["-m", "wcd_hpc"] or len(command) < 4:
        return None
    verb, rest = command[3], command[4:]
    if verb not in (WORKER_VERB, POOL_VERB) or len(rest) % 2:
        return None
    given = dict(zip(rest[::2], rest[1::2], strict=True))
    if not set(given) <= set(_OPTIONS) or "--study" not in given:
        return None
    study, label, per_gpu = given["--study"], given.get("--worker-id", ""), given.get("--per-gpu")
    if verb == WORKER_VERB:
        return WorkerSpec(study, label=label) if per_gpu is None else None
    per_gpu = per_gpu or "1"  # the verb's default
    if not per_gpu.isdigit() or int(per_gpu) < 1:
        return None
    return WorkerSpec(study, per_gpu=int(per_gpu), label=label)
