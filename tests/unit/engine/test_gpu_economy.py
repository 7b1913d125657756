"""GPU economy: several trials per GPU, data resident on the device, precision and compile.

This machine has no GPU: the CUDA side is exercised by monkeypatching what torch reports (bf16
support, free memory) and by checking the decisions, environments and trial records; the
throughput itself is ``benchmarks/gpu.py``'s to measure on a GPU machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import torch

from wcd_hpc.api import DataSpec, Split, Splits
from wcd_hpc.engine import device as dev
from wcd_hpc.engine.fit import fit
from wcd_hpc.engine.preemption import ENV_TASK_REQUEUES
from wcd_hpc.engine.trial import run_trial
from wcd_hpc.experiment.config import ConfigError, Experiment, load_experiment
from wcd_hpc.launch import local
from wcd_hpc.queue.accounting import parse_sacct, summarize_allocation
from wcd_hpc.queue.status import summarize
from wcd_hpc.store.storage import open_storage

TOY = {"WCD_HPC_PLUGINS": "toy"}
MINIMAL = "name: quick\ndataset: footprint-sim\nmodel: lenet\ntrials: 4\n"


# --- the experiment keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "resources: {gpus: 1, trials_per_gpu: 0}",
            "q.yaml:5: resources.trials_per_gpu: expected a positive integer, got 0",
        ),
        (
            "precision: fp8",
            "q.yaml:5: precision: expected one of auto, fp32, bf16, fp16, got 'fp8'",
        ),
        (
            "data_on_device: maybe",
            "q.yaml:5: data_on_device: expected auto, true or false, got 'maybe'",
        ),
        ("compile: sometimes", "q.yaml:5: compile: expected true or false, got 'sometimes'"),
    ],
    ids=["trials_per_gpu-0", "precision-fp8", "data_on_device-maybe", "compile-word"],
)
def test_gpu_settings_out_of_range_are_one_line_naming_file_line_and_key(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(MINIMAL + line + "\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert str(info.value).replace(str(tmp_path) + "/", "") == message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("resources: {gpus: 1, trials_per_gpu: 0}\n", "resources.trials_per_gpu: expected a"),
        ("precision: fp8\n", "precision: expected one of auto, fp32, bf16, fp16, got 'fp8'"),
        ("data_on_device: maybe\n", "data_on_device: expected auto, true or false"),
    ],
    ids=["trials_per_gpu-0", "precision-fp8", "data_on_device-maybe"],
)
def test_a_refused_gpu_setting_exits_2_in_one_line_and_creates_nothing(
    cli, testplugins, toy_experiment, tmp_path, extra: str, expected: str
) -> None:
    exp = toy_experiment(name="refused", extra=extra)
    res = cli("sweep", str(exp), plugins=testplugins, env=TOY)
    assert res.code == 2
    lines = res.err.strip().splitlines()
    line = len(exp.read_text().splitlines())  # the setting is the file's last line
    assert len(lines) == 1 and lines[0].startswith(f"error: {exp}:{line}: "), res.err
    assert expected in lines[0]
    assert not (tmp_path / "runs").exists()


def test_gpu_settings_default_to_auto_and_one_trial_per_gpu(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(MINIMAL)
    exp = load_experiment(path)
    assert (exp.precision, exp.data_on_device, exp.compile) == ("auto", "auto", False)
    assert exp.resources.trials_per_gpu == 1
    path.write_text(
        MINIMAL + "precision: bf16\ndata_on_device: false\ncompile: true\n"
        "resources: {gpus: 2, trials_per_gpu: 4}\n"
    )
    exp = load_experiment(path)
    assert (exp.precision, exp.data_on_device, exp.compile) == ("bf16", False, True)
    assert exp.resources.trials_per_gpu == 4
    assert Experiment.from_dict(exp.to_dict()) == exp


def test_a_study_stored_before_these_keys_reads_back_with_their_defaults() -> None:
    path_free = {"name": "old", "dataset": "d", "dataset_params": {}, "model": "m"}
    old = {
        **path_free,
        "metric": "accuracy", "direction": None, "trials": 1, "epochs": 1, "param_space": {},
        "resources": {"gpus": 1, "cpus": 2, "mem_gb": 8, "time": "01:00:00"},
    }  # fmt: skip
    exp = Experiment.from_dict(old)
    assert exp.precision == "auto" and exp.resources.trials_per_gpu == 1


# --- where workers go: local and Slurm -------------------------------------------------------


def test_local_workers_over_g_gpus_put_at_most_ceil_w_over_g_on_one_and_say_how_many(
    monkeypatch,
) -> None:
    monkeypatch.setattr(local.os, "cpu_count", lambda: 10)
    envs = [local.worker_env(i, 5, "journal:/j", ["0", "1"]) for i in range(5)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0", "1", "0"]
    assert [e["WCD_HPC_WORKERS_PER_GPU"] for e in envs] == ["3", "2", "3", "2", "3"]
    assert {e["WCD_HPC_THREADS"] for e in envs} == {"2"}


def test_the_local_launcher_hands_out_the_gpus_cuda_visible_devices_names() -> None:
    assert local.visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert local.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []  # hidden on purpose
    env = local.worker_env(1, 2, "journal:/j", local.visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}))
    assert env["CUDA_VISIBLE_DEVICES"] == "3"  # the physical GPU, not index 1 of torch's list


@pytest.mark.parametrize(
    ("env", "gpus"),
    [
        ({"CUDA_VISIBLE_DEVICES": "1,3", "SLURM_JOB_GPUS": "1,3"}, ["1", "3"]),
        ({"SLURM_JOB_GPUS": "4,5"}, ["4", "5"]),
        ({"CUDA_VISIBLE_DEVICES": "NoDevFiles", "SLURM_STEP_GPUS": "2"}, ["2"]),
        ({"SLURM_STEP_GPUS": "6", "SLURM_JOB_GPUS": "6,7"}, ["6"]),
    ],
    ids=["cuda-visible-devices", "job-gpus", "no-dev-files", "step-before-job"],
)
def test_an_array_task_finds_its_gpus_in_what_slurm_sets(
    env: dict[str, str], gpus: list[str]
) -> None:
    assert local.visible_gpus(env) == gpus


def test_an_array_task_runs_k_workers_per_gpu_pinned_and_sharing_its_cores(monkeypatch) -> None:
    slurm = {
        "CUDA_VISIBLE_DEVICES": "1,3",
        "WCD_HPC_THREADS": "12",  # what worker.sbatch exports: --cpus-per-task
        "OMP_NUM_THREADS": "12",
    }
    for var, value in slurm.items():
        monkeypatch.setenv(var, value)
    pool = local.task_pool(3, "slurm-12_3", dict(os.environ))
    assert pool.size == 6 and pool.gpus == ("1", "3") and pool.cores == 12
    assert [pool.label(i) for i in (0, 5)] == ["slurm-12_3/0", "slurm-12_3/5"]
    assert pool.log_name(1) == "slurm-12_3.1.log"
    envs = [
        local.worker_env(i, pool.size, "journal:/j", pool.gpus, cores=pool.cores, extra=pool.env)
        for i in range(pool.size)
    ]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["1", "3", "1", "3", "1", "3"]
    assert {e["WCD_HPC_WORKERS_PER_GPU"] for e in envs} == {"3"}
    assert {e["WCD_HPC_THREADS"] for e in envs} == {e["OMP_NUM_THREADS"] for e in envs} == {"2"}
    assert all(e[ENV_TASK_REQUEUES] for e in envs)  # the task requeues, not each worker


_CHILD = """
import json, os, signal, sys, time
from pathlib import Path
out, label = Path(sys.argv[1]), sys.argv[2].replace("/", "-")
got = []
for sig in (signal.SIGUSR2, signal.SIGTERM):
    signal.signal(sig, lambda s, f: got.append(s))
