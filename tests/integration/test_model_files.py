"""A model, dataset or metric from a Python file (``model: ./my_net.py:MyNet``), no packaging.

What a physicist relies on: the file is found relative to the experiment, a mistake in it is one
line naming a file and a line, and every worker (local, Slurm) runs the study's copy of the file,
so editing the original during a sweep changes nothing that runs; a resumed sweep whose file
changed is refused until ``--set model.sha256=NEW`` acknowledges the new content.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from wcd_hpc.errors import ConfigError, StudyConflict
from wcd_hpc.launch.sweep import plan, start
from wcd_hpc.plugins import get_registry
from wcd_hpc.queue.schema import STUDY_BUDGET, STUDY_FILES
from wcd_hpc.store.storage import open_storage

ROOT = Path(__file__).resolve().parents[2]
DEV = str(ROOT / "slurm/profiles/dev.toml")

# The network reports which version of the file built it; the first build edits the original
# file, as a physicist might while the sweep runs.
MY_NET = """\
from pathlib import Path

VERSION = 1
ORIGINAL = Path({original!r})


def build(params, spec):
    import torch

    with open({log!r}, "a") as out:
        out.write(f"{{VERSION}}\\n")
    text = ORIGINAL.read_text()
    ORIGINAL.write_text(text.replace("VERSION = 1", "VERSION = 2"))
    hidden = int(params["hidden"])
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(16, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, spec.num_classes),
    )
"""

DATA = """\
import numpy as np

from wcd_hpc import DataSpec, Split, Splits


def load(params, seed, cache_dir):
    import torch

    rng = np.random.default_rng(0)

    def split(n):
        y = rng.integers(0, 2, n)
        x = rng.normal(size=(n, 1, 4, 4)) + 2 * y[:, None, None, None]
        return Split(torch.tensor(x, dtype=torch.float32), torch.tensor(y))

    return Splits(split(160), split(48), split(48), DataSpec((1, 4, 4), 2, ("a", "b")))
"""

EXPERIMENT = """\
name: {name}
dataset: ./lib/data.py:load
model: ./lib/my_net.py:build
metric: accuracy
trials: 2
epochs: 1
workers: 1
executor: local
pruner: none
param_space:
  hidden: randint(4, 8)
  lr: 0.01
  batch_size: 32
