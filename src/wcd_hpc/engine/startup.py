"""Process start-up: the imports, plugin loading and data loading before a worker's first trial.

A sweep starts all its workers at once, often more of them than a login node or a small
allocation has cores, so start-up CPU time is time on the critical path of every sweep. Two
things make it cheaper without changing what runs:

- Cyclic garbage collection is paused while modules load. Importing torch creates millions of
  long-lived objects and each allocation burst triggers a collection that walks them all again
  for nothing; pausing it saves about a sixth of a worker's start-up CPU
  (``benchmarks/startup.py``). What exists at the end is frozen (never scanned again), which
  also keeps later collections in the training loop short.
- torch.optim imports ``torch._dynamo`` the first time any optimizer is built (about 1 s of
  CPU with torch 2.x); :func:`warm_up_optimizers` does that inside the pause, not in trial 0.

Every process entry point (the ``wcd-hpc`` command, a Slurm array task) sets up logging the
same way, with :func:`configure_logging`.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from wcd_hpc.store.urls import MaskSecrets

#: Torch threads for a worker, set by the launchers (a share of the cores, or Slurm's
#: ``--cpus-per-task``); read when the worker starts.
ENV_THREADS = "WCD_HPC_THREADS"
#: The native thread pools (OpenMP, OpenBLAS, MKL) a launcher sizes to the same share of cores.
THREAD_POOL_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: How many workers share this worker's GPU (set by the launchers; 1 when unset): what its data
#: may take of the GPU's memory and what share of the GPU its trials are charged.
ENV_WORKERS_PER_GPU = "WCD_HPC_WORKERS_PER_GPU"


def gpu_ids(value: str | None) -> list[str] | None:
    """The GPUs a ``CUDA_VISIBLE_DEVICES``-style value names (``"0,2"`` -> ``["0", "2"]``).

    None when it says nothing: unset, or Slurm's ``NoDevFiles`` (gres without device files);
    an empty list when it hides every GPU (``""``, as launchers set it for CPU workers).
    """
    if value is None or value.strip() == "NoDevFiles":
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


#: Where Slurm names a task's GPUs, most specific first (a step's, then the job's); Slurm also
#: sets CUDA_VISIBLE_DEVICES for gres GPUs, which is read before these.
SLURM_GPU_VARS = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS")


def gpu_count() -> int:
    """GPUs torch sees (torch imported only here, when no variable names the GPUs)."""
    try:
        import torch

        return int(torch.cuda.device_count())
    except Exception:
        return 0


def visible_gpus(env: Mapping[str, str] = os.environ) -> list[str]:
    """The GPU ids this process may hand out to workers, as CUDA_VISIBLE_DEVICES names them.

    ``CUDA_VISIBLE_DEVICES`` when it is set (by the user, or by Slurm for ``--gres`` GPUs: then
    it names exactly the task's GPUs, in the numbering the CUDA runtime of the task uses); else
    the GPUs Slurm lists for the step or job; else every GPU torch sees (0 … n-1).
    """
    ids = gpu_ids(env.get("CUDA_VISIBLE_DEVICES"))
    for var in SLURM_GPU_VARS:
        if ids is None:
            ids = gpu_ids(env.get(var))
    return ids if ids is not None else [str(i) for i in range(gpu_count())]


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause cyclic GC for the block; then freeze what survived and restore the GC state."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def warm_up_optimizers() -> None:
    """Build and step a throwaway optimizer so torch.optim's lazy imports happen now."""
    import torch

    weight = torch.zeros(1, requires_grad=True)
    weight.grad = torch.zeros(1)
    torch.optim.SGD([weight], lr=0.0).step()


def configure_logging() -> None:
    """Our own INFO lines (worker progress) on stderr, secrets masked; other libraries only from
    WARNING up, so that a user error stays one line whatever pandas, numexpr or mlflow like to
    announce."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskSecrets) for f in handler.filters):
            handler.addFilter(MaskSecrets())
    logging.getLogger("wcd_hpc").setLevel(logging.INFO)
    for chatty in ("optuna", "mlflow", "alembic"):  # they bring handlers of their own
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # mlflow resets its logger to INFO when it is first imported (lazily, by `sync`), unless told
    # otherwise; a user's own MLFLOW_LOGGING_LEVEL wins.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