keys = ("CUDA_VISIBLE_DEVICES", "WCD_HPC_WORKERS_PER_GPU", "WCD_HPC_THREADS", "{requeues}")
(out / f"{{label}}.ready").write_text(json.dumps({{k: os.environ.get(k) for k in keys}}))
while not got:
    time.sleep(0.01)
(out / f"{{label}}.got").write_text(signal.Signals(got[0]).name)
sys.exit(75)
"""


def _fake_task(tmp_path: Path, monkeypatch, gpus: str) -> tuple[str, Path, list[str]]:  # type: ignore[no-untyped-def]
    """An array task whose workers are _CHILD processes: (storage URL, where they report, the
    requeues the task asked for)."""
    (tmp_path / "shared").mkdir()
    url = f"journal:{tmp_path / 'shared' / 'journal.log'}"
    optuna.create_study(study_name="shared", storage=open_storage(url))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", gpus)
    seen = tmp_path / "seen"
    seen.mkdir()
    child = _CHILD.format(requeues=ENV_TASK_REQUEUES)

    def spawn(index: int, pool: local.Pool, study: str, url: str, logs: Path) -> local.Worker:
        env = local.worker_env(index, pool.size, url, pool.gpus, cores=pool.cores, extra=pool.env)
        logs.mkdir(parents=True, exist_ok=True)
        out = (logs / pool.log_name(index)).open("ab")
        cmd = [sys.executable, "-c", child, str(seen), pool.label(index)]
        return local.Worker(index, subprocess.Popen(cmd, env=env, stdout=out, stderr=out), out)

    requeues: list[str] = []
    monkeypatch.setattr(local, "_spawn", spawn)
    monkeypatch.setattr(local, "requeue_own_task", lambda: requeues.append("once") or True)
    return url, seen, requeues


def test_sigusr2_to_an_array_task_reaches_each_of_its_workers_and_requeues_the_task_once(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("WCD_HPC_THREADS", "3")
    url, seen, requeues = _fake_task(tmp_path, monkeypatch, "0")

    def preempt() -> None:  # as Slurm does grace_s before the end, once all are up
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = len(list(seen.glob("*.ready"))) == 3
            if ready and signal.getsignal(signal.SIGUSR2) not in (signal.SIG_DFL, None):
                os.kill(os.getpid(), signal.SIGUSR2)
                return
            time.sleep(0.05)

    threading.Thread(target=preempt, daemon=True).start()
    code = local.run_task_workers("shared", url, per_gpu=3, label="slurm-12_3")
    assert code == 75  # suspended: submitit and sacct see the task stopped, not finished
    assert requeues == ["once"]
    labels = [f"slurm-12_3-{i}" for i in range(3)]
    assert [(seen / f"{x}.got").read_text() for x in labels] == ["SIGUSR2"] * 3
    envs = [json.loads((seen / f"{x}.ready").read_text()) for x in labels]
    assert all(
        e["CUDA_VISIBLE_DEVICES"] == "0" and e["WCD_HPC_WORKERS_PER_GPU"] == "3" for e in envs
    )
    assert all(e["WCD_HPC_THREADS"] == "1" and e[ENV_TASK_REQUEUES] for e in envs)
    assert (tmp_path / "shared" / "logs" / "slurm-12_3.2.log").exists()
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL  # put back


def test_sigterm_to_an_array_task_suspends_its_workers_without_a_requeue(
    tmp_path: Path, monkeypatch
) -> None:
    url, seen, requeues = _fake_task(tmp_path, monkeypatch, "0,1")

    def cancel() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(list(seen.glob("*.ready"))) == 2 and callable(signal.getsignal(signal.SIGTERM)):
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.05)

    threading.Thread(target=cancel, daemon=True).start()
    assert local.run_task_workers("shared", url, per_gpu=1, label="slurm-7_0") == 75
    assert requeues == []
    gpus = [json.loads((seen / f"slurm-7_0-{i}.ready").read_text()) for i in range(2)]
    assert [g["CUDA_VISIBLE_DEVICES"] for g in gpus] == ["0", "1"]


# --- precision ---------------------------------------------------------------------------------


def test_auto_precision_is_fp32_on_the_cpu_without_autocast_or_scaler() -> None:
    cpu = torch.device("cpu")
    assert dev.choose_precision("auto", cpu) == "fp32"
    assert dev.autocast_dtype("fp32") is None and dev.grad_scaler("fp32", cpu) is None


@pytest.mark.parametrize(("bf16", "chosen"), [(True, "bf16"), (False, "fp16")])
def test_auto_precision_on_a_gpu_is_bf16_where_it_has_bf16_units_else_fp16(
    monkeypatch, bf16: bool, chosen: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    assert dev.choose_precision("auto", torch.device("cuda")) == chosen


@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled")
def test_only_fp16_scales_its_loss() -> None:
    cuda = torch.device("cuda")
    assert isinstance(dev.grad_scaler("fp16", cuda), torch.amp.GradScaler)
    assert dev.grad_scaler("bf16", cuda) is None
    assert dev.autocast_dtype("bf16") == torch.bfloat16
    assert dev.autocast_dtype("fp16") == torch.float16


def test_an_explicit_precision_is_kept_whatever_the_device(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert dev.choose_precision("fp32", torch.device("cuda")) == "fp32"
    assert dev.choose_precision("fp16", torch.device("cuda")) == "fp16"
    assert dev.choose_precision("bf16", torch.device("cpu")) == "bf16"


class _Probe(torch.nn.Module):
    """A linear classifier that remembers the dtype its forward pass computed in."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)
        self.dtypes: set[torch.dtype] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)
        self.dtypes.add(out.dtype)
        return out


