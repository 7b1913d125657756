"""Broken inputs: one precise line on stderr, a non-zero exit, and no study or file created."""

from __future__ import annotations

import pytest

TOY = {"WCD_HPC_PLUGINS": "toy"}

GOOD = """\
name: broken
dataset: toy-blobs
model: toy-mlp
metric: accuracy
trials: 2
epochs: 1
"""

CASES = {
    "bad_yaml": (GOOD.replace("epochs: 1", "epochs: [1"), r"bad.yaml:7"),
    "unknown_model": (
        GOOD.replace("model: toy-mlp", "model: toy-mpl"),
        "bad.yaml:3: model: unknown model 'toy-mpl'; did you mean 'toy-mlp'?",
    ),
    "loguniform_zero": (
        GOOD + "param_space:\n  lr: loguniform(0, 1)\n",
        "bad.yaml:8: param_space.lr:",
    ),
    "empty_choice": (GOOD + "param_space:\n  optimizer: choice([])\n", "param_space.optimizer"),
    "bad_trials": (GOOD.replace("trials: 2", "trials: two"), "bad.yaml:5: trials:"),
    "grid_over_continuous": (
        GOOD + "sampler: grid\n",
        "bad.yaml:7: sampler: the grid sampler needs discrete parameters (choice, range, randint);"
        " 'lr' is continuous",
    ),
    "misspelt_parameter": (
        GOOD + "param_space:\n  lrr: loguniform(1e-4, 1e-2)\n",
        "bad.yaml:8: param_space.lrr: model 'toy-mlp' takes no parameter 'lrr'; did you mean 'lr'?",
    ),
    "grid_too_small": (
        GOOD.replace("trials: 2", "trials: 5")
        + "sampler: grid\nparam_space: {lr: 0.01, batch_size: 32, hidden: 'choice([4, 8])'}\n",
        "bad.yaml:5: trials: the grid has 2 points; expected trials <= 2, got 5",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_experiment_gives_one_line_and_creates_nothing(
    cli, testplugins, tmp_path, case
) -> None:
    text, expected = CASES[case]
    (tmp_path / "bad.yaml").write_text(text)
    res = cli("sweep", "bad.yaml", plugins=testplugins, env=TOY)
    assert res.code == 2
    assert res.err.startswith("error: ") and res.err.count("\n") == 1, res.err
    assert expected in res.err
    assert not (tmp_path / "runs").exists()


def test_experiment_using_a_plugin_that_fails_on_import(cli, testplugins, tmp_path) -> None:
    (tmp_path / "bad.yaml").write_text(GOOD)
    res = cli("sweep", "bad.yaml", plugins=testplugins, env={"WCD_HPC_PLUGINS": "broken"})
    assert res.code == 2
    lines = res.err.splitlines()
    assert lines[0].startswith("warning: plugin 'broken' (distribution wcd-hpc-testplugins 0.3.1)")
    assert "RuntimeError: this plugin is broken on purpose" in lines[0]
    assert lines[1].startswith("error: bad.yaml:3: model: unknown model 'toy-mlp'")
    assert len(lines) == 2
    assert not (tmp_path / "runs").exists()


def test_missing_experiment_file(cli, tmp_path) -> None:
    res = cli("sweep", "missing.yaml")
    assert res.code == 2
    assert "missing.yaml" in res.err and res.err.count("\n") == 1


def test_brackets_in_search_spaces_paths_and_errors_are_printed_as_written(cli, tmp_path) -> None:
    # rich would read "[randint(2, 20), ...]" or "/data/[lab]" as style tags and drop them.
    exp = tmp_path / "brackets.yaml"
    exp.write_text(
        "name: brackets\ndataset: footprint-sim\nmodel: lenet\nmetric: f1\ntrials: 2\n"
        "param_space:\n  channels: [randint(2, 20), randint(3, 9)]\n"
    )
    runs = tmp_path / "[lab]"
    dry = cli("sweep", str(exp), "--runs-dir", str(runs), "--dry-run")
    assert dry.code == 0, dry.err
    assert "[randint(2, 20), randint(3, 9)]" in dry.out
    assert f"run dir {runs / 'brackets'}" in dry.out
    missing = cli("sweep", str(tmp_path / "[lab]" / "nope.yaml"))
    assert missing.code == 2
    assert "[lab]/nope.yaml" in missing.err


BUG = (
    "import sys, wcd_hpc.queue.study as s\n"
    "def boom(*a, **k):\n"
    "    raise {exc}('a bug in our code')\n"
    "s.open_existing = boom\n"
    "sys.argv = ['wcd-hpc', 'status', 'some-study']\n"
    "from wcd_hpc.__main__ import main; main()\n"
)


@pytest.mark.parametrize("exc", ["KeyError", "FileNotFoundError", "ValueError"])
def test_a_bug_in_our_code_keeps_its_traceback(tmp_path, exc) -> None:
    # Only wcd-hpc's own error family becomes a one-line message; anything else is a bug, and
    # its traceback is what the bug report needs.
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", BUG.format(exc=exc)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert f"{exc}: " in proc.stderr and "a bug in our code" in proc.stderr
    assert "error: " not in proc.stderr


def test_our_errors_are_one_line_with_their_exit_status(cli, tmp_path) -> None:
    res = cli("status", "../escape", "--runs-dir", str(tmp_path))
    assert res.code == 2 and "Traceback" not in res.err
    assert len(res.err.strip().splitlines()) == 1 and res.err.startswith("error: ")


def test_a_wrapped_network_error_is_shortened_to_the_operating_systems_words() -> None:
    from wcd_hpc.errors import one_line

    wrapped = RuntimeError(
        "(psycopg.OperationalError) [Errno -2] Name or service not known\n"
        "(Background on this error at: https://sqlalche.me/e/21/e3q8)"
    )
    assert one_line(wrapped) == "Name or service not known"
    assert one_line(KeyError("k")) == "KeyError: 'k'"


def test_not_found_at_run_time_is_status_1_and_bad_input_stays_2() -> None:
    from wcd_hpc.errors import ConfigError, StorageError, StudyNotFound, UsageError

    assert StudyNotFound("no study 'x'").exit_code == 1
    assert isinstance(StudyNotFound("x"), StorageError)  # still caught as a storage problem
    assert UsageError("x").exit_code == 2
    assert ConfigError("f.yaml", "k", 1, "bad").exit_code == 2
    assert StorageError("cannot open").exit_code == 2
