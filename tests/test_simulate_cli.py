"""``wcd-hpc simulate``: files in the layout, same seed same content, one-line errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from conftest import Result

Cli = Callable[..., Result]


def test_simulate_footprints_and_traces_write_readable_files(tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "f.h5"
    args = ["simulate", "footprints", "-n", "40", "--primaries", "gamma,iron", "--grid", "16"]
    result = cli(*args, "--out", str(out), "--seed", "3")
    assert result.code == 0, result.err
    again = cli(*args, "--out", str(tmp_path / "g.h5"), "--seed", "3")
    assert again.code == 0
    with h5py.File(out, "r") as a, h5py.File(tmp_path / "g.h5", "r") as b:
        assert a["data"].shape == (40, 16, 16)
        assert np.array_equal(a["data"][:], b["data"][:])
    assert set(pd.read_hdf(out, "info")["primary"]) == {"gamma", "iron"}
    traces = cli("simulate", "traces", "-n", "30", "--out", str(tmp_path / "t.h5"))
    assert traces.code == 0, traces.err
    with h5py.File(tmp_path / "t.h5", "r") as fh:
        assert fh["data"].shape == (30, 4, 100)


def test_simulate_rejects_bad_input_in_one_line(tmp_path: Path, cli: Cli) -> None:
    bad = cli(
        "simulate", "footprints", "--primaries", "gamma,helium", "--out", str(tmp_path / "x.h5")
    )
    assert bad.code == 2
    assert "--primaries: expected distinct names" in bad.err
    assert len(bad.err.strip().splitlines()) == 1
    folder = cli("simulate", "traces", "-n", "5", "--out", str(tmp_path))
    assert folder.code == 2 and "is a directory" in folder.err
    assert not list(tmp_path.iterdir())
