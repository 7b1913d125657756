"""What a new user types in the first hour, from habits other tools taught them.

``-V``, ``help CMD``, Hydra's ``key=value``, a misspelt study name, ``--show-completion zsh``,
help that reads as paragraphs, and one spelling of nested keys in ``--set`` and MLflow. All
in-process through typer's CliRunner, on the application ``main()`` runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer.main
import typer.rich_utils
from typer.testing import CliRunner

from wcd_hpc import __version__
from wcd_hpc.cli import PROG_NAME, app
from wcd_hpc.errors import StudyNotFound
from wcd_hpc.experiment.config import load_experiment
from wcd_hpc.experiment.written import as_written
from wcd_hpc.results.syncdata import clean, flatten


def _run(*args: str, width: int = 200):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), prog_name=PROG_NAME, terminal_width=width)


def _text(output: str) -> str:
    """An error panel's text as one line (rich draws it in a box of its own width)."""
    return " ".join(output.replace("│", " ").split())


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_minus_v_prints_the_version(flag: str) -> None:
    res = _run(flag)
    assert res.exit_code == 0 and res.output == f"wcd-hpc {__version__}\n"


@pytest.mark.parametrize("path", [["sweep"], ["journal", "check"], []])
def test_help_command_prints_what_dash_h_prints(path: list[str]) -> None:
    via_help = _run("help", *path)
    via_flag = _run(*path, "-h")
    assert via_help.exit_code == 0 and via_flag.exit_code == 0
    assert via_help.output == via_flag.output
    assert "Usage: wcd-hpc" in via_help.output


def test_help_of_an_unknown_command_suggests_the_close_one() -> None:
    res = _run("help", "swep")
    assert res.exit_code != 0
    assert "no command 'swep'; did you mean 'sweep'?" in str(res.exception)


def test_a_bare_key_value_suggests_set() -> None:
    res = _run("sweep", "exp.yaml", "epochs=5")
    assert res.exit_code == 2
    assert "did you mean `--set epochs=5`?" in _text(res.output)
    spelled = _run("sweep", "exp.yaml", "--set", "trials=3", "dataset.params.events=5")
    assert "did you mean `--set dataset.params.events=5`?" in _text(spelled.output)


def test_no_set_hint_for_a_command_without_set() -> None:
    res = _run("status", "quickstart", "epochs=5")
    assert res.exit_code == 2 and "unexpected extra argument" in _text(res.output)
    assert "--set" not in res.output


@pytest.mark.parametrize("verb", ["status", "sync", "cancel"])
def test_an_unknown_study_lists_the_nearest_names_and_the_studies_command(
    verb: str, tmp_path: Path
) -> None:
    for name in ("quickstart", "quick-start-2", "other"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "journal.log").write_text("")
    res = _run(verb, "quickstrat", "--runs-dir", str(tmp_path))
    assert isinstance(res.exception, StudyNotFound)
    message = str(res.exception)
    assert "did you mean 'quickstart' or 'quick-start-2'?" in message
    assert f"`wcd-hpc studies --runs-dir {tmp_path}` lists the studies there" in message
    assert "other" not in message.split("(")[1]


def test_help_paragraphs_have_no_hard_line_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    def walk(command):  # type: ignore[no-untyped-def]
        yield command
        for sub in getattr(command, "commands", {}).values():
            yield from walk(sub)

    root = typer.main.get_command(app)
    for command in walk(root):
        for paragraph in (command.help or "").split("\n\n"):
            assert paragraph.startswith("\b") or "\n" not in paragraph, (command.name, paragraph)
    # sweep's docstring breaks its second paragraph after "it submits"; -h shows one line.
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 200)
    assert "On Slurm it submits one array job" in _run("sweep", "-h").output


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("zsh", "#compdef wcd-hpc"),
        ("bash", "complete -o default -F _wcd_hpc_completion wcd-hpc"),
        ("fish", "complete --command wcd-hpc"),
    ],
)
def test_show_completion_prints_the_shell_asked_for(shell: str, marker: str) -> None:
    for args in (["--show-completion", shell], [f"--show-completion={shell}"]):
        res = _run(*args)
        assert res.exit_code == 0 and marker in res.output


def test_mlflow_params_are_spelled_as_set_takes_them(tmp_path: Path) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        "name: spelled\ndataset: {name: footprint-sim, params: {events: 400}}\nmodel: lenet\n"
        "metric: {name: f1, direction: maximize}\ntrials: 4\nbudget: {gpu_hours: 2}\n"
        "pruner: {name: asha, min_epochs: 1}\nresources: {cpus: 4}\n"
        "param_space:\n  lr: loguniform(1e-4, 1e-2)\n"
    )
    stored = load_experiment(exp).to_dict()
    params = clean(flatten(as_written(stored)))
    assert params["dataset.params.events"] == "400" == str(stored["dataset_params"]["events"])
    assert {"metric.direction", "budget.gpu_hours", "pruner.min_epochs"} <= set(params)
    for key, value in params.items():
        if key == "source":  # where it was read from: not a setting
            continue
        typed = json.dumps(value) if not isinstance(value, str) else value
        load_experiment(exp, overrides=[f"{key}={typed}"])  # every key is one --set takes