def _split(n: int = 64) -> Split:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (n,), generator=g)
    return Split(torch.randn(n, 4, generator=g) + y[:, None], y, {})


@pytest.mark.parametrize(
    ("precision", "dtype"),
    [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)],
)
def test_training_runs_its_forward_pass_in_the_chosen_precision(precision, dtype) -> None:
    model = _Probe()
    hp = {"batch_size": 16, "lr": 1e-2}
    fit(model, _split(), hp, epochs=1, seed=0, device=torch.device("cpu"), precision=precision)
    assert model.dtypes == {dtype}
    assert all(torch.isfinite(p).all() for p in model.parameters())


# --- data on the device ------------------------------------------------------------------------


GIB = 2**30


def test_auto_puts_the_data_on_the_gpu_when_it_takes_at_most_one_2k_th_of_free_memory() -> None:
    free = 8 * GIB
    assert dev.data_fits("auto", 4 * GIB, free, sharing=1)
    assert not dev.data_fits("auto", 4 * GIB + 1, free, sharing=1)
    assert dev.data_fits("auto", 1 * GIB, free, sharing=4)  # 4 workers: 1/8 of free each
    assert not dev.data_fits("auto", 1 * GIB + 1, free, sharing=4)
    assert dev.data_fits(True, 8 * GIB, free, sharing=4)  # true: whenever it fits at all
    assert not dev.data_fits(True, 8 * GIB + 1, free, sharing=4)
    assert not dev.data_fits(False, 1, free, sharing=1)


