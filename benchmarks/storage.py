"""Storage throughput: claims (claim lock + ask + tell of a trivial trial) per second, p95 latency.

Each worker is a process (forked, so Optuna is imported once) that opens its own storage and does
``--trials`` claims exactly as a wcd-hpc worker does (``claim_lock`` around count + ask, then
tell), with no training in between: the worst case for the storage, since real trials take minutes.

    .venv/bin/python benchmarks/storage.py                       # journal, sqlite, PostgreSQL
    .venv/bin/python benchmarks/storage.py --workers 1 8 --trials 20 --pg ''   # no PostgreSQL
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import optuna
from optuna.trial import TrialState

from wcd_hpc.errors import one_line
from wcd_hpc.store.storage import claim_lock, open_storage
from wcd_hpc.store.urls import kind, mask

# No password here: libpq takes it from $PGPASSWORD or ~/.pgpass (the dev server trusts loopback).
PG = os.environ.get("WCD_HPC_TEST_PG", "postgresql://wcd@127.0.0.1:5432/wcd_hpc_test")


def _worker(url: str, name: str, trials: int, start: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """Claims as a worker makes them; a worker that fails reports its error instead of hanging
    the run (``measure`` waits for one report per worker)."""
    try:
        out.put(("ok", _claims(url, name, trials, start)))
    except Exception as exc:  # the figure is the error: e.g. the server's connection limit
        out.put(("error", one_line(exc)))


def _claims(url: str, name: str, trials: int, start: float) -> list[float]:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(
        study_name=name, storage=open_storage(url), sampler=optuna.samplers.RandomSampler()
    )
    while time.time() < start:
        time.sleep(0.001)
    latencies = []
    for _ in range(trials):
        began = time.perf_counter()
        with claim_lock(url, study._storage, name):
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            assert running is not None
            trial = study.ask()
        study.tell(trial, trial.suggest_float("x", 0.0, 1.0))
        latencies.append(time.perf_counter() - began)
    return latencies


def measure(url: str, workers: int, trials: int) -> tuple[float, float, float, list[str]]:
    """(claims per second, median latency, p95 latency, the failed workers' errors) for
    ``workers`` processes."""
    name = f"bench-{uuid.uuid4().hex[:10]}"
    optuna.create_study(study_name=name, storage=open_storage(url))
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    start = time.time() + 1.0 + 0.05 * workers  # every process is ready before the clock starts
    procs = [
        ctx.Process(target=_worker, args=(url, name, trials, start, out)) for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
    reports = [out.get() for _ in procs]
    elapsed = time.time() - start
    for proc in procs:
        proc.join()
    latencies = sorted(x for status, got in reports if status == "ok" for x in got)
    errors = [got for status, got in reports if status == "error"]
    if not latencies:
        return 0.0, float("nan"), float("nan"), errors
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    return len(latencies) / elapsed, statistics.median(latencies), p95, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--trials", type=int, default=5, help="claims per worker")
    parser.add_argument("--pg", default=PG, help="PostgreSQL URL ('' to skip)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        urls = [f"journal:{Path(tmp) / 'journal.log'}", f"sqlite:///{Path(tmp) / 'db.sqlite'}"]
        urls += [args.pg] if args.pg else []
        print(f"{args.trials} claims per worker, {os.cpu_count()} CPUs")
        print(
            f"{'storage':<12}{'workers':>8}{'claims/s':>10}{'median ms':>11}{'p95 ms':>9}"
            f"{'failed':>8}"
        )
        for url in urls:
            for workers in args.workers:
                rate, median, p95, errors = measure(url, workers, args.trials)
                ms = f"{median * 1e3:>11.0f}{p95 * 1e3:>9.0f}{len(errors):>8}"
                print(f"{kind(url):<12}{workers:>8}{rate:>10.1f}{ms}", flush=True)
                if errors:
                    print(f"  first error of {len(errors)}: {errors[0]}", flush=True)
        if args.pg:
            print(f"PostgreSQL: {mask(args.pg)}")


if __name__ == "__main__":
    main()
