"""Physics simulators standing in for the non-public CORSIKA sets: footprints, station traces."""

from __future__ import annotations

from wcd_hpc.sim.footprints import (
    PRIMARIES,
    SIM_VERSION,
    FootprintConfig,
    iter_footprints,
    simulate,
    spectral_weight,
    write_footprints,
)

__all__ = [
    "PRIMARIES",
    "SIM_VERSION",
    "FootprintConfig",
    "iter_footprints",
    "simulate",
    "spectral_weight",
    "write_footprints",
]
