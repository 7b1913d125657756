"""Start-up cost: a login-node command, and a worker's imports, registry and optimizer warm-up.

Run: ``.venv/bin/python benchmarks/startup.py [--workers 4] [--rounds 5]``.

First, ``wcd-hpc plugins --json`` (what every login-node command pays before its own work: the
CLI, the plugin registry; no torch) is timed alone, ``--rounds`` times. Then each round starts
``--workers`` fresh interpreters at once (as a Slurm array does on one node) that each do what a
worker does before its first claim, once with the garbage-collector pause of
:mod:`wcd_hpc.engine.startup` and once without, in alternating order so that a machine that slows
down meanwhile affects both alike. It prints medians: wall time until the last interpreter is done,
and CPU seconds per interpreter.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

START_UP = """
from wcd_hpc.engine.startup import paused_gc, warm_up_optimizers
with paused_gc() if {paused} else __import__("contextlib").nullcontext():
    import wcd_hpc.cli
    from wcd_hpc.plugins import get_registry
    get_registry()
    import wcd_hpc.engine.worker
    warm_up_optimizers()
"""


def one_round(workers: int, paused: bool) -> tuple[float, float]:
    """Wall seconds until all ``workers`` are done; mean CPU seconds of one of them."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    code = START_UP.format(paused=paused)
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(workers)]
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"start-up failed with status {proc.returncode}")
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu / workers


def command_seconds(rounds: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``wcd-hpc plugins --json``, run alone."""
    walls, cpus = [], []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "wcd_hpc", "plugins", "--json"], check=True, capture_output=True
        )
        walls.append(time.perf_counter() - began)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    command_seconds(1)  # bytecode caches and page cache warm
    wall, cpu = command_seconds(args.rounds)
    print(f"`wcd-hpc plugins --json` alone, {args.rounds} runs, medians")
    print(f"  {wall:.2f} s wall, {cpu:.2f} CPU s")
    one_round(1, True)  # bytecode caches and page cache warm for both variants
    results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for i in range(args.rounds):
        for paused in (True, False) if i % 2 == 0 else (False, True):
            results[paused].append(one_round(args.workers, paused))
    print(f"{args.workers} workers starting at once, {args.rounds} rounds, medians")
    for paused, label in ((False, "GC running"), (True, "GC paused ")):
        wall = statistics.median(r[0] for r in results[paused])
        cpu = statistics.median(r[1] for r in results[paused])
        print(f"  {label}: {wall:.2f} s until all are ready, {cpu:.2f} CPU s per worker")


if __name__ == "__main__":
    main()
