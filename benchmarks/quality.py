"""Search quality on the dev cluster: best validation F1 against wall-clock time, real training.

Run (as root, after ``bash slurm/dev-cluster/up``, on a quiet machine):
``.venv/bin/python benchmarks/quality.py [--repeat 3] [--work DIR] [--png benchmarks/quality.png]``.
With the defaults (16,000 events: one lenet epoch at the space's midpoint takes 21-25 s on one
core alone, about twice that with four tasks on two cores) a repeat of the three contenders
takes roughly 45-60 minutes. A smoke run (about 2 minutes, plus installing Hydra once):
``--events 600 --trials 4 --epochs 1 --repeat 1``. ``--work DIR`` keeps everything and reuses
the Hydra environment and the simulated data; the default temporary directory is removed.

One workload for every contender: ``lenet`` on iron-vs-proton footprints from ``footprint-sim``
(fixed data seed, ``--events``), at most ``--epochs`` epochs per trial, the predecessor's search
space (SCIENCE.md), a budget of ``--trials`` trials on ``--slots`` Slurm GPU slots (one GPU and
one CPU per task). Contenders, run alternately (a, b, c, a, b, c, …), repeat r with seed r
(Hydra's TPE sampler is seeded with r; wcd-hpc's experiment ``seed`` r seeds each worker's
sampler, from r and the worker's label, and trial n's training with r + n, as Hydra's trial n is
trained here):

- ``defaults``: ``wcd-hpc sweep exp.yaml --wait``, ``workers: SLOTS``, executor slurm, the
  default sampler and pruner (neither is written in the file; ``--pruner NAME`` writes one);
- ``median``, ``asha``: the same with that pruner written in the file (to choose the default);
- ``no-pruning``: the same with ``pruner: none``;
- ``hydra``: Hydra 1.3.8's submitit launcher + its Optuna sweeper (TPE, ``n_jobs`` = SLOTS),
  installed into ``WORK/venv-hydra``. Its optuna 2.10.1 cannot load wcd-hpc, so each trial (one
  Slurm job) runs this environment's ``wcd-hpc train`` with every parameter fixed and returns the
  validation F1 of its ``result.json`` (``benchmarks/quality/hydra_app.py``): only the
  orchestration differs.

Per contender and repeat it prints the best validation F1 so far against seconds since the
contender was started (a trial counts when its result exists: wcd-hpc's ``tell``, the end of
Hydra's ``train`` subprocess), the time to target (within 0.005 of the best validation F1 any
contender reached in that repeat), training slot-seconds (the sum of every trial's epoch seconds
from its ``metrics.jsonl``: the same definition on both sides, pruned trials included), the
slot-seconds Slurm allocated (``sacct``, start-up and idle included), the pruned trials, and the
best trial's test F1; then medians over repeats and the ratios wcd-hpc defaults / Hydra. The
PNG has one panel per repeat with one best-F1-against-time curve per contender. Everything it
installs or writes (Hydra's environment, data cache, runs, logs) is under ``--work``; only the
PNG is written elsewhere. Ctrl-C cancels the race's Slurm jobs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WCD = Path(sys.executable).with_name("wcd-hpc")
DEV_PROFILE = ROOT / "slurm/profiles/dev.toml"
HYDRA_APP = ROOT / "benchmarks/quality/hydra_app.py"
HYDRA_PINS = ("hydra-core==1.3.8", "hydra-submitit-launcher==1.2.0", "hydra-optuna-sweeper==1.3.0")
DATA_SEED = 1
TOLERANCE = 0.005
CONTENDERS = ("defaults", "median", "asha", "no-pruning", "hydra")
THREAD_VARS = ("WCD_HPC_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
EXPERIMENT = """\
name: {name}
dataset:
  name: footprint-sim
  params: {{primaries: [iron, proton], events: {events}, seed: {data_seed}}}
model: lenet
metric: {{name: f1, direction: maximize}}
trials: {trials}
epochs: {epochs}
param_space:                      # the predecessor's lenet space (SCIENCE.md)
  lr: loguniform(1e-4, 1e-2)
  batch_size: randint(32, 256)
  optimizer: choice(['adam', 'sgd'])
  reg: loguniform(1e-4, 1e-1)
  channels: "[randint(2, 20), randint(2, 20)]"
