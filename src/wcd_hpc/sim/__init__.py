"""Physics simulators that stand in for the non-public CORSIKA sets: shower footprints for now."""

from __future__ import annotations

from wcd_hpc.sim.footprints import PRIMARIES, SIM_VERSION, FootprintConfig, simulate

__all__ = ["PRIMARIES", "SIM_VERSION", "FootprintConfig", "simulate"]
