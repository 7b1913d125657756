"""GPU economy on a GPU machine: trials per GPU, data on the device or the host, fp32 or bf16.

Run: ``.venv/bin/python benchmarks/gpu.py`` on a machine with one CUDA GPU (about 6-7 minutes on
an H200: about a minute to simulate 60,000 footprints, skipped when ``--dir`` already holds them,
then 16 configurations of about 20 s each). Without a GPU it says so in one line and exits 0.

What it measures. lenet (channels [14, 18], batch 256, Adam: fixed parameters) trains on the
42,000-event training split of the ``footprint-sim`` dataset (60,000 simulated 80×80 footprints,
gamma/proton, log1p-normalised exactly as trials see them) through wcd-hpc's own training loop,
:func:`wcd_hpc.engine.fit.fit`, in every combination of

- k = 1, 2, 4, 8 training processes on the one GPU at once (what ``resources.trials_per_gpu: k``
  makes an array task do; each process is a separate interpreter, as each worker is),
- the data on the device (moved by :func:`wcd_hpc.engine.device.place_data`, as a worker does)
  or on the host (batches gathered on the host and copied to the GPU each step),
- fp32 or bf16 autocast (``precision: fp32 | bf16``).

All k processes load the data, build the model and warm up (one short epoch: CUDA context,
kernels, allocator), then start together and train for the same fixed window (``--window``,
12 s) of whole batches; each counts the steps it completed, synchronises the GPU and reports
samples/s. A window rather than a fixed number of steps keeps all k processes competing for
the whole measurement (with fixed work the first to finish would leave the others a quieter
GPU) and keeps the run's length known in advance on a GPU whose speed is not.

Printed per configuration: samples/s per process (mean of the k), summed samples/s, the ratio of
the summed rate to k = 1 / host / fp32, peak GPU memory per process
(``torch.cuda.max_memory_allocated``, data included), the whole GPU's memory in use at its peak
(``nvidia-smi``, when present, other users included), and trials per GPU-hour, a trial being 10
epochs over the training split (the experiment default ``epochs: 10``). A configuration that
fails (out of memory, a crash, a timeout) is printed with its cause and the run goes on; the
table of what worked is always printed, and written as JSON (``--json``).

The figures in the README's benchmarks section are only those this script prints; none has
been measured yet.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HP = {"channels": [14, 18], "lr": 1e-3, "batch_size": 256, "optimizer": "adam"}
TRIAL_EPOCHS = 10  # what "a trial" means for trials per GPU-hour
SETUP_TIMEOUT_S = 240  # load, build, warm up: generous for 8 processes starting at once
BASELINE = (1, "host", "fp32")


# --------------------------------------------------------------------------------------------
# One training process (``gpu.py --child CONFIG``)


def child(cfg: dict[str, Any]) -> None:
    """Train for the window after the common start; print one JSON line of results."""
    import warnings

    import numpy as np
    import torch

    from wcd_hpc.api import DataSpec, Split, Splits
    from wcd_hpc.engine.device import place_data
    from wcd_hpc.engine.fit import Interrupted, fit
    from wcd_hpc.plugins import get_registry

    torch.set_num_threads(int(cfg["threads"]))
    device = torch.device(cfg["device"])
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    data = Path(cfg["data"])
    x = torch.from_numpy(np.load(data / "train_x.npy", mmap_mode="r"))
    y = torch.from_numpy(np.load(data / "train_y.npy"))
    meta = json.loads((data / "spec.json").read_text())
    spec = DataSpec(tuple(meta["input_shape"]), int(meta["num_classes"]), tuple(meta["classes"]))
    if cfg["where"] == "host":
        x = x.clone()  # in memory, as a worker holds its in-memory splits
        train = Split(x, y, {})
        on_gpu = False
    else:
        tiny = Split(x[:1].clone(), y[:1], {})
        placed, on_gpu = place_data(
            Splits(Split(x, y, {}), tiny, tiny, spec), device, True, sharing=int(cfg["k"])
        )
        train = placed.train
    model = get_registry().models["lenet"].obj.build(HP, spec).to(device)
    cuda = device.type == "cuda"
    warm = Split(train.x[:4096], train.y[:4096], {})
    fit(model, warm, HP, epochs=1, seed=0, device=device, precision=cfg["precision"])
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    Path(cfg["ready"]).write_text("ready")
    go = Path(cfg["go"])
    deadline = time.monotonic() + SETUP_TIMEOUT_S
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit("no start signal from the parent")
        time.sleep(0.002)
    began = time.perf_counter()
    end = began + float(cfg["window"])
    steps = 0

    def stop() -> bool:  # the training loop asks before every batch
        nonlocal steps
        if time.perf_counter() >= end:
            return True
        steps += 1
        return False

    precision = cfg["precision"]
    with contextlib.suppress(Interrupted):
        fit(model, train, HP, epochs=10**6, seed=1, device=device, precision=precision, stop=stop)
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - began
    samples = steps * int(HP["batch_size"])
    print(
        json.dumps(
            {
                "samples_per_s": samples / wall,
                "steps": steps,
                "wall_s": wall,
                "peak_bytes": torch.cuda.max_memory_allocated() if cuda else None,
                "data_on_gpu": on_gpu,
                "train_events": len(train),
            }
        ),
        flush=True,
    )


# --------------------------------------------------------------------------------------------
# The parent: data, configurations, table


@dataclass
class Result:
    k: int
    where: str
    precision: str
    ok: bool = False
    error: str = ""
    per_trial: float = 0.0
    summed: float = 0.0
    peak_mib: float | None = None
    smi_mib: float | None = None
    data_on_gpu: bool | None = None
    train_events: int = 0
    seconds: float = 0.0
    rates: list[float] = field(default_factory=list)

    def trials_per_gpu_hour(self) -> float:
        return self.summed * 3600 / (TRIAL_EPOCHS * self.train_events) if self.train_events else 0


def prepare_data(directory: Path, events: int) -> Path:
    """Simulate (or reuse) the footprints and save the training split as .npy once."""
    import numpy as np

    from wcd_hpc.default_plugins import footprint_sim

    out = directory / f"train-{events}"
    if (out / "spec.json").exists():
        print(f"data: reusing {out}", flush=True)
        return out
    cache = directory / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    params = {"events": events, "in_memory": True}
    if not footprint_sim.cache_path(footprint_sim.validate(params), str(cache)).exists():
        print(f"simulating {events:,} footprints into {cache} (about a minute) …", flush=True)
    splits = footprint_sim.load(params, 0, str(cache))
    out.mkdir(parents=True, exist_ok=True)
    x, y = splits.train.x, splits.train.y
    np.save(out / "train_x.npy", x.numpy())  # type: ignore[union-attr]
    np.save(out / "train_y.npy", y.numpy())
    spec = splits.spec
    (out / "spec.json").write_text(
        json.dumps(
            {
                "input_shape": list(spec.input_shape),
                "num_classes": spec.num_classes,
                "classes": list(spec.class_names),
            }
        )
    )
    print(f"data: {len(y):,} training events ready in {time.perf_counter() - began:.0f}s")
    return out


class SmiSampler(threading.Thread):
    """Peak ``nvidia-smi`` memory.used of the GPU while a configuration trains."""

    def __init__(self, gpu: str) -> None:
        super().__init__(daemon=True)
        self.gpu, self.peak, self.done = gpu, None, threading.Event()
        self.available = shutil.which("nvidia-smi") is not None

    def sample(self) -> float | None:
        cmd = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"]
        try:
            out = subprocess.run(
                [*cmd, "-i", self.gpu], capture_output=True, text=True, timeout=10
            ).stdout
            return float(out.strip().splitlines()[0])
        except Exception:
            return None

    def run(self) -> None:
        while self.available and not self.done.is_set():
            used = self.sample()
            if used is not None:
                self.peak = used if self.peak is None else max(self.peak, used)
            self.done.wait(0.5)


def _kill(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                p.kill()
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=30)


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def run_config(args: argparse.Namespace, data: Path, work: Path, res: Result) -> None:
    """Start k processes, release them together, collect their rates (raises on failure)."""
    tag = f"k{res.k}-{res.where}-{res.precision}"
    go = work / f"{tag}.go"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[tuple[Path, Path]] = []
    began = time.perf_counter()
    try:
        for i in range(res.k):
            cfg = {
                "k": res.k, "where": res.where, "precision": res.precision,
                "device": args.device, "threads": max(1, (cores or 1) // res.k),
                "data": str(data), "window": args.window, "go": str(go),
                "ready": str(work / f"{tag}.{i}.ready"),
            }  # fmt: skip
            out, err = work / f"{tag}.{i}.out", work / f"{tag}.{i}.err"
            logs.append((out, err))
            with out.open("wb") as o, err.open("wb") as e:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, __file__, "--child", json.dumps(cfg)],
                        stdout=o,
                        stderr=e,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        while len(list(work.glob(f"{tag}.*.ready"))) < res.k:
            dead = [i for i, p in enumerate(procs) if p.poll() is not None]
            if dead:
                i = dead[0]
                raise RuntimeError(
                    f"process {i} exited {procs[i].returncode} before starting: {_tail(logs[i][1])}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"not all {res.k} processes were ready in {SETUP_TIMEOUT_S}s")
            time.sleep(0.05)
        smi = SmiSampler(args.smi_gpu)
        smi.start()
        go.write_text("go")
        rates, peaks = [], []
        for i, p in enumerate(procs):
            try:
                p.wait(timeout=args.window + 120)
            except subprocess.TimeoutExpired:
                raise RuntimeError(
                    f"process {i} still training {args.window + 120:.0f}s in"
                ) from None
            lines = [ln for ln in logs[i][0].read_text().splitlines() if ln.startswith("{")]
            if p.returncode != 0 or not lines:
                raise RuntimeError(f"process {i} exited {p.returncode}: {_tail(logs[i][1])}")
            got = json.loads(lines[-1])
            rates.append(float(got["samples_per_s"]))
            if got["peak_bytes"] is not None:
                peaks.append(got["peak_bytes"] / 2**20)
            res.data_on_gpu = bool(got["data_on_gpu"])
            res.train_events = int(got["train_events"])
        smi.done.set()
        smi.join(timeout=15)
        res.rates = rates
        res.per_trial = sum(rates) / len(rates)
        res.summed = sum(rates)
        res.peak_mib = max(peaks) if peaks else None
        res.smi_mib = smi.peak
        res.ok = True
    finally:
        _kill(procs)
        res.seconds = time.perf_counter() - began


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def table(results: list[Result]) -> str:
    base = next((r for r in results if r.ok and (r.k, r.where, r.precision) == BASELINE), None)
    head = (
        f"{'k':>2} {'data':<6} {'prec':<5} {'samples/s/trial':>15} {'summed':>9} "
        f"{'ratio':>6} {'peak MiB/proc':>13} {'GPU MiB':>8} {'trials/GPU-h':>12}"
    )
    rows = [head, "-" * len(head)]
    for r in results:
        if not r.ok:
            rows.append(f"{r.k:>2} {r.where:<6} {r.precision:<5} failed: {r.error}")
            continue
        ratio = r.summed / base.summed if base and base.summed else None
        note = "" if r.where == "host" or r.data_on_gpu else "  (data stayed on the host)"
        rows.append(
            f"{r.k:>2} {r.where:<6} {r.precision:<5} {_fmt(r.per_trial):>15} "
            f"{_fmt(r.summed):>9} {_fmt(ratio, '.2f'):>6} {_fmt(r.peak_mib):>13} "
            f"{_fmt(r.smi_mib):>8} {_fmt(r.trials_per_gpu_hour(), ',.1f'):>12}{note}"
        )
    return "\n".join(rows)


def describe_machine(device: str) -> None:
    import torch

    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {os.cpu_count()} CPU cores")
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        bf16 = torch.cuda.is_bf16_supported()
        print(
            f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability "
            f"{props.major}.{props.minor}, bf16 {'supported' if bf16 else 'NOT supported'}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=60000, help="footprints to simulate")
    parser.add_argument("--dir", type=Path, help="keep the data here (reused when present)")
    parser.add_argument("--window", type=float, default=12.0, help="seconds each config trains")
    parser.add_argument("--ks", default="1,2,4,8", help="processes per GPU to try")
    parser.add_argument("--max-minutes", type=float, default=9.0, help="skip configs after this")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--cpu", action="store_true", help=argparse.SUPPRESS)  # harness check
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return 0
    import torch

    from wcd_hpc.engine.startup import visible_gpus

    started = time.perf_counter()
    if not torch.cuda.is_available() and not args.cpu:
        print("benchmarks/gpu.py: no CUDA GPU here (torch.cuda.is_available() is False); skipped")
        return 0
    args.device = "cpu" if args.cpu else "cuda"
    args.smi_gpu = (visible_gpus() or ["0"])[0]
    ks = [int(k) for k in args.ks.split(",") if k.strip()]
    configs = list(itertools.product(ks, ("host", "device"), ("fp32", "bf16")))
    per_config = args.window + 8
    print(
        f"benchmarks/gpu.py: {len(configs)} configurations × about {per_config:.0f}s, plus about "
        f"a minute to simulate {args.events:,} footprints when not cached: expected about "
        f"{(len(configs) * per_config + 60) / 60:.0f} minutes (configurations not started within "
        f"{args.max_minutes:g} minutes are skipped)",
        flush=True,
    )
    results: list[Result] = []
    work = Path(tempfile.mkdtemp(prefix="wcd-gpu-bench-"))
    try:
        describe_machine(args.device)
        directory = args.dir or work
        data = prepare_data(directory, args.events)
        for k, where, precision in configs:
            res = Result(k, where, precision)
            results.append(res)
            if (time.perf_counter() - started) / 60 > args.max_minutes:
                res.error = f"skipped: past --max-minutes {args.max_minutes:g}"
                print(f"k={k} {where} {precision}: {res.error}", flush=True)
                continue
            try:
                run_config(args, data, work, res)
                print(
                    f"k={k} {where} {precision}: {res.summed:,.0f} samples/s summed "
                    f"({', '.join(f'{r:,.0f}' for r in res.rates)}) in {res.seconds:.0f}s",
                    flush=True,
                )
            except Exception as exc:
                res.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                print(f"k={k} {where} {precision}: FAILED {res.error}", flush=True)
    except BaseException:
        print("benchmark stopped early:", flush=True)
        traceback.print_exc()
    finally:
        print()
        print(
            f"lenet {HP['channels']}, batch {HP['batch_size']}, {args.window:g}s per "
            f"configuration; trials/GPU-h: trials of {TRIAL_EPOCHS} epochs over the training split"
        )
        print(table(results))
        out = args.json or Path("gpu-results.json")
        try:
            out.write_text(json.dumps([asdict(r) for r in results], indent=1))
            print(f"results: {out}")
        except OSError as exc:
            print(f"results not written: {exc}")
        print(f"total {time.perf_counter() - started:.0f}s")
        shutil.rmtree(work, ignore_errors=True)  # the data too, unless --dir keeps them
    return 0


if __name__ == "__main__":
    sys.exit(main())
