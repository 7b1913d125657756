"""Scale: W sleeping workers on one study, and the commands people run on a 10,000-trial study.

Part 1 (workers). W worker processes run the real worker loop (``run_worker``: reaper pass,
claim under the claim lock, heartbeat thread, trial, tell) on one study whose model, the test
plugins' ``sleep``, trains by sleeping ``--seconds`` per trial: everything a worker does except
the training itself, so the storage is what is measured. The parent imports the worker module,
torch and the plugins once and forks the W workers, so copy-on-write keeps each small enough
for 256 of them to fit in 24 GiB (a worker started on its own imports torch: ~300 MB each).
Two things differ from a worker on its own node, both said in the output: the figures a trial
draws at its end (matplotlib, 1-3 CPU-s each, on real nodes a core of their own) are skipped,
since on 2 shared cores they would measure matplotlib; and torch's optimizer warm-up is done
once in the parent.

Per storage and W it prints, from the stamps the sweep itself stores on its trials
(:mod:`wcd_hpc.queue.schema`) and each worker's start and exit time:

- utilisation: the share of the workers' wall time (start to exit, summed) spent inside
  trials, from a trial's ``claimed`` stamp to its end (``datetime_complete``, set by tell);
  "after start-up" leaves each worker's start-up out (W processes starting at once on 2 cores
  measure the cores; on a cluster each worker starts on its own), "training" counts only the
  model's training (``train_started`` to ``train_finished``);
- claim latency per worker: the previous trial's end to the next ``claimed`` stamp (the
  reaper pass plus the claim, lock wait included); start-up: worker start to first claim;
- trials/s over the whole run (the ideal is W / T), errors (workers that failed, trials
  that did not finish COMPLETE, trial numbers claimed twice), memory per worker (PSS and USS
  from /proc/PID/smaps_rollup, sampled during the first trial).

Part 2 (``benchmarks/scale_study.py``): status, reaper, worker start-up and a second sync on a
synthesised 10,000-trial study.

    .venv/bin/python benchmarks/scale.py                      # both parts, ~30 minutes
    .venv/bin/python benchmarks/scale.py --quick              # smoke run, ~3 minutes
    .venv/bin/python benchmarks/scale.py --part workers --workers 64 128 --seconds 30

PostgreSQL has ``max_connections = 100`` on the dev server and a worker holds one to three
connections, so beyond ~32-64 direct workers some fail to connect: they are counted as errors,
never waited for. ``--storages ... grpc`` adds runs through the gRPC storage proxy, the way past
that limit: the benchmark starts ``wcd-hpc storage serve`` in front of ``--pg`` on a free loopback
port and stops it at the end (``--grpc grpc://HOST:PORT`` uses a proxy you started instead).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import multiprocessing as mp
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# No password here: libpq takes it from $PGPASSWORD or ~/.pgpass (the dev server trusts loopback).
PG = os.environ.get("WCD_HPC_TEST_PG", "postgresql://wcd@127.0.0.1:5432/wcd_hpc_test")
PIP_INSTALL = (sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target")
EXPERIMENT = """\
name: {name}
dataset: one-sample
model: sleep
metric: accuracy
trials: {trials}
epochs: 1
pruner: none
sampler: random
executor: local
workers: {workers}
storage: {storage}
runs_dir: {runs}
param_space: {{seconds: {seconds}}}
"""


def prepare_parent(site: Path) -> None:
    """Install the test plugins, set one thread per worker and import everything once.

    Done before any fork, so every worker shares the imported modules copy-on-write.
    """
    subprocess.run(
        [*PIP_INSTALL, str(site), str(ROOT / "tests/fixtures/testplugins")],
        check=True,
    )
    sys.path.insert(0, str(site))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "WCD_HPC_THREADS"):
        os.environ[var] = "1"
    os.environ["WCD_HPC_PLUGINS"] = "toy"
    os.environ.pop("WCD_HPC_STORAGE", None)
    import logging

    import optuna
    import torch

    import wcd_hpc.engine.worker  # noqa: F401  (imported here, shared by the forks)
    from wcd_hpc.engine import startup
    from wcd_hpc.engine import trial as trial_module
    from wcd_hpc.plugins import get_registry

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("wcd_hpc").setLevel(logging.ERROR)
    get_registry()
    startup.warm_up_optimizers()
    patched: Any = trial_module
    patched.write_plots = lambda *args, **kwargs: None  # see the module docstring


@contextlib.contextmanager
def proxy_in_front_of(pg: str) -> Any:
    """A ``wcd-hpc storage serve`` on a free loopback port in front of ``pg``; yields its URL.

    The database URL reaches it through the environment, never its command line.
    """
    import select

    env = {k: v for k, v in os.environ.items() if not k.startswith("WCD_HPC_")}
    env["WCD_HPC_STORAGE"] = pg
    proc = subprocess.Popen(
        [sys.executable, "-m", "wcd_hpc", "storage", "serve", "--host", "127.0.0.1", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    try:
        if "storage: grpc://" not in line:
            raise SystemExit(f"wcd-hpc storage serve did not start: {line!r}")
        print(line.strip(), flush=True)
        yield line.split("storage: ", 1)[1].strip()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def create_study(
    tmp: Path, storage: str, name: str, workers: int, budget: int, seconds: float
) -> Path:
    """Create the study as ``sweep`` does, in a child process: the parent must hold no
    database connection when it forks the workers."""
    exp = tmp / f"{name}.yaml"
    text = EXPERIMENT.format(
        name=name,
        trials=budget,
        workers=workers,
        storage=storage,
        runs=tmp / "runs",
        seconds=seconds,
    )
    exp.write_text(text)

    def make() -> None:
        from wcd_hpc.launch.sweep import plan, start
        from wcd_hpc.plugins import get_registry

        start(plan(exp, get_registry()))

    proc = mp.get_context("fork").Process(target=make)
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"creating study {name} failed")
    return exp


def _child(url: str, name: str, index: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """One worker: the real worker loop; a failure is reported, never left hanging."""
    began = time.time()
    try:
        from wcd_hpc.engine.worker import run_worker

        summary = run_worker(name, url, worker=f"bench-{index}")
        out.put((index, "", began, time.time(), summary.trials))
    except BaseException as exc:
        from wcd_hpc.errors import one_line

        out.put((index, one_line(exc) or type(exc).__name__, began, time.time(), []))


def memory_kib(pid: int) -> tuple[int, int] | None:
    """(PSS, USS) of a process in KiB from /proc/PID/smaps_rollup, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[key] = int(parts[0])
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return fields.get("Pss", 0), uss