seed: {seed}
runs_dir: {runs}
executor: slurm
workers: {slots}
resources: {{gpus: 1, cpus: 1, mem_gb: 3, time: "04:00:00"}}
"""


@dataclass
class Trial:
    number: int
    state: str  # COMPLETE, PRUNED or FAIL
    start: float | None  # seconds since the contender was started
    end: float | None  # when its result existed
    value: float | None  # validation F1 (complete trials)
    test_f1: float | None
    epoch_s: float  # training seconds, the sum of its metrics.jsonl epochs


@dataclass
class Race:
    contender: str
    repeat: int
    wall: float = 0.0
    trials: list[Trial] = field(default_factory=list)
    jobs: int = 0  # Slurm allocations (array tasks / jobs) seen by sacct
    max_running: int = 0
    held_s: float = 0.0  # slot-seconds allocated by Slurm
    error: str | None = None

    def curve(self) -> list[tuple[float, float]]:
        """(time, best validation F1 so far) at each complete trial's end."""
        best, out = -math.inf, []
        done = [t for t in self.trials if t.value is not None and t.end is not None]
        for t in sorted(done, key=lambda t: t.end or 0.0):
            if t.value is not None and t.value > best:
                best = t.value
            out.append((t.end or 0.0, best))
        return out

    def best_at(self, when: float) -> float | None:
        before = [b for t, b in self.curve() if t <= when]
        return before[-1] if before else None

    def time_to(self, target: float) -> float | None:
        return next((t for t, b in self.curve() if b >= target), None)

    def best_trial(self) -> Trial | None:
        done = [t for t in self.trials if t.value is not None]
        return max(done, key=lambda t: t.value or 0.0) if done else None

    def train_s(self) -> float:
        return sum(t.epoch_s for t in self.trials)

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.trials)


def label(contender: str, pruner: str | None) -> str:
    if contender == "defaults":
        return f"wcd-hpc, pruner {pruner}" if pruner else "wcd-hpc, defaults"
    return {
        "median": "wcd-hpc, pruner median",
        "asha": "wcd-hpc, pruner asha",
        "no-pruning": "wcd-hpc, pruner none",
        "hydra": "Hydra submitit + Optuna",
    }[contender]


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def epoch_seconds(metrics: Path) -> float:
    if not metrics.is_file():
        return 0.0
    lines = [json.loads(s) for s in metrics.read_text().splitlines() if s.strip()]
    return sum(float(r["seconds"]) for r in lines)


# ---------------------------------------------------------------------------------------------
# Preparation: the cluster, the data cache, Hydra's environment


def check_cluster(slots: int) -> None:
    try:
        info = subprocess.run(
            ["sinfo", "-h", "-p", "gpu", "-o", "%G %c %a"], capture_output=True, text=True
        )
    except FileNotFoundError:
        sys.exit("sinfo not found: run `bash slurm/dev-cluster/up` first")
    if info.returncode != 0 or not info.stdout.strip():
        sys.exit(f"no partition gpu ({info.stderr.strip()}): run `bash slurm/dev-cluster/up`")
    gres, cpus, avail = info.stdout.split()[:3]
    gpus = int(gres.split(":")[-1].split("(")[0]) if "gpu" in gres else 0
    say(f"dev cluster: partition gpu {avail}, {gpus} GPUs (gres), {cpus} CPUs per node")
    if gpus < slots or int(cpus.rstrip("+")) < slots:
        sys.exit(f"--slots {slots} needs {slots} GPUs and CPUs on the node")
    queued = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True)
    if queued.stdout.strip():
        say("warning: other jobs are in the queue; they compete for the slots:")
        print(queued.stdout.rstrip(), flush=True)


def warm_cache(runs: Path, events: int) -> None:
    """Simulate the data once into the runs root's cache, which every contender reads."""
    from wcd_hpc.default_plugins import footprint_sim

    params = footprint_sim.validate(
        {"primaries": ["iron", "proton"], "events": events, "seed": DATA_SEED}
    )
    cache = runs / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    began = time.time()
    path = footprint_sim.cache_path(params, str(cache))
    footprint_sim.cached_file(params, str(cache))
    say(f"data: {events} iron/proton footprints in {path} ({time.time() - began:.0f} s)")


