"""The study as the queue: creating or resuming it, and reading its budget and counts.

Everything a worker needs is stored in the study's user attributes (the resolved experiment, the
budget, the run directory), so a worker is started with nothing but a study name and a storage URL.
Nothing here ever deletes a study: running ``sweep`` again resumes it, and a larger ``trials``
extends it.
"""

from __future__ import annotations

import difflib
import os
import shlex
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from wcd_hpc import __version__
from wcd_hpc.errors import ConfigError, StorageError, StudyConflict, StudyNotFound
from wcd_hpc.experiment.config import NAME_RULE, Experiment, valid_name
from wcd_hpc.experiment.resume import carried_over, changed_keys
from wcd_hpc.experiment.space import Space
from wcd_hpc.output.files import not_a_file
from wcd_hpc.queue import definitions, identity
from wcd_hpc.queue.opened import OpenedStudy
from wcd_hpc.queue.schema import (
    JOURNAL_FILE,
    STUDY_BUDGET,
    STUDY_DATASET,
    STUDY_EXPERIMENT,
    STUDY_FINALISTS,
    STUDY_GPU_HOURS,
    STUDY_HEARTBEAT_S,
    STUDY_METRIC,
    STUDY_MODEL,
    STUDY_RUN_DIR,
    STUDY_SLURM_JOBS,
    STUDY_SPACE,
    STUDY_VERSION,
    TRIAL_FINALIST,
)
from wcd_hpc.store.storage import Storage, chosen_storage, study_exists
from wcd_hpc.store.urls import resolve, without_secrets

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
STATE_NAMES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
#: Heartbeat interval given to a new study's workers, in seconds (tests use a short one).
ENV_HEARTBEAT = "WCD_HPC_HEARTBEAT_S"
DEFAULT_HEARTBEAT_S = 30.0


@dataclass(frozen=True)
class Prepared:
    """What ``prepare`` did: the study's coordinates and whether it was new."""

    name: str
    storage: Storage
    run_dir: Path
    created: bool
    budget: int
    previous_budget: int | None
    finished: int
    #: Configurations ``start_from`` enqueued in this call (0: none, or done before).
    warm_started: int = 0


def counts(trials: Iterable[FrozenTrial]) -> dict[str, int]:
    """Trials by Optuna state name; every state in ``STATE_NAMES`` is present, zeros included."""
    tally = Counter(t.state.name for t in trials)
    return {name: tally.get(name, 0) for name in STATE_NAMES}


def is_finalist(t: FrozenTrial) -> bool:
    """A finalist retrains a configuration with a new seed; it is not part of the budget."""
    return TRIAL_FINALIST in t.user_attrs


def finished(trials: Iterable[FrozenTrial]) -> int:
    """Finished ordinary trials: what the budget counts (finalists are counted apart)."""
    return sum(1 for t in trials if t.state in FINISHED and not is_finalist(t))


def finalists_setting(study: optuna.Study) -> dict[str, int] | None:
    """The experiment's ``finalists: {top, seeds}``, or None when off (or a foreign study)."""
    stored = study.user_attrs.get(STUDY_EXPERIMENT)
    value = stored.get("finalists") if isinstance(stored, dict) else None
    return dict(value) if isinstance(value, dict) else None


def finalists_left(study: optuna.Study, trials: list[FrozenTrial]) -> int:
    """Finalist trials still to run: all of them before they are enqueued, then the waiting
    and running ones (a re-enqueued finalist whose worker died included)."""
    setting = finalists_setting(study)
    if setting is None:
        return 0
    if STUDY_FINALISTS not in study.user_attrs:
        return int(setting["top"]) * int(setting["seeds"])
    open_states = (TrialState.WAITING, TrialState.RUNNING)
    return sum(1 for t in trials if is_finalist(t) and t.state in open_states)


def work_left(study: optuna.Study) -> bool:
    """Whether the study still wants workers: budget not met, or finalists to run."""
    trials = study.get_trials(deepcopy=False)
    return finished(trials) < budget_of(study) or finalists_left(study, trials) > 0


