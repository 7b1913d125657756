"""``sweep --dry-run``: all a sweep would do, shown; nothing created, written or submitted.

Shown as tables for a person, or as one JSON document for a script (``--json``,
:func:`dry_run_document`), whose keys are a stable interface: a key may be added, none renamed.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from rich.syntax import Syntax
from rich.table import Table

from wcd_hpc.cli.common import out, print_table, warn
from wcd_hpc.experiment.config import Experiment, settings_of
from wcd_hpc.experiment.keys import find
from wcd_hpc.launch.render import gpu_hours_bound, render_scripts, render_sync, render_worker
from wcd_hpc.launch.sweep import Plan
from wcd_hpc.plugins import get_registry
from wcd_hpc.queue.schema import STUDY_RUN_DIR, STUDY_WARM_START
from wcd_hpc.store.urls import mask, without_secrets

SAMPLES = 3


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _settings(exp: Experiment) -> dict[str, tuple[Any, bool]]:
    """Every key of the table with its value (secrets masked) and whether it is the default."""
    shown = {}
    for name, (value, is_default) in settings_of(exp).items():
        key = find(name)
        shown[name] = (_masked(value) if key and key.secret else value, is_default)
    return shown


def _masked(value: Any) -> Any:
    """A secret key's value with every URL in it masked (``start_from`` is a mapping)."""
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    return value if value is None or isinstance(value, (int, float)) else mask(str(value))


def _script(text: str) -> None:
    """A rendered script: highlighted and wrapped on a terminal; anywhere else (a pipe, a file)
    as it is, since rich would cut its lines at the 80 columns it assumes there."""
    if out.is_terminal:
        out.print(Syntax(text, "bash", word_wrap=True), soft_wrap=False)
    else:
        out.print(text)


def show_dry_run(p: Plan) -> None:
    """Show what ``sweep`` would do. A new study starts at most one worker per trial of its
    budget, so that is what the array, the GPU-hour bound and the samples are shown for."""
    exp = p.exp
    job = p.job(min(exp.workers, exp.trials))
    reg = get_registry()
    out.rule(f"dry run: {exp.name} (nothing is created, written or submitted)")
    plugins = Table(title="plugins", title_justify="left")
    for col in ("kind", "name", "distribution"):
        plugins.add_column(col)
    for kind, name, entries in (
        ("model", exp.model, reg.models),
        ("dataset", exp.dataset, reg.datasets),
        ("metric", exp.metric, reg.metrics),
    ):
        src = entries[name].source
        plugins.add_row(kind, name, f"{src.distribution} {src.version}")
    out.print(plugins)
    out.print(
        f"{exp.trials} trials × {exp.epochs} epochs, {exp.metric} ({exp.direction}), "
        f"sampler {exp.sampler}, pruner {exp.pruner}, storage {mask(p.url)}, run dir {p.run_dir}"
    )
    # Required keys are in the lines above, param_space in the search space below.
    changed = {
        k: v
        for k, (v, is_default) in _settings(exp).items()
        if not is_default and k != "param_space" and not getattr(find(k), "required", True)
    }
    settings = Table(title="settings not at their defaults", title_justify="left")
    settings.add_column("key")
    settings.add_column("value")
    for key, value in changed.items():
        settings.add_row(key, _fmt(value))
    out.print(settings)
    space = Table(title="search space", title_justify="left")
    space.add_column("parameter")
    space.add_column("distribution")
    for key, text in p.space.describe().items():
        space.add_row(key, text)
    out.print(space)
    samples = p.space.sample(min(SAMPLES, exp.trials), exp.seed)
    if samples:
        table = Table(title=f"{len(samples)} sampled parameter sets", title_justify="left")
        keys = list(samples[0])
        for key in keys:
            table.add_column(key)
        for row in samples:
            table.add_row(*(_fmt(row[k]) for k in keys))
        print_table(table)
    if exp.executor == "slurm":
        per_task, per_gpu = job.workers_per_task, exp.resources.trials_per_gpu
        each = f", each running {per_task} workers ({per_gpu} per GPU)" if per_task > 1 else ""
        out.print(
            f"executor slurm: one array of {job.workers} tasks, {job.parallelism} at a time{each}"
        )
        _script(render_worker(job))
        _script(render_sync(job))
    else:
        out.print(f"executor local: {job.workers} worker processes on this machine")
    out.print(f"worker command: {shlex.join(job.worker_command())}")
    out.print(f"worker storage (password withheld): {without_secrets(p.url)}")
    r = exp.resources
    bound = gpu_hours_bound(r, job.workers)
    gpus = f"{r.gpus} GPU{'s' if r.gpus != 1 else ''}"
    out.print(
        f"upper bound: {bound:.1f} GPU-hours ({job.workers} workers × {gpus} × {r.time})"
        if exp.executor == "slurm"
        else "upper bound: local run, no cluster allocation"
    )
    if p.warm is not None and p.warm.configs:
        out.print(p.warm.summary(planned=True))
    for line in p.warnings():
        warn(line)


def dry_run_document(p: Plan) -> dict[str, Any]:
    """What :func:`show_dry_run` shows, as JSON-ready data; secrets masked or withheld."""
    exp = p.exp
    job = p.job(min(exp.workers, exp.trials))
    reg = get_registry()
    plugins = []
    for kind, name, entries in (
        ("model", exp.model, reg.models),
        ("dataset", exp.dataset, reg.datasets),
        ("metric", exp.metric, reg.metrics),
    ):
        src = entries[name].source
        plugins.append(
            {
                "kind": kind,
                "name": name,
                "plugin": src.plugin,
                "distribution": src.distribution,
                "version": src.version,
            }
        )
    slurm = exp.executor == "slurm"
    r = exp.resources
    return {
        "study": exp.name,
        "model": exp.model,
        "dataset": exp.dataset,
        "metric": exp.metric,
        "direction": exp.direction,
        "trials": exp.trials,
        "epochs": exp.epochs,
        "sampler": exp.sampler,
        "pruner": exp.pruner,
        "storage": mask(p.url),
        STUDY_RUN_DIR: str(p.run_dir),  # the key status --json uses
        "executor": exp.executor,
        "workers": job.workers,
        "parallelism": job.parallelism if slurm else job.workers,
        "plugins": plugins,
        "space": p.space.describe(),
        "samples": p.space.sample(min(SAMPLES, exp.trials), exp.seed),
        "scripts": render_scripts(job) if slurm else {},
        "worker_command": job.worker_command(),
        "worker_storage": without_secrets(p.url),
        "bound": {
            "gpu_hours": gpu_hours_bound(r, job.workers) if slurm else None,
            "workers": job.workers,
            "gpus_per_worker": r.gpus,
            "time": r.time,
        },
        "warnings": p.warnings(),
        STUDY_WARM_START: None
        if p.warm is None
        else {"study": p.warm.study, "trials": list(p.warm.trials), "params": list(p.warm.configs)},
        "settings": {k: v for k, (v, _) in _settings(exp).items()},
    }


def print_dry_run_json(p: Plan) -> None:
    """The dry run as one JSON document on stdout (nothing else is printed there)."""
    print(json.dumps(dry_run_document(p), indent=2, default=str))
