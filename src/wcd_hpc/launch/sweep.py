"""``sweep`` as a library: validate everything, create or resume the study, launch, follow, sync.

Validation (experiment file, site profile, plugins, search space, dataset, storage URL) happens
entirely before the first file or study is created, so a broken input leaves nothing behind.
Then :func:`run_sweep` does the rest through the one launcher interface
(:mod:`wcd_hpc.launch.base`); what a person sees of it goes through a :class:`Reporter`, which
the CLI implements with rich and a library caller may leave silent.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import optuna

from wcd_hpc import merit
from wcd_hpc.engine.search import grid_of, grid_size
from wcd_hpc.errors import (
    ConfigError,
    LaunchError,
    StorageError,
    StudyNotFound,
    SweepIncomplete,
    SyncError,
)
from wcd_hpc.experiment.config import Experiment, load_experiment
from wcd_hpc.experiment.keys import MAX_LOCAL_WORKERS
from wcd_hpc.experiment.modelfiles import Loaded
from wcd_hpc.experiment.paths import with_absolute_paths
from wcd_hpc.experiment.resolve import error_at, resolve
from wcd_hpc.experiment.space import Space
from wcd_hpc.launch.base import Handle, Launcher, Outcome, Tick
from wcd_hpc.launch.local import LocalLauncher
from wcd_hpc.launch.render import Job, time_minutes
from wcd_hpc.launch.settings import Site, parse_site, site_profile
from wcd_hpc.launch.slurm import SlurmLauncher
from wcd_hpc.plugins import Registry, load_experiment_files
from wcd_hpc.queue import files, warmstart
from wcd_hpc.queue import study as studies
from wcd_hpc.queue.claims import gpu_budget_spent
from wcd_hpc.queue.opened import OpenedStudy
from wcd_hpc.queue.schema import LOGS_DIR, TRIAL_OBJECTIVE_INTERVAL, TRIAL_TEST
from wcd_hpc.store import urls
from wcd_hpc.store.storage import Storage

SyncProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class Plan:
    """A validated sweep: the resolved experiment, the site, and where its study and files go."""

    exp: Experiment
    space: Space
    run_dir: Path
    url: str
    site: Site = dataclasses.field(default_factory=Site)
    #: Model files the experiment names, read when planned; ``start`` copies them for workers.
    files: tuple[Loaded, ...] = ()
    #: What ``start_from`` enqueues when the study starts; None without one, or once done.
    warm: warmstart.WarmStart | None = None
    #: The ``executor`` the ``--profile`` names (None without one, or when it names none).
    profile_executor: str | None = None

    def warnings(self) -> list[str]:
        """Settings that are valid but will not do what was meant (shown by sweep and dry run)."""
        grace = self.site.slurm.grace_s
        r = self.exp.resources
        limit = time_minutes(r.time) * 60
        found = []
        if self.profile_executor == "slurm" and self.exp.executor == "local":
            came = self.exp.origins.get("executor") or self.exp.source
            found.append(
                f"profile {self.site.source} runs on a Slurm cluster, but executor local (from "
                f"{came}) starts the {self.exp.workers} workers on this machine "
                f"({socket.gethostname()}); drop that setting to run them as Slurm jobs"
            )
        if self.exp.executor == "slurm" and grace >= limit:
            found.append(
                f"{self.site.source}: slurm.grace_s ({grace} s) is not shorter than "
                f"resources.time ({r.time}): Slurm would signal the workers "
                "to stop as soon as they start"
            )
        if self.exp.executor == "slurm" and r.trials_per_gpu > 1 and r.gpus == 0:
            found.append(
                f"{self.exp.source}: resources.trials_per_gpu ({r.trials_per_gpu}) has no "
                "effect without resources.gpus: each array task runs one worker on its CPUs"
            )
        if self.warm is not None:
            found += self.warm.warnings
        return found

    def job(self, workers: int | None = None) -> Job:
        """The worker array of this plan (what ``render`` writes and Slurm runs)."""
        count = self.exp.workers if workers is None else workers
        return Job(self.exp, self.url, self.run_dir, count, self.site)


def plan(
    path: str | Path,
    registry: Registry,
    *,
    profile: str | None = None,
    sets: Sequence[str] = (),
    flags: Mapping[str, tuple[str, Any]] | None = None,
) -> Plan:
    """Load and check an experiment with its site profile, ``--set`` values and flags.

    ``flags`` maps experiment keys to ``(flag, value)``, e.g. ``{"workers": ("--workers", 4)}``;
    errors in them name the flag. The storage follows the one precedence rule of
    :func:`wcd_hpc.store.urls.chosen`: ``--storage`` > ``$WCD_HPC_STORAGE`` > the file.
    """
    prof = site_profile(profile)
    site = parse_site(prof, source=str(profile or "<profile>"))
    given = urls.with_chosen_storage(flags)
    exp = load_experiment(path, profile=prof, overrides=sets, flags=given)
    loaded = load_experiment_files(registry, exp)
    exp, space = resolve(exp, registry)
    exp = with_absolute_paths(exp, registry.datasets[exp.dataset].obj)
    if exp.sampler == "grid":
        _check_grid(exp, space)
    _check_dataset(exp, registry)
    if exp.executor == "auto":
        exp = dataclasses.replace(exp, executor="slurm" if shutil.which("sbatch") else "local")
    if exp.executor == "local" and exp.workers > MAX_LOCAL_WORKERS:
        raise error_at(
            exp,
            "workers",
            f"expected at most {MAX_LOCAL_WORKERS} local workers (processes on this machine), "
            f"got {exp.workers:,}; use executor: slurm for more",
        )
    run_dir = (Path(exp.runs_dir) / exp.name).resolve()
    url = urls.resolve(exp.storage, run_dir)
    executor = str(prof["executor"]) if prof and "executor" in prof else None
    return Plan(
        exp,
        space,
        run_dir,
        url,
        site,
        loaded,
        _warm_start(exp, space, url, run_dir),
        profile_executor=executor,
    )


def _warm_start(
    exp: Experiment, space: Space, url: str, run_dir: Path
) -> warmstart.WarmStart | None:
    """The configurations ``start_from`` names, read now so that a missing study is refused
    before anything is created; None without ``start_from`` or once the study has its warm start
    (a resumed sweep must not need the other study any more)."""
    spec = exp.setting("start_from")
    if spec is None:
        return None
    if exp.sampler == "grid":
        raise error_at(exp, "start_from", "a grid sweep visits every point of its grid anyway")
    own = Storage.parse(url)
    per_study = exp.storage == "journal"
    source = warmstart.source_of(spec, own, run_dir.parent, per_study=per_study)
    if spec["study"] == exp.name and source.url == url:
        raise error_at(exp, "start_from", f"names study '{exp.name}' itself; name another study")
    if warmstart.done(exp.name, own):
        return None
    try:  # never more than the budget: the rest would wait in the study for ever
        return warmstart.find(dict(spec, top=min(spec["top"], exp.trials)), source, space)
    except (StudyNotFound, StorageError) as exc:
        raise error_at(exp, "start_from", str(exc)) from None


def _check_dataset(exp: Experiment, registry: Registry) -> None:
    """Let the dataset look at its parameters and files now, not on a compute node later."""
    dataset = registry.datasets[exp.dataset].obj
    if dataset.check is None:
        return
    try:
        dataset.check({**dataset.defaults, **exp.dataset_params})
    except ValueError as exc:
        raise _dataset_error(exp, str(exc)) from None


def _dataset_error(exp: Experiment, message: str) -> ConfigError:
    """The dataset's refusal, blamed where the parameter it names was written.

    A dataset says which parameter it refuses only in its words (``parameter 'events' must
    be …``); when a parameter of the experiment is named there, where it was written is blamed:
    the flag that set it (``--set dataset.params.events=-5``), else its line of the file.
    """
    for name in exp.dataset_params:
        key = f"dataset.params.{name}"
        if re.search(rf"\b{re.escape(str(name))}\b", message):
            flag = exp.origins.get(key) or exp.origins.get("dataset.params")
            if flag is None and exp.origins.get("dataset") is None:
                return ConfigError(exp.source, key, exp.lines.get(key), message)
            return ConfigError(flag or exp.origins["dataset"], key, None, message)
    flag = exp.origins.get("dataset.params") or exp.origins.get("dataset")
    if flag is not None:
        return ConfigError(flag, "dataset.params", None, message)
    return ConfigError(exp.source, "dataset", exp.lines.get("dataset"), message)


def _check_grid(exp: Experiment, space: Space) -> None:
    """Refuse a grid sweep over continuous parameters, or with more trials than grid points."""
    line = exp.lines.get("sampler")
    try:
        size = grid_size(grid_of(space))
    except ValueError as exc:
        raise ConfigError(exp.source, "sampler", line, str(exc)) from None
    if exp.trials > size:
        raise ConfigError(
            exp.source,
            "trials",
            exp.lines.get("trials"),
            f"the grid has {size} points; expected trials <= {size}, got {exp.trials}",
        )


def start(p: Plan) -> tuple[optuna.Study, studies.Prepared]:
    """Create or resume the study of plan ``p`` (the first point where anything is written)."""
    where = Storage.parse(p.url)
    storage = where.open()
    # Under the study's claim lock: two sweeps starting the same new study at once must not
    # both create it (or one resume it half-made); the second waits and resumes it.
    with where.lock(storage, p.exp.name):
        files.check_resume(storage, p.exp, p.files, p.run_dir)
        prepared = studies.prepare(p.exp, p.space, where, storage, p.run_dir)
        p.run_dir.mkdir(parents=True, exist_ok=True)
        study = optuna.load_study(study_name=p.exp.name, storage=storage)
        files.record(study, p.run_dir, p.files)
    # Outside that lock: the warm start takes it itself (and is idempotent under it).
    opened = OpenedStudy(study, where, p.run_dir)
    if p.warm is not None and warmstart.enqueue(opened, p.warm):
        prepared = dataclasses.replace(prepared, warm_started=len(p.warm.configs))
    return study, prepared


def launcher_for(p: Plan, *, sync_job: bool) -> Launcher:
    """The launcher of the plan's executor; ``sync_job`` adds Slurm's dependent sync job."""
    if p.exp.executor == "slurm":
        if shutil.which("sbatch") is None:
            raise LaunchError(
                f"{p.exp.source}: executor: 'slurm' needs sbatch on PATH; use --executor local here"
            )
        return SlurmLauncher(p.job(), sync=sync_job)
    return LocalLauncher(p.run_dir)


class Reporter(Protocol):
    """What a person sees of a sweep; the CLI prints it, a library caller may ignore it."""

    def prepared(self, p: Plan, prep: studies.Prepared) -> None: ...

    def launched(self, p: Plan, launcher: Launcher, handle: Handle) -> None: ...

    def progress(self, study: optuna.Study, p: Plan) -> AbstractContextManager[Tick]: ...

    def sync_progress(self) -> AbstractContextManager[SyncProgress]: ...

    def warning(self, message: str) -> None: ...


class Silent:
    """A :class:`Reporter` that shows nothing."""

    def prepared(self, p: Plan, prep: studies.Prepared) -> None:
        pass

    def launched(self, p: Plan, launcher: Launcher, handle: Handle) -> None:
        pass

    @contextmanager
    def progress(self, study: optuna.Study, p: Plan) -> Iterator[Tick]:
        yield lambda extra: None

    @contextmanager
    def sync_progress(self) -> Iterator[SyncProgress]:
        yield lambda done, total: None

    def warning(self, message: str) -> None:
        pass


@dataclass
class SweepResult:
    """Where a sweep stands when :func:`run_sweep` returns."""

    study: optuna.Study
    prepared: studies.Prepared
    handle: Handle | None = None
    outcome: Outcome | None = None
    synced: str | None = None  # the sync report's line
    #: How to look at the results: the MLflow UI and optuna-dashboard commands, the address.
    looking: list[str] = dataclasses.field(default_factory=list)

    @property
    def following(self) -> bool:
        """False when the workers were submitted and not followed (Slurm without --wait)."""
        return self.handle is None or self.outcome is not None

    @property
    def interrupted(self) -> bool:
        return self.outcome is not None and self.outcome.interrupted

    def finished(self) -> int:
        return studies.finished(self.study.get_trials(deepcopy=False))

    def require_budget(self, run_dir: Path) -> None:
        """Raise :class:`SweepIncomplete` when a followed sweep ended short of its budget."""
        done, budget = self.finished(), self.prepared.budget
        spent = gpu_budget_spent(self.study)  # stopped by its budget in GPU-hours: not short
        if self.following and not self.interrupted and done < budget and not spent:
            raise SweepIncomplete(
                f"sweep ended with {done} of {budget} trials finished; see wcd-hpc status "
                f"{self.prepared.name} and the worker logs in {run_dir / LOGS_DIR}"
            )


def run_sweep(
    p: Plan, *, wait: bool = False, sync: bool = True, reporter: Reporter | None = None
) -> SweepResult:
    """Create or resume the study, start the workers the budget still needs, and follow them.

    Local workers are always followed; a Slurm array only with ``wait`` (otherwise it is
    submitted with a dependent sync job and this returns). Finished trials are synced to
    MLflow at the end; a sync failure is a warning, the sweep's result stands. Whether it met
    its budget is :meth:`SweepResult.require_budget`.
    """
    show = reporter or Silent()
    study, prep = start(p)
    show.prepared(p, prep)
    result = SweepResult(study, prep)
    trials = study.get_trials(deepcopy=False)
    remaining = max(prep.budget - prep.finished, studies.finalists_left(study, trials))
    if remaining <= 0:
        return result
    launcher = launcher_for(p, sync_job=sync and not wait)
    result.handle = launcher.start(study, p.url, min(p.exp.workers, remaining))
    show.launched(p, launcher, result.handle)
    if launcher.name == "slurm" and not wait:
        return result
    with show.progress(study, p) as tick:
        result.outcome = result.handle.wait(tick)
    if result.interrupted:
        return result
    if sync:
        _sync(p, study, show, result)
    return result


def _sync(p: Plan, study: optuna.Study, show: Reporter, result: SweepResult) -> None:
    """Copy the finished trials to MLflow (imported here: mlflow takes seconds to import)."""
    from wcd_hpc.results.sync import connect, sync_study, tracking_uri_for
    from wcd_hpc.results.viewing import closing_lines

    uri = tracking_uri_for(None, p.run_dir.parent)
    try:
        connect(uri)
        with show.sync_progress() as progress:
            report = sync_study(study, p.run_dir, uri, progress=progress)
    except SyncError as exc:
        show.warning(f"{exc}; run `wcd-hpc sync {p.exp.name}` later")
        return
    result.synced = report.line()
    result.looking = closing_lines(uri, report.experiment_id, p.url, p.run_dir)


def best_line(study: optuna.Study, metric: str) -> str | None:
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return None
    best = study.best_trial
    params = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in studies.params_of(study, best).items()
    )
    test = best.user_attrs.get(TRIAL_TEST, {})
    shown = merit.format_values({metric: test[metric], **_interval(test, metric)})
    tail = f"; test {shown}" if metric in test else ""
    lo, hi = best.user_attrs.get(TRIAL_OBJECTIVE_INTERVAL) or (None, None)
    value = merit.rounded(best.value, lo, hi)
    return f"best trial {best.number}: {metric}={value} ({params}){tail}"


def _interval(values: dict[str, Any], name: str) -> dict[str, Any]:
    """``name_lo``/``name_hi`` of ``values`` where present (a rounded value shows them)."""
    return {k: values[k] for k in (f"{name}_lo", f"{name}_hi") if k in values}