def finished_of(done: int, budget: int | None) -> str:
    """Finished trials against the budget for people: ``3/5``; ``4 (budget 1)`` when a budget
    lowered on resume is below what had finished already (never ``4/1``); ``4/-`` without one."""
    if budget is None:
        return f"{done}/-"
    return f"{done}/{budget}" if done <= budget else f"{done} (budget {budget})"


def experiment_of(study: optuna.Study) -> Experiment:
    return Experiment.from_dict(study.user_attrs[STUDY_EXPERIMENT])


def budget_of(study: optuna.Study) -> int:
    return int(study.user_attrs[STUDY_BUDGET])


def space_of(study: optuna.Study) -> Space:
    """The search space stored when the study was created: the one every worker samples from.

    Not the model plugin's current default: a plugin upgraded between two runs of ``sweep`` must
    not change the space of trials that are already in the study.
    """
    return Space.from_mapping(study.user_attrs[STUDY_SPACE])


def params_of(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
    """A trial's parameters as the model saw them: lists reassembled, constants included.

    A trial that never received all of them (failed before sampling, as when a worker cannot
    load its data; pruned early; made by plain Optuna) has only what it recorded, as Optuna's
    flat names: whoever reads a study (sync, status) must carry such a trial, not stop on it.
    :func:`missing_params` says whether a model can be built from a trial's parameters.
    """
    if not study.user_attrs.get(STUDY_SPACE) or missing_params(study, trial):
        return dict(trial.params)
    return space_of(study).rebuild(trial.params)


def missing_params(study: optuna.Study, trial: FrozenTrial) -> list[str]:
    """The sampled parameters of the study's space that ``trial`` has no value for."""
    if not study.user_attrs.get(STUDY_SPACE):
        return []
    return space_of(study).missing(trial.params)


def run_dir_of(study: optuna.Study, storage: Storage) -> Path:
    """Where the study's trial files are, found from where the study was opened when possible.

    A journal study lives in ``<run dir>/journal.log``, so its run directory is wherever that
    journal is now: a runs directory that was moved or copied works from its new place, and the
    recorded path (which may point at the old place) is only used for other storages.
    """
    journal = storage.path
    if (
        storage.kind == "journal"
        and journal is not None
        and journal.name == JOURNAL_FILE
        and journal.parent.name == study.study_name
    ):
        return journal.parent
    recorded = study.user_attrs.get(STUDY_RUN_DIR)
    if not recorded:
        raise StorageError(f"study '{study.study_name}' records no run directory")
    return Path(str(recorded))


def stored_experiment(exp: Experiment) -> dict[str, Any]:
    """What a study (or a ``train`` run) records of an experiment: no secret in it.

    The storage URL is stored without its password, as a rendered script holds it (masked, a
    ``?password=`` would read ``***``: a password-shaped string in the database, and a URL that
    fails if copied; without, it works where ``~/.pgpass`` holds the password). So is
    the one of ``start_from``: the warm start reads it when the study is created, never later.
    """
    stored = exp.to_dict()
    stored["storage"] = without_secrets(str(stored["storage"]))
    source = stored.get("start_from")
    if isinstance(source, dict) and source.get("storage"):
        source["storage"] = without_secrets(str(source["storage"]))
    return stored


def prepare(
    exp: Experiment, space: Space, where: Storage, storage: BaseStorage, run_dir: Path
) -> Prepared:
    """Create the study, or resume it after checking that it is the same experiment.

    Only the keys the key table marks mutable (the budget and how it is run: workers, executor,
    resources, storage, runs directory, precision, data on the device, compile) may change on
    resume; anything else would mix trials of two different experiments in one study. The
    caller creates ``run_dir``, once nothing can be refused any more.

    Creating takes several writes (the study, then its attributes, the budget last), so the
    caller holds the study's claim lock (:func:`~wcd_hpc.store.storage.claim_lock`): of two
    sweeps creating the same study at once, one creates it and the other then resumes it. A
    study left half-created by a creator killed in between (no budget, no trial yet) is
    finished here rather than refused.
    """
    if study_exists(storage, exp.name):
        study = optuna.load_study(study_name=exp.name, storage=storage)
        if _half_created(study, exp):
            return _create(exp, space, where, storage, run_dir)
        stored = study.user_attrs.get(STUDY_EXPERIMENT)
        if stored is None:
            raise StudyConflict(
                f"study '{exp.name}' in {where} was not created by wcd-hpc; choose another name"
            )
        definitions.check_resume(stored, exp.name, str(where))
        exp = carried_over(stored, exp)  # defaults the user did not write: the study's own
        changed = changed_keys(
            stored, exp, stored_space=study.user_attrs.get(STUDY_SPACE), space=space
        )
        if changed:
            raise StudyConflict(
                f"study '{exp.name}' already exists with a different experiment "
                f"(changed: {', '.join(changed)}); use a new name, or restore those keys to resume"
            )
        recorded = study.user_attrs.get(STUDY_BUDGET)
        previous = None if recorded is None else int(recorded)
        if exp.trials != previous:
            study.set_user_attr(STUDY_BUDGET, exp.trials)
        if study.user_attrs.get(STUDY_GPU_HOURS) != exp.gpu_hours:
            study.set_user_attr(STUDY_GPU_HOURS, exp.gpu_hours)
        study.set_user_attr(STUDY_EXPERIMENT, stored_experiment(exp))
        # The run directory follows the last sweep: workers started from now on write there.
        study.set_user_attr(STUDY_RUN_DIR, str(run_dir.resolve()))
        _name_for_people(study, exp)  # studies created before wcd-hpc named them
        identity.ensure(study)  # likewise studies created before identities
        done = finished(study.get_trials(deepcopy=False))
        return Prepared(exp.name, where, run_dir, False, exp.trials, previous, done)
    return _create(exp, space, where, storage, run_dir)


def _half_created(study: optuna.Study, exp: Experiment) -> bool:
    """Whether ``study`` is one a creating ``sweep`` left unfinished: no budget, no trial, and
    either this very experiment or no attribute at all (killed right after creating it)."""
    attrs = study.user_attrs
    if STUDY_BUDGET in attrs or study.get_trials(deepcopy=False):
        return False
    wanted = "minimize" if exp.direction == "minimize" else "maximize"
    if len(study.directions) != 1 or study.direction.name.lower() != wanted:
        return False
    stored = attrs.get(STUDY_EXPERIMENT)
    return not attrs if stored is None else not changed_keys(stored, exp)


def _create(
    exp: Experiment, space: Space, where: Storage, storage: BaseStorage, run_dir: Path
) -> Prepared:
    """Create the study (or finish a half-created one) with every attribute, the budget last."""
    direction: Literal["minimize", "maximize"] = (
        "minimize" if exp.direction == "minimize" else "maximize"
    )
    study = optuna.create_study(
        study_name=exp.name, storage=storage, direction=direction, load_if_exists=True
    )
    # First: a study that has an experiment (what marks it as wcd-hpc's) has an identity.
    identity.stamp_new(study)
    study.set_user_attr(STUDY_EXPERIMENT, stored_experiment(exp))
    _name_for_people(study, exp)
    study.set_user_attr(STUDY_SPACE, space.describe())
    study.set_user_attr(STUDY_RUN_DIR, str(run_dir.resolve()))
    study.set_user_attr(STUDY_VERSION, __version__)
    heartbeat = float(os.environ.get(ENV_HEARTBEAT) or DEFAULT_HEARTBEAT_S)
    study.set_user_attr(STUDY_HEARTBEAT_S, heartbeat)
    study.set_user_attr(STUDY_GPU_HOURS, exp.gpu_hours)
    # The budget goes last: a worker treats a study without one as not ready yet.
    study.set_user_attr(STUDY_BUDGET, exp.trials)
    return Prepared(exp.name, where, run_dir, True, exp.trials, None, 0)


def _name_for_people(study: optuna.Study, exp: Experiment) -> None:
    """What a person sees in optuna-dashboard: the objective's name instead of "Objective 0",
    and the experiment's headline (model, dataset, metric) as attributes of their own rather
    than only inside the ``experiment`` JSON."""
    if study.metric_names is None:
        with warnings.catch_warnings():  # experimental in Optuna 5, stable in what it stores
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([exp.metric])
    headline = {STUDY_MODEL: exp.model, STUDY_DATASET: exp.dataset, STUDY_METRIC: exp.metric}
    for key, value in headline.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)