"""


def _write(tmp_path: Path, name: str = "mf") -> tuple[Path, Path, Path]:
    """The experiment (in ``exp/``), its two files (in ``exp/lib/``) and the build log."""
    lib = tmp_path / "exp" / "lib"
    lib.mkdir(parents=True)
    log = tmp_path / "built.log"
    net = lib / "my_net.py"
    net.write_text(MY_NET.format(original=str(net), log=str(log)))
    (lib / "data.py").write_text(DATA)
    exp = tmp_path / "exp" / f"{name}.yaml"
    exp.write_text(EXPERIMENT.format(name=name))
    return exp, net, log


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("WCD_HPC_")}


@pytest.mark.slow
def test_a_local_sweep_runs_the_study_copy_and_a_changed_file_needs_an_acknowledgement(
    cli, tmp_path: Path
) -> None:
    exp, net, log = _write(tmp_path)
    first = cli("sweep", str(exp), "--no-sync")
    assert first.code == 0, first.err
    assert "VERSION = 2" in net.read_text()  # edited by the first trial, mid-sweep
    run_dir = tmp_path / "runs" / "mf"
    journal = run_dir / "journal.log"
    study = optuna.load_study(study_name="mf", storage=open_storage(f"journal:{journal}"))
    record = study.user_attrs[STUDY_FILES]["model"]
    copy = run_dir / record["copy"]
    assert "VERSION = 1" in copy.read_text()
    assert record["sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest()

    # A fresh worker (as a requeued Slurm task would be) joins for two more trials: the copy.
    study.set_user_attr(STUDY_BUDGET, 4)
    more = cli("worker", "--study", "mf", "--storage", f"journal:{journal}")
    assert more.code == 0, more.err
    assert log.read_text().split() == ["1", "1", "1", "1"]

    new = hashlib.sha256(net.read_bytes()).hexdigest()
    refused = cli("sweep", str(exp), "--trials", "5", "--no-sync")
    assert refused.code == 2
    line = refused.err.strip().splitlines()[-1]
    assert f"--set model.sha256={new[:12]}" in line and record["sha256"][:12] in line
    assert study.user_attrs[STUDY_BUDGET] == 4  # the refusal left the study as it was

    ack = ("--set", f"model.sha256={new[:12]}")
    accepted = cli("sweep", str(exp), "--trials", "5", "--no-sync", *ack)
    assert accepted.code == 0, accepted.err
    assert log.read_text().split() == ["1", "1", "1", "1", "2"]

    # Other processes that rebuild a trial's model load the study's copy too.
    synced = cli("sync", "mf")
    assert synced.code == 0 and "model wcd-hpc-mf v1" in synced.out, synced.err
    sim = ("simulate", "footprints", "--events", "64", "--grid", "4", "--out", "f4.h5")
    assert cli(*sim).code == 0
    import h5py

    with h5py.File(tmp_path / "f4.h5", "a") as fh:  # the simulator names gamma/proton; the
        del fh["data"].attrs["class_names"]  # study's classes are a/b: evaluate would refuse
    scored = cli("evaluate", str(run_dir / "trials" / "0"), "f4.h5")
    assert scored.code == 0, scored.err


@pytest.mark.slow
def test_slurm_workers_load_the_copy_in_the_run_dir(tmp_path: Path, slurm_cluster: str) -> None:
    exp, net, log = _write(tmp_path, name="mfslurm")
    exp.write_text(
        exp.read_text().replace("trials: 2", "trials: 3").replace("workers: 1", "workers: 2")
    )
    args = ("sweep", str(exp), "--profile", DEV, "--set", "executor=slurm", "--no-sync", "--wait")
    with subprocess.Popen(
        [sys.executable, "-m", "wcd_hpc", *args],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as sweep:
        assert sweep.stdout is not None
        for line in sweep.stdout:
            if line.startswith("submitted array job"):
                # Edited as soon as the array is submitted, before its workers have started.
                net.write_text(net.read_text().replace("VERSION = 1", "VERSION = 2"))
                break
        _, err = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, err
    assert log.read_text().split() == ["1", "1", "1"]


# --------------------------------------------------------------------------------------------
# One line each, naming a file and a line (in-process: plan() is what sweep, render and the
# dry run call first).


def _plan(exp: Path, *sets: str):  # type: ignore[no-untyped-def]
    return plan(exp, get_registry(), sets=list(sets))


def _error(exp: Path, *sets: str) -> str:
    with pytest.raises(ConfigError) as caught:
        _plan(exp, *sets)
    return str(caught.value)


def test_a_missing_file_names_the_experiment_line(tmp_path: Path) -> None:
    exp, net, _ = _write(tmp_path)
    net.unlink()
    assert _error(exp) == (f"{exp}:3: model: no such file: {net} (from './lib/my_net.py:build')")


def test_a_missing_name_suggests_the_close_one(tmp_path: Path) -> None:
    exp, _, _ = _write(tmp_path)
    exp.write_text(exp.read_text().replace("my_net.py:build", "my_net.py:biuld"))
    message = _error(exp)
    assert message.startswith(f"{exp}:3: model: ")
    assert "defines no 'biuld'; did you mean 'build'?" in message


def test_a_file_that_raises_on_import_names_its_own_line(tmp_path: Path) -> None:
    exp, net, _ = _write(tmp_path)
    net.write_text("import math\n\nsize = math.sqrt(-1)\n")
    message = _error(exp)
    assert message == (
        f"{net}:3: model: importing it raised ValueError: math domain error "
        f"(python {net} shows the traceback)"
    )


def test_an_object_of_the_wrong_kind_names_its_definition(tmp_path: Path) -> None:
    exp, net, _ = _write(tmp_path)
    message = _error(exp, "dataset=" + str(net) + ":build")
    assert message == (
        f"{net}:7: dataset: build takes (params, spec); expected a wcd_hpc.Dataset or a "
        "function load(params, seed, cache_dir)"
    )
    not_callable = _error(exp, "model=" + str(net) + ":VERSION")
    assert not_callable.startswith(f"{net}:3: model: VERSION is of type int; expected")


def test_a_registered_model_object_keeps_its_space_and_set_paths_are_from_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp, _, _ = _write(tmp_path)
    (tmp_path / "obj.py").write_text(
        "from wcd_hpc import Model\n\n\ndef _build(params, spec):\n    raise AssertionError\n\n\n"
        "NET = Model(name='ignored', build=_build, space={'width': 'randint(2, 3)'})\n"
    )
    exp.write_text(exp.read_text().replace("  hidden: randint(4, 8)\n", ""))
    monkeypatch.chdir(tmp_path)
    p = _plan(exp, "model=./obj.py:NET")
    assert p.exp.model == "./obj.py:NET"
    assert set(p.space.params) >= {"width", "lr", "batch_size"}
    assert get_registry().models["./obj.py:NET"].source.distribution == "obj.py"


def test_a_checksum_the_file_does_not_have_is_refused_before_a_study_exists(
    tmp_path: Path,
) -> None:
    exp, _, _ = _write(tmp_path)
    p = _plan(exp, "model.sha256=00000000")
    with pytest.raises(StudyConflict, match=r"sha256 is [0-9a-f]{12}, not the model.sha256 0000"):
        start(p)
    assert not (tmp_path / "runs").exists()
    assert "applies only to a file reference" in _error(exp, "metric.sha256=00000000")


def test_a_bare_metric_function_needs_a_direction(tmp_path: Path) -> None:
    exp, _, _ = _write(tmp_path)
    (tmp_path / "exp" / "lib" / "score.py").write_text(
        "def score(y_true, y_score, meta):\n    return 0.5\n"
    )
    exp.write_text(exp.read_text().replace("metric: accuracy", "metric: ./lib/score.py:score"))
    assert "says nothing of its direction" in _error(exp)
    good = exp.read_text().replace(
        "metric: ./lib/score.py:score", "metric: {name: ./lib/score.py:score, direction: minimize}"
    )
    exp.write_text(good)
    assert _plan(exp).exp.direction == "minimize"
