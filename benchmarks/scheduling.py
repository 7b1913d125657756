"""Scheduling efficiency on the dev cluster: 16 trials of fixed length on 4 GPU slots.

Run (as root, after ``bash slurm/dev-cluster/up``):
``.venv/bin/python benchmarks/scheduling.py [--repeat N] [--timeline]``.

The trials' training lasts, in the order they start, 4, 16, 8, 32, 4, 4, 12, 24, 8, 8, 20, 4, 28,
4, 8, 12 seconds (196 s in all). It prints the wall time from invoking ``wcd-hpc sweep --wait``
to the end of the last trial's training, and two references: the makespan of a zero-overhead
pool of 4 workers taking trials in that order (the limit of this design) and the perfect-packing
bound (total / 4, or the longest trial). The sleeping "sleep" model and "one-sample" dataset come
from the test plugin package, installed into a temporary directory.
"""

from __future__ import annotations

import argparse
import heapq
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
DURATIONS = [4, 16, 8, 32, 4, 4, 12, 24, 8, 8, 20, 4, 28, 4, 8, 12]
SLOTS = 4
EXPERIMENT = """\
name: {name}
dataset: one-sample
model: sleep
metric: accuracy
trials: {trials}
epochs: 1
pruner: none
sampler: random
executor: slurm
workers: {slots}
runs_dir: {runs}
"""


def pool_makespan(durations: list[int], slots: int) -> int:
    """Each trial goes to the first free worker, in order, with no overhead at all."""
    free = [0] * slots
    for d in durations:
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


def print_timeline(trials: list[optuna.trial.FrozenTrial], began: float) -> None:
    """Per trial, seconds after ``sweep`` was invoked: claimed, training started and ended."""
    print("trial  seconds  worker            claimed  started  ended")
    for t in sorted(trials, key=lambda t: t.user_attrs["claimed"]):
        a = t.user_attrs
        print(
            f"{t.number:5d}  {t.params['seconds']:7d}  {str(a.get('worker', '?'))[:16]:16s}"
            f"  {a['claimed'] - began:7.2f}  {a['train_started'] - began:7.2f}"
            f"  {a['train_finished'] - began:5.2f}"
        )


def install_test_plugins(tmp: Path) -> None:
    """The "sleep" model and "one-sample" dataset, visible to this process and its children."""
    site = tmp / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(site),
            str(ROOT / "tests/fixtures/testplugins"),
        ],
        check=True,
    )
    os.environ.update(PYTHONPATH=str(site), WCD_HPC_PLUGINS="toy")
    sys.path.insert(0, str(site))


def run_once(tmp: Path, timeline: bool) -> tuple[float, float]:
    """One sweep; returns the wall time and the time until the first trial trained."""
    from wcd_hpc.launch.sweep import plan, start
    from wcd_hpc.plugins import load_registry

    name = f"sched-{time.time_ns()}"
    exp = tmp / f"{name}.yaml"
    exp.write_text(
        EXPERIMENT.format(name=name, trials=len(DURATIONS), slots=SLOTS, runs=tmp / "runs")
    )
    study, _ = start(plan(exp, load_registry()))
    for seconds in DURATIONS:  # WAITING trials are handed out in this order
        study.enqueue_trial({"seconds": seconds})
    began = time.time()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "wcd_hpc",
            "sweep",
            str(exp),
            "--profile",
            str(ROOT / "slurm/profiles/dev.toml"),
            "--wait",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    trials = optuna.load_study(study_name=name, storage=study._storage).get_trials()
    if timeline:
        print_timeline(trials, began)
    order = [t.params["seconds"] for t in sorted(trials, key=lambda t: t.number)]
    assert order == DURATIONS, order
    wall = max(t.user_attrs["train_finished"] for t in trials) - began
    first_start = min(t.user_attrs["train_started"] for t in trials) - began
    return wall, first_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="sweeps to run, one after another")
    parser.add_argument("--timeline", action="store_true", help="print each trial's timings")
    args = parser.parse_args()
    pool = pool_makespan(DURATIONS, SLOTS)
    packing = max(sum(DURATIONS) / SLOTS, max(DURATIONS))
    print(f"16 trials, {sum(DURATIONS)} s of training, {SLOTS} GPU slots (dev cluster)")
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        install_test_plugins(Path(tmp))
        for _ in range(args.repeat):
            wall, first_start = run_once(Path(tmp), args.timeline)
            walls.append(wall)
            print(f"  wall time, sweep command to end of last trial: {wall:.1f} s")
            print(f"  of which until the first trial started training: {first_start:.1f} s")
    if args.repeat > 1:
        print(
            f"  median wall time of {args.repeat}: {statistics.median(walls):.1f} s"
            f" (range {min(walls):.1f}-{max(walls):.1f} s)"
        )
    print(f"  zero-overhead worker pool in this order (limit of the design): {pool} s")
    print(f"  perfect packing bound: {packing:.0f} s")
    print(f"  overhead over the zero-overhead pool: {statistics.median(walls) - pool:.1f} s")


if __name__ == "__main__":
    main()
