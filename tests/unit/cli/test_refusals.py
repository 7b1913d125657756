"""Inputs an adversarial probe found mishandled: each is refused up front, shown truthfully, or
quoted, and a refused command leaves nothing behind."""

from __future__ import annotations

import json
import shlex
import sqlite3
from pathlib import Path

import h5py
import numpy as np
import optuna
import pandas as pd
import pytest
from conftest import dev_pg_password

from wcd_hpc.store.storage import open_storage

TOY = {"WCD_HPC_PLUGINS": "toy"}


def _study(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(url))


def test_every_command_takes_the_storage_from_the_environment_when_no_flag_gives_one(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    # One rule: --storage > $WCD_HPC_STORAGE > the experiment file.
    exp = toy_experiment(name="envstore")
    db = tmp_path / "env.db"
    env = {**TOY, "WCD_HPC_STORAGE": f"sqlite:///{db}"}
    dry = cli("sweep", str(exp), "--dry-run", plugins=testplugins, env=env)
    assert dry.code == 0, dry.err
    assert f"storage sqlite:///{db}" in dry.out
    rendered = cli("render", str(exp), "--out", "scripts", plugins=testplugins, env=env)
    assert rendered.code == 0, rendered.err
    assert db.exists() and not (tmp_path / "runs" / "envstore" / "journal.log").exists()
    assert _study(f"sqlite:///{db}", "envstore").user_attrs["budget"] == 4
    status = cli("status", "envstore", "--json", plugins=testplugins, env=env)
    assert status.code == 0 and status.json()["budget"] == 4
    flag = cli("sweep", str(exp), "--dry-run", "--storage", "journal", plugins=testplugins, env=env)
    assert "storage journal:" in flag.out  # the flag beats the environment


@pytest.mark.slow
def test_a_relative_dataset_path_is_recorded_absolute_and_workers_elsewhere_find_it(
    cli, tmp_path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _footprints(data / "small.h5", events=120)
    exp = tmp_path / "rel.yaml"
    exp.write_text(
        "name: rel\n"
        "dataset: {name: footprint-h5, params: {path: data/small.h5}}\n"
        "model: mlp\nmetric: accuracy\ntrials: 1\nepochs: 1\nexecutor: local\n"
        "prune_chance: false\n"  # 18 validation events: about paths, not about learning
        "param_space: {hidden: [8, 4], batch_size: 32}\n"
    )
    rendered = cli("render", str(exp), "--out", "scripts")
    assert rendered.code == 0, rendered.err
    journal = tmp_path / "runs" / "rel" / "journal.log"
    stored = _study(f"journal:{journal}", "rel").user_attrs["experiment"]
    assert stored["dataset_params"]["path"] == str(data / "small.h5")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    worker = cli("worker", "--study", "rel", "--storage", f"journal:{journal}", cwd=elsewhere)
    assert worker.code == 0, worker.err
    assert _study(f"journal:{journal}", "rel").trials[0].state.name == "COMPLETE"


@pytest.mark.slow
def test_a_worker_that_cannot_load_its_data_is_a_failure_in_status_and_is_not_restarted(
    cli, tmp_path
) -> None:
    _footprints(tmp_path / "nan.h5", events=120, nan_at=7)
    exp = tmp_path / "nan.yaml"
    exp.write_text(
        "name: nan\n"
        "dataset: {name: footprint-h5, params: {path: nan.h5, in_memory: true}}\n"
        "model: mlp\nmetric: accuracy\ntrials: 2\nepochs: 1\nexecutor: local\nworkers: 1\n"
        "param_space: {hidden: [8, 4], batch_size: 32}\n"
    )
    res = cli("sweep", str(exp), "--no-sync")
    assert res.code == 1 and "sweep ended with 0 of 2 trials finished" in res.err
    info = cli("status", "nan", "--json").json()
    assert info["counts"]["FAIL"] == 1
    cause = info["failures"][0]["cause"]
    assert "cannot load its data" in cause and "'data' holds NaN or inf in event 7" in cause
    log = (tmp_path / "runs" / "nan" / "logs" / "worker-0.log").read_text()
    assert log.count("joined study") == 1  # a data error is not worth a restart


def test_too_few_events_for_the_splits_are_refused_before_the_study_exists(cli, tmp_path) -> None:
    _footprints(tmp_path / "tiny.h5", events=2)
    exp = tmp_path / "tiny.yaml"
    exp.write_text(
        "name: tiny\ndataset: {name: footprint-h5, params: {path: tiny.h5}}\n"
        "model: mlp\ntrials: 1\nexecutor: local\n"
    )
    res = cli("sweep", str(exp))
    assert res.code == 2 and "too few for non-empty splits" in res.err
    assert len(res.err.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_the_dry_run_shows_what_would_really_be_submitted(cli, testplugins, toy_experiment) -> None:
    exp = toy_experiment(name="plan", trials=1)
    profile = "[slurm]\ngrace_s = 7200\n"
    Path(exp.parent / "p.toml").write_text(profile)
    res = cli(
        "sweep", str(exp), "--dry-run", "--executor", "slurm", "--workers", "8",
        "--profile", str(exp.parent / "p.toml"), "--set", "resources.time=01:00:00",
        "--set", "resources.gpus=1", plugins=testplugins, env=TOY,
    )  # fmt: skip
    assert res.code == 0, res.err
    assert "--array=0-0%1" in res.out and "one array of 1 tasks" in res.out
    assert "upper bound: 1.0 GPU-hours (1 workers × 1 GPU × 01:00:00)" in res.out
    assert "1 sampled parameter sets" in res.out
    assert "slurm.grace_s (7200 s) is not shorter than resources.time (01:00:00)" in res.err


def test_a_piped_dry_run_shows_the_scripts_uncut(cli, testplugins, toy_experiment) -> None:
    # Not a terminal: rich assumes 80 columns there, and cut every longer script line.
    exp = toy_experiment(name="piped-dry-run-with-a-long-study-name", trials=1)
    env = {**TOY, "COLUMNS": ""}
    dry = cli("sweep", str(exp), "--dry-run", "--executor", "slurm", plugins=testplugins, env=env)
    rendered = cli("render", str(exp), "--out", "s", plugins=testplugins, env=env)
    assert dry.code == 0 and rendered.code == 0, dry.err + rendered.err
    shown = dry.out.splitlines()
    for name in ("worker.sbatch", "sync.sbatch"):
        script = (exp.parent / "s" / name).read_text().splitlines()
        assert any(len(line) > 80 for line in script)
        assert all(line in shown for line in script), name


def test_resuming_with_the_same_space_written_differently_is_not_a_change(
    cli, testplugins, toy_experiment
) -> None:
    exp = toy_experiment(
        name="spelled", trials=1, extra="param_space:\n  lr: loguniform(5e-4, 1e-1)\n"
    )
    assert cli("render", str(exp), "--out", "s", plugins=testplugins, env=TOY).code == 0
    exp.write_text(exp.read_text().replace("loguniform(5e-4, 1e-1)", "loguniform(0.0005,0.1)"))
    again = cli("render", str(exp), "--out", "s", plugins=testplugins, env=TOY)
    assert again.code == 0, again.err
    exp.write_text(exp.read_text().replace("loguniform(0.0005,0.1)", "loguniform(0.001,0.1)"))
    changed = cli("render", str(exp), "--out", "s", plugins=testplugins, env=TOY)
    assert changed.code == 2 and "changed: param_space" in changed.err


def test_file_line_and_user_text_are_printed_literally_without_emoji(cli, tmp_path) -> None:
    exp = tmp_path / "x:100:.yaml"
    exp.write_text("name: smile\ndataset: footprint-sim\nmodel: ':smile:'\ntrials: 1\n")
    res = cli("sweep", str(exp), "--dry-run")
    assert res.code == 2
    assert "x:100:.yaml:3: model: unknown model ':smile:'" in res.err
    assert "💯" not in res.err and "😄" not in res.err


@pytest.mark.parametrize(
    ("flags", "blamed"),
    [
        (["--storage", "journal:"], "--storage: storage: expected journal, journal:PATH"),
        (["--workers", "0"], "Invalid value for '--workers'"),
    ],
    ids=["empty-journal-path", "zero-workers"],
)
def test_a_bad_flag_is_blamed_on_the_flag(cli, testplugins, toy_experiment, flags, blamed) -> None:
    res = cli("sweep", str(toy_experiment()), "--dry-run", *flags, plugins=testplugins, env=TOY)
    assert res.code == 2 and blamed in res.err


@pytest.mark.parametrize("runs_dir", ["2024-01-01", "123", "yes"])
def test_path_flags_are_paths_even_when_they_look_like_yaml(
    cli, testplugins, toy_experiment, tmp_path, runs_dir
) -> None:
    res = cli(
        "sweep",
        str(toy_experiment()),
        "--dry-run",
        "--runs-dir",
        runs_dir,
        plugins=testplugins,
        env=TOY,
    )
    assert res.code == 0, res.err
    assert f"run dir {tmp_path / runs_dir / 'toy'}" in res.out


def test_an_unknown_name_in_wcd_hpc_plugins_is_a_warning_naming_the_installed_ones(
    cli, testplugins
) -> None:
    res = cli("plugins", plugins=testplugins, env={"WCD_HPC_PLUGINS": "toy,tyo"})
    assert "warning: WCD_HPC_PLUGINS: no installed plugin is named 'tyo'" in res.err
    assert "toy" in res.err.split("'tyo'")[1]


def test_render_refusing_a_runs_dir_creates_no_study(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    res = cli(
        "render", str(toy_experiment()), "--out", "s", "--set", 'runs_dir=we"ird',
        plugins=testplugins, env=TOY,
    )  # fmt: skip
    assert res.code == 2 and "#SBATCH" in res.err
    assert not (tmp_path / 'we"ird').exists() and not (tmp_path / "s").exists()


def test_status_of_a_database_that_does_not_exist_creates_none(cli, tmp_path) -> None:
    res = cli("status", "x", "--storage", f"sqlite:///{tmp_path / 'new.db'}")
    assert res.code == 1 and "does not exist" in res.err  # not found: 1 (was 2)
    assert not (tmp_path / "new.db").exists()


@pytest.mark.slow
def test_printed_commands_survive_copy_and_paste(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    odd = "d $(touch pwned) x;y"
    res = cli(
        "sweep", str(toy_experiment(name="quoted", trials=1)), "--runs-dir", odd, "--no-sync",
        plugins=testplugins, env=TOY,
    )  # fmt: skip
    assert res.code == 0, res.err
    line = next(x for x in res.out.splitlines() if x.startswith("details: "))
    assert shlex.split(line.removeprefix("details: ")) == [
        "wcd-hpc", "status", "quoted", "--runs-dir", str(tmp_path / odd),
    ]  # fmt: skip
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_the_closing_status_command_names_a_database_storage(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    db = f"sqlite:///{tmp_path / 'named.db'}"
    exp = toy_experiment(name="named", trials=1, storage=db)
    res = cli("sweep", str(exp), "--no-sync", plugins=testplugins, env=TOY)
    assert res.code == 0, res.err
    line = next(x for x in res.out.splitlines() if x.startswith("details: "))
    command = shlex.split(line.removeprefix("details: "))
    assert command == ["wcd-hpc", "status", "named", "--storage", db]
    assert cli(*command[1:]).code == 0  # the printed command finds the study


@pytest.mark.slow
def test_the_closing_status_command_keeps_a_storage_from_the_environment(
    cli, testplugins, toy_experiment, secret_pg_url
) -> None:
    # Spelled out without its password, --storage would override $WCD_HPC_STORAGE (which has
    # it) and fail in the very shell the sweep ran in; the printed command leaves it to the
    # variable instead.
    import uuid

    name = f"envstore{uuid.uuid4().hex[:8]}"
    env = {**TOY, "WCD_HPC_STORAGE": secret_pg_url}
    res = cli("sweep", str(toy_experiment(name=name, trials=1)), "--no-sync",
              plugins=testplugins, env=env)  # fmt: skip
    assert res.code == 0, res.err
    line = next(x for x in res.out.splitlines() if x.startswith("details: "))
    command, _, note = line.removeprefix("details: ").partition("  ")
    assert shlex.split(command) == ["wcd-hpc", "status", name]
    assert note == "(storage: $WCD_HPC_STORAGE)"
    assert dev_pg_password() not in res.out + res.err
    assert cli(*shlex.split(command)[1:], env=env).code == 0  # the same shell finds it


def test_a_refused_resume_leaves_no_run_directory(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    exp = toy_experiment(name="kept", trials=1, storage=db)
    assert cli("render", str(exp), "--out", "s", plugins=testplugins, env=TOY).code == 0
    exp.write_text(exp.read_text().replace("epochs: 2", "epochs: 3"))
    res = cli(
        "render", str(exp), "--out", "s", "--set", "runs_dir=other", plugins=testplugins, env=TOY
    )
    assert res.code == 2 and "changed: epochs" in res.err
    assert not (tmp_path / "other").exists()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("select count(*) from studies").fetchone() == (1,)


def _footprints(path: Path, events: int, nan_at: int | None = None) -> None:
    """A small footprint file in the SWGO/LIP layout (16×16 grid, iron/proton labels)."""
    rng = np.random.default_rng(1)
    data = rng.exponential(size=(events, 16, 16)).astype(np.float32)
    if nan_at is not None:
        data[nan_at, 3, 3] = np.nan
    with h5py.File(path, "w") as fh:
        fh["data"] = data
    info = pd.DataFrame(
        {"Y_class": (np.arange(events) % 2).astype(float), "E0 (GeV)": np.full(events, 1e3)}
    )
    info.to_hdf(path, key="info")
    assert json.dumps(str(path))  # a plain path, nothing to quote


def test_an_error_in_a_set_value_found_later_is_blamed_on_the_flag(
    cli, testplugins, toy_experiment
) -> None:
    res = cli(
        "sweep", str(toy_experiment()), "--dry-run", "--set", "model=toy-mpl",
        plugins=testplugins, env=TOY,
    )  # fmt: skip
    assert res.code == 2
    assert "error: --set: model: unknown model 'toy-mpl'; did you mean 'toy-mlp'?" in res.err
    assert "toy.yaml" not in res.err


def test_a_zero_time_limit_is_refused(cli, testplugins, toy_experiment) -> None:
    exp = toy_experiment(extra='resources: {time: "00:00:00"}\n')
    res = cli("sweep", str(exp), "--dry-run", plugins=testplugins, env=TOY)
    assert res.code == 2 and "resources.time: expected a time limit above zero" in res.err


DATASET = """\
name: blame
dataset:
  name: footprint-sim
  params:
    events: {events}
    grid: 8
model: mlp
trials: 1
"""


@pytest.mark.parametrize(
    ("events", "sets", "blamed"),
    [
        (200, ["dataset.params.events=-5"], "--set: dataset.params.events: "),
        (200, ["dataset.params={events: -5}"], "--set: dataset.params.events: "),
        (-5, [], "blame.yaml:5: dataset.params.events: "),
        (-5, ["dataset.params.grid=8"], "blame.yaml:5: dataset.params.events: "),
    ],
)
def test_a_dataset_parameter_the_dataset_refuses_is_blamed_where_it_was_written(
    tmp_path, monkeypatch, events, sets, blamed
) -> None:
    from typer.testing import CliRunner

    from wcd_hpc.cli import PROG_NAME, app
    from wcd_hpc.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "blame.yaml"
    path.write_text(DATASET.format(events=events), encoding="utf-8")
    args = ["sweep", str(path), "--dry-run", *(a for s in sets for a in ("--set", s))]
    res = CliRunner().invoke(app, args, prog_name=PROG_NAME)
    assert isinstance(res.exception, ConfigError), res.output
    message = str(res.exception).removeprefix(f"{tmp_path}/")
    assert message.startswith(blamed + "dataset 'footprint-sim': parameter 'events'"), message


def test_spelling_out_the_model_default_range_on_resume_is_not_a_change(
    tmp_path, monkeypatch
) -> None:
    from typer.testing import CliRunner

    from wcd_hpc.cli import PROG_NAME, app

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "spell.yaml"
    base = "name: spell\ndataset: footprint-sim\nmodel: mlp\ntrials: 1\nexecutor: slurm\n"

    def render(extra: str) -> BaseException | None:
        path.write_text(base + extra, encoding="utf-8")
        args = ["render", str(path), "--out", "scripts"]
        return CliRunner().invoke(app, args, prog_name=PROG_NAME).exception

    assert render("") is None
    # mlp's default lr, written out (and spelled differently): the same space is sampled.
    assert render("param_space: {lr: 'loguniform(0.0003, 0.005)'}\n") is None
    assert (
        render("param_space: {lr: 'loguniform(3e-4, 5e-3)', dropout: 'uniform(0, 0.5)'}\n") is None
    )
    refused = render("param_space: {lr: 'loguniform(1e-3, 1e-2)'}\n")
    assert refused is not None and "changed: param_space" in str(refused)
