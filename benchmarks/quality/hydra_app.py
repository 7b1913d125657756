"""The Hydra contender's task function (runs in its own environment: hydra-optuna-sweeper 1.3.0
pins optuna 2.10.1, so wcd-hpc cannot be imported here).

Each trial is one Slurm job that submitit submitted; it runs the main environment's
``wcd-hpc train EXPERIMENT --set param_space.…=…`` with every parameter of the space fixed, and
returns the validation objective from the run's ``result.json``. So the training is wcd-hpc's own
and only the orchestration differs. A JSON record per trial (start, end, run directory, objective
and its interval, the same metric on test) goes to ``records/`` for ``benchmarks/quality.py``,
which reads the epochs' seconds from the run directory itself. The trial's ``wcd-hpc`` gets the
benchmark's ``PYTHONPATH`` back (``WCD_RACE_PYTHONPATH``: this environment runs without it).

    python hydra_app.py -m wcd=… experiment=… runs_dir=… records=… hydra.sweep.dir=…
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

THREAD_VARS = ("WCD_HPC_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _write(path: Path, record: dict[str, object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def trial(cfg: DictConfig) -> float:
    num = HydraConfig.get().job.num
    name = f"{cfg.tag}-{num}"  # one name per trial: concurrent `train`s of one name collide
    params = {
        "lr": float(cfg.lr),
        "batch_size": int(cfg.batch_size),
        "optimizer": str(cfg.optimizer),
        "reg": float(cfg.reg),
        "channels": [int(cfg.ch1), int(cfg.ch2)],
    }
    sets = [f"name={name}", f"seed={int(cfg.seed) + num}"]
    sets += [f"param_space.{k}={v if isinstance(v, str) else repr(v)}" for k, v in params.items()]
    cmd = [str(cfg.wcd), "train", str(cfg.experiment), "--runs-dir", str(cfg.runs_dir)]
    for s in sets:
        cmd += ["--set", s]
    # What wcd-hpc's sbatch script exports: thread pools at the task's --cpus-per-task.
    threads = os.environ.get("SLURM_CPUS_PER_TASK", "1")
    env = {**os.environ, **dict.fromkeys(THREAD_VARS, threads)}
    if os.environ.get("WCD_RACE_PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["WCD_RACE_PYTHONPATH"]
    records = Path(cfg.records)
    records.mkdir(parents=True, exist_ok=True)
    record: dict[str, object] = {
        "number": num,
        "params": params,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_array_job_id": os.environ.get("SLURM_ARRAY_JOB_ID"),
        "slurm_array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
        "started": time.time(),
    }
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    record["finished"] = time.time()
    if proc.returncode != 0:
        record["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        _write(records / f"trial-{num}.json", record)
        raise RuntimeError(f"wcd-hpc train failed ({proc.returncode}): {record['error']}")
    run_dir = next(
        line.removeprefix("files: ").strip()
        for line in proc.stdout.splitlines()
        if line.startswith("files: ")
    )
    result = json.loads((Path(run_dir) / "result.json").read_text())
    record.update(
        run_dir=run_dir,
        objective=float(result["objective"]),
        objective_lo=result.get("objective_lo"),
        objective_hi=result.get("objective_hi"),
        test=result["test"].get(result["metric"]),
    )
    _write(records / f"trial-{num}.json", record)
    return float(result["objective"])


if __name__ == "__main__":
    trial()
