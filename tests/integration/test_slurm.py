"""Against the real one-node Slurm (slurm/dev-cluster/up): arrays, hand submission, scancel."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import optuna
import pytest

from wcd_hpc.store.storage import open_storage

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DEV = str(ROOT / "slurm/profiles/dev.toml")
TOY = {"WCD_HPC_PLUGINS": "toy"}


def _sacct(job: str) -> list[list[str]]:
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", job, "-o", "JobID,State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


def _wait_gone(job: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout
        if not out.strip():
            return
        time.sleep(1)
    raise AssertionError(f"job {job} still queued after {timeout}s")


def _array_id(text: str) -> str:
    line = next(ln for ln in text.splitlines() if ln.startswith("submitted array job"))
    return line.split()[3].rstrip(":")


def _sacct_settled(job: str, tasks: int, timeout: float = 60) -> list[list[str]]:
    """sacct rows of a finished array, once slurmdbd has recorded every task."""
    deadline = time.monotonic() + timeout
    rows: list[list[str]] = []
    while time.monotonic() < deadline:
        rows = _sacct(job)
        if len(rows) == tasks and all(state != "RUNNING" for _, state in rows):
            return rows
        time.sleep(1)
    return rows


def _slurm_sweep(cli, exp: Path, testplugins: Path, *flags: str, env=None, **kwargs):  # type: ignore[no-untyped-def]
    """``wcd-hpc sweep EXP --profile dev --set executor=slurm FLAGS`` with the toy plugin."""
    args = ("sweep", str(exp), "--profile", DEV, "--set", "executor=slurm", *flags)
    return cli(*args, plugins=testplugins, env={**TOY, **(env or {})}, **kwargs)


# Imported by every Python process whose path starts with its directory: the array tasks and the
# workers they start (sbatch exports the sweep's environment). At exit each records its command
# line and which of our entry modules it imported.
PROBE = """
import atexit, json, os, sys

def _record():
    out = os.environ.get("WCD_TEST_PROBE")
    if out and os.environ.get("SLURM_JOB_ID"):
        seen = {m: m in sys.modules for m in ("wcd_hpc.__main__", "wcd_hpc.cli")}
        with open(os.path.join(out, f"{os.getpid()}.json"), "w") as fh:
            json.dump({"argv": sys.argv, **seen}, fh)

atexit.register(_record)
"""


def _probe(tmp_path: Path, testplugins: Path) -> tuple[dict[str, str], Path]:
    """The environment that puts :data:`PROBE` in a sweep's processes, and where they report."""
    site, out = tmp_path / "probe", tmp_path / "probed"
    site.mkdir()
    out.mkdir()
    (site / "sitecustomize.py").write_text(PROBE)
    return {"PYTHONPATH": f"{site}:{testplugins}", "WCD_TEST_PROBE": str(out)}, out


def _task_processes(out: Path) -> tuple[list[dict], list[dict]]:
    """(the array tasks' own processes, every other process they started) as the probe saw them."""
    seen = [json.loads(path.read_text()) for path in out.glob("*.json")]
    tasks = [r for r in seen if r["argv"][0].endswith("submitit/core/_submit.py")]
    return tasks, [r for r in seen if r not in tasks]


