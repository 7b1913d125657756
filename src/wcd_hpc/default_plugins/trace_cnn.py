"""The ``trace-cnn`` model: muon tagging from the PMT traces of one station.

Input (n_pmt, n_samples): each PMT is one input channel of 1-D convolutions along time, so every
filter sees all PMTs at once — a muon crossing the tank lights the PMTs unevenly and with a sharp
common rise, an electromagnetic deposit gives small, scattered pulses (Conceição et al. 2021,
EPJ C 81, 542), and both the spatial (across PMTs) and the time pattern matter. Two conv + ReLU
+ max-pool blocks, then global max *and* mean pooling over time (peak and integrated signal, both
muon handles, independent of the trace length) and a dense head. Inputs with more leading axes,
e.g. (1, n_pmt, n_samples), are folded into channels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from wcd_hpc.api import DataSpec, Domain, Model
from wcd_hpc.default_plugins.common import (
    DROPOUT,
    WIDTH,
    int_list,
    positive_int,
    space_with,
    spaces_with,
    unit_float,
)
from wcd_hpc.hookspecs import hookimpl

if TYPE_CHECKING:
    from torch import nn

__all__ = ["SPACE", "build", "register_models"]

NAME = "trace-cnn"
SPACE: dict[str, Any] = space_with(
    channels=["randint(8, 32)", "randint(16, 64)"],
    kernel="choice([3, 5, 7, 9])",
    hidden="randint(16, 128)",
)


def build(params: Mapping[str, Any], spec: DataSpec) -> nn.Module:
    """A fresh trace CNN; defaults (16, 32 maps, kernel 5, 64 hidden) when nothing is sampled."""
    channels = int_list(NAME, params, "channels", [16, 32], None)
    kernel = positive_int(NAME, params, "kernel", 5)
    hidden = positive_int(NAME, params, "hidden", 64)
    dropout = unit_float(NAME, params, "dropout", 0.0)
    samples = int(spec.input_shape[-1]) if spec.input_shape else 0
    if len(spec.input_shape) < 2 or samples < 2 ** len(channels):
        raise ValueError(
            f"model '{NAME}': needs input_shape (n_pmt, n_samples) with n_samples >= "
            f"{2 ** len(channels)} for {len(channels)} pooling blocks, got {spec.input_shape}"
        )
    from wcd_hpc.default_plugins.nets.trace_cnn import TraceCNN

    return TraceCNN(spec, channels, kernel, hidden, dropout)


@hookimpl
def register_models(register: Callable[[Model], None]) -> None:
    """Register ``trace-cnn``."""
    register(
        Model(
            name=NAME,
            build=build,
            space=space_with(**SPACE),
            spaces=spaces_with(**SPACE),
            description="1-D CNN over PMT traces (PMTs as channels) for muon tagging",
            extra_params=("dropout",),
            domains={
                "channels": Domain.list_of(WIDTH),
                "kernel": Domain.integer(1, 1024),
                "hidden": WIDTH,
                "dropout": DROPOUT,
            },
        )
    )
