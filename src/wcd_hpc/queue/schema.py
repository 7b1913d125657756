"""Every name the study-as-queue is written in: study and trial attributes, files, exit codes.

The study is the only channel between the login node and the workers, and a run directory is the
only channel between workers and ``sync``, ``evaluate`` and people. Both are schemas that outlive
the code that wrote them (a study resumed a month later by a newer wcd-hpc, a runs directory
copied to a laptop), so their names are written here once and imported everywhere else; a test
(``tests/unit/launch/test_layout.py``) fails when one of them appears as a string literal in another
module.

Values are stored as plain JSON (Optuna's user attributes): numbers, strings, lists, mappings.
Times that programs compare are Unix epoch seconds (floats), as Optuna's heartbeat uses; a time a
person reads (when a trial was claimed) is stored beside it in ISO 8601 (``claimed_at``). The
heartbeat, rewritten every interval, stays a number only: a second attribute would double the
writes that grow a journal.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from wcd_hpc.errors import StorageUnavailable
from wcd_hpc.store import schema as store_schema

# --------------------------------------------------------------------------------------------
# Study user attributes, written by ``sweep``/``render`` (and the launchers), read by everyone.

#: The resolved experiment (``Experiment.to_dict``), with no secret in it: the storage URL is
#: stored masked, since the storage is known from where the study was opened.
STUDY_EXPERIMENT: Final = "experiment"
#: Global budget of finished (COMPLETE + PRUNED) trials; written last when a study is created,
#: so a worker treats a study without it as not ready yet.
STUDY_BUDGET: Final = "budget"
#: The run directory the last ``sweep``/``render`` used (absolute). Only a hint: a journal
#: study's run directory is where its journal is, so a moved runs directory keeps working.
STUDY_RUN_DIR: Final = "run_dir"
#: The search space every worker samples from, as ``{name: expression}`` (``Space.describe``);
#: fixed at creation so that a plugin upgrade cannot change a running study's space.
STUDY_SPACE: Final = "space"
STUDY_VERSION: Final = "wcd_hpc_version"
#: The study's identity: a UUID written when the study is created (before any other attribute),
#: copied into every trial's ``params.json`` and every MLflow run and model version ``sync``
#: makes, so that two studies with the same name (two runs directories, two users of one MLflow)
#: are never taken for one another. A study made before identities existed is given one by its
#: next ``sweep`` or ``sync`` (:func:`wcd_hpc.queue.identity.ensure`).
STUDY_ID: Final = "study_uuid"
#: When the study was created (ISO 8601, UTC), written with its identity; for a study given an
#: identity later, when its first trial started (or when it was given one).
STUDY_CREATED: Final = "created"
#: True on a study that was given its identity after it was created: only such a study may take
#: over the MLflow runs an older sync left without an identity (:mod:`wcd_hpc.results.identity`).
STUDY_ID_ADOPTED: Final = "study_id_adopted"
#: The experiment's headline for people (optuna-dashboard shows user attributes as a table);
#: the ``experiment`` attribute stays the full record workers read.
STUDY_MODEL: Final = "model"
STUDY_DATASET: Final = "dataset"
STUDY_METRIC: Final = "metric"
#: Cap in GPU-hours allocated to the study's Slurm jobs (``budget.gpu_hours``), or None.
STUDY_GPU_HOURS: Final = "budget_gpu_hours"
#: Heartbeat interval of every worker of the study, in seconds.
STUDY_HEARTBEAT_S: Final = "heartbeat_s"
#: How often the reaper re-enqueues the parameters of a trial whose worker died.
STUDY_MAX_RETRIES: Final = "max_retries"
#: Job ids of every Slurm array ``sweep`` submitted for the study (a list of strings).
STUDY_SLURM_JOBS: Final = "slurm_jobs"
#: Model files (``model: ./my_net.py:MyNet``, likewise dataset and metric) as a mapping kind ->
#: ``{"reference", "attribute", "copy", "sha256", "original"}``: ``copy`` is the file's copy
#: relative to the run directory (under :data:`FILES_DIR`), the one every worker loads, and
#: ``sha256`` its checksum, which a resumed sweep compares with the original's.
STUDY_FILES: Final = "files"
#: The running local ``sweep`` process, as a :data:`PROCESS` record (``cancel`` stops it first).
STUDY_LOCAL_SWEEP: Final = "local_sweep"
#: The warm start done (``start_from``): ``{"study", "storage" (masked), "trials", "enqueued"}``;
#: present once its configurations are enqueued, so that a resumed sweep never enqueues them again.
STUDY_WARM_START: Final = "warm_start"
#: Trial numbers of the configurations retrained as finalists (``finalists: {top, seeds}``),
#: written once, under the claim lock, when their trials are enqueued: what makes it idempotent.
STUDY_FINALISTS: Final = "finalists_of"
#: In that record: the :data:`PROCESS` records of the sweep's worker processes (``cancel``
#: counts and stops them, whether or not they hold a trial at that moment).
LOCAL_SWEEP_WORKERS: Final = "workers"

# --------------------------------------------------------------------------------------------
# Trial user attributes, written by the worker that claims a trial.

TRIAL_HEARTBEAT: Final = "heartbeat"  # last heartbeat (epoch s)
TRIAL_CLAIMED: Final = "claimed"  # when the current worker claimed it (epoch s)
#: The same moment for people: ISO 8601, UTC (what optuna-dashboard shows as text).
TRIAL_CLAIMED_AT: Final = "claimed_at"
TRIAL_HOST: Final = "host"
TRIAL_PID: Final = "pid"
#: When the worker process started (seconds since boot, from /proc) and which boot: with host
#: and pid, what proves that a process found later is still that worker and not a reused pid.
TRIAL_PID_START: Final = "pid_start"
TRIAL_BOOT_ID: Final = "boot_id"
#: Instead of a start time, why the worker's identity cannot be verified (its ``/proc`` is
#: another PID namespace's, or missing): ``cancel`` never signals on such a record.
TRIAL_PID_UNVERIFIED: Final = "pid_unverified"
TRIAL_WORKER: Final = "worker"  # a label: local-3, slurm-12_3, or host:pid
#: RUNNING but waiting to be resumed from its checkpoint (its worker was stopped by a signal).
TRIAL_SUSPENDED: Final = "suspended"
TRIAL_SUSPENDED_BY: Final = "suspended_by"
TRIAL_FAIL_REASON: Final = "fail_reason"  # one line: why a FAIL trial failed
TRIAL_RETRY: Final = "retry"  # how many times these parameters were re-enqueued
TRIAL_RETRY_OF: Final = "retry_of"  # the trial number whose parameters this one reruns
#: A finalist: the number of the ordinary trial whose configuration it retrains with a new seed.
#: Finalists are counted apart from the budget.
TRIAL_FINALIST: Final = "finalist_of"
TRIAL_RESUMED_FROM_EPOCH: Final = "resumed_from_epoch"
#: Set when a resumed trial that had trained found no checkpoint (deleted) and restarted from
#: epoch 1: the one line that says so (also logged).
TRIAL_CHECKPOINT_MISSING: Final = "checkpoint_missing"
TRIAL_TRAIN_STARTED: Final = "train_started"  # epoch s; with the next: the training time
TRIAL_TRAIN_FINISHED: Final = "train_finished"
#: Why a PRUNED trial was stopped: ``nan`` (loss or outputs not finite), ``chance`` (a network at
#: chance level) or ``pruner`` (the experiment's pruner) — see :mod:`wcd_hpc.engine.verdicts`.
TRIAL_PRUNED_BECAUSE: Final = "pruned_because"
#: The one line that says what fired, e.g. ``at chance level at epoch 1: constant validation
#: predictions (…)`` or ``… ROC AUC 0.51 ± 0.02 contains 0.5``: which of the chance-level tests
#: stopped a trial, readable in ``status --json``, MLflow and the dashboard, not only in its log.
TRIAL_PRUNED_DETAIL: Final = "pruned_detail"
#: The epoch whose weights a finished trial kept (``keep: best | last``) and its objective.
TRIAL_KEPT_EPOCH: Final = "kept_epoch"
#: On a trial enqueued by ``start_from``: ``"<study>#<trial number>"`` whose parameters it carries.
TRIAL_WARM_START: Final = "warm_start_from"
TRIAL_TEST: Final = "test"  # test-split metrics {name: value}, never used for selection
#: The objective's 68 % bootstrap interval on validation, ``[lo, hi]`` (``null`` ends: none).
TRIAL_OBJECTIVE_INTERVAL: Final = "objective_interval"
# Where a trial ran, from the worker's environment (Slurm ids, node, GPU, image).
TRIAL_SLURM_JOB_ID: Final = "slurm_job_id"
TRIAL_SLURM_ARRAY_JOB_ID: Final = "slurm_array_job_id"
TRIAL_SLURM_ARRAY_TASK_ID: Final = "slurm_array_task_id"
TRIAL_NODE: Final = "node"
TRIAL_GPU: Final = "gpu"
TRIAL_IMAGE_SHA256: Final = "image_sha256"
# How a trial trained (``wcd_hpc.engine.device``): the autocast precision it used (fp32, bf16,
# fp16), whether its model went through torch.compile, and whether its worker kept the data on
# the GPU.
TRIAL_PRECISION: Final = "precision"
TRIAL_COMPILED: Final = "compiled"
TRIAL_DATA_ON_GPU: Final = "data_on_gpu"
#: The worker's share of GPUs: the GPUs it was given over the workers sharing them (1/3 for one
#: of three workers on one GPU, 2 for a lone worker holding two); 0 without a GPU.
TRIAL_GPU_SHARE: Final = "gpu_share"
#: GPU-hours of the trial's training: its training time times its worker's GPU share, summed
#: over every stretch it trained (a suspended and resumed trial has several).
TRIAL_GPU_HOURS: Final = "trial_gpu_hours"

#: Trial attribute <- environment variable, recorded on every claim.
PLACEMENT_ENV: Final = {
    TRIAL_SLURM_JOB_ID: "SLURM_JOB_ID",
    TRIAL_SLURM_ARRAY_JOB_ID: "SLURM_ARRAY_JOB_ID",
    TRIAL_SLURM_ARRAY_TASK_ID: "SLURM_ARRAY_TASK_ID",
    TRIAL_NODE: "SLURMD_NODENAME",
    TRIAL_GPU: "CUDA_VISIBLE_DEVICES",
    TRIAL_IMAGE_SHA256: "WCD_HPC_IMAGE_SHA256",
}

#: Trial system attribute in which Optuna keeps an enqueued trial's parameters (Optuna's name).
SYSTEM_FIXED_PARAMS: Final = "fixed_params"
#: Trial system attribute that makes creating a trial idempotent across a lost connection.
SYSTEM_CREATE_TOKEN: Final = store_schema.SYSTEM_CREATE_TOKEN

# --------------------------------------------------------------------------------------------
# Files: the run directory ``<runs_dir>/<study>/`` and each trial's ``trials/<number>/``.

#: The journal's names are the storage layer's (:mod:`wcd_hpc.store.schema`), repeated here so
#: that this module stays the one list of names to import.
JOURNAL_FILE: Final = store_schema.JOURNAL_FILE
#: Beside a journal, ``<journal>.snapshot``: its replayed state (:mod:`wcd_hpc.store.snapshots`).
JOURNAL_SNAPSHOT_SUFFIX: Final = store_schema.JOURNAL_SNAPSHOT_SUFFIX
TRIALS_DIR: Final = "trials"
#: worker-<i>.log of local workers; slurm-<job>_<task>.<slot>.log of the workers an array task
#: starts when it runs several (``resources.trials_per_gpu``).
LOGS_DIR: Final = "logs"
SLURM_DIR: Final = "slurm"  # submitit's folders, %A_%a.out, sync.sbatch
CACHE_DIR: Final = ".cache"  # beside the run directories: simulated data shared by studies
TRAIN_DIR: Final = "train"  # ``wcd-hpc train`` runs: <runs_dir>/<name>/train/trials/<n>
EVALUATIONS_DIR: Final = "evaluations"  # ``wcd-hpc evaluate``: <run>/evaluations/<file stem>
PLOTS_DIR: Final = "plots"
#: Copies of model files: ``<run dir>/files/<sha256[:16]>/<file name>`` (one per content).
FILES_DIR: Final = "files"

PARAMS_FILE: Final = "params.json"  # parameters, seed, host, pid
METRICS_FILE: Final = "metrics.jsonl"  # one line per epoch
#: Reports inside an epoch (``report_every`` below 1): epoch, samples seen, subsample objective.
REPORTS_FILE: Final = "reports.jsonl"
CHECKPOINT_FILE: Final = "checkpoint.pt"  # model + optimizer after the last finished epoch
MODEL_FILE: Final = "model.pt"  # final weights (state_dict)
RESULT_FILE: Final = "result.json"  # objective (validation) and test metrics
ERROR_FILE: Final = "error.txt"  # traceback of a failed trial
#: Left by a worker that lost the storage while it held the trial (``{"at": epoch s, "why": …}``):
#: the trial is to be suspended, not reaped, once the storage is back (:mod:`wcd_hpc.queue.outage`).
OUTAGE_FILE: Final = "storage_lost.json"
#: A few test events as the model saw them (float32 .npy): the MLflow model's input example.
INPUT_EXAMPLE_FILE: Final = "input_example.npy"
BINNED_FILE: Final = "binned.json"  # metrics per energy bin
CUTS_FILE: Final = "cuts.json"  # the cuts chosen on validation, applied to test and by evaluate
DATA_SPEC_FILE: Final = "data_spec.json"  # input shape and classes the model was built for
PREDICTIONS_FILE: Final = "predictions.npz"  # test labels, probabilities, class names
EXPERIMENT_FILE: Final = "experiment.json"  # the resolved experiment of a ``train`` run
EVALUATION_METRICS_FILE: Final = "metrics.json"  # ``evaluate``'s whole-file metrics
CONFUSION_PLOT: Final = "confusion.png"
ROC_PLOT: Final = "roc.png"
Q_PLOT: Final = "q.png"
LEARNING_CURVES_PLOT: Final = "learning_curves.png"  # drawn by ``sync``
WORKER_SCRIPT: Final = "worker.sbatch"
SYNC_SCRIPT: Final = "sync.sbatch"

# --------------------------------------------------------------------------------------------
# Exit status of ``wcd-hpc worker``: what a launcher does when a worker ends.

EXIT_OK: Final = 0  # the budget is met (or --max-trials reached)
#: An unhandled exception (a bug, or a crash of the interpreter): worth a restart.
EXIT_CRASHED: Final = 1
#: A one-line user error (bad storage URL, a study that does not exist, unusable data): the
#: same command would fail the same way, so it is never restarted.
EXIT_USAGE: Final = 2
#: The worker gave up after several failed trials in a row: the fault is in the experiment.
EXIT_TOO_MANY_FAILURES: Final = 3
#: Stopped by a signal after suspending its trial (EX_TEMPFAIL): a fresh worker resumes it.
EXIT_SUSPENDED: Final = 75
#: The storage stayed unreachable for the whole retry window, or its journal cannot be written
#: (EX_UNAVAILABLE): the worker left its trial to be resumed; not restarted, since a fresh worker
#: would meet the same outage.
EXIT_STORAGE_LOST: Final = StorageUnavailable.exit_code
#: Exit statuses after which a launcher starts a fresh worker in the same slot.
RESTARTABLE: Final = (EXIT_CRASHED, EXIT_SUSPENDED)


def trial_dir(run_dir: Path, number: int) -> Path:
    """Where trial ``number`` of the study whose run directory is ``run_dir`` writes its files."""
    return run_dir / TRIALS_DIR / str(number)


journal_path = store_schema.journal_path


def draws_trial_figures(trial_plots: object, user_attrs: Mapping[str, object]) -> bool:
    """Whether a sweep trial's figures are drawn, by its worker and by ``sync`` alike: unless the
    experiment says ``trial_plots: false`` (``trial_plots`` is its value, None when unset), but
    always for a finalist, the trial somebody will look at."""
    return trial_plots is not False or TRIAL_FINALIST in user_attrs


# --------------------------------------------------------------------------------------------
# Evaluation figures added later (``wcd_hpc.results``): with the plots above, under PLOTS_DIR.

Q_VS_ENERGY_PLOT: Final = "q_vs_energy.png"  # best Q per bin of log10(E0/GeV)
EFF_VS_ENERGY_PLOT: Final = "eff_vs_energy.png"  # signal efficiency at ε_b ≤ 1e-2 per bin
BASELINE_PLOT: Final = "baseline_vs_energy.png"  # Q at ε_γ = 0.5: model vs classical baseline
#: Every ``*_PLOT`` PNG has a PDF twin of the same stem, for print.
VECTOR_PLOT_SUFFIX: Final = ".pdf"
