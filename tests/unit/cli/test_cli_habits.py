"""The habits a command line is expected to have: -h, completion, --json, exit statuses, a list.

Every test runs the real command (``python -m wcd_hpc``) in a scratch directory, as a user or a
script would, and checks what they rely on: help that reads as plain text for every command
(plugin verbs included), shell completion down into subcommand groups, JSON documents with
stable keys, status 1 (not 2) when a study is simply not there, and a ``studies`` listing that
never creates anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
GAMMA = ROOT / "experiments" / "gamma-hadron.yaml"

# Renders the help of every command of the application as ``main()`` builds it (plugin verbs
# included), with --help and with -h, in one interpreter: one subprocess per command would take
# half a minute on a small machine.
HELP_OF_EVERY_COMMAND = """
import json
import typer.main
from typer.testing import CliRunner
from wcd_hpc.cli import PROG_NAME, app
from wcd_hpc.cli.common import registry

registry(warn_problems=False).add_commands(app)
paths = []

def walk(command, path):
    paths.append(path)
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        walk(sub, [*path, name])

walk(typer.main.get_command(app), [])
runner = CliRunner()
shown = {}
for path in paths:
    for flag in ("--help", "-h"):
        res = runner.invoke(app, [*path, flag], prog_name=PROG_NAME, terminal_width=120)
        shown.setdefault(" ".join(["wcd-hpc", *path]), {})[flag] = [res.exit_code, res.output]
print(json.dumps(shown))
"""

HELLO_PLUGIN = '''
from wcd_hpc import hookimpl


@hookimpl
def register_commands(app):
    @app.command("hello")
    def hello() -> None:
        """Say hello from a plugin (run: wcd-hpc hello)."""
        print("hello from a plugin")
'''


@pytest.fixture
def hello_plugin(tmp_path: Path) -> Path:
    """A third-party plugin that adds a verb, installed as bare files on PYTHONPATH."""
    site = tmp_path / "site"
    info = site / "wcd_hpc_hello-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "wcd_hpc_hello.py").write_text(HELLO_PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wcd-hpc-hello\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[wcd_hpc]\nhello = wcd_hpc_hello\n")
    return site


def _every_help(plugins: Path, cwd: Path) -> dict[str, dict[str, list[object]]]:
    """``{"wcd-hpc journal check": {"--help": [exit status, text], "-h": [...]}, ...}``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WCD_HPC_")}
    path = [str(plugins), *filter(None, [env.get("PYTHONPATH")])]
    env.update(PYTHONPATH=os.pathsep.join(path), COLUMNS="120")
    proc = subprocess.run(
        [sys.executable, "-c", HELP_OF_EVERY_COMMAND],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    shown: dict[str, dict[str, list[object]]] = json.loads(proc.stdout)
    return shown


def test_help_of_every_command_is_plain_text_and_h_is_an_alias(hello_plugin, tmp_path) -> None:
    shown = _every_help(hello_plugin, tmp_path)
    expected = {"sweep", "status", "studies", "doctor", "journal check", "journal salvage"}
    expected |= {"plugins list", "plugins new", "simulate footprints", "simulate traces", "hello"}
    assert {"wcd-hpc", *(f"wcd-hpc {c}" for c in expected)} <= set(shown)
    for command, helps in shown.items():
        code, text = helps["--help"]
        assert code == 0, (command, text)
        assert "``" not in str(text), f"reStructuredText in the help of {command!r}:\n{text}"
        assert f"Usage: {command} " in str(text), text
        assert helps["-h"] == helps["--help"], command


def test_h_works_for_a_real_invocation_of_a_subcommand(cli) -> None:
    res = cli("journal", "check", "-h")
    assert res.code == 0, res.err
    assert "Usage: wcd-hpc journal check [OPTIONS] {PATH}" in res.out
    assert "--json" in res.out


NO_DETECTION = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}


def test_show_completion_prints_a_bash_script_for_wcd_hpc(cli) -> None:
    res = cli("--show-completion", "bash", env=NO_DETECTION)
    assert res.code == 0, res.err
    assert "_WCD_HPC_COMPLETE=complete_bash" in res.out
    assert "complete -o default -F _wcd_hpc_completion wcd-hpc" in res.out


