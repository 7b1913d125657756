"""How a worker uses its GPU: its share of it, data resident on it, precision and compile.

Small WCD models use a few per cent of a modern GPU, so a worker's throughput is decided by
what surrounds the model: copying every batch from the host, fp32 arithmetic on tensor cores
built for bf16, and one worker alone on a device that could train several trials at once
(``resources.trials_per_gpu``). What the experiment asks for (``wcd_hpc.experiment.training``)
is resolved here, once per worker, for the device it actually got:

- **Data on the device.** In-memory splits are copied to the GPU once and reused by every
  trial of the worker; batches are then gathered on the device. Each worker process holds its
  own copy (CUDA tensors cannot be shared between processes without IPC handles), so with k
  workers on one GPU ``auto`` lets the data take at most 1/(2k) of the free memory, leaving the
  rest for activations. Lazily read files stay on the host (pinned, copied asynchronously).
- **Precision.** ``auto`` is bf16 autocast where the GPU has bf16 units, fp16 with a gradient
  scaler on older GPUs (bf16 without hardware support is emulated and slow), fp32 on the CPU.
- **GPU share.** A trial's GPU-hours are its training time times the GPUs its worker holds,
  divided by the workers sharing them: what ``status`` charges it and sums for the idle fraction.
- **compile.** ``torch.compile`` is checked at worker start where it is known not to work; a
  failure found while compiling fails the trial with the cause.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from wcd_hpc.api import Split, Splits
from wcd_hpc.engine.startup import ENV_WORKERS_PER_GPU, visible_gpus
from wcd_hpc.errors import ConfigError, DataError, one_line
from wcd_hpc.experiment.config import Experiment
from wcd_hpc.queue.schema import (
    TRIAL_COMPILED,
    TRIAL_DATA_ON_GPU,
    TRIAL_GPU_SHARE,
    TRIAL_PRECISION,
)

log = logging.getLogger("wcd_hpc.worker")

#: Of the GPU's free memory, the part ``data_on_device: auto`` lets the data of all workers
#: sharing the GPU take together; the rest is for activations, weights and optimizer state.
AUTO_SHARE = 0.5
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


class CompileError(ConfigError, DataError):
    """``compile: true`` where ``torch.compile`` cannot work: every trial would fail the same
    way, so the worker stops on it as on unusable data (and says which key to change)."""


@dataclass(frozen=True)
class Placement:
    """What a worker decided for its device, recorded on every trial it runs."""

    precision: str = "fp32"
    compiled: bool = False
    data_on_gpu: bool = False
    #: GPUs held divided by the workers sharing them (0 without a GPU).
    gpu_share: float = 0.0

    def attrs(self) -> dict[str, Any]:
        """The trial user attributes that record this placement."""
        return {
            TRIAL_PRECISION: self.precision,
            TRIAL_COMPILED: self.compiled,
            TRIAL_DATA_ON_GPU: self.data_on_gpu,
            TRIAL_GPU_SHARE: round(self.gpu_share, 6),
        }


def workers_per_gpu(env: Mapping[str, str] = os.environ) -> int:
    """How many workers share this worker's GPU, as its launcher said (1 when it said nothing)."""
    try:
        return max(1, int(env.get(ENV_WORKERS_PER_GPU) or 1))
    except ValueError:
        return 1


def gpu_share(env: Mapping[str, str] = os.environ) -> float:
    """GPUs this worker holds over the workers sharing them.

    The GPUs are found as the launchers find them (:func:`~wcd_hpc.engine.startup.visible_gpus`:
    ``CUDA_VISIBLE_DEVICES``, else what Slurm lists, else what torch sees), so the share follows
    the allocation Slurm charges, whether or not the worker could use the device.
    """
    return len(visible_gpus(env)) / workers_per_gpu(env)


def _bf16_hardware() -> bool:
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # a torch without the emulation switch
        return bool(torch.cuda.is_bf16_supported())


def choose_precision(setting: str, device: torch.device) -> str:
    """``fp32``, ``bf16`` or ``fp16``: what ``precision: setting`` means on ``device``."""
    if setting != "auto":
        return setting
    if device.type != "cuda":
        return "fp32"
    return "bf16" if _bf16_hardware() else "fp16"


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision; None for fp32 (no autocast)."""
    return AUTOCAST.get(precision)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def data_bytes(splits: Splits) -> int | None:
    """Bytes of every split's inputs and labels; None when any input is read lazily."""
    total = 0
    for split in (splits.train, splits.val, splits.test):
        if not isinstance(split.x, torch.Tensor):
            return None
        total += split.x.nbytes + split.y.nbytes
    return total