def _splits(n: int = 100) -> Splits:
    return Splits(_split(n), _split(20), _split(20), DataSpec((4,), 2, ("a", "b")))


def test_the_data_go_to_the_gpu_once_where_free_memory_allows(monkeypatch) -> None:
    splits = _splits()
    nbytes = dev.data_bytes(splits)
    assert nbytes == sum(s.x.nbytes + s.y.nbytes for s in (splits.train, splits.val, splits.test))
    moved: list[torch.device] = []

    def on(device: torch.device, split: Split) -> Split:  # stands in for the copy to the GPU
        moved.append(device)
        return split

    monkeypatch.setattr(dev, "_on", on)
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (2 * nbytes * 3, 80 * GIB))
    assert dev.place_data(splits, cuda, "auto", sharing=3)[1] is True
    assert moved == [cuda] * 3  # train, val, test
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (2 * nbytes * 3 - 1, 80 * GIB))
    assert dev.place_data(splits, cuda, "auto", sharing=3) == (splits, False)
    assert dev.place_data(splits, cuda, False, sharing=1) == (splits, False)


def test_on_the_cpu_and_for_lazily_read_files_the_data_stay_where_they_are(monkeypatch) -> None:
    splits = _splits()
    assert dev.place_data(splits, torch.device("cpu"), True, sharing=1) == (splits, False)

    class Lazy:
        block, shape = 8, (100, 4)

        def __len__(self) -> int:
            return 100

        def __getitem__(self, key: slice) -> torch.Tensor:
            return torch.zeros(len(range(100)[key]), 4)

    lazy = Splits(Split(Lazy(), splits.train.y), splits.val, splits.test, splits.spec)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (80 * GIB, 80 * GIB))
    assert dev.data_bytes(lazy) is None
    assert dev.place_data(lazy, torch.device("cuda"), True, sharing=1) == (lazy, False)


