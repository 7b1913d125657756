"""sbatch rendering: golden files, shell quoting of hostile values, and Slurm-side helpers."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
from pathlib import Path

import pytest

from wcd_hpc.experiment.config import ConfigError, Experiment, Resources
from wcd_hpc.launch.render import Job, render_sync, render_worker, time_minutes
from wcd_hpc.launch.settings import parse_site
from wcd_hpc.launch.slurm import chunks, executor_parameters
from wcd_hpc.queue.accounting import SlurmError, parse_sacct, summarize_allocation
from wcd_hpc.store.urls import without_secrets as strip_password

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
SITE = {
    "slurm": {
        "partition": "gpu",
        "account": "astro",
        "qos": "normal",
        "grace_s": 90,
        "setup": ["module load cuda/12.4"],
        "extra": {"mail-type": "FAIL"},
    },
}


def _job(run_dir: Path, site: dict | None = None, workers: int = 6, url: str | None = None) -> Job:
    exp = Experiment(
        name="footprint-lenet",
        dataset="footprint-sim",
        dataset_params={},
        model="lenet",
        metric="f1",
        direction="maximize",
        trials=64,
        epochs=5,
        param_space={},
        resources=Resources(gpus=1, cpus=4, mem_gb=16, time="02:00:00"),
    )
    return Job(
        exp,
        url or f"journal:{run_dir}/journal.log",
        run_dir,
        workers,
        parse_site(SITE if site is None else site),
        python="/opt/venv/bin/python",
    )


@pytest.mark.parametrize("name", ["worker.sbatch", "sync.sbatch"])
def test_rendered_scripts_match_the_golden_files(name: str) -> None:
    job = _job(Path("/scratch/alice/runs/footprint-lenet"))
    text = render_worker(job) if name == "worker.sbatch" else render_sync(job)
    if os.environ.get("UPDATE_GOLDEN"):
        (GOLDEN / name).write_text(text)
    assert text == (GOLDEN / name).read_text()


def _per_gpu_job(
    per_gpu: int, gpus: int, python: str = "/opt/venv/bin/python", site: dict | None = None
) -> Job:
    job = _job(Path("/scratch/alice/runs/footprint-lenet"), site=site)
    resources = Resources(gpus=gpus, cpus=8, mem_gb=32, time="02:00:00", trials_per_gpu=per_gpu)
    exp = dataclasses.replace(job.exp, resources=resources)
    return dataclasses.replace(job, exp=exp, python=python)


@pytest.mark.parametrize(
    ("gpus", "per_gpu", "expected"),
    [(1, 1, None), (0, 4, None), (1, 2, 2), (2, 1, 1), (2, 3, 3)],
    ids=["one-worker", "no-gpu", "two-per-gpu", "two-gpus", "three-per-gpu-on-two"],
)
def test_the_task_spec_carries_trials_per_gpu_when_a_task_runs_several_workers(
    gpus: int, per_gpu: int, expected: int | None
) -> None:
    spec = _per_gpu_job(per_gpu, gpus).spec()
    assert (spec.study, spec.per_gpu) == ("footprint-lenet", expected)
    assert spec.runs_dir == Path("/scratch/alice/runs")
    assert spec.pooled == (expected is not None)


def test_the_pickled_spec_holds_no_storage_url_and_no_password() -> None:
    job = _job(Path("/r/s"), url="postgresql://wcd:s3cret-pw@db.example:5432/sweeps")
    blob = pickle.dumps(job.spec())
    assert b"s3cret-pw" not in blob and b"db.example" not in blob
    assert pickle.loads(blob) == job.spec()


def test_a_task_with_three_workers_per_gpu_renders_the_golden_task_workers_script() -> None:
    job = _per_gpu_job(3, gpus=2)
    assert job.workers_per_task == 6
    text = render_worker(job)
    golden = GOLDEN / "worker-3-per-gpu.sbatch"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize(
    ("per_gpu", "gpus", "verb"),
    [
        (1, 1, ["worker", "--study", "footprint-lenet"]),
        (1, 0, ["worker", "--study", "footprint-lenet"]),
        (4, 0, ["worker", "--study", "footprint-lenet"]),  # no GPU: one worker on the CPUs
        (3, 1, ["task-workers", "--study", "footprint-lenet", "--per-gpu", "3"]),
        (1, 2, ["task-workers", "--study", "footprint-lenet", "--per-gpu", "1"]),
    ],
)
def test_one_worker_per_task_stays_a_plain_worker_and_several_run_under_task_workers(
    tmp_path: Path, per_gpu: int, gpus: int, verb: list[str]
) -> None:
    stub = tmp_path / "python"
    stub.write_text("#!/usr/bin/env python3\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    stub.chmod(0o755)
    job = _per_gpu_job(per_gpu, gpus, python=str(stub), site={})
    script = tmp_path / "worker.sbatch"
    script.write_text(render_worker(job))
    env = {"PATH": os.environ["PATH"], "SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "1"}
    run = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == ["-m", "wcd_hpc", *verb, "--worker-id", "slurm-7_1"]


def test_hostile_paths_reach_the_worker_verbatim_and_run_nothing(tmp_path: Path) -> None:
    weird = tmp_path / "it's a $(touch pwned); `touch pwned2` & dir"
    stub = tmp_path / "python"
    stub.write_text(
        "#!/usr/bin/env python3\nimport json, os, sys\n"
        "print(json.dumps({'argv': sys.argv[1:], 'storage': os.environ['WCD_HPC_STORAGE']}))\n"
    )
    stub.chmod(0o755)
    job = _job(weird / "runs" / "footprint-lenet", site={})
    job = Job(job.exp, job.url, job.run_dir, job.workers, job.site, python=str(stub))
    script = tmp_path / "worker.sbatch"
    script.write_text(render_worker(job))
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    env = {"PATH": os.environ["PATH"], "SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "1"}
    run = subprocess.run(
        ["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen["argv"] == [
        "-m",
        "wcd_hpc",
        "worker",
        "--study",
        "footprint-lenet",
        "--worker-id",
        "slurm-7_1",
    ]
    assert seen["storage"] == f"journal:{weird}/runs/footprint-lenet/journal.log"
    assert not list(tmp_path.glob("pwned*"))
    assert f'#SBATCH --output="{weird}/runs/footprint-lenet/slurm/%A_%a.out"' in script.read_text()


def test_a_double_quote_in_the_run_dir_is_refused_for_sbatch_lines(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot put"):
        render_worker(_job(tmp_path / 'say "hi"' / "run"))


def test_passwords_never_reach_a_rendered_script(tmp_path: Path) -> None:
    url = "postgresql://wcd:s3cret@db.example:5432/sweeps"
    text = render_worker(_job(tmp_path, url=url)) + render_sync(_job(tmp_path, url=url))
    assert "s3cret" not in text
    assert "postgresql://wcd@db.example:5432/sweeps" in text
    assert strip_password("postgresql://u@h/d") == "postgresql://u@h/d"


def test_profile_values_that_could_inject_directives_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"slurm\.partition: expected a Slurm name"):
        parse_site({"slurm": {"partition": "gpu\n#SBATCH --wrap=rm"}})
    with pytest.raises(ConfigError, match=r"slurm\.partiton: unknown key"):
        parse_site({"slurm": {"partiton": "gpu"}})
    with pytest.raises(
        ConfigError, match=r"container\.runtime: expected one of apptainer, singularity"
    ):
        parse_site({"container": {"runtime": "docker"}})


def test_submitit_parameters_follow_experiment_and_profile(tmp_path: Path) -> None:
    params = executor_parameters(_job(tmp_path), 6)
    assert params["gres"] == "gpu:1" and params["time"] == 120 and params["mem"] == "16384MB"
    assert params["partition"] == "gpu" and params["account"] == "astro"
    assert params["signal_delay_s"] == 90 and params["array_parallelism"] == 6
    assert params["additional_parameters"] == {"requeue": True, "mail-type": "FAIL"}


def test_preemption_has_one_owner_the_worker(tmp_path: Path) -> None:
    # The worker suspends its trial and requeues its own task on SIGUSR2; submitit must not
    # also requeue on timeout (its handler never runs: the worker replaces it).
    assert executor_parameters(_job(tmp_path), 2)["max_num_timeout"] == 0


def test_arrays_are_split_at_the_cluster_limit() -> None:
    assert chunks(2500, 1001) == [1001, 1001, 498]
    assert chunks(4, 1001) == [4]
    assert time_minutes("1-00:30:30") == 24 * 60 + 31


def test_sacct_output_is_parsed_and_summarized() -> None:
    text = (
        "12_0|COMPLETED|2026-11-26T10:00:00|2026-11-26T10:00:05|2026-11-26T11:00:05|3600|"
        "billing=1,cpu=1,gres/gpu=1,mem=2G,node=1|vm|0:0\n"
        "12_1|CANCELLED by 0|2026-11-26T10:00:00|2026-11-26T10:00:10|2026-11-26T10:30:10|1800|"
        "cpu=1,gres/gpu=2|vm|0:15\n"
    )
    records = parse_sacct(text)
    assert [r.queue_wait_s for r in records] == [5.0, 10.0]
    summary = summarize_allocation(records, training_s=2700)
    assert summary["gpu_hours"] == 2.0 and summary["worker_hours"] == 1.5
    assert summary["idle_fraction"] == 0.5 and summary["states"] == ["CANCELLED", "COMPLETED"]


def test_malformed_sacct_output_is_one_clear_error() -> None:
    with pytest.raises(SlurmError, match="unexpected sacct line"):
        parse_sacct("12_0|COMPLETED|garbage\n")


@pytest.mark.parametrize(
    "constraint", ["a100", "a&b|c", "[rack1|rack2]", "(a|b)&c", "knl&[r1*2|r2*3]", "gpu:a100"]
)
def test_slurm_constraint_grammar_is_accepted_and_rendered_as_written(
    tmp_path: Path, constraint: str
) -> None:
    site = {"slurm": {"partition": "gpu", "constraint": constraint}}
    text = render_worker(_job(tmp_path, site=site))
    assert f"#SBATCH --constraint={constraint}\n" in text


@pytest.mark.parametrize(
    ("constraint", "problem"),
    [
        ("a&", "it ends before an operand"),
        ("a & b", "unexpected ' ' at column 2"),
        ("(a|b", "'(' is not closed"),
        ("a\n#SBATCH --wrap=rm", "unexpected '\\n' at column 2"),
        ("a;rm", "unexpected ';' at column 2"),
    ],
)
def test_a_constraint_outside_slurm_grammar_is_refused_in_one_line(
    constraint: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_site({"slurm": {"constraint": constraint}}, source="site.toml")
    message = str(caught.value)
    assert message.startswith("site.toml: slurm.constraint: expected node features")
    assert problem in message and "\n" not in message