@dataclass
class Run:
    """What one (storage, W) run measured."""

    storage: str
    workers: int
    budget: int
    seconds: float
    wall: float = 0.0
    finished: int = 0
    utilisation: float = float("nan")
    after_startup: float = float("nan")
    training_share: float = float("nan")
    claims: list[float] = field(default_factory=list)
    startups: list[float] = field(default_factory=list)
    drains: list[float] = field(default_factory=list)
    worker_errors: list[str] = field(default_factory=list)
    bad_trials: int = 0
    duplicates: int = 0
    pss: list[int] = field(default_factory=list)
    uss: list[int] = field(default_factory=list)


def _stamp(when: dt.datetime | None) -> float | None:
    return None if when is None else when.timestamp()  # Optuna's datetimes are local, naive


def _analyse(run: Run, reports: list[Any], url: str, name: str) -> None:
    """Fill ``run`` from the workers' reports and the trials the study recorded."""
    import optuna
    from optuna.trial import TrialState

    from wcd_hpc.store.storage import open_storage

    study = optuna.load_study(study_name=name, storage=open_storage(url))
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    run.finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials.values())
    run.bad_trials = sum(t.state != TrialState.COMPLETE for t in trials.values())
    claimed = [n for r in reports for n in r[4]]
    run.duplicates = len(claimed) - len(set(claimed))
    run.worker_errors = [r[1] for r in reports if r[1]]
    inside = trained = alive = 0.0
    for _, _, began, ended, numbers in reports:
        alive += ended - began
        own = [trials[n] for n in numbers if n in trials]
        own.sort(key=lambda t: t.user_attrs.get("claimed", 0.0))
        previous_end = None
        for t in own:
            claim_at = t.user_attrs.get("claimed")
            end = _stamp(t.datetime_complete)
            if claim_at is None or end is None:
                continue
            inside += end - claim_at
            a = t.user_attrs
            if "train_started" in a and "train_finished" in a:
                trained += a["train_finished"] - a["train_started"]
            if previous_end is None:
                run.startups.append(claim_at - began)
            else:
                run.claims.append(claim_at - previous_end)
            previous_end = end
        if previous_end is not None:
            run.drains.append(ended - previous_end)
    if alive > 0:
        run.utilisation = inside / alive
        run.after_startup = inside / (alive - sum(run.startups))
        run.training_share = trained / alive


