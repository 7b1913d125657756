"""How trials use a GPU: precision, data resident on the device, torch.compile, trials per GPU.

Small WCD models use a few per cent of a modern GPU, so what decides the GPU-hours of a sweep is
less the model than how it is fed and how many trials share the device. These settings say how;
none of them changes which parameters are tried, so a study may change them between runs:

- ``precision: auto | fp32 | bf16 | fp16`` — autocast precision of the training step. ``auto``
  is bf16 on GPUs that support it, fp16 (with a gradient scaler) on older GPUs, fp32 on the CPU;
  the choice is made by each worker for the device it got, and recorded on every trial.
- ``data_on_device: auto | true | false`` — copy a worker's in-memory splits to its GPU once and
  index batches there. ``auto`` does so when they fit in 1/(2k) of the GPU's free memory (k
  workers sharing it); ``true`` whenever they fit at all; lazily read files stay on the host.
- ``compile: true`` — run the model through ``torch.compile`` (off by default: compiling costs
  tens of seconds per trial, worth it only for long trials).
- ``resources.trials_per_gpu: k`` — each Slurm array task runs k workers per GPU it holds.

The values are checked on the login node, like every other key (:mod:`wcd_hpc.experiment.keys`);
what they resolve to on a given machine is decided by the worker (``wcd_hpc.engine.device``).
"""

from __future__ import annotations

from typing import Any

from wcd_hpc.experiment.sources import Fail, got

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: ``data_on_device`` values: YAML's true/false, or the word auto.
AUTO = "auto"


def data_on_device(value: Any, key: str, fail: Fail) -> bool | str:
    """``data_on_device``: ``auto``, or a YAML boolean (its rule in the key table)."""
    if value == AUTO or isinstance(value, bool):
        return value  # type: ignore[no-any-return]
    raise fail(key, f"expected auto, true or false, got {got(value)}")
