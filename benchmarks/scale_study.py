"""Part 2 of ``benchmarks/scale.py``: what people and workers wait for on a 10,000-trial study.

A finished sweep of 10,000 lenet trials is synthesised through the storage API
(``benchmarks/scale_synth.py``), shaped like a real one: the study attributes ``sweep`` stores
(created by the same ``sweep`` code path, with a budget 100 above the finished trials so that
a worker still finds work), every attribute, heartbeat and epoch a worker writes, the trials'
files, 3 % pruned, 1 % failed and 8 RUNNING trials with live heartbeats.

It times, per storage: ``wcd-hpc status`` and ``status --json`` as a subprocess (total wall
time, interpreter start included), the library calls behind them (open + reap + summarize),
one reaper pass as a worker makes it before each claim, a worker's start-up (open storage,
load the study, reaper pass, first claim with the experiment's TPE sampler) in a fresh forked
process, and a second ``sync`` that has nothing to do. The first sync of 10,000 trials would
upload 30,000 files; instead the MLflow state a finished first sync leaves is synthesised
through the MLflow client: a parent run and one run per trial, tagged as sync tags them and
carrying the fingerprint sync computes (``wcd_hpc.results.syncdata.fingerprint``), which is
what makes sync skip a trial. A real sync then runs once (it finishes the parent run) and the
second one is timed. The best trial has no weights, so no model is registered.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from optuna.trial import FrozenTrial, TrialState
from scale_synth import (
    EPOCHS,
    RUNNING,
    TASKS,
    Capture,
    fill_database,
    fill_journal,
    snapshot_as_a_sweep_leaves_it,
    synthesise,
)

EXPERIMENT = """\
name: {name}
dataset:
  name: footprint-sim
  params: {{primaries: [iron, proton], events: 60000, normalise: log1p}}
model: lenet
metric: {{name: f1, direction: maximize}}
trials: {budget}
epochs: {epochs}
param_space:
  lr: loguniform(1e-4, 1e-2)
  batch_size: randint(32, 256)
  optimizer: choice(['adam', 'sgd'])
  reg: loguniform(1e-4, 1e-1)
  channels: "[randint(2, 20), randint(2, 20)]"
sampler: tpe
pruner: median
executor: slurm
workers: {tasks}
storage: {storage}
runs_dir: {runs}
"""


def refresh_running(url: str, name: str) -> None:
    """Beat the RUNNING trials now, as their live workers would."""
    from wcd_hpc.store.storage import open_storage

    storage = open_storage(url)
    study_id = storage.get_study_id_from_name(name)
    for t in storage.get_all_trials(study_id, states=(TrialState.RUNNING,)):
        storage.set_trial_user_attr(t._trial_id, "heartbeat", time.time())


def timed(what: Callable[[], object]) -> float:
    began = time.perf_counter()
    what()
    return time.perf_counter() - began


def in_child(what: Callable[[], object]) -> float:
    """Seconds ``what`` takes in a freshly forked process (no cache of this one's studies)."""
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]

    def run() -> None:
        try:
            out.put(timed(what))
        except BaseException as exc:
            out.put(f"{type(exc).__name__}: {exc}")

    proc = ctx.Process(target=run)
    proc.start()
    got = out.get(timeout=600)
    proc.join()
    if isinstance(got, str):
        raise RuntimeError(got)
    return float(got)


def first_claim(url: str, name: str) -> None:
    """A worker's start-up as ``run_worker`` does it, up to its first claimed trial (then failed
    again, so the study keeps its counts)."""
    from wcd_hpc.engine.search import make_sampler
    from wcd_hpc.queue import claims
    from wcd_hpc.queue import study as studies
    from wcd_hpc.queue.reaper import reap
    from wcd_hpc.store.storage import Storage

    opened = studies.open_study(name, Storage.parse(url))
    study = opened.study
    exp = studies.experiment_of(study)
    space = studies.space_of(study)
    study.sampler = make_sampler(exp.sampler, space, seed=exp.seed, worker="b", workers=128)
    reap(opened, ask_slurm=False)
    claimed = claims.claim(opened, "bench", sample=space.suggest)
    if claimed is None:
        raise RuntimeError("the worker found nothing to claim")
    claims.fail(study, claimed[0], "benchmark: start-up measured, trial given up")


def status_cli(name: str, runs: Path, url: str | None, as_json: bool) -> float:
    cmd = [sys.executable, "-m", "wcd_hpc", "status", name, "--runs-dir", str(runs)]
    cmd += ["--storage", url] if url else []
    cmd += ["--json"] if as_json else []
    env = {**os.environ, "COLUMNS": "200"}
    began = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - began


def status_library(name: str, runs: Path, url: str | None) -> None:
    from wcd_hpc.queue import study as studies
    from wcd_hpc.queue.reaper import reap
    from wcd_hpc.queue.status import summarize
    from wcd_hpc.store.storage import Storage

    opened = studies.open_existing(name, Storage.parse(url) if url else None, runs)
    reap(opened)
    json.dumps(summarize(opened.study, opened.run_dir), default=str)


