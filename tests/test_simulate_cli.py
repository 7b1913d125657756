"""``wcd-hpc simulate``: files in the layout, same seed same content, one-line errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from typer.testing import CliRunner

from wcd_hpc.cli import app

runner = CliRunner()


def test_simulate_footprints_and_traces_write_readable_files(tmp_path: Path) -> None:
    out = tmp_path / "f.h5"
    args = ["simulate", "footprints", "-n", "40", "--primaries", "gamma,iron", "--grid", "16"]
    result = runner.invoke(app, [*args, "--out", str(out), "--seed", "3"])
    assert result.exit_code == 0, result.output
    again = runner.invoke(app, [*args, "--out", str(tmp_path / "g.h5"), "--seed", "3"])
    assert again.exit_code == 0
    with h5py.File(out, "r") as a, h5py.File(tmp_path / "g.h5", "r") as b:
        assert a["data"].shape == (40, 16, 16)
        assert np.array_equal(a["data"][:], b["data"][:])
    assert set(pd.read_hdf(out, "info")["primary"]) == {"gamma", "iron"}
    traces = runner.invoke(app, ["simulate", "traces", "-n", "30", "--out", str(tmp_path / "t.h5")])
    assert traces.exit_code == 0, traces.output
    with h5py.File(tmp_path / "t.h5", "r") as fh:
        assert fh["data"].shape == (30, 4, 100)


def test_simulate_rejects_bad_input_in_one_line(tmp_path: Path) -> None:
    bad = runner.invoke(
        app,
        ["simulate", "footprints", "--primaries", "gamma,helium", "--out", str(tmp_path / "x.h5")],
    )
    assert bad.exit_code == 2
    assert "--primaries: expected distinct names" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    folder = runner.invoke(app, ["simulate", "traces", "-n", "5", "--out", str(tmp_path)])
    assert folder.exit_code == 2 and "is a directory" in folder.output
    assert not list(tmp_path.iterdir())
