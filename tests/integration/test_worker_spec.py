"""Workers start from a value: an array task receives a worker spec and never enters the CLI."""

from __future__ import annotations

import dataclasses
import json
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from wcd_hpc.launch import task
from wcd_hpc.launch.settings import ContainerSettings
from wcd_hpc.launch.spec import WorkerSpec, from_command
from wcd_hpc.store.storage import open_storage

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
RUNS = Path("/scratch/alice/runs")


def test_a_spec_renders_the_command_of_its_verb_only_where_a_process_starts() -> None:
    pool = WorkerSpec("s", per_gpu=3, label="slurm-1_2", python="/py")
    assert pool.command() == [
        "/py", "-m", "wcd_hpc", "task-workers", "--study", "s", "--per-gpu", "3",
        "--worker-id", "slurm-1_2",
    ]  # fmt: skip
    one = WorkerSpec("s", storage="postgresql://u:pw@h/d", max_trials=2, python="/py")
    assert one.command() == ["/py", "-m", "wcd_hpc", "worker", "--study", "s", "--max-trials", "2"]
    image = dataclasses.replace(one, container=ContainerSettings(image="/img.sif"), runs_dir=RUNS)
    assert image.command()[:6] == ["apptainer", "exec", "--nv", "--bind", str(RUNS), "/img.sif"]
    assert image.command()[6:8] == ["wcd-hpc", "worker"]


@pytest.mark.parametrize(
    ("command", "spec"),
    [
        (["/py", "-m", "wcd_hpc", "worker", "--study", "s"], WorkerSpec("s")),
        (
            ["/py", "-m", "wcd_hpc", "task-workers", "--study", "s", "--per-gpu", "3"],
            WorkerSpec("s", per_gpu=3),
        ),
        (["/py", "-m", "wcd_hpc", "task-workers", "--study", "s"], WorkerSpec("s", per_gpu=1)),
        (
            ["/py", "-m", "wcd_hpc", "worker", "--study", "s", "--worker-id", "w"],
            WorkerSpec("s", label="w"),
        ),
        (["apptainer", "exec", "/i.sif", "wcd-hpc", "worker", "--study", "s"], None),
        (["/py", "-m", "wcd_hpc", "worker", "--study", "s", "--per-gpu", "2"], None),
        (["/py", "-m", "wcd_hpc", "task-workers", "--study", "s", "--per-gpu", "x"], None),
        (["/py", "-m", "wcd_hpc", "sync", "s"], None),
        (["/py", "-m", "wcd_hpc", "worker", "--study"], None),
        (["/py", "-m", "wcd_hpc", "worker", "--storage", "journal:/j"], None),
        (["/py"], None),
    ],
    ids=[
        "worker", "task-workers", "task-workers-default", "labelled", "image", "worker-per-gpu",
        "per-gpu-word", "other-verb", "no-value", "no-study", "bare",
    ],
)  # fmt: skip
def test_a_command_queued_before_specs_reads_back_into_its_spec_or_stays_a_command(
    command: list[str], spec: WorkerSpec | None
) -> None:
    assert from_command(command) == spec


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("array-task-worker.pkl", WorkerSpec("footprint-lenet")),
        ("array-task-3-per-gpu.pkl", WorkerSpec("footprint-lenet", per_gpu=3)),
    ],
)
def test_a_job_pickled_before_specs_runs_the_spec_its_command_stood_for(
    monkeypatch, name: str, spec: WorkerSpec
) -> None:
    # What submitit left on disk for a task queued by the release before worker specs.
    ran: list[WorkerSpec] = []
    monkeypatch.setattr(task, "configure_logging", lambda: None)
    monkeypatch.setattr(task, "work", lambda s: ran.append(s) or 0)
    delayed = pickle.loads((GOLDEN / name).read_bytes())
    assert delayed.result() == 0
    assert ran == [spec]


def test_a_task_whose_image_command_fails_raises_with_its_status(monkeypatch) -> None:
    monkeypatch.setattr(task, "configure_logging", lambda: None)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RuntimeError, match="worker exited with status 3"):
        task.array_task([sys.executable, "-c", "raise SystemExit(3)"])
    assert signal.getsignal(signal.SIGTERM) == before  # forwarding ends with the child


def test_an_array_task_for_a_missing_study_fails_with_one_line_and_status_2(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(task, "configure_logging", lambda: None)
    url = f"journal:{tmp_path / 'journal.log'}"
    optuna.create_study(study_name="there", storage=open_storage(url))
    with pytest.raises(RuntimeError, match="worker exited with status 2"):
        task.run_task(WorkerSpec("nope", storage=url, per_gpu=2))
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no study 'nope'")
    assert not (tmp_path / "logs").exists()  # no worker was started


# A task process: the pool's workers and the worker loop are stand-ins (the CLI being absent is
# what is checked, not training), then it reports which of our entry modules it imported.
_TASK = """
import json, subprocess, sys
import optuna
from wcd_hpc.launch import local, task
from wcd_hpc.launch.spec import WorkerSpec
from wcd_hpc.store.storage import open_storage

entry, url = sys.argv[1], sys.argv[2]
optuna.create_study(study_name="s", storage=open_storage(url))

def spawn(index, pool, study, url, logs):
    logs.mkdir(parents=True, exist_ok=True)
    out = (logs / pool.log_name(index)).open("ab")
    proc = subprocess.Popen([sys.executable, "-c", "pass"], stdout=out, stderr=out)
    return local.Worker(index, proc, out)

local._spawn = spawn
if entry == "pool":
    task.run_task(WorkerSpec("s", per_gpu=2))
elif entry == "worker":
    import wcd_hpc.engine.worker as engine

    engine.run_worker = lambda *a, **k: engine.Summary(reason="budget met")
    task.run_task(WorkerSpec("s"))
else:  # a job queued before specs
    task.array_task([sys.executable, "-m", "wcd_hpc", "task-workers", "--study", "s"])
print(json.dumps({m: m in sys.modules for m in ("wcd_hpc.__main__", "wcd_hpc.cli")}))
"""


@pytest.mark.parametrize("entry", ["pool", "worker", "queued-before-specs"])
def test_an_array_task_reaches_its_pool_or_worker_loop_without_the_cli(
    tmp_path: Path, entry: str
) -> None:
    (tmp_path / "s").mkdir()
    env = {"PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""}
    env["WCD_HPC_STORAGE"] = url = f"journal:{tmp_path / 's' / 'journal.log'}"
    run = subprocess.run(
        [sys.executable, "-c", _TASK, entry, url],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == {
        "wcd_hpc.__main__": False,
        "wcd_hpc.cli": False,
    }