def test_install_completion_writes_the_script_under_home(cli, tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    res = cli("--install-completion", "bash", env={**NO_DETECTION, "HOME": str(home)})
    assert res.code == 0, res.err
    script = home / ".bash_completions" / "wcd-hpc.sh"
    assert "_WCD_HPC_COMPLETE" in script.read_text()
    assert str(script) in (home / ".bashrc").read_text()


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [
        ("wcd-hpc stu", 1, {"studies"}),
        ("wcd-hpc journal ", 2, {"check", "salvage"}),
        ("wcd-hpc plugins ", 2, {"list", "new"}),
        ("wcd-hpc simulate ", 2, {"footprints", "traces"}),
        ("wcd-hpc journal check --j", 3, {"--json"}),
    ],
)
def test_completion_reaches_into_subcommand_groups(cli, words, cword, expected) -> None:
    env = {"_WCD_HPC_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    res = cli(env=env)
    assert res.code == 0, res.err
    assert expected <= set(res.out.split()), res.out


def test_doctor_json_is_a_document_of_checks(cli, tmp_path) -> None:
    res = cli("doctor", "--json", "--runs-dir", str(tmp_path / "nowhere"))
    doc = json.loads(res.out)
    assert set(doc) == {"ok", "profile", "storage", "runs_dir", "checks"}
    assert res.code == (0 if doc["ok"] else 1)
    assert doc["checks"] and all(
        set(c) == {"name", "ok", "required", "detail", "fix"} for c in doc["checks"]
    )
    assert {"storage", "runs root"} <= {c["name"] for c in doc["checks"]}


DRY_RUN_KEYS = {
    "study", "model", "dataset", "metric", "direction", "trials", "epochs", "sampler", "pruner",
    "storage", "run_dir", "executor", "workers", "parallelism", "plugins", "space", "samples",
    "scripts", "worker_command", "worker_storage", "bound", "warnings", "settings", "warm_start",
}  # fmt: skip


@pytest.mark.parametrize("executor", ["local", "slurm"])
def test_sweep_dry_run_json_is_a_stable_document_and_creates_nothing(
    cli, tmp_path, executor
) -> None:
    res = cli("sweep", str(QUICKSTART), "--dry-run", "--json", "--executor", executor)
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert set(doc) == DRY_RUN_KEYS
    assert doc["study"] == "quickstart" and doc["executor"] == executor
    assert doc["space"]["channels"] == "[randint(4, 12), randint(4, 16)]"
    assert len(doc["samples"]) == 3 and len(doc["samples"][0]["channels"]) == 2
    assert {p["kind"]: p["name"] for p in doc["plugins"]} == {
        "model": "lenet",
        "dataset": "footprint-sim",
        "metric": "f1",
    }
    assert {"worker", "--study", "quickstart"} <= set(doc["worker_command"])
    assert set(doc["bound"]) == {"gpu_hours", "workers", "gpus_per_worker", "time"}
    if executor == "slurm":
        assert set(doc["scripts"]) == {"worker.sbatch", "sync.sbatch"}
        assert doc["bound"]["gpu_hours"] == 0.0  # the quickstart asks for no GPU
    else:
        assert doc["scripts"] == {} and doc["bound"]["gpu_hours"] is None
    assert list(tmp_path.iterdir()) == []


def test_sweep_json_without_dry_run_is_a_usage_error(cli, tmp_path) -> None:
    res = cli("sweep", str(QUICKSTART), "--json")
    assert res.code == 2 and res.err.count("\n") == 1 and "--json needs --dry-run" in res.err
    assert list(tmp_path.iterdir()) == []


def _render(cli, experiment: Path, out: str, *sets: str) -> None:
    args = [a for s in sets for a in ("--set", s)]
    res = cli("render", str(experiment), "--out", out, *args)
    assert res.code == 0, res.err


def test_journal_check_json_reports_a_sound_and_a_damaged_journal(cli, tmp_path) -> None:
    _render(cli, QUICKSTART, "scripts")
    journal = tmp_path / "runs" / "quickstart" / "journal.log"
    sound = cli("journal", "check", str(journal), "--json")
    assert sound.code == 0, sound.err
    lines = len(journal.read_bytes().splitlines())
    assert json.loads(sound.out) == {
        "path": str(journal),
        "ok": True,
        "lines": lines,
        "bad_line": None,
        "problem": None,
    }
    with journal.open("ab") as fh:
        fh.write(b"garbage\n")
    damaged = cli("journal", "check", str(journal), "--json")
    assert damaged.code == 2
    doc = json.loads(damaged.out)
    assert (doc["ok"], doc["lines"], doc["bad_line"]) == (False, lines, lines + 1)
    assert doc["problem"].startswith("not JSON")


@pytest.mark.parametrize("verb", ["status", "sync", "cancel", "retry"])
def test_a_study_that_does_not_exist_is_exit_status_1_in_one_line(cli, tmp_path, verb) -> None:
    res = cli(verb, "nope")
    assert res.code == 1, res.err
    assert res.err.count("\n") == 1 and res.err.startswith("error: no study 'nope'")
    assert not (tmp_path / "runs").exists()


def test_a_usage_error_stays_exit_status_2(cli) -> None:
    assert cli("status").code == 2  # the study name is missing
    assert cli("status", "../escape").code == 2  # not a study name at all


def test_a_worker_for_a_missing_study_stays_2_so_that_no_launcher_restarts_it(cli) -> None:
    _render(cli, QUICKSTART, "s1")
    res = cli("worker", "--study", "nope", "--storage", "journal:runs/quickstart/journal.log")
    assert res.code == 2  # EXIT_USAGE: 1 would be a crash, which launchers restart
    assert res.err.strip().splitlines()[-1].startswith("error: no study 'nope'")


def test_studies_lists_two_rendered_studies_with_their_budgets(cli, tmp_path) -> None:
    _render(cli, QUICKSTART, "s1")
    _render(cli, GAMMA, "s2", "trials=5")
    res = cli("studies", "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["damaged"] == [] and doc["where"] == "runs"
    rows = {row["name"]: row for row in doc["studies"]}
    assert {name: row["budget"] for name, row in rows.items()} == {
        "gamma-hadron": 5,
        "quickstart": 8,
    }
    quick = rows["quickstart"]
    assert quick["state"] == "not started" and quick["finished"] == 0
    assert quick["storage"] == f"journal:{tmp_path / 'runs/quickstart/journal.log'}"
    assert quick["run_dir"] == str(tmp_path / "runs" / "quickstart")
    assert quick["metric"] == "f1" and quick["best_value"] is None
    text = cli("studies")
    assert text.code == 0, text.err
    assert "quickstart: not started, 0/8 finished" in text.out
    assert "gamma-hadron: not started, 0/5 finished" in text.out


def test_studies_reports_a_damaged_journal_in_one_line_and_lists_the_others(cli, tmp_path) -> None:
    _render(cli, QUICKSTART, "s1")
    _render(cli, GAMMA, "s2")
    broken = tmp_path / "runs" / "gamma-hadron" / "journal.log"
    with broken.open("ab") as fh:
        fh.write(b"garbage\n")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    res = cli("studies")
    assert res.code == 1
    assert "quickstart: not started, 0/8 finished" in res.out
    assert res.err.count("\n") == 1
    bad_line = len(broken.read_bytes().splitlines())
    assert res.err.startswith(f"error: runs/gamma-hadron/journal.log:{bad_line}: corrupt journal")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_studies_creates_nothing_when_the_runs_dir_is_empty_or_missing(cli, tmp_path) -> None:
    missing = cli("studies")
    assert missing.code == 0, missing.err
    assert missing.out.strip() == "no studies in runs"
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "empty").mkdir()
    empty = cli("studies", "--runs-dir", "empty", "--json")
    assert empty.code == 0, empty.err
    assert json.loads(empty.out) == {"where": "empty", "studies": [], "damaged": []}
    assert list(tmp_path.iterdir()) == [tmp_path / "empty"]
    assert list((tmp_path / "empty").iterdir()) == []


def test_studies_in_a_database_that_does_not_exist_creates_none(cli, tmp_path) -> None:
    res = cli("studies", "--storage", f"sqlite:///{tmp_path / 'new.db'}")
    assert res.code == 1 and res.err.count("\n") == 1 and "does not exist" in res.err
    assert list(tmp_path.iterdir()) == []


def test_a_profile_that_names_an_executor_wins_over_the_file(cli, tmp_path) -> None:
    res = cli("sweep", str(QUICKSTART), "--profile", "dev", "--dry-run", "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["executor"] == "slurm" and doc["warnings"] == []
    written = tmp_path / "pinned.yaml"
    written.write_text(QUICKSTART.read_text() + "executor: local\n")
    pinned = json.loads(cli("sweep", str(written), "--profile", "dev", "--dry-run", "--json").out)
    assert pinned["executor"] == "slurm"  # the file's executor: the profile's wins


def test_local_workers_under_a_cluster_profile_are_warned_about_in_text_and_json(cli) -> None:
    args = ("sweep", str(QUICKSTART), "--profile", "dev", "--set", "executor=local", "--dry-run")
    doc = json.loads(cli(*args, "--json").out)
    assert doc["executor"] == "local"
    (warning,) = doc["warnings"]
    assert "profile dev runs on a Slurm cluster, but executor local (from --set" in warning
    assert "workers on this machine" in warning
    text = cli(*args)
    assert text.code == 0 and "profile dev runs on a Slurm cluster" in text.err
