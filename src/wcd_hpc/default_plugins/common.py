"""What the built-in models share: the training keys of every search space and parameter checks.

Every model's space starts from :data:`TRAINING_SPACE` (the ranges for the keys the training loop
reads), so a sweep over any model explores the same optimiser settings and results stay
comparable across models. The predecessor's ranges (:data:`PREDECESSOR_TRAINING_SPACE`, SCIENCE.md)
stay available as every model's ``predecessor`` space (``model: {name: lenet, space:
predecessor}``); they are no longer the default because two of their corners do not train: ``reg``
is weight decay, and at 0.03-0.1 it holds every Adam network at constant output; SGD at the low
learning rates of ``lr`` barely moves in the 3-5 epochs a sweep gives a trial. Measured with
``benchmarks/chance_share.py`` (docs/benchmarks.md): a third of a quickstart's training seconds
went to such networks. The checks raise one-line ``ValueError`` messages that name the model and
the parameter, because a builder runs inside a trial on a compute node, far from the user who has
to fix the experiment file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from wcd_hpc.api import DataSpec, Domain

__all__ = [
    "DROPOUT",
    "PREDECESSOR_TRAINING_SPACE",
    "TRAINING_SPACE",
    "WIDTH",
    "check_image",
    "flat_size",
    "int_list",
    "positive_int",
    "space_with",
    "spaces_with",
    "unit_float",
]

#: The default ranges for what :mod:`wcd_hpc.engine.fit` reads: Adam, whose learning rates here
#: all train within a few epochs, and weight decay below the values that pin the weights at zero.
TRAINING_SPACE: dict[str, Any] = {
    "lr": "loguniform(3e-4, 5e-3)",
    "batch_size": "randint(32, 256)",
    "optimizer": "adam",
    "reg": "loguniform(1e-6, 1e-3)",
}

#: The predecessor's ranges (see SCIENCE.md): the ``predecessor`` space of every built-in model.
PREDECESSOR_TRAINING_SPACE: dict[str, Any] = {
    "lr": "loguniform(1e-4, 1e-2)",
    "batch_size": "randint(32, 256)",
    "optimizer": "choice(['adam', 'sgd'])",
    "reg": "loguniform(1e-4, 1e-1)",
}


#: Domains the built-in models share (:attr:`wcd_hpc.api.Model.domains`): a layer width or a
#: number of feature maps (far above any WCD model, far below what exhausts memory at build
#: time), and a dropout rate.
WIDTH = Domain.integer(1, 65_536)
DROPOUT = Domain.number(0, 1, high_open=True)


def space_with(training: Mapping[str, Any] | None = None, /, **model_keys: Any) -> dict[str, Any]:
    """A fresh space: the ``training`` keys (default :data:`TRAINING_SPACE`) plus ``model_keys``
    (lists copied, not shared)."""
    out: dict[str, Any] = dict(TRAINING_SPACE if training is None else training)
    for key, value in model_keys.items():
        out[key] = list(value) if isinstance(value, list) else value
    return out


def spaces_with(**space: Any) -> dict[str, dict[str, Any]]:
    """A built-in model's named spaces (``Model.spaces``) for its default ``space``:
    ``predecessor``, the predecessor's training ranges with the same model keys."""
    model_keys = {k: v for k, v in space.items() if k not in TRAINING_SPACE}
    return {"predecessor": space_with(PREDECESSOR_TRAINING_SPACE, **model_keys)}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def int_list(
    model: str, params: Mapping[str, Any], key: str, default: Sequence[int], length: int | None
) -> list[int]:
    """``params[key]`` as positive integers (``length`` of them when given), else ``default``."""
    value = params.get(key, default)
    ok = (
        not isinstance(value, (str, bytes))
        and isinstance(value, Sequence)
        and len(value) >= 1
        and (length is None or len(value) == length)
        and all(_is_int(v) and v >= 1 for v in value)
    )
    if not ok:
        count = f"{length} positive integers" if length else "a list of positive integers"
        raise ValueError(f"model '{model}': '{key}' must be {count}, got {value!r}")
    return [int(v) for v in value]


def positive_int(model: str, params: Mapping[str, Any], key: str, default: int) -> int:
    """``params[key]`` as an integer >= 1, else ``default``."""
    value = params.get(key, default)
    if not _is_int(value) or value < 1:
        raise ValueError(f"model '{model}': '{key}' must be a positive integer, got {value!r}")
    return int(value)


def unit_float(model: str, params: Mapping[str, Any], key: str, default: float) -> float:
    """``params[key]`` as a number in [0, 1) (dropout rates), else ``default``."""
    value = params.get(key, default)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"model '{model}': '{key}' must be a number in [0, 1), got {value!r}")
    return float(value)


def check_image(model: str, spec: DataSpec, minimum: int) -> tuple[int, int, int]:
    """(channels, H, W) of an image input (H, W) or (C, H, W); H and W at least ``minimum``."""
    shape = tuple(int(d) for d in spec.input_shape)
    if len(shape) not in (2, 3) or min(shape[-2:]) < minimum:
        raise ValueError(
            f"model '{model}': needs input_shape (C, H, W) or (H, W) with H, W >= {minimum}, "
            f"got {spec.input_shape}"
        )
    channels = 1 if len(shape) == 2 else shape[0]
    return channels, shape[-2], shape[-1]


def flat_size(spec: DataSpec) -> int:
    """Number of input features once flattened (dense models)."""
    size = 1
    for d in spec.input_shape:
        size *= int(d)
    return size