def _start_requeued_now(task: str, within: float) -> None:
    """A requeued job waits ~2 minutes for its BeginTime (Slurm's rule); let it start now."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        state = subprocess.run(
            ["squeue", "-h", "-j", task, "-o", "%T %r"], capture_output=True, text=True
        ).stdout
        if "BeginTime" in state:
            subprocess.run(["scontrol", "update", f"JobId={task}", "StartTime=now"], check=True)
            return
        time.sleep(0.5)


def test_twelve_trials_on_four_array_tasks(
    cli, testplugins, toy_experiment, tmp_path, slurm_cluster
) -> None:
    exp = toy_experiment(name="array12", trials=12, workers=4)
    probe, probed = _probe(tmp_path, testplugins)
    res = _slurm_sweep(cli, exp, testplugins, "--wait", "--no-sync", env=probe)
    assert res.code == 0, res.err
    tasks, others = _task_processes(probed)
    assert len(tasks) == 4 and others == []  # each task is its worker: no second process
    assert not any(t["wcd_hpc.__main__"] or t["wcd_hpc.cli"] for t in tasks)  # nor the CLI
    job = _array_id(res.out)
    rows = _sacct_settled(job, 4)
    assert sorted(r[0] for r in rows) == [f"{job}_{i}" for i in range(4)]
    assert {r[1] for r in rows} == {"COMPLETED"}
    info = json.loads(cli("status", "array12", "--json", plugins=testplugins, env=TOY).out)
    assert info["counts"]["COMPLETE"] + info["counts"]["PRUNED"] == 12
    assert all(t["slurm_array_job_id"] == job for t in info["trials"])
    tasks = {t["slurm_array_task_id"] for t in info["trials"]}
    assert tasks <= {"0", "1", "2", "3"}
    assert info["slurm"]["jobs"] == [job] and info["slurm"]["tasks"] == 4
    assert info["slurm"]["gpu_hours"] > 0
    human = cli("status", "array12", plugins=testplugins, env=TOY).out
    # Which tasks got trials depends on who started first; whichever did is shown by id.
    assert all(f"{job}_{task}" in human for task in tasks)
    assert "GPU-hours allocated" in human


def test_sweep_submits_and_follows_its_array_without_importing_torch(
    cli, testplugins, toy_experiment, slurm_cluster
) -> None:
    # The login-node side of a sweep (validate, create the study, submit, follow) never needs
    # torch; only the array tasks import it.
    exp = toy_experiment(name="lightslurm", trials=2, workers=2)
    res = _slurm_sweep(cli, exp, testplugins, "--wait", "--no-sync", without_torch=True)
    assert res.code == 0, res.err
    assert "2/2 trials finished" in res.out


def test_rendered_worker_script_submitted_by_hand_joins_the_study(
    cli, testplugins, toy_experiment, tmp_path, slurm_cluster
) -> None:
    exp = toy_experiment(name="byhand", trials=5, workers=2)
    res = cli(
        "render", str(exp), "--out", "scripts", "--profile", DEV, plugins=testplugins, env=TOY
    )
    assert res.code == 0, res.err
    env = {**os.environ, **TOY, "PYTHONPATH": str(testplugins)}
    env.pop("WCD_HPC_STORAGE", None)
    sub = subprocess.run(
        ["sbatch", "--parsable", "scripts/worker.sbatch"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    job = sub.stdout.strip().split(";")[0]
    _wait_gone(job)
    info = json.loads(cli("status", "byhand", "--json", plugins=testplugins, env=TOY).out)
    assert info["finished"] == 5
    assert {t["worker"] for t in info["trials"]} <= {f"slurm-{job}_0", f"slurm-{job}_1"}
    # Its allocation is accounted although sweep never recorded the job.
    assert info["slurm"]["jobs"] == [job] and info["slurm"]["gpu_hours"] > 0


def _start_slow_array(cli, testplugins, toy_experiment, name: str, trials: int, epochs: int):
    """Submit (without waiting) an array whose toy trials take seconds per epoch."""
    exp = toy_experiment(name=name, trials=trials, workers=2)
    text = exp.read_text().replace("events: 300", "events: 40000")
    exp.write_text(text.replace("epochs: 2", f"epochs: {epochs}"))
    first = _slurm_sweep(cli, exp, testplugins, "--no-sync")
    assert first.code == 0, first.err
    return exp, _array_id(first.out)


def _running_trial(journal: str, name: str, ready, timeout: float = 240):  # type: ignore[no-untyped-def]
    """Poll the study until ``ready(trials)`` returns a trial (or True); return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        trials = optuna.load_study(study_name=name, storage=open_storage(journal)).trials
        found = ready(trials)
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"study {name} never reached the expected state")


def test_scancel_mid_sweep_then_sweep_again_ends_with_exactly_the_budget(
    cli, testplugins, toy_experiment, tmp_path, slurm_cluster
) -> None:
    exp, job = _start_slow_array(cli, testplugins, toy_experiment, "cancelled", 8, 4)
    journal = f"journal:{tmp_path / 'runs/cancelled/journal.log'}"

    def some_done_some_running(trials):  # type: ignore[no-untyped-def]
        states = [t.state.name for t in trials]
        return states.count("COMPLETE") + states.count("PRUNED") >= 1 and "RUNNING" in states

    _running_trial(journal, "cancelled", some_done_some_running)
    subprocess.run(["scancel", job], check=True)
    _wait_gone(job)
    again = _slurm_sweep(cli, exp, testplugins, "--wait", "--no-sync")
    assert again.code == 0, again.err
    info = json.loads(cli("status", "cancelled", "--json", plugins=testplugins, env=TOY).out)
    assert info["finished"] == 8
    assert info["counts"]["RUNNING"] == info["counts"]["FAIL"] == 0
    assert len(info["slurm"]["jobs"]) == 2
    # The trials scancel interrupted were suspended, then resumed by the second array.
    trials = optuna.load_study(study_name="cancelled", storage=open_storage(journal)).trials
    assert any("resumed_from_epoch" in t.user_attrs for t in trials)


