"""Share of a sweep's training seconds spent on networks at chance level.

Run: ``nice -n 10 .venv/bin/python benchmarks/chance_share.py [--work DIR] [--trials 8]
[--epochs 3] [--events 3000] [--workers 2] [--sweeps quickstart,gamma-hadron] [--set K=V ...]``.

Two sweeps, local executor, each a real ``wcd-hpc sweep`` of the shipped experiment file:

- ``quickstart``: ``examples/quickstart.yaml`` as the README's demo runs it (its own data and
  sizes unless ``--trials``/``--epochs``/``--events`` are given);
- ``gamma-hadron``: ``experiments/gamma-hadron.yaml`` with its dataset replaced by a harder set,
  gamma vs proton footprints between 0.3 and 10 TeV (``footprint-sim``'s physics, the lower part
  of its energy range, written once to ``WORK/hard-<events>.h5`` and read as ``footprint-h5``),
  and ``--trials``/``--epochs``/``--workers`` as given.

A trial is at chance level when its last validation ROC AUC (``metrics.jsonl``) is NaN or its
68 % interval (± one Hanley–McNeil standard error, from the validation split's class counts,
taken as balanced) contains 0.5; constant output has AUC 0.5 exactly and is counted with it.
Its training seconds are the sum of its epochs' ``seconds`` and, for a trial stopped inside an
epoch (``report_every`` below 1), that epoch's seconds up to its last report (pruned trials
included, the definition ``benchmarks/quality.py`` uses). The script prints one line per trial
and, per sweep, the training seconds, those on chance-level trials and their share. ``--set``
is passed to both sweeps (``--set param_space=predecessor`` measures the predecessor's space).
Everything is written under ``--work`` (default: a temporary directory, removed afterwards).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WCD = Path(sys.executable).with_name("wcd-hpc")
HARD_RANGE_GEV = (300.0, 10_000.0)
VAL_FRACTION = 0.15  # footprint-sim's and footprint-h5's default


@dataclass(frozen=True)
class Trial:
    number: int
    epochs: int
    seconds: float
    auc: float
    se: float

    @property
    def chance(self) -> bool:
        # A trial stopped inside its first epoch was never scored on the whole validation set:
        # nothing says it was at chance (the quality race counts pruned-at-chance on its own).
        if self.epochs == 0:
            return False
        return math.isnan(self.auc) or abs(self.auc - 0.5) <= self.se


def auc_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil (1982) standard error of a ROC AUC from ``n_pos`` and ``n_neg`` events."""
    a = 0.5 if math.isnan(auc) else auc
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def _lines(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def trial_of(metrics: Path, val_events: int) -> Trial | None:
    """One trial's ``metrics.jsonl`` judged, or None when it trained nothing.

    Its seconds also count an epoch it was stopped in: with ``report_every`` below 1 a trial
    pruned inside an epoch has no ``metrics.jsonl`` line for it, and its last report in
    ``reports.jsonl`` (beside it) carries the epoch's seconds so far. ``benchmarks/quality.py``
    judges its races' trials with this too, so "chance level" means the same in both benchmarks.
    """
    lines = _lines(metrics)
    unfinished = [r for r in _lines(metrics.with_name("reports.jsonl")) if r["epoch"] > len(lines)]
    if not lines and not unfinished:
        return None
    partial = max((float(r.get("seconds", 0.0)) for r in unfinished), default=0.0)
    auc = float(lines[-1].get("val_roc_auc", math.nan)) if lines else math.nan
    n_pos = val_events // 2
    return Trial(
        number=int(metrics.parent.name),
        epochs=len(lines),
        seconds=sum(float(x["seconds"]) for x in lines) + partial,
        auc=auc,
        se=auc_se(auc, n_pos, val_events - n_pos),
    )


def trials_of(run_dir: Path, val_events: int) -> list[Trial]:
    """Every trial of a run directory that trained anything (an epoch, or part of one)."""
    dirs = sorted(p for p in (run_dir / "trials").glob("*") if p.is_dir() and p.name.isdigit())
    found = [trial_of(d / "metrics.jsonl", val_events) for d in dirs]
    return sorted((t for t in found if t is not None), key=lambda t: t.number)


def hard_file(work: Path, events: int) -> Path:
    """Gamma vs proton footprints at 0.3-10 TeV, simulated once per size."""
    from wcd_hpc.sim.footprints import FootprintConfig, write_footprints

    path = work / f"hard-{events}.h5"
    if not path.is_file():
        config = FootprintConfig(energy_range_gev=HARD_RANGE_GEV)
        write_footprints(path, ["gamma", "proton"], events, seed=1234, config=config)
    return path


def sweep(name: str, work: Path, args: argparse.Namespace) -> tuple[Path, int]:
    """Run one sweep; returns its run directory and its validation split's size."""
    runs = work / "runs"
    study = f"chance-{name}"
    cmd = [str(WCD), "sweep", "--runs-dir", str(runs), "--no-sync", "--executor", "local"]
    sets = [f"name={study}", "storage=journal", *args.set]
    if name == "quickstart":
        cmd.append(str(ROOT / "examples" / "quickstart.yaml"))
        events = args.events or 4000  # the file's own
        if args.events:
            sets.append(f"dataset.params={{primaries: [gamma, proton], events: {args.events}}}")
        if args.trials:
            sets.append(f"trials={args.trials}")
        if args.epochs:
            sets.append(f"epochs={args.epochs}")
    else:
        cmd.append(str(ROOT / "experiments" / "gamma-hadron.yaml"))
        events = args.events or 3000
        path = hard_file(work, events)
        sets += [
            "dataset.name=footprint-h5",
            f"dataset.params={{path: '{path}'}}",
            f"trials={args.trials or 8}",
            f"epochs={args.epochs or 3}",
        ]
    cmd += ["--workers", str(args.workers)]
    for s in sets:
        cmd += ["--set", s]
    print("$", " ".join(cmd), flush=True)
    began = time.monotonic()
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)
    print(f"  exit {done.returncode} after {time.monotonic() - began:.0f} s", flush=True)
    for line in (done.stdout + done.stderr).splitlines()[-6:]:
        print("  |", line)
    return runs / study, round(events * VAL_FRACTION)


def report(name: str, trials: list[Trial]) -> float:
    """Print the trials and the chance-level share; returns the share."""
    total = sum(t.seconds for t in trials)
    wasted = sum(t.seconds for t in trials if t.chance)
    for t in trials:
        flag = "  CHANCE" if t.chance else ""
        print(
            f"  trial {t.number:2d}: {t.epochs} epochs {t.seconds:7.1f} s  "
            f"val AUC {t.auc:.3f} ± {t.se:.3f}{flag}"
        )
    share = wasted / total if total else math.nan
    print(
        f"{name}: {len(trials)} trials, {sum(t.chance for t in trials)} at chance; training "
        f"{total:.0f} s, at chance {wasted:.0f} s = {share:.1%}",
        flush=True,
    )
    return share


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, help="keep everything here (default: a temp dir)")
    parser.add_argument("--sweeps", default="quickstart,gamma-hadron")
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE for both sweeps")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="chance-share-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"chance_share {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, work dir {work}")
    try:
        for name in args.sweeps.split(","):
            run_dir, val_events = sweep(name, work.resolve(), args)
            report(name, trials_of(run_dir, val_events))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