def measure(tmp: Path, storage: str, workers: int, per_worker: int, seconds: float) -> Run:
    """One run of ``workers`` forked workers on a fresh study of ``workers * per_worker``;
    ``storage`` is ``journal`` (the default file in the run directory) or a database URL."""
    from wcd_hpc.store.urls import kind, resolve

    name = f"scale-{uuid.uuid4().hex[:8]}"
    budget = workers * per_worker
    create_study(tmp, storage, name, workers, budget, seconds)
    url = resolve(storage, tmp / "runs" / name)
    run = Run(kind(url), workers, budget, seconds)
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    started = time.time()
    procs = [ctx.Process(target=_child, args=(url, name, i, out)) for i in range(workers)]
    for proc in procs:
        proc.start()
    sample_at = time.time() + seconds / 2
    deadline = started + 2 * per_worker * seconds + 90 + workers // 4
    reports: list[Any] = []
    sampled = False
    while len(reports) < workers and time.time() < deadline:
        if not sampled and time.time() >= sample_at:
            for proc in procs:
                got = memory_kib(proc.pid or 0)
                if got is not None:
                    run.pss.append(got[0])
                    run.uss.append(got[1])
            sampled = True
        with contextlib.suppress(queue.Empty):
            reports.append(out.get(timeout=1.0))
    reported = {r[0] for r in reports}
    for i, proc in enumerate(procs):
        if i not in reported and proc.pid is not None and proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)  # hung past the deadline: counted, not waited for
            reports.append((i, "no report before the deadline (killed)", started, time.time(), []))
    for proc in procs:
        proc.join(timeout=10)
    run.wall = max(r[3] for r in reports) - started
    _analyse(run, reports, url, name)
    return run


def _q(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _s(value: float) -> str:
    if value != value:  # nan
        return "-"
    return f"{value * 1e3:.0f} ms" if value < 1 else f"{value:.1f} s"


def print_runs(runs: list[Run]) -> None:
    print(
        "\n| storage | W | budget | util. | after start-up | training | claim p50 | p95 | max"
        " | start-up p50 | max | drain p50 | trials/s (ideal) | failed workers | bad trials"
        " | dup. | PSS / USS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        mem = "-"
        if r.pss:
            mem = f"{statistics.median(r.pss) / 1024:.0f} / {statistics.median(r.uss) / 1024:.0f}"
        rate = r.finished / r.wall if r.wall else 0.0
        print(
            f"| {r.storage} | {r.workers} | {r.finished}/{r.budget} | {r.utilisation:.1%} "
            f"| {r.after_startup:.1%} "
            f"| {r.training_share:.1%} | {_s(_q(r.claims, 0.5))} | {_s(_q(r.claims, 0.95))} "
            f"| {_s(max(r.claims, default=float('nan')))} | {_s(_q(r.startups, 0.5))} "
            f"| {_s(max(r.startups, default=float('nan')))} | {_s(_q(r.drains, 0.5))} "
            f"| {rate:.2f} ({r.workers / r.seconds:.2f}) | {len(r.worker_errors)} "
            f"| {r.bad_trials} | {r.duplicates} | {mem} |",
            flush=True,
        )
    for r in runs:
        if r.worker_errors:
            first = r.worker_errors[0]
            print(f"  {r.storage} W={r.workers}: {len(r.worker_errors)} failed; first: {first}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("workers", "study", "both"), default="both")
    parser.add_argument("--workers", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--seconds", type=float, default=20.0, help="sleep per trial")
    parser.add_argument("--trials-per-worker", type=int, default=3)
    parser.add_argument(
        "--storages",
        nargs="+",
        choices=("journal", "postgresql", "grpc"),
        default=["journal", "postgresql"],
    )
    parser.add_argument("--pg", default=PG, help="PostgreSQL URL")
    parser.add_argument(
        "--grpc",
        default="",
        help="with storage grpc: use this running proxy (grpc://HOST:PORT of `wcd-hpc storage "
        "serve`) instead of starting one in front of --pg",
    )
    parser.add_argument("--study-trials", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="a smoke run of both parts")
    args = parser.parse_args()
    if args.quick:
        args.workers, args.seconds, args.trials_per_worker = [8, 16], 3.0, 2
        args.study_trials = 300
    load = os.getloadavg()
    print(
        f"{dt.datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPUs, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; command: {' '.join(sys.argv)}"
    )
    with tempfile.TemporaryDirectory(prefix="wcd-scale-") as name:
        tmp = Path(name)
        prepare_parent(tmp / "site")
        if args.part in ("workers", "both"):
            print(
                f"workers: real run_worker, sleep model {args.seconds:g} s per trial, "
                f"{args.trials_per_worker} trials per worker; trial plots skipped"
            )
            runs = []
            with contextlib.ExitStack() as stack:
                for storage in args.storages:
                    where = {"journal": "journal", "postgresql": args.pg}.get(storage, storage)
                    if storage == "grpc":
                        where = args.grpc or stack.enter_context(proxy_in_front_of(args.pg))
                    for workers in args.workers:
                        run = measure(tmp, where, workers, args.trials_per_worker, args.seconds)
                        runs.append(run)
                        print_runs([run])
            print_runs(runs)
        if args.part in ("study", "both"):
            import scale_study

            direct = [s for s in args.storages if s != "grpc"]  # the proxy: workers part only
            scale_study.run(tmp, args.study_trials, direct, args.pg)
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
