"""Data-path figures: peak memory training lenet on a 60,000-event file, loading vs training
throughput, and simulator speed.

Run: ``.venv/bin/python benchmarks/data.py [--events 60000] [--dir DIR]`` (about 5 minutes on 2
CPU cores, most of it simulating the file; an existing file in ``--dir`` is reused).

1. Simulator speed: footprints and station traces, events/s (written to HDF5, gzip-1).
2. HDF5 loading throughput: a full lazy pass (``footprint-h5``, log1p, block-shuffled reads as
   the training loop does them), events/s.
3. Training throughput and peak resident memory: one epoch of lenet (channels [14, 18], batch
   180, adam: the predecessor's best CNN) in a fresh process on the lazily read file; peak RSS
   from ``getrusage`` (the predecessor needed 3.1–3.6 GiB for the same size; goal <= 1 GiB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, resource, sys, time, torch
from wcd_hpc.default_plugins import h5_datasets
from wcd_hpc.engine.fit import fit, _lazy_batches
from wcd_hpc.plugins import load_registry
torch.set_num_threads({threads})
splits = h5_datasets.load("footprint-h5", {{"path": sys.argv[1], "in_memory": False}}, 0, "")
train = splits.train
began = time.perf_counter()
n = 0
for xb, yb in _lazy_batches(train.x, train.y, 180, torch.Generator().manual_seed(0)):
    n += len(yb)
load_s = time.perf_counter() - began
lenet = load_registry(external=False).models["lenet"].obj
hp = {{"channels": [14, 18], "lr": 1.77e-3, "batch_size": 180, "optimizer": "adam"}}
model = lenet.build(hp, splits.spec)
stats = []
fit(model, train, hp, epochs=1, seed=0, device=torch.device("cpu"), after_epoch=stats.append)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"events": n, "load_per_s": n / load_s, "train_per_s": stats[0].samples_per_s,
                  "train_events": len(train), "peak_rss": peak}}))
"""


def simulate(path: Path, events: int) -> float:
    from wcd_hpc.sim.footprints import write_footprints

    began = time.perf_counter()
    write_footprints(path, ["iron", "proton"], events, seed=1)
    return events / (time.perf_counter() - began)


def trace_speed(directory: Path, events: int = 20000) -> float:
    from wcd_hpc.sim.traces import write_traces

    began = time.perf_counter()
    write_traces(directory / "traces.h5", events, seed=1)
    return events / (time.perf_counter() - began)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=60000)
    ap.add_argument("--dir", type=Path, default=None, help="keep / reuse the file here")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory() if args.dir is None else None
    directory = Path(tmp.name) if tmp else args.dir
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"footprints-{args.events}.h5"
    print(f"machine: {os.cpu_count()} CPUs")
    if path.exists():
        print(f"simulator: reusing {path} (delete it to time the simulator)")
    else:
        rate = simulate(path, args.events)
        print(f"simulator: footprints {rate:,.0f} events/s (80x80, iron+proton, to HDF5)")
    print(f"simulator: station traces {trace_speed(directory):,.0f} events/s (4 PMT x 100 samples)")
    size = path.stat().st_size / 2**20
    print(f"file: {args.events:,} footprints, {size:,.0f} MiB on disk (gzip-1)")
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(threads=os.cpu_count() or 1), str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    fig = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"loading (lazy HDF5, log1p, block-shuffled): {fig['load_per_s']:,.0f} events/s; "
        f"training lenet [14, 18], batch 180, CPU: {fig['train_per_s']:,.0f} events/s "
        f"-> loading is {fig['load_per_s'] / fig['train_per_s']:.0f}x faster than training"
    )
    print(
        f"peak resident memory, one epoch on {fig['train_events']:,} training events: "
        f"{fig['peak_rss'] / 2**30:.2f} GiB (goal <= 1 GiB; predecessor 3.1-3.6 GiB)"
    )
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
