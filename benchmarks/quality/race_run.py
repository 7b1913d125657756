"""Running the contenders of ``benchmarks/quality.py`` on the dev cluster, and reading back
what each trial did. Every contender trains with wcd-hpc's own training loop on the same data
file and the same Slurm slots; only the orchestration differs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import chance_share
from race_data import Race, Trial

ROOT = Path(__file__).resolve().parents[2]
WCD = Path(sys.executable).with_name("wcd-hpc")
DEV_PROFILE = ROOT / "slurm/profiles/dev.toml"
HYDRA_APP = Path(__file__).with_name("hydra_app.py")
HYDRA_PINS = ("hydra-core==1.3.8", "hydra-submitit-launcher==1.2.0", "hydra-optuna-sweeper==1.3.0")
DATA_SEED = 1234
#: The race's objectives (``--metric``): Q at the cut keeping half of the gammas (the
#: physicist's figure), or validation ROC AUC (issue 24's fallback: one value from every event
#: rather than from the few protons that survive the cut).
METRICS = ("q_at_eff", "roc_auc")
#: Contenders given a multiple of ``--trials``: successive halving trains about a third of the
#: epochs a trial without pruning trains, so three times the draws cost about the same seconds.
MORE_TRIALS = {"asha-x3": 3}
VAL_FRACTION, TEST_FRACTION = 0.25, 0.10  # a larger validation split: more protons behind Q
EXPERIMENT = """\
name: {name}
dataset:
  name: footprint-h5
  params: {{path: '{data}', val_fraction: {val}, test_fraction: {test}}}
model: lenet
metric: {{name: {metric}, direction: maximize}}
signal_class: gamma
trials: {trials}
epochs: {epochs}
param_space:                      # --space: the same ranges as Hydra's sweeper searches
{space}seed: {seed}
runs_dir: {runs}
executor: slurm
workers: {slots}
resources: {{gpus: 1, cpus: 1, mem_gb: 3, time: "04:00:00"}}
"""


#: The race's search spaces: lenet's ``predecessor`` variant (SCIENCE.md; dead corners that
#: chance-level pruning and successive halving should win on) or its ``default`` space (what a
#: user gets who writes no ``param_space``). Read from wcd-hpc itself, so the race follows it.
SPACES = ("predecessor", "default")


def lenet_space(space: str) -> dict[str, Any]:
    """lenet's space ``space`` (one of :data:`SPACES`), as wcd-hpc defines it."""
    from wcd_hpc.default_plugins.common import spaces_with
    from wcd_hpc.default_plugins.lenet import SPACE

    return dict(SPACE) if space == "default" else spaces_with(**SPACE)[space]


def space_lines(space: str) -> dict[str, str]:
    """``param_space`` lines: lists as one quoted YAML string, as the experiment file takes them."""
    chosen = lenet_space(space)
    out = {}
    for key, value in chosen.items():
        out[key] = f'"[{", ".join(value)}]"' if isinstance(value, list) else str(value)
    return out


def hydra_space(space: str) -> list[str]:
    """Hydra overrides that make its Optuna sweeper search the same ranges (``randint(a, b)``
    includes b, as ``int(interval(a, b))`` does); a fixed value leaves the sweep and becomes
    the app's own value. None for the predecessor's space: ``conf/config.yaml`` holds it."""
    if space == "predecessor":
        return []
    items = lenet_space(space)
    channels = items.pop("channels")
    items.update({"ch1": channels[0], "ch2": channels[1]})
    out = []
    for key, value in items.items():
        text = str(value).replace(" ", "")
        if text.startswith("loguniform("):
            out.append(f"hydra.sweeper.params.{key}='tag(log, interval({text[11:-1]}))'")
        elif text.startswith("randint("):
            out.append(f"hydra.sweeper.params.{key}='int(interval({text[8:-1]}))'")
        elif text.startswith("choice(["):
            options = text[8:-2].replace("'", "").replace('"', "")
            out.append(f"hydra.sweeper.params.{key}='choice({options})'")
        else:
            out += [f"~hydra.sweeper.params.{key}", f"{key}={text}"]
    return out


