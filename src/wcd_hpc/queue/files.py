"""Model files in a study: the copy every worker loads, and the checksum a resume compares.

A sweep of ``model: ./my_net.py:MyNet`` copies the file into the study's run directory
(``files/<sha256[:16]>/my_net.py``) and records its checksum on the study (:data:`STUDY_FILES`).
Every worker — local, a Slurm array task, inside Apptainer through the bound runs directory —
loads that copy, never the original: a physicist who edits the file while the sweep runs does
not change the trials that run, and the trials of one study all trained the same code.

A resumed sweep whose file changed is refused, naming both checksums, unless the experiment
names the new content (``--set model.sha256=NEW``, :mod:`wcd_hpc.experiment.filerefs`); then
the new copy is recorded and the workers started from then on load it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage

from wcd_hpc.errors import StudyConflict
from wcd_hpc.experiment.config import Experiment
from wcd_hpc.experiment.modelfiles import FileRef, Loaded, load_copy, shown
from wcd_hpc.plugins import Registry, load_files
from wcd_hpc.queue.schema import FILES_DIR, STUDY_FILES
from wcd_hpc.store.storage import study_exists

__all__ = ["check_resume", "load_recorded", "record"]


def _copy_path(item: Loaded) -> str:
    """Where the copy goes, relative to the run directory: one folder per content."""
    return f"{FILES_DIR}/{item.sha256[:16]}/{item.ref.path.name}"


def check_acknowledged(exp: Experiment, loaded: Sequence[Loaded]) -> None:
    """Refuse a file whose content is not the one ``<kind>.sha256`` names, if it names one."""
    for item in loaded:
        wanted = exp.setting(f"{item.ref.kind}.sha256")
        if wanted is not None and not item.sha256.startswith(wanted):
            raise StudyConflict(
                f"{shown(item.ref.path)}: sha256 is {item.sha256[:12]}, not the "
                f"{item.ref.kind}.sha256 {wanted} the experiment names"
            )


def check_resume(
    storage: BaseStorage, exp: Experiment, loaded: Sequence[Loaded], run_dir: Path
) -> None:
    """Refuse to resume a study whose file changed, unless the experiment acknowledges it.

    Called before the study is touched, so a refusal leaves it as it was.
    """
    check_acknowledged(exp, loaded)
    if not loaded or not study_exists(storage, exp.name):
        return
    study = optuna.load_study(study_name=exp.name, storage=storage)
    recorded = study.user_attrs.get(STUDY_FILES) or {}
    for item in loaded:
        old = recorded.get(item.ref.kind)
        acknowledged = exp.setting(f"{item.ref.kind}.sha256") is not None
        if old is None or old["sha256"] == item.sha256 or acknowledged:
            continue
        ack = f"--set {item.ref.kind}.sha256={item.sha256[:12]}"
        raise StudyConflict(
            f"{shown(item.ref.path)} changed since study '{exp.name}' recorded it (sha256 "
            f"{old['sha256'][:12]} -> {item.sha256[:12]}): its trials so far ran the old file; "
            f"to go on with the new one, run the sweep again with {ack}; or restore it from "
            f"the study's copy, {shown(run_dir / old['copy'])}"
        )


def record(study: optuna.Study, run_dir: Path, loaded: Sequence[Loaded]) -> None:
    """Copy each file into the run directory and record it on the study (after the checks)."""
    if not loaded:
        return
    recorded: dict[str, Any] = dict(study.user_attrs.get(STUDY_FILES) or {})
    for item in loaded:
        copy = _copy_path(item)
        target = run_dir / copy
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            partial.write_bytes(item.data)
            partial.replace(target)  # a worker never sees half a file
        recorded[item.ref.kind] = {
            "reference": item.ref.reference,
            "attribute": item.ref.attribute,
            "copy": copy,
            "sha256": item.sha256,
            "original": str(item.ref.path),
        }
    if recorded != study.user_attrs.get(STUDY_FILES):
        study.set_user_attr(STUDY_FILES, recorded)


def load_recorded(registry: Registry, study: optuna.Study, run_dir: Path) -> None:
    """Register the study's copies of its model files in ``registry`` (workers, sync)."""
    recorded = study.user_attrs.get(STUDY_FILES) or {}
    if not recorded:
        return
    direction = study.direction.name.lower() if len(study.directions) == 1 else None
    loaded = []
    for kind, entry in recorded.items():
        ref = FileRef(kind, entry["reference"], run_dir / entry["copy"], entry["attribute"])
        loaded.append(load_copy(ref, entry["sha256"], direction))
    load_files(registry, loaded)