def test_dry_run_creates_writes_and_submits_nothing(
    cli, testplugins, toy_experiment, tmp_path, slurm_cluster
) -> None:
    exp = toy_experiment(name="dry", trials=6, workers=3)
    before = subprocess.run(
        ["sacct", "-X", "-n", "-a", "-S", "now-1hour", "--name=wcd-dry", "-o", "JobID"],
        capture_output=True,
        text=True,
    ).stdout.split()
    files_before = sorted(p.name for p in tmp_path.iterdir())
    res = _slurm_sweep(cli, exp, testplugins, "--dry-run")
    assert res.code == 0, res.err
    assert "#SBATCH --array=0-2%3" in res.out
    assert "sampled parameter sets" in res.out and "GPU-hours" in res.out
    assert "hidden" in res.out and "randint(4, 16)" in res.out
    assert sorted(p.name for p in tmp_path.iterdir()) == files_before
    after = subprocess.run(
        ["sacct", "-X", "-n", "-a", "-S", "now-1hour", "--name=wcd-dry", "-o", "JobID"],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert after == before
    squeue = subprocess.run(["squeue", "-h", "-n", "wcd-dry"], capture_output=True, text=True)
    assert squeue.stdout.strip() == ""


@pytest.mark.parametrize("how", ["sigusr2", "scontrol-requeue"])
def test_a_preempted_array_task_is_requeued_and_resumes_its_trial(
    cli, testplugins, toy_experiment, tmp_path, slurm_cluster, how
) -> None:
    name = f"preempt-{how}"
    _, array = _start_slow_array(cli, testplugins, toy_experiment, name, 2, 5)
    journal = f"journal:{tmp_path / 'runs' / name / 'journal.log'}"
    victim = _running_trial(
        journal,
        name,
        lambda ts: next((t for t in ts if t.state.name == "RUNNING" and t.last_step), None),
    )
    task = f"{array}_{victim.user_attrs['slurm_array_task_id']}"
    if how == "sigusr2":  # what Slurm sends grace_s before a time limit or preemption
        subprocess.run(["scancel", "--signal=USR2", task], check=True)
    else:
        subprocess.run(["scontrol", "requeue", task], check=True)
    _start_requeued_now(task, within=60)
    _wait_gone(array)
    trials = optuna.load_study(study_name=name, storage=open_storage(journal)).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    resumed = trials[victim.number]
    assert resumed.user_attrs["resumed_from_epoch"] >= 1
    assert sorted(resumed.intermediate_values) == [1, 2, 3, 4, 5]
    lines = tmp_path / "runs" / name / "trials" / str(victim.number) / "metrics.jsonl"
    assert [json.loads(x)["epoch"] for x in lines.read_text().splitlines()] == [1, 2, 3, 4, 5]


def test_a_worker_over_its_memory_is_reaped_as_out_of_memory_and_retried(
    cli, testplugins, tmp_path, slurm_cluster
) -> None:
    (tmp_path / "oom.yaml").write_text(
        "name: oom\ndataset: one-sample\nmodel: hog\nmetric: accuracy\ntrials: 1\nepochs: 200\n"
        "pruner: none\nexecutor: slurm\nworkers: 1\n"
        'resources: {gpus: 1, cpus: 1, mem_gb: 1.5, time: "00:10:00"}\n'
    )
    res = cli(
        "sweep", "oom.yaml", "--profile", DEV, "--wait", "--no-sync", plugins=testplugins, env=TOY
    )
    assert res.code == 1 and "sweep ended with 0 of 1 trials finished" in res.err
    info = json.loads(cli("status", "oom", "--json", plugins=testplugins, env=TOY).out)
    causes = [f["cause"] for f in info["failures"]]
    assert len(causes) == 1 and causes[0].endswith("(out of memory)"), causes
    assert info["counts"]["WAITING"] == 1  # the same parameters, enqueued for another try


def _per_gpu_experiment(toy_experiment, name: str, trials: int, events: int, epochs: int) -> Path:  # type: ignore[no-untyped-def]
    """Two array tasks of one GPU each, three workers on it (``trials_per_gpu: 3``)."""
    extra = "resources: {gpus: 1, cpus: 2, trials_per_gpu: 3}\n"
    exp = toy_experiment(name=name, trials=trials, workers=2, extra=extra)
    text = exp.read_text().replace("events: 300", f"events: {events}")
    exp.write_text(text.replace("epochs: 2", f"epochs: {epochs}"))
    return exp


def test_two_array_tasks_of_three_workers_per_gpu_are_six_workers_and_meet_the_budget_exactly(
    cli, testplugins, toy_experiment, tmp_path, slurm_cluster
) -> None:
    exp = _per_gpu_experiment(toy_experiment, "pergpu", trials=12, events=40000, epochs=3)
    probe, probed = _probe(tmp_path, testplugins)
    res = _slurm_sweep(cli, exp, testplugins, "--wait", "--no-sync", env=probe)
    assert res.code == 0, res.err
    assert "2 tasks × 3 workers (3 per GPU)" in res.out
    tasks, workers = _task_processes(probed)
    # The tasks reach their pools without the CLI; only the workers they start run `wcd-hpc`.
    assert len(tasks) == 2
    assert not any(t["wcd_hpc.__main__"] or t["wcd_hpc.cli"] for t in tasks)
    assert len(workers) >= 6 and {tuple(w["argv"][1:2]) for w in workers} == {("worker",)}
    job = _array_id(res.out)
    rows = _sacct_settled(job, 2)  # still one array of two tasks
    assert sorted(r[0] for r in rows) == [f"{job}_0", f"{job}_1"]
    assert {r[1] for r in rows} == {"COMPLETED"}
    info = json.loads(cli("status", "pergpu", "--json", plugins=testplugins, env=TOY).out)
    trials = info["trials"]
    assert info["finished"] == 12 and len(trials) == 12
    assert info["counts"]["RUNNING"] == info["counts"]["FAIL"] == 0
    expected = {f"slurm-{job}_{task}/{slot}" for task in (0, 1) for slot in range(3)}
    assert {t["worker"] for t in trials} == expected  # six workers, all of them worked
    for t in trials:
        assert t["worker"].startswith(f"slurm-{job}_{t['slurm_array_task_id']}/")
        assert t["gpu"] is not None and t["gpu_hours"] > 0
    for task in ("0", "1"):  # the three workers of a task share the task's one GPU
        assert len({t["gpu"] for t in trials if t["slurm_array_task_id"] == task}) == 1
    assert info["slurm"]["tasks"] == 2 and info["slurm"]["idle_fraction"] is not None


def test_sigusr2_to_a_task_of_three_workers_suspends_all_three_trials_and_requeues_it_once(
    cli, testplugins, toy_experiment, tmp_path, slurm_cluster
) -> None:
    # Epochs of a fixed two seconds (the toy plugin's `sleep` model on one event), whatever the
    # load: a trial's pace, not the machine's, decides whether the signal finds it training.
    exp = _per_gpu_experiment(toy_experiment, "pergpu-usr2", trials=6, events=300, epochs=6)
    text = exp.read_text().replace("model: toy-mlp", "model: sleep")
    text = text.replace("dataset: {name: toy-blobs, params: {events: 300}}", "dataset: one-sample")
    exp.write_text(text + "param_space: {seconds: 2}\n")
    first = _slurm_sweep(cli, exp, testplugins, "--no-sync")
    assert first.code == 0, first.err
    array = _array_id(first.out)
    journal = f"journal:{tmp_path / 'runs' / 'pergpu-usr2' / 'journal.log'}"

    def three_training_on_one_task(trials):  # type: ignore[no-untyped-def]
        # Reported an epoch, with three or more of six (6 s) still to train: a trial in its last
        # epoch when the signal comes may finish before its worker sees the signal, rightly.
        by_task: dict[str, list] = {}
        for t in trials:
            if t.state.name == "RUNNING" and t.last_step in (1, 2, 3):
                by_task.setdefault(t.user_attrs["slurm_array_task_id"], []).append(t)
        return next((ts for ts in by_task.values() if len(ts) == 3), None)

    victims = _running_trial(journal, "pergpu-usr2", three_training_on_one_task, timeout=300)
    task = f"{array}_{victims[0].user_attrs['slurm_array_task_id']}"
    subprocess.run(["scancel", "--signal=USR2", task], check=True)
    _start_requeued_now(task, within=90)
    _wait_gone(array)
    trials = optuna.load_study(study_name="pergpu-usr2", storage=open_storage(journal)).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6  # the budget, exactly
    for victim in victims:
        resumed = trials[victim.number]
        assert "SIGUSR2" in resumed.user_attrs["suspended_by"]
        assert resumed.user_attrs["resumed_from_epoch"] >= 1
        assert sorted(resumed.intermediate_values) == [1, 2, 3, 4, 5, 6]
    requeued = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-D", "-j", task, "-o", "JobID,State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert [ln.split("|")[1] for ln in requeued.splitlines()].count("REQUEUED") == 1
    run_dir = tmp_path / "runs" / "pergpu-usr2"
    said = [
        line
        for path in (*run_dir.glob("slurm/**/*"), *run_dir.glob("logs/*"))
        if path.is_file()
        for line in path.read_text(errors="replace").splitlines()
        if "scontrol requeue" in line
    ]
    assert len(said) == 1, said  # the task requeued itself; its three workers left it to it