def test_a_workers_gpu_share_is_its_gpus_over_the_workers_sharing_them() -> None:
    assert dev.gpu_share({"CUDA_VISIBLE_DEVICES": "2", "WCD_HPC_WORKERS_PER_GPU": "3"}) == 1 / 3
    assert dev.gpu_share({"CUDA_VISIBLE_DEVICES": "0,1"}) == 2.0
    assert dev.gpu_share({"CUDA_VISIBLE_DEVICES": ""}) == 0.0


# --- what a trial records ----------------------------------------------------------------------


def test_each_trial_records_its_precision_compile_data_placement_and_gpu_hours(
    mlp_context,
) -> None:
    where = dev.Placement(precision="bf16", compiled=False, data_on_gpu=True, gpu_share=1 / 3)
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    began = time.time()
    run_trial(mlp_context(placement=where), trial)
    trained = time.time() - began
    attrs = study.trials[0].user_attrs
    assert attrs["precision"] == "bf16" and attrs["compiled"] is False
    assert attrs["data_on_gpu"] is True and attrs["gpu_share"] == pytest.approx(1 / 3, rel=1e-5)
    assert 0 < attrs["trial_gpu_hours"] <= trained / 3 / 3600 + 1e-6


def test_a_trial_without_a_gpu_is_charged_no_gpu_hours(mlp_context) -> None:
    study = optuna.create_study(direction="maximize")
    run_trial(mlp_context(placement=dev.Placement()), study.ask())
    attrs = study.trials[0].user_attrs
    assert attrs["precision"] == "fp32" and attrs["gpu_share"] == 0
    assert "trial_gpu_hours" not in attrs


def test_a_compile_failure_fails_the_trial_with_its_cause_and_the_key_to_change(
    mlp_context, monkeypatch
) -> None:
    from torch._dynamo.exc import TorchDynamoException

    class Uncompilable(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise TorchDynamoException("no C compiler found")

    monkeypatch.setattr("wcd_hpc.engine.trial.compiled", lambda model: Uncompilable())
    ctx = mlp_context(placement=dev.Placement(compiled=True))
    study = optuna.create_study(direction="maximize")
    with pytest.raises(RuntimeError) as info:
        run_trial(ctx, study.ask())
    assert str(info.value) == (
        "compile: torch.compile failed (TorchDynamoException: no C compiler found); "
        "set compile: false"
    )


def test_compile_where_torch_compile_cannot_work_is_refused_when_the_worker_starts(
    tmp_path: Path, monkeypatch
) -> None:
    import torch._dynamo.eval_frame as frames

    path = tmp_path / "q.yaml"
    path.write_text(MINIMAL + "compile: true\n")
    exp = load_experiment(path)
    monkeypatch.setattr(frames, "is_dynamo_supported", lambda: False)
    with pytest.raises(dev.CompileError) as info:
        dev.check_compile(exp)
    assert str(info.value).endswith(
        ":5: compile: torch.compile is not supported with this Python or platform; "
        "set compile: false"
    )


# --- accounting: a trial's share of its GPU ------------------------------------------------


ONE_GPU_HOUR = (
    "12_3|COMPLETED|2026-12-01T10:00:00|2026-12-01T10:00:00|2026-12-01T11:00:00|3600|"
    "cpu=4,gres/gpu=1|vm|0:0\n"
)


def test_the_idle_fraction_charges_each_trial_its_share_of_the_gpu() -> None:
    records = parse_sacct(ONE_GPU_HOUR)
    # Three workers on the task's one GPU, each training for 50 of its 60 minutes.
    shares = 3 * (3000 / 3600) / 3
    summary = summarize_allocation(records, training_s=3 * 3000, trained_gpu_h=shares)
    assert summary["idle_fraction"] == round(1 - 50 / 60, 4)
    # Training time against task time would have called 150 minutes of training in a
    # 60-minute task "never idle".
    assert summarize_allocation(records, training_s=3 * 3000)["idle_fraction"] == 0.0


def test_status_shows_each_trial_with_its_worker_gpu_and_gpu_hours(
    tmp_path: Path, monkeypatch
) -> None:
    from wcd_hpc.queue import accounting

    study = optuna.create_study(direction="maximize")
    for slot in range(3):
        trial = study.ask()
        attrs = {
            "worker": f"slurm-12_3/{slot}", "slurm_array_job_id": "12",
            "slurm_array_task_id": "3", "gpu": "1", "gpu_share": 1 / 3,
            "trial_gpu_hours": 0.25, "train_started": 0.0, "train_finished": 2700.0,
        }  # fmt: skip
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, 0.9)
    monkeypatch.setattr(accounting, "sacct", lambda jobs: parse_sacct(ONE_GPU_HOUR))
    info = summarize(study, tmp_path)
    rows = info["trials"]
    assert [r["worker"] for r in rows] == [f"slurm-12_3/{i}" for i in range(3)]
    assert {(r["slurm_array_task_id"], r["gpu"], r["gpu_hours"]) for r in rows} == {
        ("3", "1", 0.25)
    }
    assert info["slurm"]["idle_fraction"] == 0.25  # 0.75 of the one GPU-hour trained


