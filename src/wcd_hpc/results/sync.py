"""Study + run directory → MLflow: the only place that talks to a tracking server.

Workers never contact MLflow (compute nodes are often offline); ``sync`` copies a study once its
trials are done: one parent run per study, one nested run per finished, pruned or failed trial,
and the best trial as an MLflow PyTorch model in the Model Registry
(:mod:`wcd_hpc.results.mlflow_model`).

It is idempotent and resumable without any local state, so it never writes to the study or the
run directory (except to give a study made by an older wcd-hpc its identity). Runs are found
again by their tags (the study's identity ``wcd_hpc.study_id``, see
:mod:`wcd_hpc.results.identity`, and ``wcd_hpc.trial``), and
each trial run carries a fingerprint of what was uploaded (``wcd_hpc.fingerprint``), written
last: an unchanged trial is skipped, a changed one is updated in place, and a run left half-done
by a killed sync has no fingerprint yet and is completed on the next sync.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from wcd_hpc import __version__
from wcd_hpc.errors import SyncError, one_line
from wcd_hpc.experiment.written import as_written
from wcd_hpc.plugins import Registry
from wcd_hpc.queue import finalists
from wcd_hpc.queue import study as studies
from wcd_hpc.queue.schema import (
    BINNED_FILE,
    CONFUSION_PLOT,
    CUTS_FILE,
    DATA_SPEC_FILE,
    ERROR_FILE,
    EXPERIMENT_FILE,
    LEARNING_CURVES_PLOT,
    METRICS_FILE,
    MODEL_FILE,
    PARAMS_FILE,
    PLOTS_DIR,
    PREDICTIONS_FILE,
    RESULT_FILE,
    ROC_PLOT,
    STUDY_BUDGET,
    STUDY_EXPERIMENT,
    STUDY_VERSION,
    TRIAL_FAIL_REASON,
    TRIAL_GPU,
    TRIAL_HOST,
    TRIAL_IMAGE_SHA256,
    TRIAL_KEPT_EPOCH,
    TRIAL_NODE,
    TRIAL_PID,
    TRIAL_PRUNED_BECAUSE,
    TRIAL_PRUNED_DETAIL,
    TRIAL_SLURM_ARRAY_JOB_ID,
    TRIAL_SLURM_ARRAY_TASK_ID,
    TRIAL_SLURM_JOB_ID,
    TRIAL_TRAIN_STARTED,
    TRIAL_WORKER,
    draws_trial_figures,
    trial_dir,
)
from wcd_hpc.results import syncmodel, syncplots
from wcd_hpc.results.evaluation import write_json, write_plots
from wcd_hpc.results.identity import TAG_STUDY_ID, Target, target
from wcd_hpc.results.mlflow_store import relocate
from wcd_hpc.results.plots import Provenance
from wcd_hpc.results.syncdata import (
    FINAL_TABLE_JSON,
    TABLE_JSON,
    TABLES_DIR,
    TAG_STUDY,
    TAG_TRIAL,
    bin_metrics,
    clean,
    connect,
    env_defaults,
    environment_tags,
    fingerprint,
    flatten,
    git_commit,
    is_secret,
    log_batched,
    log_rows,
    log_table,
    millis,
    read_bins,
    read_epochs,
    read_json,
    tracking_uri_for,
    write_table,
)
from wcd_hpc.store.urls import mask

__all__ = ["SyncError", "SyncReport", "connect", "sync_study", "tracking_uri_for"]

# Fault injection for the resume test: the process dies half-way through trial number N's run.
ENV_CRASH = "WCD_HPC_SYNC_CRASH_AT"
# MLflow prints a "View run at" line per run to stdout; sync reports once, at the end.
QUIET = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
TAG_ROLE = "wcd_hpc.role"
TAG_FINGERPRINT = "wcd_hpc.fingerprint"
TAG_PARENT = "mlflow.parentRunId"
# What produced a run, as MLflow's own source tags (the git commit is tagged beside them): the
# trials ran as batch processes (local workers or Slurm array tasks), not in a notebook.
SOURCE = {"study": "wcd-hpc sweep", "trial": "wcd-hpc worker"}
SOURCE_TYPE = "JOB"
TAG_LOGGED_ARTIFACTS = "mlflow.loggedArtifacts"  # the run's tables, for the UI
TABLE_PATH = f"{TABLES_DIR}/{TABLE_JSON}"
SYNCED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
# Trial user attributes copied as tags when present (written by workers, launchers, containers).
ATTR_TAGS = (
    TRIAL_HOST,
    TRIAL_PID,
    TRIAL_WORKER,
    TRIAL_GPU,
    TRIAL_NODE,
    TRIAL_IMAGE_SHA256,
    TRIAL_FAIL_REASON,
    TRIAL_PRUNED_BECAUSE,
    TRIAL_PRUNED_DETAIL,
    TRIAL_KEPT_EPOCH,
    TRIAL_SLURM_JOB_ID,
    TRIAL_SLURM_ARRAY_JOB_ID,
    TRIAL_SLURM_ARRAY_TASK_ID,
)
TRIAL_FILES: tuple[str, ...] = (PARAMS_FILE, RESULT_FILE, METRICS_FILE, ERROR_FILE, BINNED_FILE)
TRIAL_FILES += (CUTS_FILE, DATA_SPEC_FILE)
# The names the trial itself uses when it draws plots (wcd_hpc.results.evaluation): its own
# ones win.
CONFUSION, ROC, CURVES = CONFUSION_PLOT, ROC_PLOT, LEARNING_CURVES_PLOT


@dataclass
class SyncReport:
    """What one sync did; ``runs`` maps trial numbers to their MLflow run ids."""

    study: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    runs: dict[int, str] = field(default_factory=dict)
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    registered: tuple[str, str] | None = None
    #: Why the best trial was not logged as an MLflow model (its plugin is not installed here).
    not_logged: str | None = None
    #: Experiments of a local store whose artifact locations followed a moved runs directory.
    relocated: list[str] = field(default_factory=list)
    #: The experiment's name: the study's, or a longer one when another study has that name.
    experiment_name: str = ""

    def line(self) -> str:
        model = f"; model {self.registered[0]} v{self.registered[1]}" if self.registered else ""
        if self.not_logged:
            model += f"; {self.not_logged}"
        if self.relocated:
            model += f"; artifact locations moved here for {', '.join(self.relocated)}"
        return (
            f"synced study {self.study} to {self.tracking_uri} (experiment {self.experiment_id}"
            f"{self._named()}): "
            f"{len(self.created)} new, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged trial runs{model}"
        )

    def _named(self) -> str:
        named = self.experiment_name and self.experiment_name != self.study
        return f" '{self.experiment_name}'" if named else ""


class _Syncer:
    """One sync of one study; holds the client, the experiment and the runs found by tag."""

    def __init__(
        self,
        client: MlflowClient,
        study: optuna.Study,
        run_dir: Path,
        uri: str,
        registry: Registry | None = None,
    ):
        self.client = client
        self.study = study
        self.run_dir = run_dir
        self.uri = uri
        self.registry = registry
        self.name = study.study_name
        self.commit = git_commit()
        self.versions = environment_tags()
        self.version = str(study.user_attrs.get(STUDY_VERSION, __version__))
        self.exp = study.user_attrs.get(STUDY_EXPERIMENT, {})
        self.target: Target | None = None  # found by identity when the sync starts
        crash = os.environ.get(ENV_CRASH)
        self.crash_at = int(crash) if crash else None

    @property
    def ident(self) -> Target:
        assert self.target is not None, "sync_study finds the target first"
        return self.target

    def existing(self, exp_id: str) -> tuple[Run | None, dict[int, Run]]:
        """The study's parent run and its trial runs, by tag; the oldest wins a duplicate.

        Only runs of this study's identity count; runs an older sync left without one are this
        study's if it adopted the experiment, and are tagged now (no re-upload).
        """
        runs: list[Run] = []
        token = None
        while True:
            page = self.client.search_runs(
                [exp_id],
                filter_string=f"tags.`{TAG_STUDY}` = '{self.name}'",
                max_results=1000,
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            runs.extend(r for r in page if self.ident.owns(r.data.tags))
            token = page.token
            if not token:
                break
        for run in runs:
            if TAG_STUDY_ID not in run.data.tags:
                self.client.set_tag(run.info.run_id, TAG_STUDY_ID, self.ident.study_id)
        parent = next((r for r in runs if r.data.tags.get(TAG_ROLE) == "study"), None)
        trials: dict[int, Run] = {}
        for run in runs:
            number = run.data.tags.get(TAG_TRIAL)
            if run.data.tags.get(TAG_ROLE) == "trial" and number is not None:
                trials.setdefault(int(number), run)
        return parent, trials

    def base_tags(self, role: str) -> dict[str, str]:
        tags = {
            TAG_STUDY: self.name,
            TAG_STUDY_ID: self.ident.study_id,
            TAG_ROLE: role,
            "wcd_hpc.version": self.version,
            "mlflow.source.name": SOURCE[role],
            "mlflow.source.type": SOURCE_TYPE,
            **self.versions,
        }
        if self.commit:
            tags["mlflow.source.git.commit"] = self.commit
        return tags

    def trial(self, trial: FrozenTrial, run: Run | None, parent_id: str, exp_id: str) -> str:
        """Create or update the nested run of one trial; its fingerprint goes on last."""
        folder = trial_dir(self.run_dir, trial.number)
        stored = read_json(folder / PARAMS_FILE)
        tags = {
            **self.base_tags("trial"),
            TAG_TRIAL: str(trial.number),
            TAG_PARENT: parent_id,
            "wcd_hpc.state": trial.state.name,
            **clean({k: trial.user_attrs.get(k) for k in ATTR_TAGS}),
        }
        if read_bins(folder / BINNED_FILE):
            tags[TAG_LOGGED_ARTIFACTS] = json.dumps([{"path": TABLE_PATH, "type": "table"}])
        if run is None:
            run = self.client.create_run(
                exp_id,
                start_time=millis(trial.datetime_start),
                tags=tags,
                run_name=f"trial-{trial.number}",
            )
        run_id = str(run.info.run_id)
        params = clean(flatten(studies.params_of(self.study, trial)))
        if "seed" in stored:
            params.setdefault("seed", str(stored["seed"]))
        have = run.data.params
        log_batched(
            self.client,
            run_id,
            params=[Param(k, v) for k, v in params.items() if k not in have],
            metrics=self.metrics(trial, folder),
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        if self.crash_at == trial.number:
            os._exit(137)
        with tempfile.TemporaryDirectory(prefix="wcd-hpc-sync-") as tmp:
            self.artifacts(run_id, folder, Path(tmp), self.draws(trial))
        self.client.set_terminated(
            run_id, status=STATUS[trial.state.name], end_time=millis(trial.datetime_complete)
        )
        self.client.set_tag(run_id, TAG_FINGERPRINT, fingerprint(trial, folder))
        return run_id

    def metrics(self, trial: FrozenTrial, folder: Path) -> list[Metric]:
        """Per-epoch metrics with the epoch as step, then the final ones (timestamps fixed, so
        logging them again on an update adds no duplicate points)."""
        base = millis(trial.datetime_start) or 0
        started = float(trial.user_attrs.get(TRIAL_TRAIN_STARTED, base / 1000))
        out: list[Metric] = []
        elapsed = 0.0
        for record in read_epochs(folder / METRICS_FILE):
            step = int(record.get("epoch", len(out)))
            elapsed += float(record.get("seconds", 0.0))
            stamp = int((started + elapsed) * 1000)
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    out.append(Metric(key, float(value), stamp, step))
        end = millis(trial.datetime_complete) or base
        result = read_json(folder / RESULT_FILE)
        finals = {f"test_{k}": v for k, v in (result.get("test") or {}).items()}
        if trial.value is not None:
            finals["objective"] = trial.value
            finals["objective_lo"] = result.get("objective_lo")
            finals["objective_hi"] = result.get("objective_hi")
        for key, value in finals.items():
            if isinstance(value, (int, float)):
                out.append(Metric(key, float(value), end, 0))
        metric = str(self.exp.get("metric", ""))
        return out + bin_metrics(read_bins(folder / BINNED_FILE), metric, end)

    def draws(self, trial: FrozenTrial) -> bool:
        """Whether sync draws a trial's missing figures: as its worker decided (the trials that
        drew none on purpose get none)."""
        return draws_trial_figures(self.exp.get("trial_plots"), trial.user_attrs)

    def artifacts(self, run_id: str, folder: Path, tmp: Path, draw: bool = True) -> None:
        """Weights, the trial's files, its energy-bin table and its plots (every file the trial
        wrote under ``plots/``, PNG and PDF; with ``draw``, sync draws the missing standard
        ones)."""
        log = self.client.log_artifact
        if (folder / MODEL_FILE).exists():
            log(run_id, str(folder / MODEL_FILE), "model")
        for name in TRIAL_FILES:
            if (folder / name).exists():
                log(run_id, str(folder / name))
        classes = list(read_json(folder / DATA_SPEC_FILE).get("class_names") or [])
        bins = read_bins(folder / BINNED_FILE)
        for path in write_table(bins, classes, tmp)[:1]:  # the CSV, for the artifact view
            log(run_id, str(path), TABLES_DIR)
        log_table(self.client, run_id, bins, classes)
        base = folder / PLOTS_DIR
        own = sorted(p for p in base.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))
        for path in own:
            log(run_id, str(path), str(Path(PLOTS_DIR, path.parent.relative_to(base))))
        for path in self.plots(folder, tmp, {p.name for p in own}) if draw else []:
            log(run_id, str(path), PLOTS_DIR)

    def plots(self, folder: Path, tmp: Path, own: set[str]) -> list[Path]:
        """The plots the trial did not draw itself, from its epochs and test predictions.

        Confusion matrix and ROC curve come from the same code a trial draws them with.
        """
        drawn: list[Path | None] = []
        if CURVES not in own:
            records = read_epochs(folder / METRICS_FILE)
            trial = f"trial {folder.name}"
            drawn += syncplots.learning_curves(records, tmp / CURVES, self.provenance(trial))
        predictions = folder / PREDICTIONS_FILE
        if predictions.exists() and not {CONFUSION, ROC} <= own:
            with np.load(predictions) as data:
                y_true, y_score = data["y_true"], data["y_score"]
                names = [str(n) for n in data["class_names"]] if "class_names" in data else []
            if y_score.ndim == 2 and len(y_true) and y_score.shape[1] >= 2:
                binned = read_json(folder / BINNED_FILE) if (folder / BINNED_FILE).exists() else {}
                write_plots(
                    tmp, y_true, y_score, {}, names, binned=binned if "all" in binned else None
                )
                drawn += [tmp / PLOTS_DIR / name for name in (CONFUSION, ROC) if name not in own]
        return [p for p in drawn if p is not None and p.exists()]

    def parent(self, run: Run | None, exp_id: str, trials: list[FrozenTrial]) -> str:
        if run is not None:
            return str(run.info.run_id)
        starts = [s for s in (millis(t.datetime_start) for t in trials) if s is not None]
        created = self.client.create_run(
            exp_id,
            start_time=min(starts) if starts else None,
            tags={**self.base_tags("study"), "wcd_hpc.metric": str(self.exp.get("metric"))},
            run_name=self.name,
        )
        return str(created.info.run_id)

    def finish_parent(
        self, run_id: str, trials: list[FrozenTrial], best: FrozenTrial | None
    ) -> None:
        """Resolved experiment, counts, best value and the study plots on the parent run; with
        finalists, the pick's mean ± std on validation and test (``final_*``) and per energy bin
        (the table ``tables/finalists_energy_bins.json``)."""
        experiment = {k: v for k, v in self.exp.items() if not is_secret(k)}
        have = self.client.get_run(run_id).data.params
        params = clean(flatten(as_written(experiment)))  # dataset.params.events, as --set
        now = int(time.time() * 1000)  # the newest point is what MLflow shows as the value
        values: dict[str, float] = {
            f"trials_{k.lower()}": float(v) for k, v in studies.counts(trials).items()
        }
        if best is not None and best.value is not None:
            values.update(best_value=best.value, best_trial=float(best.number))
        final = finalists.report(self.study, trials, self.run_dir)
        values.update(finalists.metrics(final))
        metrics = [Metric(k, v, now, 0) for k, v in values.items()]
        log_batched(
            self.client,
            run_id,
            params=[Param(k, v) for k, v in params.items() if k not in have],
            metrics=metrics,
            tags=[RunTag("wcd_hpc.budget", str(self.study.user_attrs.get(STUDY_BUDGET, "")))],
        )
        with tempfile.TemporaryDirectory(prefix="wcd-hpc-sync-") as tmp:
            folder = Path(tmp)
            write_json(folder / EXPERIMENT_FILE, experiment)
            self.client.log_artifact(run_id, str(folder / EXPERIMENT_FILE))
            for path in syncplots.study_plots(self.study, folder, self.provenance("")):
                self.client.log_artifact(run_id, str(path), "plots")
        columns, rows = finalists.bin_rows(final)
        if rows:  # a table, not step metrics: a step axis would mean a bin index
            log_rows(self.client, run_id, columns, rows, FINAL_TABLE_JSON)
        self.client.set_terminated(run_id, status="FINISHED")

    def provenance(self, trial: str) -> Provenance:
        """What the sync-time figures say on top: the study, the trial, model and dataset."""
        model, dataset = self.exp.get("model") or "", self.exp.get("dataset") or ""
        return Provenance(self.name, trial, str(model), str(dataset), split="")

    def register(self, best: FrozenTrial, run_id: str, exp_id: str, report: SyncReport) -> None:
        """The best trial as a registered MLflow model (:mod:`wcd_hpc.results.syncmodel`)."""
        syncmodel.register_best(self, best, run_id, exp_id, report)


def _best(study: optuna.Study, trials: list[FrozenTrial]) -> FrozenTrial | None:
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        return None
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    return min(complete, key=lambda t: (sign * float(t.value or 0.0), t.number))


def sync_study(
    study: optuna.Study,
    run_dir: Path,
    tracking_uri: str,
    progress: Callable[[int, int], None] | None = None,
    registry: Registry | None = None,
) -> SyncReport:
    """Copy ``study`` and its trial directories under ``run_dir`` to MLflow at ``tracking_uri``.

    ``progress(done, total)`` is called after each trial. ``registry`` provides the model plugin
    that rebuilds the best trial's module (default: the installed plugins). Any MLflow or
    network failure becomes one ``SyncError`` line; the study and ``run_dir`` are only read.
    """
    client = connect(tracking_uri)
    try:
        with env_defaults(QUIET):
            return _sync(_Syncer(client, study, run_dir, tracking_uri, registry), progress)
    except SyncError:
        raise
    except Exception as exc:
        raise SyncError(f"sync to MLflow at {mask(tracking_uri)} failed: {one_line(exc)}") from exc


def _sync(s: _Syncer, progress: Callable[[int, int], None] | None) -> SyncReport:
    trials = s.study.get_trials(deepcopy=False)
    todo = [t for t in trials if t.state in SYNCED]
    relocated = relocate(s.uri)
    s.target = target(s.client, s.study, s.run_dir, s.uri)
    exp_id = s.target.experiment_id
    parent, existing = s.existing(exp_id)
    parent_id = s.parent(parent, exp_id, trials)
    report = SyncReport(s.name, mask(s.uri), exp_id, parent_id, relocated=relocated)
    report.experiment_name = s.target.experiment_name
    for done, trial in enumerate(todo, start=1):
        run = existing.get(trial.number)
        folder = trial_dir(s.run_dir, trial.number)
        if run is not None and run.data.tags.get(TAG_FINGERPRINT) == fingerprint(trial, folder):
            report.unchanged.append(trial.number)
            report.runs[trial.number] = run.info.run_id
        else:
            report.runs[trial.number] = s.trial(trial, run, parent_id, exp_id)
            (report.updated if run is not None else report.created).append(trial.number)
        if progress is not None:
            progress(done, len(todo))
    best = _best(s.study, trials)
    final = finalists.report(s.study, trials)
    if final is not None:  # the registered model is the final pick's best seed on validation
        best = next((t for t in trials if t.number == final["model_trial"]), best)
    if parent is None or report.created or report.updated or not _parent_done(parent):
        s.finish_parent(parent_id, trials, best)
    if best is not None and best.number in report.runs:
        s.register(best, report.runs[best.number], exp_id, report)
    return report


def _parent_done(run: Run) -> bool:
    return bool(run.info.status == "FINISHED")