def synthesise_mlflow(uri: str, name: str, url: str, run_dir: Path) -> None:
    """The MLflow state a finished first sync leaves (see the module docstring)."""
    from mlflow.tracking import MlflowClient

    from wcd_hpc.queue import study as studies
    from wcd_hpc.results import sync
    from wcd_hpc.results.syncdata import TAG_STUDY, fingerprint, local_artifacts
    from wcd_hpc.store.storage import Storage

    study = studies.open_study(name, Storage.parse(url)).study
    client = MlflowClient(uri)
    exp_id = client.create_experiment(
        name,
        artifact_location=local_artifacts(uri, name),
        tags={TAG_STUDY: name, sync.TAG_KIND: sync.KIND},
    )
    role = {TAG_STUDY: name, sync.TAG_ROLE: "study"}
    parent = client.create_run(exp_id, tags=role, run_name=name).info.run_id
    for t in study.get_trials(deepcopy=False, states=sync.SYNCED):
        tags = {
            TAG_STUDY: name,
            sync.TAG_ROLE: "trial",
            sync.TAG_TRIAL: str(t.number),
            sync.TAG_PARENT: parent,
            sync.TAG_FINGERPRINT: fingerprint(t, run_dir / "trials" / str(t.number)),
        }
        client.create_run(exp_id, tags=tags, run_name=f"trial-{t.number}")


def sync_once(uri: str, name: str, url: str, run_dir: Path) -> str:
    from wcd_hpc.queue import study as studies
    from wcd_hpc.results.sync import sync_study
    from wcd_hpc.store.storage import Storage

    study = studies.open_study(name, Storage.parse(url)).study
    return sync_study(study, run_dir, uri).line()


class Beating:
    """Beats the RUNNING trials every 10 s while the commands are timed, as live workers would
    (a command slower than 45 s would otherwise find them stale and reap them)."""

    def __init__(self, url: str, name: str) -> None:
        import threading

        self.url, self.name = url, name
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Beating:
        refresh_running(self.url, self.name)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.stop.wait(10.0):
            refresh_running(self.url, self.name)


def time_storage(name: str, runs: Path, url: str, run_dir: Path, uri: str) -> list[float]:
    """The timings of one storage, in the order of :data:`OPERATIONS`."""
    from wcd_hpc.store.urls import kind

    given = None if kind(url) == "journal" else url
    got = [
        status_cli(name, runs, given, False),
        status_cli(name, runs, given, True),
        in_child(lambda: status_library(name, runs, given)),
        _reap_warm(url, name),
    ]
    line: list[str] = []
    got.append(timed(lambda: line.append(sync_once(uri, name, url, run_dir))))
    print(f"  second sync: {line[0]}")
    got.append(in_child(lambda: first_claim(url, name)))
    return got


OPERATIONS = (
    "status (CLI)",
    "status --json (CLI)",
    "status library (open+reap+summarize)",
    "reaper pass, worker's study",
    "second sync (nothing to do)",
    "worker start-up to first claim",
)


def run(tmp: Path, trials: int, storages: list[str], pg: str) -> None:
    """Build the study in every storage asked for, time the commands, print a table."""
    import uuid

    from wcd_hpc.launch.sweep import plan, start
    from wcd_hpc.plugins import get_registry
    from wcd_hpc.store.urls import kind

    name = f"scale10k-{uuid.uuid4().hex[:6]}"
    runs = tmp / "runs"
    rows: list[tuple[str, str, float]] = []
    frozen: list[FrozenTrial] | None = None
    capture: Capture | None = None
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    mlflow_ready = False
    for storage in storages:
        where = "journal" if storage == "journal" else pg
        exp = tmp / f"{name}-{storage}.yaml"
        text = EXPERIMENT.format(
            name=name, budget=trials + 100, epochs=EPOCHS, tasks=TASKS, storage=where, runs=runs
        )
        exp.write_text(text)
        p = plan(exp, get_registry())
        study, _ = start(p)
        study.set_user_attr("slurm_jobs", ["900000", "910000"])
        if frozen is None or capture is None:
            began = time.perf_counter()
            capture, frozen = synthesise(trials, p.run_dir, p.space)
            print(f"synthesised {len(frozen)} trials in {time.perf_counter() - began:.0f} s")
        began = time.perf_counter()
        if kind(p.url) == "journal":
            path = Path(p.url.removeprefix("journal:"))
            fill_journal(path, capture)
            what = f"{path.stat().st_size / 2**20:.0f} MiB journal, {len(capture.logs)} records"
            what += f"; {snapshot_as_a_sweep_leaves_it(p.url)}"
        else:
            fill_database(p.url, name, frozen)
            what = "PostgreSQL rows"
        print(f"{kind(p.url)}: wrote {what} in {time.perf_counter() - began:.0f} s", flush=True)
        if not mlflow_ready:
            began = time.perf_counter()
            synthesise_mlflow(uri, name, p.url, p.run_dir)
            print(f"MLflow: synthesised a synced state in {time.perf_counter() - began:.0f} s")
            print(f"  first sync on it: {sync_once(uri, name, p.url, p.run_dir)}")
            mlflow_ready = True
        with Beating(p.url, name):
            got = time_storage(name, runs, p.url, p.run_dir, uri)
        for op, seconds in zip(OPERATIONS, got, strict=True):
            rows.append((kind(p.url), op, seconds))
            print(f"  {op}: {seconds:.2f} s", flush=True)
    print(f"\n{trials}-trial study ({EPOCHS} epochs, 3 % pruned, 1 % failed, {RUNNING} running)")
    print("| storage | operation | seconds |\n|---|---|---|")
    for label, op, seconds in rows:
        print(f"| {label} | {op} | {seconds:.2f} |")


def _reap_warm(url: str, name: str) -> float:
    """One reaper pass on a study a worker already has open (its routine check)."""
    from wcd_hpc.queue import study as studies
    from wcd_hpc.queue.reaper import reap
    from wcd_hpc.store.storage import Storage

    opened = studies.open_study(name, Storage.parse(url))
    reap(opened, ask_slurm=False)  # the first pass loads the trials
    return timed(lambda: reap(opened, ask_slurm=False))
