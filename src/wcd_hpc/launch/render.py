"""sbatch scripts for hand submission, and the pieces every Slurm path shares.

``wcd-hpc render`` writes exactly what ``sweep --executor slurm`` would run: the same resources
and signal, and the command of the same worker spec that submitit hands each array task. Every
value interpolated into a shell line goes through ``shlex.quote``; values in ``#SBATCH`` lines
are double-quoted and may not hold a quote or a newline (sbatch reads those lines itself, not
the shell). Passwords are stripped from storage
URLs: a rendered script is a file others may read.
"""

from __future__ import annotations

import math
import re
import shlex
import sys
from dataclasses import dataclass
from importlib import resources as pkg_resources
from pathlib import Path
from string import Template

from wcd_hpc.engine.startup import ENV_THREADS, THREAD_POOL_VARS
from wcd_hpc.errors import ConfigError
from wcd_hpc.experiment.config import Experiment, Resources
from wcd_hpc.launch.container import wrap
from wcd_hpc.launch.settings import Site
from wcd_hpc.launch.spec import WorkerSpec
from wcd_hpc.queue.schema import SLURM_DIR, SYNC_SCRIPT, WORKER_SCRIPT
from wcd_hpc.store.urls import without_secrets

#: Threads sized to the task's cores: the worker's torch threads and the native pools. Slurm sets
#: none of these, so numpy's OpenBLAS and torch's OpenMP would each start a thread per core of the
#: whole node in every task; on a node shared by several tasks those threads spin on the few cores
#: each task was given. Setup lines (which come after) may override them.
THREAD_EXPORTS = [
    f'export {var}="${{SLURM_CPUS_PER_TASK:-1}}"' for var in (ENV_THREADS, *THREAD_POOL_VARS)
]


def time_minutes(time: str) -> int:
    """Slurm time ``[D-]HH:MM:SS`` in whole minutes (rounded up)."""
    days, _, clock = time.rpartition("-")
    h, m, s = (int(p) for p in clock.split(":"))
    return (int(days or 0) * 24 + h) * 60 + m + math.ceil(s / 60)


def mem_mb(resources: Resources) -> int:
    return math.ceil(resources.mem_gb * 1024)


def gpu_hours_bound(resources: Resources, workers: int) -> float:
    """Upper bound of GPU-hours: every task holding its GPUs for the whole time limit."""
    return workers * resources.gpus * time_minutes(resources.time) / 60


def _directive_value(value: str, key: str) -> str:
    if '"' in value or "\n" in value:
        raise ConfigError("<render>", key, None, f"cannot put {value!r} in an #SBATCH line")
    return f'"{value}"' if re.search(r"\s", value) else value


@dataclass(frozen=True)
class Job:
    """Everything that defines the worker array of one study on one site."""

    exp: Experiment
    url: str
    run_dir: Path
    workers: int
    site: Site
    python: str = sys.executable

    @property
    def parallelism(self) -> int:
        return min(self.workers, self.site.slurm.array_parallelism or self.workers)

    @property
    def workers_per_task(self) -> int:
        """Workers each array task runs: ``trials_per_gpu`` on each of its GPUs (one without)."""
        r = self.exp.resources
        return r.trials_per_gpu * r.gpus if r.gpus > 0 else 1

    def spec(self) -> WorkerSpec:
        """What every array task runs: one worker, or ``trials_per_gpu`` on each of its GPUs
        when that makes several (started as a local sweep starts its workers, the task
        requeued once on SIGUSR2); in the image when one is configured."""
        per_gpu = self.exp.resources.trials_per_gpu if self.workers_per_task > 1 else None
        return WorkerSpec(
            self.exp.name,
            per_gpu=per_gpu,
            container=self.site.container,
            runs_dir=self.run_dir.parent,
            python=self.python,
        )

    def worker_command(self) -> list[str]:
        """The command of :meth:`spec` (what ``worker.sbatch`` and the dry run show)."""
        return self.spec().command()

    def sync_command(self) -> list[str]:
        args = ["sync", self.exp.name, "--runs-dir", str(self.run_dir.parent)]
        if self.site.container.image:
            return wrap(["wcd-hpc", *args], self.site.container, [self.run_dir.parent])
        return [self.python, "-m", "wcd_hpc", *args]

    def directives(self) -> list[str]:
        """``#SBATCH`` resource lines, from the experiment's resources and the site profile."""
        r, s = self.exp.resources, self.site.slurm
        lines = [
            f"--time={r.time}",
            f"--cpus-per-task={r.cpus}",
            f"--mem={mem_mb(r)}M",
        ]
        gres = s.gres_for(r.gpus)
        if gres:
            lines.append(f"--gres={gres}")
        for key in ("partition", "account", "qos", "constraint"):
            value = getattr(s, key)
            if value:
                lines.append(f"--{key}={value}")
        lines += [f"--{k}={v}" for k, v in s.extra]
        return [f"#SBATCH {line}" for line in lines]

    def setup_lines(self) -> str:
        return "\n".join(self.site.slurm.setup) if self.site.slurm.setup else "# (no setup lines)"


def _template(name: str) -> Template:
    text = (pkg_resources.files("wcd_hpc.launch") / "templates" / name).read_text()
    return Template(text)


def render_worker(job: Job) -> str:
    out = str(job.run_dir / SLURM_DIR / "%A_%a.out")
    return _template("worker.sbatch.in").substitute(
        study_comment=job.exp.name,
        job_name=f"wcd-{job.exp.name}",
        array=f"0-{job.workers - 1}%{job.parallelism}",
        directives="\n".join(job.directives()),
        grace=job.site.slurm.grace_s,
        output=_directive_value(out, "runs_dir"),
        threads="\n".join(THREAD_EXPORTS),
        setup=job.setup_lines(),
        storage=shlex.quote(without_secrets(job.url)),
        command=shlex.join(job.worker_command()),
    )


def render_sync(job: Job) -> str:
    partition = job.site.slurm.partition
    return _template("sync.sbatch.in").substitute(
        study_comment=job.exp.name,
        job_name=f"wcd-{job.exp.name}",
        partition=f"#SBATCH --partition={partition}" if partition else "# (default partition)",
        output=_directive_value(str(job.run_dir / SLURM_DIR / "sync-%j.out"), "runs_dir"),
        setup=job.setup_lines(),
        storage=shlex.quote(without_secrets(job.url)),
        sync_command=shlex.join(job.sync_command()),
    )


def render_scripts(job: Job) -> dict[str, str]:
    """``{file name: text}`` of both scripts; raises before anything is written when a value
    cannot be put in a script (so ``render`` refuses without creating the study)."""
    return {WORKER_SCRIPT: render_worker(job), SYNC_SCRIPT: render_sync(job)}


def write_scripts(job: Job, out_dir: Path, scripts: dict[str, str] | None = None) -> list[Path]:
    """Write ``worker.sbatch`` and ``sync.sbatch`` into ``out_dir`` (created if needed)."""
    texts = render_scripts(job) if scripts is None else scripts
    out_dir.mkdir(parents=True, exist_ok=True)
    # Slurm does not create the directory of --output; a job without it dies silently.
    (job.run_dir / SLURM_DIR).mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in texts.items():
        path = out_dir / name
        path.write_text(text)
        path.chmod(0o755)
        paths.append(path)
    return paths
