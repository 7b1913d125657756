"""``wcd-hpc simulate``: files in the layout, same seed same content, one-line errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import Result

from wcd_hpc.sim.h5io import publish

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


def test_simulate_refuses_to_overwrite_unless_forced(tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "precious.h5"
    out.write_bytes(b"an hour of someone else's simulation")
    for kind in (["footprints", "--grid", "8"], ["traces"]):
        refused = cli("simulate", *kind, "-n", "5", "--out", str(out))
        assert refused.code == 2
        assert len(refused.err.strip().splitlines()) == 1
        assert str(out) in refused.err and "--force" in refused.err
        assert out.read_bytes() == b"an hour of someone else's simulation"
    assert [p.name for p in tmp_path.iterdir()] == ["precious.h5"]  # no temporary left over
    forced = cli("simulate", "traces", "-n", "5", "--out", str(out), "--force")
    assert forced.code == 0, forced.err
    with h5py.File(out, "r") as fh:
        assert fh["data"].shape == (5, 4, 100)
    assert [p.name for p in tmp_path.iterdir()] == ["precious.h5"]


def test_simulate_creates_parents_only_below_the_working_directory_or_when_asked(
    tmp_path: Path, cli: Cli, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    below = cli("simulate", "traces", "-n", "5", "--out", "data/2024/t.h5", cwd=work)
    assert below.code == 0, below.err
    assert (work / "data" / "2024" / "t.h5").is_file()

    elsewhere = tmp_path_factory.mktemp("elsewhere") / "a" / "b" / "t.h5"
    for out in (str(elsewhere), "../up/t.h5"):
        refused = cli("simulate", "traces", "-n", "5", "--out", out, cwd=work)
        assert refused.code == 2
        assert len(refused.err.strip().splitlines()) == 1
        assert str(Path(out).parent) in refused.err and "--parents" in refused.err
    assert not (elsewhere.parent.parent).exists() and not (tmp_path / "up").exists()

    asked = cli("simulate", "traces", "-n", "5", "--out", str(elsewhere), "--parents", cwd=work)
    assert asked.code == 0, asked.err
    with h5py.File(elsewhere, "r") as fh:
        assert fh["data"].shape == (5, 4, 100)


def test_publish_without_replace_keeps_a_file_that_appeared_meanwhile(tmp_path: Path) -> None:
    finished, target = tmp_path / ".t.h5.part", tmp_path / "t.h5"
    finished.write_bytes(b"new")
    target.write_bytes(b"appeared while simulating")
    with pytest.raises(FileExistsError):
        publish(finished, target, replace=False)
    assert target.read_bytes() == b"appeared while simulating"
    target.unlink()
    publish(finished, target, replace=False)
    assert target.read_bytes() == b"new" and not finished.exists()