def data_fits(setting: bool | str, nbytes: int, free: int, sharing: int) -> bool:
    """Whether data of ``nbytes`` go on a GPU with ``free`` bytes shared by ``sharing`` workers.

    ``auto``: at most 1/(2k) of the free memory each, so k workers that all load their copy leave
    half of the GPU for activations; ``true``: whenever the data fit at all; ``false``: never.
    """
    if setting is False:
        return False
    limit = free if setting is True else free * AUTO_SHARE / max(1, sharing)
    return nbytes <= limit


def _on(device: torch.device, split: Split) -> Split:
    """``split`` with inputs and labels on ``device`` (its per-event metadata stays on the host)."""
    assert isinstance(split.x, torch.Tensor)
    return Split(split.x.to(device), split.y.to(device), split.meta)


def place_data(
    splits: Splits, device: torch.device, setting: bool | str, sharing: int
) -> tuple[Splits, bool]:
    """The splits on ``device`` when they are tensors and fit (see :func:`data_fits`).

    Returns the splits to train on and whether they moved. On the CPU nothing changes.
    """
    if device.type != "cuda" or setting is False:
        return splits, False
    nbytes = data_bytes(splits)
    if nbytes is None:
        if setting is True:
            log.warning("data_on_device: true: inputs read lazily from a file stay on the host")
        return splits, False
    free, _ = torch.cuda.mem_get_info(device)
    if not data_fits(setting, nbytes, free, sharing):
        log.info(
            "data stay on the host: %.2f GiB, %.2f GiB free on %s shared by %d worker(s)",
            nbytes / 2**30,
            free / 2**30,
            device,
            sharing,
        )
        return splits, False
    parts = (_on(device, splits.train), _on(device, splits.val), _on(device, splits.test))
    out = Splits(*parts, splits.spec)
    log.info("data on %s: %.2f GiB, reused by every trial of this worker", device, nbytes / 2**30)
    return out, True


def check_compile(exp: Experiment) -> None:
    """Refuse ``compile: true`` at worker start where torch.compile is known not to work."""
    if not exp.compile:
        return
    reason = None
    try:
        from torch._dynamo.eval_frame import is_dynamo_supported

        if not is_dynamo_supported():
            reason = "torch.compile is not supported with this Python or platform"
    except Exception as exc:  # an incomplete torch build
        reason = f"torch.compile is unavailable ({one_line(exc)})"
    if reason is not None:
        raise CompileError(
            exp.origins.get("compile") or exp.source,
            "compile",
            None if exp.origins.get("compile") else exp.lines.get("compile"),
            f"{reason}; set compile: false",
        )


def compiled(model: nn.Module) -> nn.Module:
    """``torch.compile(model)``; compiling happens at the first batch, where it may fail."""
    return torch.compile(model)  # type: ignore[return-value]


def compile_failed(exc: BaseException) -> RuntimeError:
    """The trial's failure when ``torch.compile`` raised: the cause and the key to change."""
    return RuntimeError(f"compile: torch.compile failed ({one_line(exc)}); set compile: false")


def is_compile_error(exc: BaseException) -> bool:
    """Whether ``exc`` came out of torch.compile (Dynamo or a backend such as Inductor)."""
    try:
        from torch._dynamo.exc import TorchDynamoException
    except ImportError:
        return False
    return isinstance(exc, TorchDynamoException)


def placement(exp: Experiment, device: torch.device, data_on_gpu: bool) -> Placement:
    """What a worker records on each trial: its resolved precision, compile, data, GPU share."""
    return Placement(choose_precision(exp.precision, device), exp.compile, data_on_gpu, gpu_share())


def settle(exp: Experiment, splits: Splits, device: torch.device) -> tuple[Splits, Placement]:
    """The splits where they will train, and what the trials will record about it.

    One step for sweep workers and ``train`` alike: the data's share of the GPU and the trials'
    share of its hours both follow :func:`workers_per_gpu`.
    """
    splits, on_gpu = place_data(splits, device, exp.data_on_device, workers_per_gpu())
    return splits, placement(exp, device, on_gpu)
