"""Orchestration overhead per trial, and the training loop's speed against a plain PyTorch loop.

Run: ``.venv/bin/python benchmarks/overhead.py`` (about 3 minutes on 2 CPU cores).

1. Per-trial overhead: real local sweeps (``wcd-hpc sweep``, journal storage) with 1, 2 and 4
   workers. For each worker, the gap from the end of one trial's training to the start of its next
   trial's training (tell, claim, ask, sampling, test evaluation, saving weights, building the
   model), from the ``train_started`` / ``train_finished`` stamps every trial records.
2. Training throughput: ``wcd_hpc.engine.fit.fit`` against a hand-written loop over the same
   LeNet, data, batch size and optimizer (samples/s; goal: ratio >= 0.95).
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch

EXPERIMENT = """\
name: overhead-{workers}
dataset: {{name: footprint-sim, params: {{primaries: [gamma, proton], events: 400, grid: 40}}}}
model: lenet
metric: f1
trials: {trials}
epochs: 1
pruner: none
sampler: tpe
param_space: {{batch_size: 64, optimizer: adam, lr: 1e-3, channels: [4, 8]}}
workers: {workers}
executor: local
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def gaps(journal: Path, name: str) -> list[float]:
    from wcd_hpc.store.storage import open_storage

    study = optuna.load_study(study_name=name, storage=open_storage(f"journal:{journal}"))
    by_worker: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for t in study.get_trials():
        by_worker.setdefault(t.user_attrs["worker"], []).append(t)
    out = []
    for trials in by_worker.values():
        trials.sort(key=lambda t: t.user_attrs["train_started"])
        for prev, nxt in itertools.pairwise(trials):
            out.append(nxt.user_attrs["train_started"] - prev.user_attrs["train_finished"])
    return out


def overhead(workers: int, trials_per_worker: int = 16) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory() as tmp:
        exp = Path(tmp) / "exp.yaml"
        exp.write_text(EXPERIMENT.format(workers=workers, trials=workers * trials_per_worker))
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "wcd_hpc", "sweep", str(exp)],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        wall = time.perf_counter() - began
        return gaps(Path(tmp) / f"runs/overhead-{workers}/journal.log", f"overhead-{workers}"), wall


def throughput(repeats: int = 5) -> tuple[float, float]:
    from wcd_hpc.engine.fit import fit
    from wcd_hpc.plugins import load_registry

    reg = load_registry(external=False)
    dataset = reg.datasets["footprint-sim"].obj
    with tempfile.TemporaryDirectory() as cache:
        params = {**dataset.defaults, "events": 2000}
        splits = dataset.load(params, 0, cache)
    lenet = reg.models["lenet"].obj
    hp = {"channels": [6, 16], "lr": 1e-3, "batch_size": 64, "optimizer": "adam", "reg": 0.0}
    device = torch.device("cpu")
    train = splits.train

    def ours() -> float:
        torch.manual_seed(0)
        model = lenet.build(hp, splits.spec)
        began = time.perf_counter()
        fit(model, train, hp, epochs=2, seed=0, device=device)
        return 2 * len(train) / (time.perf_counter() - began)

    def plain() -> float:
        torch.manual_seed(0)
        model = lenet.build(hp, splits.spec)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        began = time.perf_counter()
        for _ in range(2):
            model.train()
            perm = torch.randperm(len(train))
            for i in range(0, len(train), 64):
                idx = perm[i : i + 64]
                opt.zero_grad()
                loss = loss_fn(model(train.x[idx]), train.y[idx])
                loss.backward()
                opt.step()
        return 2 * len(train) / (time.perf_counter() - began)

    ours(), plain()  # warm-up
    a, b = [], []
    for _ in range(repeats):
        a.append(ours())
        b.append(plain())
    return statistics.median(a), statistics.median(b)


def main() -> None:
    print(
        f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print("per-trial orchestration overhead (end of one trial's training -> start of the next's)")
    for workers in (1, 2, 4):
        values, wall = overhead(workers)
        print(
            f"  {workers} worker(s): median {statistics.median(values) * 1000:.0f} ms, "
            f"p95 {percentile(values, 0.95) * 1000:.0f} ms over {len(values)} gaps "
            f"(sweep wall time {wall:.1f} s)"
        )
    ours, plain = throughput()
    print("training loop, LeNet on 2,000 simulated 80x80 footprints (batch 64, adam, CPU)")
    print(
        f"  wcd-hpc fit: {ours:.0f} samples/s; plain loop: {plain:.0f} samples/s; "
        f"ratio {ours / plain:.3f}"
    )


if __name__ == "__main__":
    main()