@dataclass(frozen=True)
class Setup:
    """What every race of a sitting shares."""

    work: Path
    data: Path
    events: int
    trials: int
    epochs: int
    slots: int
    sets: tuple[str, ...]  # 'KEY: VALUE' lines for every contender's experiment file
    space: str = "predecessor"  # a key of SPACES
    val_fraction: float = VAL_FRACTION  # --val-fraction: more validation events, finer Q
    metric: str = METRICS[0]  # --metric: the objective every contender maximizes

    @property
    def runs(self) -> Path:
        return self.work / "runs"

    @property
    def val_events(self) -> int:
        return round(self.events * self.val_fraction)

    def experiment(self, name: str, repeat: int, trials: int, epochs: int, own: str) -> Path:
        """Write one experiment file: the shared template, ``--set`` lines, the contender's own
        lines (``own``, which win a clash: ``pruner: none`` stays none)."""
        mine = {line.split(":", 1)[0].strip() for line in own.splitlines()}
        extra = "".join(s for s in self.sets if s.split(":", 1)[0].strip() not in mine) + own
        text = EXPERIMENT.format(
            name=name,
            metric=self.metric,
            data=self.data,
            val=self.val_fraction,
            test=TEST_FRACTION,
            trials=trials,
            epochs=epochs,
            seed=repeat,
            runs=self.runs,
            slots=self.slots,
            space="".join(f"  {k}: {v}\n" for k, v in space_lines(self.space).items()),
        )
        path = self.work / "experiments" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + extra)
        return path


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def hardest_range() -> tuple[float, float]:
    """The lowest third (in log E) of footprint-sim's energy range: few particles, few muons."""
    from wcd_hpc.sim.footprints import FootprintConfig

    lo, hi = FootprintConfig().energy_range_gev
    return lo, lo * (hi / lo) ** (1 / 3)


def hard_data(work: Path, events: int) -> Path:
    """Gamma vs proton footprints at the hardest energies, simulated once per size."""
    from wcd_hpc.sim.footprints import FootprintConfig, write_footprints

    lo, hi = hardest_range()
    path = work / f"hard-{events}-{lo:.0f}-{hi:.0f}GeV.h5"
    if not path.is_file():
        began = time.time()
        config = FootprintConfig(energy_range_gev=(lo, hi))
        write_footprints(path, ["gamma", "proton"], events, seed=DATA_SEED, config=config)
        say(f"data: {events} gamma/proton footprints, {lo:.0f}-{hi:.0f} GeV, in {path} "
            f"({time.time() - began:.0f} s)")  # fmt: skip
    return path


def check_cluster(slots: int) -> None:
    info = subprocess.run(["sinfo", "-h", "-p", "gpu", "-o", "%G %c %a"], capture_output=True)
    if info.returncode != 0 or not info.stdout.strip():
        sys.exit("no partition gpu: run `bash slurm/dev-cluster/up` first (as root)")
    gres, cpus, avail = info.stdout.decode().split()[:3]
    gpus = int(gres.split(":")[-1].split("(")[0]) if "gpu" in gres else 0
    say(f"dev cluster: partition gpu {avail}, {gpus} GPUs (gres), {cpus} CPUs per node")
    if gpus < slots or int(cpus.rstrip("+")) < slots:
        sys.exit(f"--slots {slots} needs {slots} GPUs and CPUs on the node")
    queued = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True)
    if queued.stdout.strip():
        say("warning: other jobs are in the queue; they compete for the slots")


