"""MLflow sync throughput: trials synced per second for a 200-trial study.

Run: ``.venv/bin/python benchmarks/sync.py [--trials 200]`` (about 8 minutes on a busy 2-core box).

Training 200 trials would take far longer than syncing them, so the study and its run directory
are synthetic but shaped like real ones: every trial has its parameters, 5 epochs of metrics,
test metrics, test predictions (1,000 events) and weights (a LeNet-sized ``state_dict``, ~60 kB).
They are synced to a real ``mlflow server`` on loopback (SQLite backend, proxied artifacts) and
to the embedded local store (``sqlite:///runs/mlflow.db``). Each is synced twice: the first
sync uploads everything (runs, metrics, plots drawn at sync time, weights), the second finds
every trial unchanged and only checks fingerprints.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import optuna
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from wcd_hpc.queue.schema import STUDY_BUDGET, STUDY_EXPERIMENT
from wcd_hpc.results.sync import sync_study

EPOCHS = 5
SPACE = {
    "lr": FloatDistribution(1e-4, 1e-2, log=True),
    "batch_size": IntDistribution(32, 256),
    "optimizer": CategoricalDistribution(["adam", "sgd"]),
}


def synthetic(root: Path, trials: int) -> optuna.Study:
    """A finished study of ``trials`` trials (5 % failed) and its run directory under ``root``."""
    rng = np.random.default_rng(0)
    run_dir = root / "bench"
    study = optuna.create_study(study_name="bench", direction="maximize")
    experiment = {"name": "bench", "model": "lenet", "metric": "f1", "epochs": EPOCHS}
    study.set_user_attr(STUDY_EXPERIMENT, experiment)
    study.set_user_attr(STUDY_BUDGET, trials)
    weights = {k: v.clone() for k, v in torch.nn.Conv2d(8, 16, 5).state_dict().items()}
    weights["fc.weight"] = torch.zeros(2, 7000)
    for n in range(trials):
        params = {
            "lr": float(10 ** rng.uniform(-4, -2)),
            "batch_size": int(rng.integers(32, 257)),
            "optimizer": str(rng.choice(["adam", "sgd"])),
        }
        failed = n % 20 == 19
        curve = np.clip(0.6 + 0.3 * rng.random() * np.arange(1, EPOCHS + 1) / EPOCHS, 0, 1)
        folder = run_dir / "trials" / str(n)
        folder.mkdir(parents=True)
        (folder / "params.json").write_text(json.dumps({"trial": n, "params": params, "seed": n}))
        lines = [
            {"epoch": e + 1, "train_loss": 1 - v, "seconds": 2.0, "val_f1": v}
            for e, v in enumerate(curve)
        ]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        attrs = {"host": "node01", "pid": 1000 + n, "worker": str(n % 4)}
        if failed:
            (folder / "error.txt").write_text("Traceback ...\nRuntimeError: CUDA out of memory\n")
            attrs["fail_reason"] = "RuntimeError: CUDA out of memory"
        else:
            test = {"f1": float(curve[-1]), "accuracy": float(curve[-1])}
            (folder / "result.json").write_text(json.dumps({"objective": curve[-1], "test": test}))
            y_true = rng.integers(0, 2, 1000)
            p = np.clip(0.5 + (y_true - 0.5) * curve[-1] + rng.normal(0, 0.2, 1000), 0, 1)
            y_score = np.stack([1 - p, p], axis=1).astype(np.float32)
            np.savez_compressed(folder / "predictions.npz", y_true=y_true, y_score=y_score)
            torch.save(weights, folder / "model.pt")
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.FAIL if failed else optuna.trial.TrialState.COMPLETE,
                value=None if failed else float(curve[-1]),
                params=params,
                distributions=SPACE,
                user_attrs=attrs,
                intermediate_values={e + 1: float(v) for e, v in enumerate(curve)},
            )
        )
    return study


def server(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mlflow = Path(sys.executable).parent / "mlflow"
    backend = f"sqlite:///{folder / 'server.db'}"
    args = ["server", "--backend-store-uri", backend, "--artifacts-destination", str(folder)]
    args += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(
        [str(mlflow), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2).close()
            return proc, uri
        except OSError:
            time.sleep(0.5)
    raise SystemExit("mlflow server did not start")


def timed(study: optuna.Study, run_dir: Path, uri: str) -> tuple[float, str]:
    began = time.perf_counter()
    report = sync_study(study, run_dir, uri)
    return time.perf_counter() - began, report.line()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    trials = parser.parse_args().trials
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="wcd-sync-bench-") as tmp:
        root = Path(tmp)
        began = time.perf_counter()
        study = synthetic(root, trials)
        print(f"synthetic study of {trials} trials in {time.perf_counter() - began:.1f} s")
        proc, uri = server(root / "server")
        try:
            targets = {
                "mlflow server (loopback)": uri,
                "local sqlite store": f"sqlite:///{root / 'mlflow.db'}",
            }
            for label, target in targets.items():
                for attempt in ("first sync", "second sync"):
                    seconds, line = timed(study, root / "bench", target)
                    print(
                        f"{label}, {attempt}: {seconds:.1f} s, {trials / seconds:.1f} trials/s"
                        f"  [{line.split(': ', 1)[1]}]"
                    )
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()


if __name__ == "__main__":
    main()
