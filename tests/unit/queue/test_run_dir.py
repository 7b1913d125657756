"""A runs directory can move (``mv``) or be copied: the study works from wherever it now is.

And the study's stored search space is the one its workers sample from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import optuna
import pandas as pd
import pytest

from wcd_hpc.store.storage import open_storage

pytestmark = pytest.mark.slow
TOY = {"WCD_HPC_PLUGINS": "toy"}


def _trials(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "trials").iterdir())


def _toy_file(path: Path, events: int = 60) -> None:
    """An HDF5 file in the SWGO/LIP layout whose events fit the toy model (8 features)."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=events)
    with h5py.File(path, "w") as fh:
        fh["data"] = (rng.normal(size=(events, 8)) + y[:, None] * 3).astype(np.float32)
    info = pd.DataFrame({"Y_class": y.astype(float), "E0 (GeV)": np.full(events, 1e3)})
    info.to_hdf(path, key="info")


def test_a_moved_runs_directory_resumes_reports_evaluates_and_syncs_from_its_new_place(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    exp = toy_experiment(name="mover", trials=2)
    assert cli("sweep", str(exp), "--no-sync", plugins=testplugins, env=TOY).code == 0
    (tmp_path / "runs").rename(tmp_path / "moved")

    more = cli(
        "sweep", str(exp), "--runs-dir", "moved", "--trials", "3", plugins=testplugins, env=TOY
    )
    assert more.code == 0, more.err
    assert not (tmp_path / "runs").exists()  # nothing recreated at the old place
    run_dir = tmp_path / "moved" / "mover"
    assert _trials(run_dir) == ["0", "1", "2"]

    status = cli("status", "mover", "--runs-dir", "moved", "--json", plugins=testplugins, env=TOY)
    assert status.code == 0, status.err
    info = status.json()
    assert info["run_dir"] == str(run_dir) and info["finished"] == 3

    data = tmp_path / "eval.h5"
    _toy_file(data)
    evaluated = cli("evaluate", str(run_dir / "trials" / "0"), str(data), plugins=testplugins)
    assert evaluated.code == 0, evaluated.err
    assert (run_dir / "trials" / "0" / "evaluations" / "eval" / "metrics.json").exists()

    # The sweep synced at its end; a second sync from the new place finds every trial's files
    # (trial 0 has new ones since: the evaluation).
    synced = cli("sync", "mover", "--runs-dir", "moved", plugins=testplugins, env=TOY)
    assert synced.code == 0, synced.err
    assert "0 new, 1 updated, 2 unchanged" in synced.out
    artifacts = tmp_path / "moved" / "mlartifacts" / "mover"
    assert len(list(artifacts.rglob("model.pt"))) == 3
    assert not (tmp_path / "runs").exists()


def test_a_copied_runs_directory_is_a_second_independent_study(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    # With journal storage each copy holds its own journal, so each is its own study: the copy
    # grows, the original keeps what it had.
    exp = toy_experiment(name="twin", trials=2)
    assert cli("sweep", str(exp), "--no-sync", plugins=testplugins, env=TOY).code == 0
    shutil.copytree(tmp_path / "runs", tmp_path / "copy")

    grown = cli(
        "sweep", str(exp), "--runs-dir", "copy", "--trials", "3", "--no-sync",
        plugins=testplugins, env=TOY,
    )  # fmt: skip
    assert grown.code == 0, grown.err
    assert _trials(tmp_path / "copy" / "twin") == ["0", "1", "2"]
    assert _trials(tmp_path / "runs" / "twin") == ["0", "1"]
    original = cli("status", "twin", "--json", plugins=testplugins, env=TOY).json()
    copy = cli("status", "twin", "--runs-dir", "copy", "--json", plugins=testplugins, env=TOY)
    assert (original["finished"], original["run_dir"]) == (2, str(tmp_path / "runs" / "twin"))
    assert (copy.json()["finished"], copy.json()["run_dir"]) == (3, str(tmp_path / "copy/twin"))


def test_workers_sample_from_the_space_stored_in_the_study(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    # A plugin upgraded after the study was created (here: a stored space the plugin's current
    # default cannot produce, hidden=3 outside randint(4, 16)) must not change the study's space.
    exp = toy_experiment(name="frozen", trials=1)
    rendered = cli("render", str(exp), "--out", "scripts", plugins=testplugins, env=TOY)
    assert rendered.code == 0, rendered.err
    journal = tmp_path / "runs" / "frozen" / "journal.log"
    study = optuna.load_study(study_name="frozen", storage=open_storage(f"journal:{journal}"))
    study.set_user_attr("space", {**study.user_attrs["space"], "hidden": "3"})

    worker = cli(
        "worker", "--study", "frozen", "--storage", f"journal:{journal}",
        plugins=testplugins, env=TOY,
    )  # fmt: skip
    assert worker.code == 0, worker.err
    params = json.loads((journal.parent / "trials" / "0" / "params.json").read_text())
    assert params["params"]["hidden"] == 3
