"""64 real workers on one journal file end with exactly the budget and nothing claimed twice.

The workers run the real worker loop (``run_worker``: reaper pass, claim under the claim lock,
heartbeat thread, trial, tell) on the test plugins' ``sleep`` model. 64 processes that each
import torch would not fit a CI machine, so the test process imports everything once and forks
them (copy-on-write keeps each to a few tens of MB, as in ``benchmarks/scale.py``). The figures
a trial draws at its end are skipped: 96 of them would take minutes of CPU on 2 cores and have
nothing to do with the queue. The grid sampler hands every parameter set out once, so a
duplicated parameter set would be a claim that escaped the lock.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
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


def test_64_forked_workers_on_a_journal_finish_exactly_the_budget_without_duplicates(
    testplugins: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wcd_hpc import plugins
    from wcd_hpc.engine import startup
    from wcd_hpc.engine import trial as trial_module
    from wcd_hpc.launch.sweep import plan, start
    from wcd_hpc.store.journal import check_journal
    from wcd_hpc.store.storage import open_storage

    monkeypatch.syspath_prepend(str(testplugins))
    for var in ("WCD_HPC_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("WCD_HPC_PLUGINS", "toy")
    monkeypatch.setenv("WCD_HPC_HEARTBEAT_S", "2")
    monkeypatch.delenv("WCD_HPC_STORAGE", raising=False)
    monkeypatch.setattr(plugins, "_CACHE", None)  # the registry with the test plugins in it
    monkeypatch.setattr(trial_module, "write_plots", lambda *args, **kwargs: None)
    monkeypatch.chdir(tmp_path)
    exp = tmp_path / "crowd.yaml"
    exp.write_text(EXPERIMENT + f"runs_dir: {tmp_path / 'runs'}\n")
    p = plan(exp, plugins.get_registry())
    start(p)
    startup.warm_up_optimizers()  # once here rather than in each fork
    # What a finished trial imports lazily (the intervals' scipy, the metrics' sklearn): 64
    # forks importing it at once on 2 cores would starve their heartbeat threads for seconds.
    import scipy.stats  # noqa: F401
    import sklearn.metrics  # noqa: F401

    sys.stdout.flush()

    reports = _run_workers("crowd", p.url)

    assert len(reports) == WORKERS, "a worker neither finished nor failed"
    assert [r[1] for r in reports if r[1]] == []
    claimed = [n for r in reports for n in r[2]]
    trials = optuna.load_study(study_name="crowd", storage=open_storage(p.url)).get_trials()
    assert sorted(claimed) == sorted(t.number for t in trials)  # each trial claimed once
    assert len(claimed) == len(set(claimed)) == BUDGET
    assert [t.state for t in trials] == [TrialState.COMPLETE] * BUDGET
    assert len({t.params["seconds"] for t in trials}) == BUDGET
    check_journal(p.run_dir / "journal.log")
    assert not list(p.run_dir.glob("*.lock"))