def hydra_python(work: Path) -> Path:
    """Hydra and its two plugins in their own environment (a peer we measure, not our deps)."""
    venv = work / "venv-hydra"
    python = venv / "bin/python"
    probe = [
        str(python),
        "-c",
        "import hydra, optuna, hydra_plugins.hydra_submitit_launcher.submitit_launcher, "
        "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper; print(hydra.__version__)",
    ]
    if python.exists():
        found = subprocess.run(probe, capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.split() == ["1.3.8"]:
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
    subprocess.run(probe, capture_output=True, check=True)
    return python


def slurm_accounting(race: Race, job_name: str, began: float) -> None:
    """Add the Slurm allocations of one job name (sacct) and their slot-seconds to ``race``."""
    since = datetime.fromtimestamp(began - 120).strftime("%Y-%m-%dT%H:%M:%S")
    query = ["sacct", "-n", "-P", "-X", f"--name={job_name}", "-S", since, "-E", "now"]
    rows: list[list[str]] = []
    for _ in range(10):  # the accounting database may lag the end of the last job a little
        acct = subprocess.run([*query, "-o", "Start,End,ElapsedRaw"], capture_output=True)
        rows = [r.split("|") for r in acct.stdout.decode().splitlines() if r.strip()]
        if all(r[1] not in ("Unknown", "") for r in rows if r[0] not in ("Unknown", "None", "")):
            break
        time.sleep(1)
    ran = [r for r in rows if r[0] not in ("Unknown", "None", "")]
    race.jobs += len(ran)
    race.held_s += sum(float(r[2] or 0) for r in ran)


def follow(
    proc: subprocess.Popen[bytes], race: Race, job: str, progress: Callable[[], str]
) -> None:
    """Wait for a contender's command, printing progress; Ctrl-C cancels its Slurm jobs."""
    shown, began = "", time.time()
    try:
        while proc.poll() is None:
            time.sleep(2)
            line = progress()
            if line and line != shown:
                say(f"  {race.contender} r{race.repeat} {time.time() - began:5.0f} s: {line}")
                shown = line
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        subprocess.run(["scancel", f"--name={job}"], check=False)
        raise


def summary(done: list[tuple[str, float | None]], budget: int) -> str:
    values = [v for s, v in done if s == "COMPLETE" and v is not None]
    pruned = sum(s == "PRUNED" for s, _ in done)
    best = f", best {max(values):.3f}" if values else ""
    return f"{len(done)}/{budget} finished, {pruned} pruned{best}"


def sweep(race: Race, setup: Setup, name: str, exp: Path, budget: int, offset: float) -> float:
    """One ``wcd-hpc sweep --wait`` into ``race`` (times shifted by ``offset``); its wall time."""
    from wcd_hpc.engine.verdicts import CHANCE
    from wcd_hpc.queue.schema import (
        METRICS_FILE,
        TRIAL_OBJECTIVE_INTERVAL,
        TRIAL_PRUNED_BECAUSE,
        TRIAL_TEST,
        TRIAL_TRAIN_STARTED,
        trial_dir,
    )
    from wcd_hpc.queue.study import open_existing

    log = setup.work / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(WCD), "sweep", str(exp), "--profile", str(DEV_PROFILE), "--wait", "--no-sync"]

    def progress() -> str:
        try:  # read-only; the journal may be mid-write, so a failure just skips this look
            trials = open_existing(name, None, setup.runs).study.get_trials(deepcopy=False)
        except Exception:
            return ""
        return summary([(t.state.name, t.value) for t in trials if t.state.is_finished()], budget)

    with log.open("wb") as out:
        began = time.time()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        follow(proc, race, f"wcd-{name}", progress)
    wall = time.time() - began
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        race.error = f"wcd-hpc sweep exited {proc.returncode}: " + " | ".join(tail)
    try:
        opened = open_existing(name, None, setup.runs)
    except Exception:
        return wall  # refused before a study was created
    for t in opened.study.get_trials():
        if not t.state.is_finished():
            continue
        metrics = trial_dir(opened.run_dir, t.number) / METRICS_FILE
        judged = chance_share.trial_of(metrics, setup.val_events)
        started = t.user_attrs.get(TRIAL_TRAIN_STARTED)
        lo, hi = t.user_attrs.get(TRIAL_OBJECTIVE_INTERVAL) or (None, None)
        race.trials.append(
            Trial(
                number=t.number,
                state=t.state.name,
                start=None if started is None else started - began + offset,
                end=t.datetime_complete.timestamp() - began + offset
                if t.datetime_complete
                else None,
                value=t.value if t.state.name == "COMPLETE" else None,
                test=(t.user_attrs.get(TRIAL_TEST) or {}).get(setup.metric),
                epoch_s=judged.seconds if judged else 0.0,
                chance=t.user_attrs.get(TRIAL_PRUNED_BECAUSE) == CHANCE
                or bool(judged and judged.chance),
                half_width=None if lo is None or hi is None else (hi - lo) / 2,
            )
        )
    slurm_accounting(race, f"wcd-{name}", began)
    return wall


