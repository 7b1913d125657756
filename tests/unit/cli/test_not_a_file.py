"""A directory or a FIFO where a file is expected is named for what it is, at once: reading a
FIFO would block until a writer comes (forever), and "file not found" for a directory sends the
user looking for the wrong mistake."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from typer.testing import CliRunner

from wcd_hpc.cli import PROG_NAME, app

QUICK = "name: q\ndataset: footprint-sim\nmodel: mlp\ntrials: 1\n"


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A read that blocks fails the test after 20 s instead of hanging the suite."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError("blocked: the command waited on a FIFO")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(params=["fifo", "directory"])
def odd(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "odd.yaml"
    if request.param == "fifo":
        os.mkfifo(path)
        return path, "is a FIFO (named pipe), expected a file"
    path.mkdir()
    return path, "is a directory, expected a file"


def _refusal(args: list[str]) -> str:
    res = CliRunner().invoke(app, args, prog_name=PROG_NAME)
    assert res.exception is not None and not isinstance(res.exception, TimeoutError), res.output
    return str(res.exception)


def test_an_experiment_file_that_is_not_a_file_is_named_for_what_it_is(odd) -> None:
    path, what = odd
    assert _refusal(["sweep", str(path), "--dry-run"]) == f"{path}: {what}"


def test_a_profile_that_is_not_a_file_is_named_for_what_it_is(odd, tmp_path) -> None:
    path, what = odd
    profile = path.rename(tmp_path / "odd.toml")
    exp = tmp_path / "q.yaml"
    exp.write_text(QUICK, encoding="utf-8")
    message = _refusal(["sweep", str(exp), "--dry-run", "--profile", str(profile)])
    assert message == f"{profile}: {what}"


def test_a_model_file_that_is_not_a_file_is_named_for_what_it_is(odd, tmp_path) -> None:
    path, what = odd
    model = path.rename(tmp_path / "net.py")
    exp = tmp_path / "q.yaml"
    exp.write_text(QUICK.replace("model: mlp", "model: ./net.py:build"), encoding="utf-8")
    assert f"net.py {what}" in _refusal(["sweep", str(exp), "--dry-run"])
    assert model.exists()


def test_a_journal_that_is_not_a_file_is_named_for_what_it_is(odd) -> None:
    path, what = odd
    assert _refusal(["journal", "check", str(path)]) == f"{path}: {what}"
    assert _refusal(["journal", "salvage", str(path)]) == f"{path}: {what}"
    message = _refusal(["status", "q", "--storage", f"journal:{path}"])
    assert message == f"no study 'q': {path} {what}"