def load(name: str, where: Storage, storage: BaseStorage) -> optuna.Study:
    """Load a wcd-hpc study from ``storage`` (``where`` opened); an unknown name lists the
    studies that do exist."""
    if not study_exists(storage, name):
        known = [s.study_name for s in storage.get_all_studies()]
        hint = nearest(name, known, ["--storage", where.masked]) if known else ""
        raise StudyNotFound(
            f"no study '{name}' in {where.masked}{hint or ' (it holds no studies)'}"
        )
    return optuna.load_study(study_name=name, storage=storage)


def open_study(name: str, where: Storage) -> OpenedStudy:
    """Open an existing study the way a worker does: its run directory from where it lives."""
    study = load(name, where, where.open())
    return OpenedStudy(study, where, run_dir_of(study, where))


def locate(name: str, given: Storage | None, runs_dir: Path) -> Storage:
    """The storage of an existing study: ``given`` (the command's, else ``$WCD_HPC_STORAGE``, by
    the one precedence rule: :func:`~wcd_hpc.store.storage.chosen_storage`), else its journal
    under ``runs_dir``.

    A file-backed storage that does not exist is an error, never an empty new file: ``status``
    of a misspelt study, or of a wrong ``--storage sqlite:///…``, creates nothing.
    """
    if not valid_name(name):
        raise ConfigError("<study name>", None, None, f"{NAME_RULE}, got {name!r}")
    where = given or chosen_storage(None)
    origin = "--storage"
    if where is None:
        where, origin = Storage.parse(resolve("journal", runs_dir / name)), "--runs-dir"
    path = where.path
    problem = not_a_file(path) if path is not None else None
    if problem is not None and problem != "file not found":  # a directory, a FIFO …
        raise StudyNotFound(f"no study '{name}': {path} {problem}")
    if path is not None and not path.is_file():
        hint = ""
        if origin == "--runs-dir":
            known = [j.parent.name for j in runs_dir.glob(f"*/{JOURNAL_FILE}")]
            hint = nearest(name, known, ["--runs-dir", str(runs_dir)])
            hint = hint[:-1] + "; for a study in a database pass --storage URL)"
        raise StudyNotFound(f"no study '{name}': {path} does not exist{hint}")
    return where