def hydra_python(work: Path) -> Path:
    """Hydra and its two plugins in their own environment (a peer we measure, not our deps)."""
    venv = work / "venv-hydra"
    python = venv / "bin/python"
    probe = [
        str(python),
        "-c",
        "import hydra, optuna, hydra_plugins.hydra_submitit_launcher.submitit_launcher, "
        "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper; "
        "print(hydra.__version__, optuna.__version__)",
    ]
    if python.exists():
        found = subprocess.run(probe, capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.split()[0] == "1.3.8":
            say(f"Hydra {found.stdout.split()[0]} (optuna {found.stdout.split()[1]}) in {venv}")
            return python
    say(f"installing {', '.join(HYDRA_PINS)} into {venv}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *HYDRA_PINS],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        sys.exit(f"pip install failed:\n{pip.stderr[-3000:]}")
    found = subprocess.run(probe, capture_output=True, text=True, check=True)
    say(f"Hydra {found.stdout.split()[0]} (optuna {found.stdout.split()[1]}) installed")
    return python


# ---------------------------------------------------------------------------------------------
# Running one contender


def slurm_accounting(race: Race, job_name: str, began: float) -> None:
    """Jobs of this race by name (sacct): how many, how many at once, slot-seconds held."""
    since = datetime.fromtimestamp(began - 120).strftime("%Y-%m-%dT%H:%M:%S")
    fields = "JobID,State,Start,End,ElapsedRaw,AllocTRES"
    query = ["sacct", "-n", "-P", "-X", f"--name={job_name}", "-S", since, "-E", "now"]
    rows: list[list[str]] = []
    for _ in range(10):  # the accounting database may lag the end of the last job a little
        acct = subprocess.run([*query, "-o", fields], capture_output=True, text=True)
        rows = [r.split("|") for r in acct.stdout.splitlines() if r.strip()]
        if rows and all(r[3] not in ("Unknown", "") for r in rows if r[2] not in ("Unknown", "")):
            break
        time.sleep(1)
    ran = [r for r in rows if r[2] not in ("Unknown", "None", "")]
    race.jobs = len(ran)
    edges: list[tuple[float, int]] = []
    for r in ran:
        start = datetime.fromisoformat(r[2]).timestamp()
        end = datetime.fromisoformat(r[3]).timestamp() if r[3] not in ("Unknown", "") else 1e18
        edges += [(start, 1), (end, -1)]
        gpus = next((int(x.split("=")[1]) for x in r[5].split(",") if "gpu=" in x), 1)
        race.held_s += float(r[4] or 0) * max(gpus, 1)
    running = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        running += step
        race.max_running = max(race.max_running, running)


def follow(
    proc: subprocess.Popen[bytes],
    race: Race,
    began: float,
    job_name: str,
    progress: Callable[[], str],
) -> None:
    """Wait for the contender's command, printing progress; Ctrl-C cancels its Slurm jobs."""
    shown, last = "", 0.0
    try:
        while proc.poll() is None:
            time.sleep(2)
            now = time.time()
            line = progress()
            if line and (line != shown or now - last > 120):
                say(f"  {race.contender} r{race.repeat} {now - began:5.0f} s: {line}")
                shown, last = line, now
    except KeyboardInterrupt:
        say(f"interrupted: stopping {race.contender} and cancelling its Slurm jobs")
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        subprocess.run(["scancel", f"--name={job_name}"], check=False)
        raise


def summary_line(done: list[tuple[str, float | None]], budget: int) -> str:
    values = [v for s, v in done if s == "COMPLETE" and v is not None]
    pruned = sum(s == "PRUNED" for s, _ in done)
    failed = sum(s == "FAIL" for s, _ in done)
    best = f", best val F1 {max(values):.4f}" if values else ""
    extra = (f", {pruned} pruned" if pruned else "") + (f", {failed} failed" if failed else "")
    return f"{len(done)}/{budget} trials finished{extra}{best}"


def run_wcd(contender: str, repeat: int, args: argparse.Namespace, work: Path) -> Race:
    import optuna

    from wcd_hpc.errors import WcdHpcError
    from wcd_hpc.queue.schema import METRICS_FILE, TRIAL_TEST, TRIAL_TRAIN_STARTED, trial_dir
    from wcd_hpc.queue.study import open_existing

    race = Race(contender, repeat)
    name = f"q-{contender}-r{repeat}-{time.strftime('%H%M%S')}-{os.getpid()}"
    runs = work / "runs"
    text = EXPERIMENT.format(
        name=name,
        events=args.events,
        data_seed=DATA_SEED,
        trials=args.trials,
        epochs=args.epochs,
        seed=repeat,
        runs=runs,
        slots=args.slots,
    )
    if contender == "no-pruning":
        text += "pruner: none\n"
    elif contender in ("median", "asha"):
        text += f"pruner: {contender}\n"
    elif args.pruner:
        text += f"pruner: {args.pruner}\n"
    exp = work / "experiments" / f"{name}.yaml"
    exp.parent.mkdir(parents=True, exist_ok=True)
    exp.write_text(text)
    log = work / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(WCD), "sweep", str(exp), "--profile", str(DEV_PROFILE), "--wait", "--no-sync"]
    say(f"{label(contender, args.pruner)}, repeat {repeat}: {' '.join(cmd[1:3])} --wait ({log})")
    opened: list[optuna.Study] = []

    def progress() -> str:
        try:  # read-only; the journal may be mid-write, so any failure just skips this look
            if not opened:
                opened.append(open_existing(name, None, runs).study)
            trials = opened[0].get_trials(deepcopy=False)
        except Exception:
            opened.clear()
            return ""
        done = [(t.state.name, t.value) for t in trials if t.state.is_finished()]
        return summary_line(done, args.trials)

    with log.open("wb") as out:
        began = time.time()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        follow(proc, race, began, f"wcd-{name}", progress)
    race.wall = time.time() - began
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        race.error = f"wcd-hpc sweep exited {proc.returncode}: " + " | ".join(tail)
    try:
        opened_study = open_existing(name, None, runs)
    except WcdHpcError:
        return race  # refused before a study was created (e.g. an unknown pruner)
    for t in opened_study.study.get_trials():
        if not t.state.is_finished():
            continue
        started = t.user_attrs.get(TRIAL_TRAIN_STARTED)
        ended = t.datetime_complete.timestamp() if t.datetime_complete else None
        test = t.user_attrs.get(TRIAL_TEST) or {}
        race.trials.append(
            Trial(
                number=t.number,
                state=t.state.name,
                start=None if started is None else started - began,
                end=None if ended is None else ended - began,
                value=t.value if t.state.name == "COMPLETE" else None,
                test_f1=test.get("f1"),
                epoch_s=epoch_seconds(trial_dir(opened_study.run_dir, t.number) / METRICS_FILE),
            )
        )
    slurm_accounting(race, f"wcd-{name}", began)
    return race


def run_hydra(repeat: int, args: argparse.Namespace, work: Path, python: Path) -> Race:
    race = Race("hydra", repeat)
    tag = f"q-hydra-r{repeat}-{time.strftime('%H%M%S')}-{os.getpid()}"
    runs = work / "runs"
    exp = work / "experiments" / f"{tag}.yaml"
    exp.parent.mkdir(parents=True, exist_ok=True)
    exp.write_text(
        EXPERIMENT.format(
            name=tag,
            events=args.events,
            data_seed=DATA_SEED,
            trials=args.trials,
            epochs=args.epochs,
            seed=repeat,
            runs=runs,
            slots=args.slots,
        )
    )
    records = work / "hydra" / tag / "records"
    sweep_dir = work / "hydra" / tag / "sweep"
    log = work / "logs" / f"{tag}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(python),
        str(HYDRA_APP),
        "-m",
        f"wcd='{WCD}'",
        f"experiment='{exp}'",
        f"runs_dir='{runs}'",
        f"records='{records}'",
        f"seed={repeat}",
        f"tag={tag}",
        f"hydra.sweep.dir='{sweep_dir}'",
        f"hydra.sweeper.n_trials={args.trials}",
        f"hydra.sweeper.n_jobs={args.slots}",
        f"hydra.sweeper.sampler.seed={repeat}",
        f"hydra.launcher.array_parallelism={args.slots}",
    ]
    say(f"{label('hydra', None)}, repeat {repeat}: hydra_app.py -m, n_jobs {args.slots} ({log})")

    def read_records() -> list[dict[str, object]]:
        if not records.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(records.glob("trial-*.json"))]

    def progress() -> str:
        done = [
            ("FAIL" if "error" in r else "COMPLETE", r.get("objective")) for r in read_records()
        ]
        return summary_line(done, args.trials)  # type: ignore[arg-type]

    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    with log.open("wb") as out:
        began = time.time()
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
            env=env,
            start_new_session=True,
        )
        follow(proc, race, began, tag, progress)
    race.wall = time.time() - began
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        race.error = f"hydra exited {proc.returncode}: " + " | ".join(tail)
    for r in read_records():
        objective = r.get("objective")
        race.trials.append(
            Trial(
                number=int(r["number"]),  # type: ignore[call-overload]
                state="FAIL" if "error" in r else "COMPLETE",
                start=float(r["started"]) - began,  # type: ignore[arg-type]
                end=float(r["finished"]) - began,  # type: ignore[arg-type]
                value=None if objective is None else float(objective),  # type: ignore[arg-type]
                test_f1=r.get("test_f1"),  # type: ignore[arg-type]
                epoch_s=sum(r.get("epoch_seconds", [])),  # type: ignore[arg-type]
            )
        )
    slurm_accounting(race, tag, began)
    return race


