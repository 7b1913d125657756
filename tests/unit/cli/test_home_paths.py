"""``~`` in a path means the home directory wherever a path is given: a key of an experiment
file or profile, ``--runs-dir`` of every verb (quoted, so no shell expanded it), a file storage.
A directory literally named ``~`` is never what was meant."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from wcd_hpc.cli import PROG_NAME, app
from wcd_hpc.experiment.config import load_experiment
from wcd_hpc.store.urls import resolve

MINIMAL = "name: home\ndataset: toy\nmodel: toy\ntrials: 1\n"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_runs_dir_from_a_file_a_profile_a_set_and_a_flag_expands_the_home(home, tmp_path) -> None:
    path = tmp_path / "home.yaml"
    path.write_text(MINIMAL + "runs_dir: ~/x\n", encoding="utf-8")
    assert load_experiment(path).runs_dir == str(home / "x")
    path.write_text(MINIMAL, encoding="utf-8")
    assert load_experiment(path, profile={"runs_dir": "~/p"}).runs_dir == str(home / "p")
    assert load_experiment(path, overrides=["runs_dir=~/s"]).runs_dir == str(home / "s")
    flags = {"runs_dir": ("--runs-dir", Path("~/f"))}
    assert load_experiment(path, flags=flags).runs_dir == str(home / "f")


@pytest.mark.parametrize("verb", [["studies"], ["status", "nosuch"], ["render"]])
def test_every_verb_expands_a_quoted_home_in_runs_dir(home, tmp_path, verb) -> None:
    if verb == ["render"]:
        exp = tmp_path / "r.yaml"
        exp.write_text(
            "name: r\ndataset: {name: footprint-sim, params: {events: 200}}\nmodel: mlp\n"
            "trials: 1\nexecutor: slurm\n",
            encoding="utf-8",
        )
        verb = ["render", str(exp), "--out", "scripts"]
    res = CliRunner().invoke(app, [*verb, "--runs-dir", "~/runs"], prog_name=PROG_NAME)
    shown = res.output + str(res.exception or "")
    assert not (tmp_path / "~").exists()
    if verb[0] == "render":  # render takes --runs-dir as sweep does: the study is there
        assert (home / "runs" / "r" / "journal.log").exists(), shown
    else:
        assert "~" not in shown and str(home / "runs") in shown, shown


def test_a_file_storage_under_the_home_is_expanded(home, tmp_path) -> None:
    assert resolve("journal:~/j.log", tmp_path) == f"journal:{home / 'j.log'}"
    assert resolve("sqlite:///~/s.db", tmp_path) == f"sqlite:///{home / 's.db'}"