def run_wcd(contender: str, repeat: int, setup: Setup) -> Race:
    """``defaults`` (plus ``--set`` lines), ``quarter`` (``report_every: 0.25``: the choice of the
    default of ``report_every`` is a race between these two), ``after2`` (``prune_chance: {after:
    2}``: the same for the chance-level rule), ``steps16`` (``prune_chance: {min_steps: 16}``:
    judged once a trial has taken 16 optimizer steps, twice the 4-8 that slow starters' outputs
    stay constant; the default since 2026-12-07, so the same as ``defaults``), ``steps0``
    (``min_steps: 0``, the default before), ``quarter16`` (the same with four reports an
    epoch, each judged), ``asha`` (``pruner: asha``: successive halving from one epoch),
    ``median4`` (the median pruner judging from epoch 4 instead of 3, when curves have had
    longer to separate), ``independent`` (``sampler: tpe-independent``: TPE modelling each
    parameter on its own, as Hydra's sweeper does), ``independent-none`` (the same with
    ``pruner: none``), ``asha-x3`` (``pruner: asha`` with three times ``--trials``: about as
    many training seconds as a race without pruning, spent on three times the draws),
    ``no-pruning`` (``pruner: none``) or ``one-epoch``."""
    race = Race(contender, repeat)
    name = f"q-{contender}-r{repeat}-{time.strftime('%H%M%S')}"
    if contender != "one-epoch":
        extras = {
            "no-pruning": "pruner: none\n",
            "quarter": "report_every: 0.25\n",
            "after2": "prune_chance: {after: 2}\n",
            "steps16": "prune_chance: {min_steps: 16}\n",
            "steps0": "prune_chance: {min_steps: 0}\n",
            "quarter16": "report_every: 0.25\nprune_chance: {min_steps: 16}\n",
            "asha": "pruner: asha\n",
            "asha-x3": "pruner: asha\n",
            "median4": "pruner: {name: median, warmup_epochs: 4}\n",
            "independent": "sampler: tpe-independent\n",
            "independent-none": "sampler: tpe-independent\npruner: none\n",
        }
        extra = extras.get(contender, "")
        trials = setup.trials * MORE_TRIALS.get(contender, 1)
        exp = setup.experiment(name, repeat, trials, setup.epochs, extra)
        say(f"{contender}, repeat {repeat}: wcd-hpc sweep {exp.name} --wait")
        race.wall = sweep(race, setup, name, exp, trials, 0.0)
        return race
    # arXiv 2307.15422: every configuration one epoch, then the best K = budget/4 trained in
    # full. Phase 2 is a second study whose whole budget is phase 1's best K (start_from).
    top = max(1, setup.trials // 4)
    first = setup.experiment(f"{name}-1", repeat, setup.trials, 1, "pruner: none\n")
    say(f"one-epoch, repeat {repeat}: {setup.trials} trials x 1 epoch, then the best {top}")
    began = time.time()
    sweep(race, setup, f"{name}-1", first, setup.trials, 0.0)
    if race.error:
        race.wall = time.time() - began
        return race
    extra = f"pruner: none\nstart_from: {{study: {name}-1, top: {top}}}\n"
    second = setup.experiment(f"{name}-2", repeat, top, setup.epochs, extra)
    sweep(race, setup, f"{name}-2", second, top, time.time() - began)
    race.wall = time.time() - began
    return race


def run_hydra(repeat: int, setup: Setup, python: Path) -> Race:
    """Hydra's submitit launcher + Optuna sweeper; each trial runs ``wcd-hpc train``."""
    race = Race("hydra", repeat)
    tag = f"q-hydra-r{repeat}-{time.strftime('%H%M%S')}"
    exp = setup.experiment(tag, repeat, setup.trials, setup.epochs, "")
    records = setup.work / "hydra" / tag / "records"
    log = setup.work / "logs" / f"{tag}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    overrides = {
        "wcd": WCD,
        "experiment": exp,
        "runs_dir": setup.runs,
        "records": records,
        "hydra.sweep.dir": setup.work / "hydra" / tag / "sweep",
    }
    cmd = [str(python), str(HYDRA_APP), "-m", *(f"{k}='{v}'" for k, v in overrides.items())]
    cmd += [f"seed={repeat}", f"tag={tag}", f"hydra.sweeper.sampler.seed={repeat}"]
    cmd += [f"hydra.sweeper.n_trials={setup.trials}", f"hydra.sweeper.n_jobs={setup.slots}"]
    cmd += [f"hydra.launcher.array_parallelism={setup.slots}", *hydra_space(setup.space)]
    say(f"hydra, repeat {repeat}: hydra_app.py -m, n_jobs {setup.slots}")

    def read() -> list[dict[str, object]]:
        files = sorted(records.glob("trial-*.json")) if records.is_dir() else []
        return [json.loads(p.read_text()) for p in files]

    def progress() -> str:
        done = [("FAIL" if "error" in r else "COMPLETE", r.get("objective")) for r in read()]
        return summary(done, setup.trials)  # type: ignore[arg-type]

    # Hydra's optuna 2.10 must not see ours; its trials get our PYTHONPATH back (hydra_app.py).
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["WCD_RACE_PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    with log.open("wb") as out:
        began = time.time()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent, env=env,
            start_new_session=True,
        )  # fmt: skip
        follow(proc, race, tag, progress)
    race.wall = time.time() - began
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        race.error = f"hydra exited {proc.returncode}: " + " | ".join(tail)
    for r in read():
        metrics = Path(str(r.get("run_dir", ""))) / "metrics.jsonl"
        judged = chance_share.trial_of(metrics, setup.val_events)
        lo, hi = r.get("objective_lo"), r.get("objective_hi")
        value = r.get("objective")
        race.trials.append(
            Trial(
                number=int(str(r["number"])),
                state="FAIL" if "error" in r else "COMPLETE",
                start=float(str(r["started"])) - began,
                end=float(str(r["finished"])) - began,
                value=None if value is None else float(str(value)),
                test=None if r.get("test") is None else float(str(r["test"])),
                epoch_s=judged.seconds if judged else 0.0,
                chance=bool(judged and judged.chance),
                half_width=None
                if lo is None or hi is None
                else (float(str(hi)) - float(str(lo))) / 2,
            )
        )
    slurm_accounting(race, tag, began)
    return race