def nearest(name: str, known: Iterable[str], listing: list[str]) -> str:
    """The end of a "no study" line: the names nearest to a typo, and the command listing all."""
    close = difflib.get_close_matches(name, sorted(set(known)), n=3, cutoff=0.5)
    near = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return f" ({near}`{shlex.join(['wcd-hpc', 'studies', *listing])}` lists the studies there)"


def open_existing(name: str, given: Storage | None, runs_dir: Path) -> OpenedStudy:
    """Open an existing study for a read-mostly command (status, sync, cancel, retry).

    Its run directory is the journal's directory, or for a database ``runs_dir/<name>`` when
    that exists (the runs directory may have moved since), else the recorded one.
    """
    where = locate(name, given, runs_dir)
    study = load(name, where, where.open())
    run_dir = run_dir_of(study, where)
    if where.kind != "journal" and (runs_dir / name).is_dir():
        run_dir = runs_dir / name
    return OpenedStudy(study, where, run_dir)


def slurm_jobs(study: optuna.Study) -> list[str]:
    """The job ids of the arrays ``sweep`` submitted for the study."""
    return [str(j) for j in study.user_attrs.get(STUDY_SLURM_JOBS, [])]


def record_slurm_jobs(study: optuna.Study, arrays: list[str]) -> None:
    """Remember newly submitted arrays, for ``status`` accounting and ``cancel``."""
    study.set_user_attr(STUDY_SLURM_JOBS, [*slurm_jobs(study), *arrays])
