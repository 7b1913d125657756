"""The local launcher's environment for each worker: one GPU each, or a share of the CPUs."""

from __future__ import annotations

from wcd_hpc.launch import local


def test_cpu_workers_split_the_cores_and_see_no_gpu(monkeypatch) -> None:
    monkeypatch.setattr(local.os, "cpu_count", lambda: 8)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    env = local.worker_env(1, 4, "postgresql://u:pw@h/d", gpus=0)
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["WCD_HPC_THREADS"] == "2"
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
    assert env["WCD_HPC_STORAGE"] == "postgresql://u:pw@h/d"


def test_gpu_workers_get_one_device_each_round_robin(monkeypatch) -> None:
    monkeypatch.setattr(local.os, "cpu_count", lambda: 16)
    envs = [local.worker_env(i, 3, "journal:/j", gpus=2) for i in range(3)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0"]


def test_more_workers_than_cores_still_get_one_thread(monkeypatch) -> None:
    monkeypatch.setattr(local.os, "cpu_count", lambda: 2)
    assert local.worker_env(0, 4, "journal:/j", gpus=0)["WCD_HPC_THREADS"] == "1"


def test_only_crashes_are_restarted() -> None:
    assert local._crashed(-9) and local._crashed(1) and local._crashed(75)
    assert not any(local._crashed(c) for c in (0, 2, 3))
