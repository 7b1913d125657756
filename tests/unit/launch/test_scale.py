"""64 real workers on one journal file end with exactly the budget and nothing claimed twice.

The workers run the real worker loop (``run_worker``: reaper pass, claim under the claim lock,
heartbeat thread, trial, tell) on the test plugins' ``sleep`` model. 64 processes that each
import torch would not fit a CI machine, so one process imports everything once and forks
them (copy-on-write keeps each to a few tens of MB, as in ``benchmarks/scale.py``). The forking
happens in a fresh interpreter (this file run as a script), not in the pytest process: a pytest
worker that has already trained networks in-process holds thread pools and locks a fork copies
half-taken, and its children can hang before they report. The figures a trial draws at its end
are switched off (``trial_plots: false``): 96 of them would take minutes of CPU on 2 cores and
have nothing to do with the queue. The grid sampler hands every parameter set out once, so a
duplicated parameter set would be a claim that escaped the lock.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

pytestmark = pytest.mark.slow
WORKERS = 64
BUDGET = 96
GRID = [round(0.2 + 0.003 * i, 3) for i in range(128)]  # seconds each trial sleeps
EXPERIMENT = f"""\
name: crowd
dataset: one-sample
model: sleep
metric: accuracy
trials: {BUDGET}
epochs: 1
pruner: none
sampler: grid
executor: local
workers: {WORKERS}
param_space: {{seconds: "choice({GRID})"}}
trial_plots: false
"""


def _worker(name: str, url: str, index: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    try:
        from wcd_hpc.engine.worker import run_worker

        out.put((index, "", run_worker(name, url, worker=f"w{index}").trials))
    except BaseException as exc:  # reported to the test, never a hang
        out.put((index, f"{type(exc).__name__}: {exc}", []))


def _run_workers(name: str, url: str) -> list[Any]:
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_worker, args=(name, url, i, out)) for i in range(WORKERS)]
    for proc in procs:
        proc.start()
    reports = []
    try:
        for _ in procs:
            reports.append(out.get(timeout=240))
    except queue.Empty:
        pass
    finally:
        for proc in procs:
            if proc.is_alive() and proc.pid is not None and len(reports) < WORKERS:
                os.kill(proc.pid, signal.SIGKILL)
            proc.join(timeout=30)
    return reports


def _crowd(folder: Path) -> None:
    """Create the study from ``folder/crowd.yaml``, fork the workers, print their reports as JSON.

    Runs in a fresh interpreter, with the environment the test gives it."""
    from wcd_hpc import plugins
    from wcd_hpc.engine import startup
    from wcd_hpc.launch.sweep import plan, start

    p = plan(folder / "crowd.yaml", plugins.get_registry())
    start(p)
    startup.warm_up_optimizers()  # once here rather than in each fork
    # What a finished trial imports lazily (the intervals' scipy, the metrics' sklearn): 64
    # forks importing it at once on 2 cores would starve their heartbeat threads for seconds.
    import scipy.stats  # noqa: F401
    import sklearn.metrics  # noqa: F401

    sys.stdout.flush()
    reports = _run_workers("crowd", p.url)
    print(json.dumps({"url": p.url, "run_dir": str(p.run_dir), "reports": reports}))


def test_64_forked_workers_on_a_journal_finish_exactly_the_budget_without_duplicates(
    testplugins: Path, tmp_path: Path
) -> None:
    from wcd_hpc.store.journal import check_journal
    from wcd_hpc.store.storage import open_storage

    (tmp_path / "crowd.yaml").write_text(EXPERIMENT + f"runs_dir: {tmp_path / 'runs'}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WCD_HPC_")}
    env.update(
        WCD_HPC_THREADS="1",
        OMP_NUM_THREADS="1",
        WCD_HPC_PLUGINS="toy",
        # A heartbeat is stale after 1.5 intervals. 64 processes on 2 busy cores starve one for
        # 3 s now and then, and a 2 s interval had its trial reaped alive and retried (1 run in
        # 6): 10 s keeps the reaper's pass in every claim without reaping the starved.
        WCD_HPC_HEARTBEAT_S="10",
        PYTHONPATH=os.pathsep.join(filter(None, [str(testplugins), env.get("PYTHONPATH")])),
    )
    done = subprocess.run(
        [sys.executable, __file__, str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    reports = result["reports"]

    assert len(reports) == WORKERS, "a worker neither finished nor failed"
    assert [r[1] for r in reports if r[1]] == []
    claimed = [n for r in reports for n in r[2]]
    trials = optuna.load_study(study_name="crowd", storage=open_storage(result["url"])).get_trials()
    assert sorted(claimed) == sorted(t.number for t in trials)  # each trial claimed once
    assert len(claimed) == len(set(claimed)) == BUDGET
    assert [t.state for t in trials] == [TrialState.COMPLETE] * BUDGET
    assert len({t.params["seconds"] for t in trials}) == BUDGET
    run_dir = Path(result["run_dir"])
    check_journal(run_dir / "journal.log")
    assert not list(run_dir.glob("*.lock"))


if __name__ == "__main__":
    _crowd(Path(sys.argv[1]))