def test_an_array_task_for_a_missing_study_exits_2_like_a_worker(cli, tmp_path: Path) -> None:
    (tmp_path / "runs" / "there").mkdir(parents=True)
    url = f"journal:{tmp_path / 'runs' / 'there' / 'journal.log'}"
    optuna.create_study(study_name="there", storage=open_storage(url))
    res = cli("task-workers", "--study", "nope", "--per-gpu", "2", "--storage", url)
    assert res.code == 2  # not 1, which Slurm's requeue or a launcher would take for a crash
    assert res.err.strip().splitlines()[-1].startswith("error: no study 'nope'")


def test_a_dry_run_shows_the_workers_of_each_task_and_their_command(
    cli, testplugins, toy_experiment
) -> None:
    exp = toy_experiment(name="dry3", workers=2, extra="resources: {gpus: 1, trials_per_gpu: 3}\n")
    res = cli(
        "sweep", str(exp), "--set", "executor=slurm", "--dry-run", plugins=testplugins, env=TOY
    )
    assert res.code == 0, res.err
    assert "one array of 2 tasks, 2 at a time, each running 3 workers (3 per GPU)" in res.out
    assert "task-workers --study dry3 --per-gpu 3" in res.out


def test_trials_per_gpu_without_gpus_is_a_warning_not_a_silent_no_op(
    cli, testplugins, toy_experiment
) -> None:
    exp = toy_experiment(name="nogpu", extra="resources: {gpus: 0, trials_per_gpu: 3}\n")
    res = cli(
        "sweep", str(exp), "--set", "executor=slurm", "--dry-run", plugins=testplugins, env=TOY
    )
    assert res.code == 0, res.err
    assert "resources.trials_per_gpu (3) has no effect without resources.gpus" in res.err
    assert "worker --study nogpu" in res.out


def test_a_trial_that_records_no_gpu_share_is_not_charged_a_whole_gpu(
    tmp_path: Path, monkeypatch
) -> None:
    from wcd_hpc.queue import accounting

    study = optuna.create_study(direction="maximize")
    recorded = {  # a GPU trial with its hours, a CPU trial (share 0, no hours) of 45 minutes
        "gpu": {"gpu_share": 1 / 3, "trial_gpu_hours": 0.25},
        "cpu": {"gpu_share": 0.0},
    }
    for attrs in recorded.values():
        trial = study.ask()
        times = {"slurm_array_job_id": "12", "train_started": 0.0, "train_finished": 2700.0}
        for key, value in {**attrs, **times}.items():
            trial.set_user_attr(key, value)
        study.tell(trial, 0.9)
    monkeypatch.setattr(accounting, "sacct", lambda jobs: parse_sacct(ONE_GPU_HOUR))
    info = summarize(study, tmp_path)
    assert info["slurm"]["idle_fraction"] == 0.75  # only the GPU trial's quarter trained on it
