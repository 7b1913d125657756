"""Passwords and tokens never land anywhere: terminal, logs, scripts, the study, MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy
from conftest import need, secret_spellings, write_plugin

from wcd_hpc.store.urls import mask_text

TOY = {"WCD_HPC_PLUGINS": "toy"}
PG = "127.0.0.1:5432/wcd_hpc_test"


def test_a_mistyped_storage_url_is_refused_without_its_password(cli, tmp_path) -> None:
    # The refusal quotes the value with repr(), which escapes the password's quote.
    url = f"postgres://wcd:{ODD_PASSWORD.replace('%', '%25')}@db.example/x"
    exp = tmp_path / "e.yaml"
    exp.write_text(f"name: e\ndataset: x\nmodel: lenet\ntrials: 1\nstorage: {json.dumps(url)}\n")
    for args, env in [
        (["--storage", url], {}),
        ([], {"WCD_HPC_STORAGE": url}),
        ([], {}),  # from the file
    ]:
        res = cli("sweep", "e.yaml", "--dry-run", *args, env=env)
        assert res.code == 2 and "postgres://wcd@db.example/x" in res.err, res.err
        _assert_nowhere(secret_spellings(ODD_PASSWORD, url), res.out + res.err)


def test_a_raw_at_in_a_password_reaches_the_driver_as_part_of_the_password() -> None:
    from wcd_hpc.store.urls import for_driver

    for url in (
        "postgresql://wcd:p@ss@w%25rd@db.example:5432/x",
        "postgresql://wcd:p%40ss@db.example/x",
    ):
        parsed = sqlalchemy.make_url(for_driver(url))
        assert (parsed.username, parsed.host) == ("wcd", "db.example")
        assert parsed.password in ("p@ss@w%rd", "p@ss")


def test_a_set_usage_error_shows_the_key_and_what_is_expected(cli, tmp_path) -> None:
    (tmp_path / "e.yaml").write_text("name: e\ndataset: toy-blobs\nmodel: toy-mlp\n")
    for item, expected in [
        ("trials", "error: --set: trials: expected KEY=VALUE, e.g. trials=100"),
        ("x.y", "error: --set: x.y: expected KEY=VALUE, e.g. trials=100"),
    ]:
        res = cli("sweep", "e.yaml", "--dry-run", "--set", item)
        assert res.code == 2 and res.err.strip() == expected, res.err
    assert mask_text("expected KEY=VALUE, password=p1 key=k1") == (
        "expected KEY=VALUE, password=*** key=k1"
    )


def test_the_cli_masks_what_anything_prints_even_a_bug_s_traceback(cli, tmp_path) -> None:
    # A bug's traceback and a plugin's own prints reach the terminal through the same masking,
    # and a password in $WCD_HPC_STORAGE is known before any command has read the variable.
    (tmp_path / "bug.py").write_text(
        "import sys\n"
        "sys.argv = ['wcd-hpc', 'status', 'x']\n"
        "import wcd_hpc.queue.study as s\n"
        "def boom(*a, **k):\n"
        "    print('plugin says postgresql://u:PrCanary2@h/d and EnvCanary4')\n"
        "    raise RuntimeError('driver: postgresql://u:BugCanary3@h/d refused')\n"
        "s.open_existing = boom\n"
        "from wcd_hpc.__main__ import main\n"
        "main()\n"
    )
    env = {**os.environ, "WCD_HPC_STORAGE": "postgresql://u:EnvCanary4@h/d"}
    proc = subprocess.run(
        [sys.executable, "bug.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 1 and "Traceback (most recent call last)" in proc.stderr
    assert "RuntimeError: driver: postgresql://u@h/d refused" in proc.stderr
    assert "plugin says postgresql://u@h/d and ***" in proc.stdout
    assert "Canary" not in proc.stdout + proc.stderr


def _files_text(*roots: Path) -> str:
    """Every file under ``roots`` as text: UTF-8 read as Latin-1 keeps every byte, and each
    secret is looked for in the same spelling (:func:`_assert_nowhere`)."""
    parts = []
    for root in roots:
        for path in sorted(root.rglob("*")) if root.exists() else []:
            if path.is_file():
                parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def _assert_nowhere(leaks: list[str], where: str, *, files: str = "", rows: str = "") -> None:
    """None of ``leaks`` in ``where`` (outputs), ``files`` (:func:`_files_text`) or ``rows``."""
    for leak in leaks:
        assert leak not in where, f"{leak!r} in the output"
        assert leak.encode().decode("latin-1") not in files, f"{leak!r} in a file"
        assert leak not in rows, f"{leak!r} in the study"


def _study_rows(url: str, name: str) -> str:
    """Every attribute row of study ``name`` in the database, as text."""
    engine = sqlalchemy.create_engine(url)
    query = """
        SELECT s.study_name, a.key, a.value_json FROM studies s
          JOIN study_user_attributes a ON a.study_id = s.study_id WHERE s.study_name = :n
        UNION ALL
        SELECT s.study_name, a.key, a.value_json FROM studies s
          JOIN trials t ON t.study_id = s.study_id
          JOIN trial_user_attributes a ON a.trial_id = t.trial_id WHERE s.study_name = :n
        UNION ALL
        SELECT s.study_name, a.key, a.value_json FROM studies s
          JOIN trials t ON t.study_id = s.study_id
          JOIN trial_system_attributes a ON a.trial_id = t.trial_id WHERE s.study_name = :n
    """
    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text(query), {"n": name}).fetchall()
    engine.dispose()
    assert rows, f"no rows for study {name}"
    return json.dumps([list(r) for r in rows], ensure_ascii=False)


#: Every kind of character at once; the role ``wcd_canary`` of slurm/dev-cluster/postgres-up
#: has this password, for servers that check passwords (the dev server trusts loopback).
ODD_PASSWORD = "Ca'n\"a\\r y@%ñ€"
ODD_ROLE = "wcd_canary"


@pytest.fixture(scope="session")
def odd_pg(pg_url: str) -> tuple[str, list[str]]:
    """A URL of the test database whose password is :data:`ODD_PASSWORD`, written raw as a user
    types it (only ``%`` escaped), and every form in which that password could leak."""
    spelled = ODD_PASSWORD.replace("%", "%25")
    for user in ("wcd", ODD_ROLE):
        exact = sqlalchemy.URL.create(
            "postgresql", user, ODD_PASSWORD, "127.0.0.1", 5432, "wcd_hpc_test"
        )
        engine = sqlalchemy.create_engine(exact)
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT 1"))
        except sqlalchemy.exc.OperationalError:
            continue
        finally:
            engine.dispose()
        return f"postgresql://{user}:{spelled}@{PG}", secret_spellings(ODD_PASSWORD, spelled)
    need("PostgreSQL", f"role {ODD_ROLE} missing (run slurm/dev-cluster/postgres-up)")
    raise AssertionError("unreachable")


@pytest.mark.slow
@pytest.mark.parametrize("form", ["userinfo", "query-password", "every-character"])
def test_a_canary_password_appears_nowhere_after_every_command(
    cli, testplugins, toy_experiment, tmp_path, pg_url, secret_pg_url, form, request
) -> None:
    canary = secret_pg_url.split(":")[2].split("@")[0]  # the test role's real password
    url, leaks = {
        "userinfo": (f"postgresql://wcd:{canary}@{PG}", [canary]),
        "query-password": (f"postgresql+psycopg://wcd@{PG}?password={canary}", [canary]),
    }.get(form) or request.getfixturevalue("odd_pg")
    name = f"canary-{uuid.uuid4().hex[:10]}"
    exp = toy_experiment(name=name, trials=1, storage=json.dumps(url))  # YAML reads JSON
    seen = []

    def run(*args: str) -> None:
        res = cli(*args, plugins=testplugins, env=TOY)
        assert res.code == 0, res.err
        seen.append(res.out + res.err)

    run("sweep", str(exp), "--dry-run")
    run("render", str(exp), "--out", "scripts")
    run("sweep", str(exp))  # runs a worker and syncs to the local MLflow store at the end
    run("train", str(exp))
    run("status", name, "--storage", url, "--json")
    run("sync", name, "--storage", url)
    broken = url.replace("127.0.0.1", "127.0.0.9")  # a failing connection names the URL
    failed = cli("status", name, "--storage", broken, plugins=testplugins, env=TOY)
    assert failed.code == 2
    assert ":***@" not in failed.err
    assert "wcd@127.0.0.9" in failed.err or "password=***" in failed.err
    seen.append(failed.out + failed.err)

    files = _files_text(tmp_path / "runs", tmp_path / "scripts")
    assert (tmp_path / "runs" / "mlflow.db").exists() and "mlartifacts" in str(
        list((tmp_path / "runs").iterdir())
    )
    # run dir, logs, trial files, experiment.json, the MLflow store and its artifacts
    _assert_nowhere(leaks, "\n".join(seen), files=files, rows=_study_rows(pg_url, name))


#: A model plugin whose failures quote the storage URL (or another one): in the driver's words
#: first (an invalid sslmode holding the password), then in its own (the URL, raw and repr).
LEAKY_MODEL = """\
import os