# ---------------------------------------------------------------------------------------------
# Reporting


def fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None or math.isinf(value) else format(value, spec)


def race_line(race: Race) -> str:
    best = race.best_trial()
    best_s = (
        f"best val F1 {best.value:.4f} (trial {best.number}, test F1 {fmt(best.test_f1, '.4f')})"
        if best and best.value is not None
        else "no complete trial"
    )
    return (
        f"wall {race.wall:.0f} s; {len(race.trials)} trials ({race.count('PRUNED')} pruned, "
        f"{race.count('FAIL')} failed); {best_s}; training {race.train_s():.0f} slot-s; "
        f"slurm: {race.jobs} jobs, at most {race.max_running} running at once, "
        f"{race.held_s:.0f} slot-s held"
    )


def nice_step(span: float, rows: int = 14) -> float:
    for step in (5, 10, 15, 20, 30, 60, 90, 120, 180, 300, 600, 900, 1200):
        if span / step <= rows:
            return step
    return math.ceil(span / rows / 600) * 600


def print_repeat(repeat: int, races: list[Race], target: float | None, names: dict[str, str]):
    print(f"\nrepeat {repeat} (seed {repeat})", flush=True)
    if target is None:
        print("  no contender finished a trial")
        return
    print(f"  target: validation F1 >= {target:.4f} (best of any contender - {TOLERANCE})")
    ends = [t for r in races for t, _ in r.curve()]
    step = nice_step(max(ends, default=1.0))
    width = max([12, *(len(names[r.contender]) for r in races)])
    print("  best validation F1 so far, by seconds since the contender started")
    print("  " + f"{'s':>6}  " + "  ".join(f"{names[r.contender]:>{width}}" for r in races))
    t = step
    while True:
        cells = [fmt(r.best_at(t), ".4f") for r in races]
        print("  " + f"{t:>6.0f}  " + "  ".join(f"{c:>{width}}" for c in cells))
        if t >= max(ends, default=0.0):
            break
        t += step
    head = (
        f"  {'contender':<{width}}  {'to target s':>11}  {'train slot-s':>12}  "
        f"{'held slot-s':>11}  {'trials':>6}  {'pruned':>6}  {'failed':>6}  "
        f"{'best val F1':>11}  {'its test F1':>11}  {'wall s':>6}  {'jobs/max':>8}"
    )
    print(head)
    for r in races:
        best = r.best_trial()
        print(
            f"  {names[r.contender]:<{width}}  {fmt(r.time_to(target), '11.0f', 'not reached'):>11}"
            f"  {r.train_s():12.0f}  {r.held_s:11.0f}  {len(r.trials):6d}"
            f"  {r.count('PRUNED'):6d}  {r.count('FAIL'):6d}"
            f"  {fmt(best.value if best else None, '11.4f'):>11}"
            f"  {fmt(best.test_f1 if best else None, '11.4f'):>11}  {r.wall:6.0f}"
            f"  {f'{r.jobs}/{r.max_running}':>8}"
        )


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def print_medians(
    by_repeat: list[tuple[list[Race], float | None]], contenders: list[str], names: dict[str, str]
) -> dict[str, dict[str, float | None]]:
    print(f"\nmedians over {len(by_repeat)} repeat(s)", flush=True)
    contenders = [c for c in contenders if any(r.contender == c for rs, _ in by_repeat for r in rs)]
    if not contenders:
        print("  no race finished")
        return {}
    width = max([12, *(len(names[c]) for c in contenders)])
    print(
        f"  {'contender':<{width}}  {'to target s':>11}  {'reached':>7}  {'train slot-s':>12}  "
        f"{'held slot-s':>11}  {'pruned':>6}  {'best val F1':>11}  {'its test F1':>11}  "
        f"{'wall s':>6}"
    )
    out: dict[str, dict[str, float | None]] = {}
    for c in contenders:
        races = [(r, tgt) for rs, tgt in by_repeat for r in rs if r.contender == c]
        if not races:
            continue
        ttt = [r.time_to(tgt) if tgt is not None else None for r, tgt in races]
        best = [r.best_trial() for r, _ in races]
        row = {
            # a repeat that never reached the target counts as infinitely late
            "ttt": median([math.inf if x is None else x for x in ttt]),
            "train": median([r.train_s() for r, _ in races]),
            "held": median([r.held_s for r, _ in races]),
            "pruned": median([float(r.count("PRUNED")) for r, _ in races]),
            "val": median([b.value for b in best if b and b.value is not None]),
            "test": median([b.test_f1 for b in best if b and b.test_f1 is not None]),
            "wall": median([r.wall for r, _ in races]),
        }
        out[c] = row
        reached = f"{sum(x is not None for x in ttt)}/{len(races)}"
        print(
            f"  {names[c]:<{width}}  {fmt(row['ttt'], '11.0f', 'not reached'):>11}  "
            f"{reached:>7}  {fmt(row['train'], '12.0f')}  {fmt(row['held'], '11.0f')}  "
            f"{fmt(row['pruned'], '6.1f')}  {fmt(row['val'], '11.4f'):>11}  "
            f"{fmt(row['test'], '11.4f'):>11}  {fmt(row['wall'], '6.0f')}"
        )
    return out


