"""The 10,000-trial study of ``benchmarks/scale_study.py``, synthesised through the storage API.

Per trial, what a worker writes, in its order: the lenet space's parameters; on the claim the
heartbeat, host, pid, worker, claimed stamps, the Slurm ids of one of two 128-task arrays, node,
GPU and image; while training the precision, GPU share and train start, a heartbeat every 30 s
of its 15 epochs of 40 s and an intermediate value per epoch; at the end the train end, test
metrics, GPU-hours and its files (``params.json``, ``metrics.jsonl``, ``result.json``). 3 % are
pruned, 1 % failed (and retried), and 8 are RUNNING. On the journal the records are the ones
the Journal storage writes for those calls, captured in memory and appended in bulk (one fsync
per call would take hours); on PostgreSQL the same trials become rows of Optuna's own tables in
bulk (a database's end state does not depend on how its rows got there).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend
from optuna.trial import FrozenTrial, TrialState

EPOCHS = 15
EPOCH_S = 40.0
HEARTBEAT_S = 30.0
RUNNING = 8
TASKS = 128


class Capture(BaseJournalBackend):
    """A journal kept in memory: what JournalStorage would append, without a file."""

    def __init__(self) -> None:
        self.logs: list[dict[str, Any]] = []

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        yield from self.logs[log_number_from:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.logs.extend(logs)


def _trial(study: optuna.Study, n: int, rng: random.Random, space: Any, run_dir: Path) -> None:
    """One trial of a sweep, written as a worker writes it (see the module docstring)."""
    storage = study._storage
    trial = study.ask()
    params = space.suggest(trial)
    tid = trial._trial_id
    start = 1_790_000_000.0 + n * 6.0
    array = 900_000 if n < 5_000 else 910_000
    task = n % TASKS

    def set_attr(key: str, value: Any) -> None:
        storage.set_trial_user_attr(tid, key, value)

    set_attr("heartbeat", start)
    for key, given in (("host", f"gpu{task % 16:02d}"), ("pid", 10_000 + task), ("pid_start", 1)):
        set_attr(key, given)
    set_attr("boot_id", "7c4f0d8e-1b2a-4c3d-9e8f-0a1b2c3d4e5f")
    set_attr("worker", f"slurm-{array}_{task}")
    set_attr("claimed", start)
    set_attr("claimed_at", time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(start)))
    placement = {
        "slurm_job_id": str(array + 1 + task),
        "slurm_array_job_id": str(array),
        "slurm_array_task_id": str(task),
        "node": f"gpu{task % 16:02d}",
        "gpu": str(task % 4),
        "image_sha256": "3f" * 32,
        "precision": "bf16",
        "compiled": False,
        "data_on_gpu": True,
        "gpu_share": 1.0,
    }
    for attr, setting in placement.items():
        set_attr(attr, setting)
    if n % 100 == 99:
        set_attr("retry", 1)
        set_attr("retry_of", n - 1)
    set_attr("train_started", start + 2.0)
    fails = n % 100 == 98
    pruned_at = 3 + n % 5 if n % 33 == 5 else None
    last = 2 if fails else (pruned_at or EPOCHS)
    value: float = 0.0
    beat = start
    curve = []
    for epoch in range(1, last + 1):
        value = min(0.99, 0.6 + 0.35 * (1 - 0.8**epoch) + rng.uniform(-0.02, 0.02))
        curve.append(value)
        storage.set_trial_intermediate_value(tid, epoch, value)
        while beat + HEARTBEAT_S < start + epoch * EPOCH_S:
            beat += HEARTBEAT_S
            set_attr("heartbeat", beat)
    end = start + 2.0 + last * EPOCH_S
    set_attr("train_finished", end)
    set_attr("trial_gpu_hours", round((end - start - 2.0) / 3600, 6))
    _files(run_dir, n, params, curve)
    if fails:
        set_attr("fail_reason", "RuntimeError: CUDA out of memory")
        study.tell(trial, state=TrialState.FAIL)
    elif pruned_at is not None:
        study.tell(trial, state=TrialState.PRUNED)
    else:
        set_attr("test", {"f1": value, "accuracy": value, "roc_auc": min(1.0, value + 0.01)})
        study.tell(trial, value)


def _files(run_dir: Path, n: int, params: dict[str, Any], curve: list[float]) -> None:
    folder = run_dir / "trials" / str(n)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.json").write_text(json.dumps({"trial": n, "params": params, "seed": n}))
    lines = [
        {"epoch": e, "train_loss": 1 - v, "seconds": EPOCH_S, "val_f1": v}
        for e, v in enumerate(curve, 1)
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    if curve:
        result = {"objective": curve[-1], "metric": "f1", "test": {"f1": curve[-1]}}
        (folder / "result.json").write_text(json.dumps(result))


def synthesise(trials: int, run_dir: Path, space: Any) -> tuple[Capture, list[FrozenTrial]]:
    """The journal records and the frozen trials of a sweep of ``trials`` finished trials
    (plus retried failures) and RUNNING trials at the end."""
    capture = Capture()
    storage = JournalStorage(capture)
    sampler = optuna.samplers.RandomSampler(seed=0)
    study = optuna.create_study(study_name="x", storage=storage, sampler=sampler)
    rng = random.Random(0)
    n = done = 0
    while done < trials:
        _trial(study, n, rng, space, run_dir)
        done += n % 100 != 98
        n += 1
    for _ in range(RUNNING):
        trial = study.ask()
        space.suggest(trial)
        for key, value in {"heartbeat": time.time(), "claimed": time.time()}.items():
            storage.set_trial_user_attr(trial._trial_id, key, value)
        storage.set_trial_user_attr(trial._trial_id, "worker", f"slurm-910000_{n % TASKS}")
        n += 1
    return capture, study.get_trials(deepcopy=False)


def fill_journal(path: Path, capture: Capture) -> None:
    """Append the captured trial records (not its own study's) to the real study's journal."""
    trial_ops = {4, 5, 6, 7, 8, 9}  # CREATE_TRIAL .. SET_TRIAL_SYSTEM_ATTR
    with path.open("a") as fh:
        for record in capture.logs:
            if record["op_code"] in trial_ops:
                fh.write(json.dumps(record, separators=(",", ":")) + "\n")


def snapshot_as_a_sweep_leaves_it(url: str) -> str:
    """The journal snapshot a sweep run by this code leaves (every 100 trials created).

    Taken here at the journal's end; a real one is up to 100 trials (~6,300 lines) older, whose
    replay adds ~0.1 s to an open. Says what was done, for the output.
    """
    import pickle

    from wcd_hpc.store.storage import open_storage

    storage = open_storage(url)
    backend: Any = getattr(storage, "_backend", None)
    if not hasattr(backend, "save_snapshot"):
        return "no journal snapshots in this version"
    backend.save_snapshot(pickle.dumps(storage._replay_result))  # type: ignore[attr-defined]
    return "journal snapshot taken at its end, as a sweep leaves one every 100 trials"


def fill_database(url: str, name: str, frozen: list[FrozenTrial]) -> None:
    """The trials as rows of Optuna's own tables, 500 trials per transaction.

    ``create_new_trial(template_trial=...)`` gives the same rows but checks every attribute
    with a query of its own (~80 ms a trial here): 15 minutes for 10,000 trials.
    """
    from optuna.storages._rdb import models
    from sqlalchemy.orm import Session

    from wcd_hpc.store.storage import open_storage

    storage = open_storage(url)
    study_id = storage.get_study_id_from_name(name)
    engine = storage.engine  # type: ignore[attr-defined]
    for first in range(0, len(frozen), 500):
        batch = frozen[first : first + 500]
        with Session(engine) as session:
            rows = [
                models.TrialModel(
                    study_id=study_id,
                    number=t.number,
                    state=t.state,
                    datetime_start=t.datetime_start,
                    datetime_complete=t.datetime_complete,
                )
                for t in batch
            ]
            session.add_all(rows)
            session.flush()
            for row, t in zip(rows, batch, strict=True):
                session.add_all(_children(models, row.trial_id, t))
            session.commit()


def _children(models: Any, tid: int, t: FrozenTrial) -> list[Any]:
    out: list[Any] = []
    if t.value is not None:
        stored, kind = models.TrialValueModel.value_to_stored_repr(t.value)
        out.append(models.TrialValueModel(trial_id=tid, objective=0, value=stored, value_type=kind))
    for key, value in t.params.items():
        dist = t.distributions[key]
        out.append(
            models.TrialParamModel(
                trial_id=tid,
                param_name=key,
                param_value=dist.to_internal_repr(value),
                distribution_json=optuna.distributions.distribution_to_json(dist),
            )
        )
    for key, value in t.user_attrs.items():
        out.append(
            models.TrialUserAttributeModel(trial_id=tid, key=key, value_json=json.dumps(value))
        )
    for key, value in t.system_attrs.items():
        out.append(
            models.TrialSystemAttributeModel(trial_id=tid, key=key, value_json=json.dumps(value))
        )
    for step, value in t.intermediate_values.items():
        stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
        out.append(
            models.TrialIntermediateValueModel(
                trial_id=tid, step=step, intermediate_value=stored, intermediate_value_type=kind
            )
        )
    return out
