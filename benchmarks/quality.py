r"""The race: does wcd-hpc's default search reach a good gamma/hadron classifier on less compute?

Run as root, after ``bash slurm/dev-cluster/up``, on a quiet machine, with the wcd-hpc
environment's python (the ``wcd-hpc`` beside it runs the sweeps)::

    .venv/bin/python benchmarks/quality.py --work /tmp/race   # 5 repeats, about an hour

A smoke run, to see every contender run end to end (~8 minutes on a busy 2-core machine,
Hydra's install included; its figures decide nothing; ``prune_chance: false`` because at such
sizes a wcd-hpc trial is often pruned at chance after one epoch — at 600 events every one was —
and the one-epoch baseline needs some to finish)::

    .venv/bin/python benchmarks/quality.py --events 1000 --trials 4 --epochs 2 --repeat 1 \
        --set 'prune_chance: false' --work /tmp/race-smoke --png /tmp/race-smoke/quality.png

**Workload.** ``lenet`` on gamma vs proton footprints from ``footprint-sim``'s physics at its
hardest energies, the lowest third of its energy range in log E (316-1468 GeV: few particles,
few muons, SCIENCE.md's hard regime), simulated once into ``WORK/hard-*.h5`` (data seed fixed)
and read as ``footprint-h5`` with 25 % validation (more protons behind the cut; ``--val-fraction``
0.55 with ``--events 2000`` keeps about the same training events and gives Q four times the
validation events) and 10 % test.
Objective ``q_at_eff``: Q = ε_γ/√ε_h at the cut keeping half of the gammas, chosen and quoted on
validation (``wcd_hpc.merit``); the stable choice on small validation sets. ``--metric roc_auc``
makes validation ROC AUC the objective of every contender instead (issue 24's fallback): a value
from every validation event, not from the few protons that survive Q's cut, so a repeat's best
value says more about the configuration and less about which trial drew lucky protons.
``--space``: lenet's ``predecessor`` space (SCIENCE.md; the default here), whose dead corners
(Adam with large ``reg``, slow SGD) are what chance-level pruning and successive halving should
win on, or its ``default`` space, what a user gets who writes no ``param_space`` (Adam, ``reg``
≤ 1e-3); every contender, Hydra's sweeper included, searches the same ranges, read from wcd-hpc.
Budget ``--trials`` 24 trials of at most ``--epochs`` 6 on ``--slots`` 4 Slurm GPU slots (one
CPU each): with 6 rungs of one epoch a pruner can stop most trials early (with ``pruner: none``
each trial trains 6 epochs; the issue's example of 32 x 8 would take about 2 hours a sitting
here).

**Contenders**, alternated within a repeat and the order rotated by one each repeat, so neither
the machine's drift nor going first favours one; repeat r runs with experiment seed r (Hydra's
sampler seed r; trial n trains with seed r + n everywhere):

- ``defaults``: ``wcd-hpc sweep --wait`` with wcd-hpc's default sampler, pruner, chance-level
  pruning and reports (``--set 'KEY: VALUE'`` adds a line to every contender's experiment file,
  e.g. ``--set 'report_every: 0.25'``; ``--set 'pruner: asha'`` changes only this one, since
  the others' own ``pruner`` wins);
- ``quarter``: the same with ``report_every: 0.25`` (four reports an epoch), to choose that
  key's default by measurement;
- ``after2``: the same with ``prune_chance: {after: 2}`` (the chance-level rule's first
  judgement after two reports), to choose that default by measurement; not run unless named;
- ``steps16``, ``quarter16``: the same with ``prune_chance: {min_steps: 16}`` (no judgement
  before 16 optimizer steps), with one report an epoch and with four; not run unless named
  (since 2026-12-07 16 is the default, so ``steps16`` is ``defaults`` written out);
- ``steps0``: the same with ``prune_chance: {min_steps: 0}``, the default before 2026-12-07;
  not run unless named;
- ``asha``: the same with ``pruner: asha`` (successive halving from one epoch, η = 3: a trial
  outside the best third of its rung stops after 1 epoch, then after 3), the multi-fidelity
  answer to the one-epoch baseline; not run unless named;
- ``asha-x3``: ``asha`` with three times ``--trials``: successive halving trains about a
  third of the epochs of a trial without pruning, so the same seconds buy three times the
  draws (is the lever more, cheaper draws rather than fewer seconds a draw?); not run unless
  named;
- ``median4``: the same with ``pruner: {name: median, warmup_epochs: 4}`` (the median pruner
  judges from epoch 4, not 3: curves that rise late have had longer to separate); not run
  unless named;
- ``independent``, ``independent-none``: the same with ``sampler: tpe-independent`` (TPE models
  each parameter on its own, as Hydra's sweeper does, instead of the set jointly), and that with
  ``pruner: none``; not run unless named;
- ``no-pruning``: the same with ``pruner: none`` (chance-level pruning stays on);
- ``hydra``: Hydra 1.3.8's submitit launcher + Optuna sweeper (TPE, ``n_jobs`` = slots, no
  pruning: its sweeper has none), installed into ``WORK/venv-hydra``; each trial is one Slurm
  job running ``wcd-hpc train`` with the sampled parameters (``benchmarks/quality/hydra_app.py``);
- ``one-epoch``: arXiv 2307.15422's baseline, driven by wcd-hpc in two sweeps: every one of the
  24 configurations trains one epoch (``epochs: 1``, ``pruner: none``), then a second study
  whose budget is the best K = trials/4 of them (``start_from: {top: K}``) trains them in full.
  Its times run from the first sweep's start and include the second array's start-up.

**Figures.** The target is the best validation value any race of the sitting reached, less a
margin the sitting measures: the larger of the repeat-to-repeat spread (per contender the IQR
of its races' final best values, the median over contenders) and the best trials' median 68 %
bootstrap half-width; a margin below either would reward luck. Per contender, median [min-max]
over repeats of (a) training seconds to the target (every trial's epoch seconds from its
``metrics.jsonl`` spent before the target was reached; a trial running then counts pro rata) and
(b) wall time to the target (a trial's value counts when its result exists); a repeat that never
reached it counts as infinitely late. Also the share of training seconds on chance-level trials
(pruned because ``chance``, or judged as ``benchmarks/chance_share.py`` judges them: last
validation AUC's 68 % interval holds 0.5), the slot-seconds Slurm allocated (``sacct``), pruned
trials, best validation value and its test value. Then defaults / Hydra and issue 24's goal,
each part MET or NOT MET: ≤ 0.4x Hydra's training seconds, ≤ 0.5x its wall time, ahead of
one-epoch on both, ≤ 5 % chance share. The PNG has a panel per repeat. Everything written goes
under ``--work`` (a temporary directory unless given; give one to reuse Hydra's environment and
the data); Ctrl-C cancels the running race's Slurm jobs; ``touch WORK/stop`` ends the sitting
after the running repeat and reports the repeats run so far.

**Time (measured).** The sitting of 2026-12-05 (24 x 6, 1,200 events, 5 repeats, four
contenders with ``no-pruning``) took 79 minutes on the 2-core development machine, with other
work niced beside it: a repeat 12-20 minutes (Hydra 5-11 of them, ``defaults`` 1.5-3); epochs of
1-8 s per task. That of 2026-12-06 (``defaults,quarter,hydra,one-epoch``, quiet) took 48
minutes; all five contenders would take about an hour. In the afternoon,
``defaults,after2,hydra`` took 40 minutes and ``--space default --contenders defaults,after2``
23. On 2026-12-07 ``--space default --contenders defaults,one-epoch,hydra`` took 48 minutes,
and 67 with ``--events 2000 --val-fraction 0.55``; ``--space default --metric roc_auc --events 1600
--val-fraction 0.45 --contenders defaults,asha,one-epoch,hydra`` took 60, and with ``--trials
48 --contenders defaults,hydra`` a repeat took 17 (Hydra 10-13 of them); ``--trials 48
--contenders median4,no-pruning,hydra`` took 81 minutes for five repeats (Hydra 6-9 a
repeat), and ``--contenders defaults,no-pruning`` 44; ``--contenders independent,defaults``
took 72 minutes for three repeats (19-28 a repeat); ``--contenders asha-x3,hydra`` 69 for
three (``asha-x3`` 8-14 a race, Hydra 11-15), and in a later sitting 113 for three
(``asha-x3`` 9-19, Hydra 20-26; why those races were slower was not measured);
``--contenders defaults,hydra`` 116 for five (``defaults`` 5-10 a race, Hydra 13-18).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "quality"))

from race_data import Race, choose_target
from race_report import NAMES, plot, print_goals, print_others, print_sitting, race_line
from race_run import (
    METRICS,
    SPACES,
    TEST_FRACTION,
    VAL_FRACTION,
    WCD,
    Setup,
    check_cluster,
    hard_data,
    hardest_range,
    hydra_python,
    run_hydra,
    run_wcd,
    say,
)

#: Contenders that each measured one question (a default of the chance-level rule, or
#: another pruner or sampler than the default): run only when named.
OPT_IN = (
    "after2",
    "steps16",
    "steps0",
    "quarter16",
    "asha",
    "asha-x3",
    "median4",
    "independent",
    "independent-none",
)
ROOT = Path(__file__).resolve().parents[1]
THREAD_VARS = ("WCD_HPC_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="races per contender (seed r)")
    parser.add_argument("--events", type=int, default=1200, help="simulated footprints")
    parser.add_argument("--trials", type=int, default=24, help="budget of trials per race")
    parser.add_argument("--epochs", type=int, default=6, help="at most this many per trial")
    parser.add_argument("--slots", type=int, default=4, help="GPU slots (Slurm tasks at once)")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=VAL_FRACTION,
        help=f"validation share of the events (default {VAL_FRACTION}; test {TEST_FRACTION}): "
        "more validation events make q_at_eff finer and the target's margin smaller",
    )
    parser.add_argument(
        "--metric",
        choices=METRICS,
        default=METRICS[0],
        help="the validation objective every contender maximizes and the target is set on "
        f"(default: {METRICS[0]}; roc_auc uses every validation event)",
    )
    parser.add_argument("--work", type=Path, help="keep everything here (default: a temp dir)")
    parser.add_argument(
        "--space",
        choices=SPACES,
        default="predecessor",
        help="lenet's search space, the same for every contender (default: predecessor)",
    )
    parser.add_argument(
        "--contenders",
        default=",".join(c for c in NAMES if c not in OPT_IN),
        help=f"a subset of {','.join(NAMES)} (default: all but {','.join(OPT_IN)})",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="'KEY: VALUE'",
        help="a top-level experiment line for every contender (Hydra's trials train with it "
        "too); a contender's own keys win (pruner of no-pruning and one-epoch)",
    )
    parser.add_argument("--png", type=Path, default=ROOT / "benchmarks/quality.png")
    args = parser.parse_args()
    args.contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    if not 0 < args.val_fraction < 1 - TEST_FRACTION:
        parser.error(f"--val-fraction: expected a share between 0 and {1 - TEST_FRACTION:.2f}")
    if any(":" not in line for line in args.set):
        parser.error("--set takes a YAML line 'KEY: VALUE', e.g. --set 'report_every: 0.25'")
    unknown = [c for c in args.contenders if c not in NAMES]
    if unknown or not args.contenders:
        parser.error(f"--contenders: unknown {unknown}; choose from {','.join(NAMES)}")
    return args


def sitting(args: argparse.Namespace, work: Path) -> list[Race]:
    """Every repeat of every contender, alternated; a contender that cannot run is dropped."""
    check_cluster(args.slots)
    python = hydra_python(work) if "hydra" in args.contenders else None
    setup = Setup(
        work=work,
        data=hard_data(work, args.events),
        events=args.events,
        trials=args.trials,
        epochs=args.epochs,
        slots=args.slots,
        sets=tuple(line.rstrip("\n") + "\n" for line in args.set),
        space=args.space,
        val_fraction=args.val_fraction,
        metric=args.metric,
    )
    races: list[Race] = []
    dropped: set[str] = set()
    for repeat in range(args.repeat):
        shift = repeat % len(args.contenders)
        for c in args.contenders[shift:] + args.contenders[:shift]:
            if c in dropped:
                continue
            if c == "hydra":
                assert python is not None
                race = run_hydra(repeat, setup, python)
            else:
                race = run_wcd(c, repeat, setup)
            say(f"  {NAMES[c]}, repeat {repeat}: {race_line(race)}")
            if race.error:
                say(f"  {NAMES[c]}: {race.error}")
                if not race.trials:
                    dropped.add(c)
                    say(f"  {NAMES[c]} dropped from the remaining repeats")
                    continue
            races.append(race)
        if (work / "stop").exists():  # `touch WORK/stop`: report the repeats run so far
            say(f"{work / 'stop'} found: the sitting ends after {repeat + 1} repeat(s)")
            break
    return races


def main() -> None:
    args = arguments()
    if not WCD.exists():
        sys.exit(f"{WCD} not found: run this with the wcd-hpc environment's python")
    temp = None if args.work else tempfile.mkdtemp(prefix="wcd-quality-")
    work = (args.work or Path(str(temp))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    for var in THREAD_VARS:  # this process and `sweep`: the tasks set their own from Slurm
        os.environ.setdefault(var, "1")
    lo, hi = hardest_range()
    workload = (
        f"lenet, gamma vs proton {lo:.0f}-{hi:.0f} GeV, {args.events} events "
        f"({args.val_fraction:.0%} validation), {args.metric}, "
        f"{args.trials} trials of at most {args.epochs} epochs on {args.slots} Slurm slots, "
        f"lenet's {args.space} space"
    ) + "".join(f"; {line}" for line in args.set)
    began = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    say(f"{workload}; {', '.join(args.contenders)}; {args.repeat} repeat(s); work dir {work}")
    try:
        races = sitting(args, work)
        target = choose_target(races)
        print(f"\nsitting {began} - {time.strftime('%H:%M UTC', time.gmtime())}: {workload}")
        for r in sorted(races, key=lambda r: (r.repeat, list(NAMES).index(r.contender))):
            print(f"  r{r.repeat} {NAMES[r.contender]:<24} {race_line(r)}")
        rows = print_sitting(races, target, args.metric)
        print_goals(rows)
        print_others(rows)
        title = f"{workload}\nbest validation {args.metric} against wall-clock time ({began})"
        plot(races, target, title, args.png, args.metric)
        say(f"wrote {args.png}")
    except KeyboardInterrupt:
        say("interrupted: the running race's Slurm jobs were cancelled")
        sys.exit(130)
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