def print_ratios(
    by_repeat: list[tuple[list[Race], float | None]], meds: dict[str, dict[str, float | None]]
) -> None:
    if "defaults" not in meds or "hydra" not in meds:
        return
    ours, theirs = meds["defaults"], meds["hydra"]

    def ratio(key: str) -> str:
        a, b = ours[key], theirs[key]
        if a is None or b is None or math.isinf(a) or math.isinf(b) or b == 0:
            return "n/a"
        return f"{a / b:.2f}"

    per_repeat = []
    for races, target in by_repeat:
        got = {r.contender: r for r in races}
        if target is None or "defaults" not in got or "hydra" not in got:
            continue
        a, b = got["defaults"].time_to(target), got["hydra"].time_to(target)
        per_repeat.append("n/a" if a is None or b is None else f"{a / b:.2f}")
    print("\nwcd-hpc defaults / Hydra (medians; below 1 favours wcd-hpc)")
    print(f"  time to target:      {ratio('ttt')} (per repeat: {', '.join(per_repeat) or '-'})")
    print(f"  training slot-s:     {ratio('train')}")
    print(f"  slot-s held (Slurm): {ratio('held')}")


def plot(
    by_repeat: list[tuple[list[Race], float | None]],
    names: dict[str, str],
    args: argparse.Namespace,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events, trials, epochs, slots, png = args.events, args.trials, args.epochs, args.slots, args.png
    n = len(by_repeat)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    size = (max(7.0, 5.5 * cols), 4.2 * rows)
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
    colours = {
        "defaults": "tab:blue",
        "median": "tab:purple",
        "asha": "tab:orange",
        "no-pruning": "tab:green",
        "hydra": "tab:red",
    }
    for i, (races, target) in enumerate(by_repeat):
        ax = axes[i // cols][i % cols]
        for r in races:
            curve = r.curve()
            if not curve:
                continue
            xs = [t for t, _ in curve] + [max(r.wall, curve[-1][0])]
            ys = [b for _, b in curve] + [curve[-1][1]]
            ax.step(xs, ys, where="post", color=colours[r.contender], label=names[r.contender])
            ax.plot(xs[:-1], ys[:-1], "o", ms=3, color=colours[r.contender])
            hit = r.time_to(target) if target is not None else None
            if hit is not None:
                ax.axvline(hit, color=colours[r.contender], ls=":", lw=1)
        if target is not None:
            ax.axhline(target, color="grey", ls="--", lw=1, label=f"target {target:.4f}")
            ax.set_ylim(max(0.0, target - 0.25), min(1.0, target + TOLERANCE + 0.03))
        ax.set_title(f"repeat {i} (seed {i})", fontsize=10)
        ax.set_xlim(left=0)
        ax.set_xlabel("seconds since the contender started")
        ax.set_ylabel("best validation F1 so far")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower right")
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].axis("off")
    fig.suptitle(
        f"lenet, iron vs proton, {events} events, {trials} trials of at most {epochs} epochs "
        f"on {slots} Slurm slots:\nbest validation F1 against wall-clock time",
        fontsize=10,
    )
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="races per contender (seed r)")
    parser.add_argument("--events", type=int, default=16000, help="simulated footprints")
    parser.add_argument("--trials", type=int, default=24, help="budget of trials per race")
    parser.add_argument("--epochs", type=int, default=4, help="at most this many per trial")
    parser.add_argument("--slots", type=int, default=4, help="GPU slots (Slurm tasks at once)")
    parser.add_argument("--work", type=Path, help="keep everything here (default: a temp dir)")
    parser.add_argument(
        "--contenders",
        default="defaults,no-pruning,hydra",
        help=f"comma-separated subset of {','.join(CONTENDERS)}",
    )
    parser.add_argument("--pruner", help="write `pruner: NAME` for the defaults contender")
    parser.add_argument("--png", type=Path, default=ROOT / "benchmarks/quality.png")
    args = parser.parse_args()
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = [c for c in contenders if c not in CONTENDERS]
    if unknown or not contenders:
        parser.error(f"--contenders: unknown {unknown}; choose from {','.join(CONTENDERS)}")
    if not WCD.exists():
        sys.exit(f"{WCD} not found: run this with the wcd-hpc environment's python")
    names = {c: label(c, args.pruner) for c in CONTENDERS}

    temp = None
    if args.work is None:
        temp = tempfile.mkdtemp(prefix="wcd-quality-")
        args.work = Path(temp)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    for var in THREAD_VARS:  # this process and `sweep`: the tasks set their own from Slurm
        os.environ.setdefault(var, "1")
    say(
        f"lenet, iron vs proton, {args.events} events, {args.trials} trials of at most "
        f"{args.epochs} epochs, {args.slots} slots; {', '.join(names[c] for c in contenders)}; "
        f"{args.repeat} repeat(s); work dir {work}"
    )
    try:
        check_cluster(args.slots)
        python = hydra_python(work) if "hydra" in contenders else None
        warm_cache(work / "runs", args.events)
        by_repeat: list[tuple[list[Race], float | None]] = []
        refused: dict[str, str] = {}
        for repeat in range(args.repeat):
            races = []
            for c in contenders:
                if c in refused:
                    continue
                if c == "hydra":
                    assert python is not None
                    race = run_hydra(repeat, args, work, python)
                else:
                    race = run_wcd(c, repeat, args, work)
                say(f"  {names[c]}, repeat {repeat}: {race_line(race)}")
                if race.error:
                    say(f"  {names[c]}: {race.error}")
                    if not race.trials:
                        refused[c] = race.error
                        say(f"  {names[c]} dropped from the remaining repeats")
                        continue
                races.append(race)
            ends = [b for r in races for _, b in r.curve()]
            target = max(ends) - TOLERANCE if ends else None
            by_repeat.append((races, target))
            print_repeat(repeat, races, target, names)
        meds = print_medians(by_repeat, [c for c in contenders if c not in refused], names)
        print_ratios(by_repeat, meds)
        for c, why in refused.items():
            print(f"\n{names[c]}: not run ({why})")
        plot(by_repeat, names, args)
        say(f"wrote {args.png}")
    except KeyboardInterrupt:
        say("interrupted: the running race's Slurm jobs were cancelled")
        sys.exit(130)
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