from wcd_hpc import Model, hookimpl

CALLS = []


def _build(params, spec):
    CALLS.append(1)
    if len(CALLS) == 1 and "LEAK_PASSWORD" in os.environ:
        import psycopg

        psycopg.connect(host="127.0.0.1", dbname="x", sslmode=os.environ["LEAK_PASSWORD"])
    url = os.environ.get("LEAK_URL") or os.environ["WCD_HPC_STORAGE"]
    raise RuntimeError(f"cannot reach {url!r} ({url})")


@hookimpl
def register_models(register):
    space = {"lr": 0.01, "batch_size": 16, "optimizer": "adam"}
    register(Model(name="leaky", build=_build, space=space))
"""
#: A plugin that cannot import, and says why with the URL.
LEAKY_IMPORT = """\
import os

url = os.environ.get("LEAK_URL") or os.environ["WCD_HPC_STORAGE"]
raise RuntimeError(f"no database at {url!r}")
"""
LEAKY_EXPERIMENT = """\
name: {name}
dataset: {{name: toy-blobs, params: {{events: 200}}}}
model: leaky
metric: accuracy
trials: 1
epochs: 1
executor: local
"""


def _leaky_commands(cli, tmp_path: Path, env: dict[str, str]) -> tuple[str, str]:
    """Sweep, status, sync and list plugins with the leaky plugins; (outputs, study name)."""
    site = write_plugin(tmp_path / "site", "leaky", LEAKY_MODEL)
    write_plugin(site, "leaky-import", LEAKY_IMPORT)
    name = f"leaky-{uuid.uuid4().hex[:8]}"
    (tmp_path / "leaky.yaml").write_text(LEAKY_EXPERIMENT.format(name=name))
    env = {"PYTHONPATH": f"{site}{os.pathsep}{env.pop('PYTHONPATH')}", **env}
    env["WCD_HPC_PLUGINS"] = "toy,leaky,leaky-import"
    results = [
        cli("sweep", "leaky.yaml", env=env),  # every trial fails: exit 1
        cli("status", name, env=env),
        cli("status", name, "--json", env=env),
        cli("sync", name, env=env),
        cli("plugins", "--json", env=env),
    ]
    assert [r.code for r in results] == [1, 0, 0, 0, 1], [r.err for r in results]
    causes = [f["cause"] for f in results[2].json()["failures"]]
    assert causes and all("model 'leaky' failed" in c for c in causes), causes
    assert any("leaky-import 0.1): failed to import" in e for e in results[4].json()["errors"])
    return "\n".join(r.out + r.err for r in results), name


@pytest.mark.slow
def test_a_url_in_a_plugin_s_exceptions_appears_nowhere(cli, testplugins, tmp_path) -> None:
    # Not our URL (the study is a journal): only its shape tells it is one.
    leaks = secret_spellings("Le'a\"k y@7%", "Le'a\"k y@7%25")
    env = {"PYTHONPATH": str(testplugins), "LEAK_URL": "postgresql://u:Le'a\"k y@7%25@h/db"}
    seen, _ = _leaky_commands(cli, tmp_path, env)
    assert "u@h/db" in seen
    # the journal (study attributes), trials/N/error.txt, worker logs, MLflow store and artifacts
    _assert_nowhere(leaks, seen, files=_files_text(tmp_path / "runs"))


@pytest.mark.slow
def test_a_canary_in_driver_and_plugin_exceptions_appears_nowhere(
    cli, testplugins, tmp_path, pg_url, odd_pg
) -> None:
    url, leaks = odd_pg
    env = {"PYTHONPATH": str(testplugins), "WCD_HPC_STORAGE": url, "LEAK_PASSWORD": ODD_PASSWORD}
    seen, name = _leaky_commands(cli, tmp_path, env)
    assert "invalid sslmode value" in seen  # the driver's own words, password masked
    files = _files_text(tmp_path / "runs")
    rows = _study_rows(pg_url, name)
    _assert_nowhere(leaks, seen, files=files, rows=rows)
    # what the study keeps names the user and nothing of the password: "u@h"
    assert "cannot reach" in rows and ":***@" not in rows and "@127.0.0.1:5432/" in rows, rows


@pytest.mark.slow
def test_secrets_of_failing_urls_are_masked_in_every_error_line(cli, testplugins, tmp_path) -> None:
    raw_at = "postgresql://wcd:Sup3r@Canary@127.0.0.9:5432/x"
    token = "http://127.0.0.1:9/?token=TokCanary42"
    runs = tmp_path / "runs"
    (runs / "q").mkdir(parents=True)
    out = [
        cli("status", "q", "--storage", raw_at),
        cli("sync", "q", "--storage", raw_at),
        cli("worker", "--study", "q", "--storage", raw_at),
        cli("doctor", "--storage", raw_at),
    ]
    texts = [r.out + r.err for r in out]
    for text in texts:
        assert "Sup3r" not in text and "Canary@" not in text
    exp = tmp_path / "t.yaml"
    exp.write_text(
        "name: q\ndataset: toy-blobs\nmodel: toy-mlp\ntrials: 1\nepochs: 1\nexecutor: local\n"
    )
    assert cli("sweep", str(exp), "--no-sync", plugins=testplugins, env=TOY).code == 0
    synced = cli("sync", "q", "--tracking-uri", token, plugins=testplugins, env=TOY)
    assert synced.code == 1 and "token=***" in synced.err
    assert "TokCanary42" not in synced.out + synced.err
    assert "TokCanary42" not in _files_text(runs)
