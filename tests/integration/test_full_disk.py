"""Files we write: whole or not at all, with the user's permissions, in directories that exist.

A full disk is one clear line (or a recorded failure), never a crash or a partial file left
behind. The full disk is a small tmpfs mounted for the test (root only: outside CI the tests
that need one skip without it, in CI they fail).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import need

from wcd_hpc.errors import SyncError

SIZE = "4m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted at ``tmp_path/disk``, unmounted after the test."""
    where = tmp_path / "disk"
    where.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(where)]
    proc = subprocess.run(mount, capture_output=True, text=True)
    if proc.returncode != 0:
        need("a small tmpfs", f"{' '.join(mount)}: {proc.stderr.strip()} (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "--lazy", str(where)], capture_output=True)


def fill(where: Path, leave: int = 0) -> None:
    """Fill the filesystem of ``where`` up, then free about ``leave`` bytes of it again."""
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - leave))


def _whole(path: Path) -> bool:
    data = path.read_bytes()
    return data.endswith(b"IEND\xaeB`\x82") if path.suffix == ".png" else b"%%EOF" in data[-16:]


def test_a_plot_on_a_full_disk_is_whole_or_absent(small_disk: Path) -> None:
    from wcd_hpc.results.plots import plot_confusion
    from wcd_hpc.results.syncplots import learning_curves

    matrix, records = np.array([[40, 10], [5, 45]]), [{"epoch": 1, "train_loss": 0.5}]
    failed = 0
    for leave in range(4096, 100_000, 12288):  # the disk fills at each stage of each plot
        for path in small_disk.iterdir():
            path.unlink()
        fill(small_disk, leave)
        for draw in (
            lambda: plot_confusion(small_disk / "confusion.png", matrix, ["a", "b"], "header"),
            lambda: learning_curves(records, small_disk / "curves.png"),
        ):
            try:
                draw()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                failed += 1
        plots = [p for p in small_disk.iterdir() if p.name != "filler"]
        assert all(_whole(p) for p in plots), [(p.name, p.stat().st_size) for p in plots]
    assert failed


def test_simulate_on_a_full_disk_is_one_line_and_leaves_no_file(cli, small_disk: Path) -> None:
    fill(small_disk, leave=512 * 1024)
    res = cli("simulate", "footprints", "-n", "2000", "--out", str(small_disk / "x.h5"))
    assert res.code == 2, (res.code, res.err[-2000:])  # not a segfault (-11)
    *progress, last = res.err.strip().splitlines()  # the progress bar's last state, the error
    line = f"error: simulate footprints: no space left on the filesystem of {small_disk / 'x.h5'}"
    assert last.startswith(line) and last.endswith(" free)"), res.err
    assert all("error" not in ln and "Traceback" not in ln for ln in progress), res.err
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def test_doctor_fails_on_a_full_runs_filesystem_and_says_what_is_free(
    cli, small_disk: Path
) -> None:
    fill(small_disk)
    res = cli("doctor", "--json", "--runs-dir", str(small_disk / "runs"))
    assert res.code == 1
    check = {c["name"]: c for c in json.loads(res.out)["checks"]}["free space"]
    assert (check["ok"], check["required"]) == (False, True)
    assert check["detail"].startswith("0 B free of 4.0 MiB (100% used) at "), check
    roomy = cli("doctor", "--json", "--runs-dir", str(small_disk.parent / "runs"))
    check = {c["name"]: c for c in json.loads(roomy.out)["checks"]}["free space"]
    assert check["required"] is False and " free of " in check["detail"]


def test_a_simulated_file_gets_the_mode_the_umask_gives(cli, tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        res = cli("simulate", "traces", "-n", "20", "--out", str(tmp_path / "t.h5"))
    finally:
        os.umask(old)
    assert res.code == 0, res.err
    assert oct((tmp_path / "t.h5").stat().st_mode & 0o777) == oct(0o640)


def test_sync_refuses_a_store_in_a_directory_that_does_not_exist(
    cli, tmp_path: Path, monkeypatch
) -> None:
    from wcd_hpc.results.syncdata import tracking_uri_for

    missing = tmp_path / "no" / "such"
    uri = f"sqlite:///{missing}/mlflow.db"
    res = cli("sync", "any", "--tracking-uri", uri)
    assert res.code == 1 and res.err.count("\n") == 1, res.err
    assert res.err.startswith(f"error: --tracking-uri {uri}: directory {missing} does not exist")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(SyncError, match=r"^\$MLFLOW_TRACKING_URI sqlite:"):
        tracking_uri_for(None, tmp_path)
    assert not (tmp_path / "no").exists()
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking_uri_for(None, tmp_path / "runs").endswith("runs/mlflow.db")  # ours: made
