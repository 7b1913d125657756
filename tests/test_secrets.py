"""Passwords and tokens never land anywhere: terminal, logs, scripts, the study, MLflow."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest
import sqlalchemy

from wcd_hpc.queue.urls import MaskSecrets, mask, mask_text, without_secrets

TOY = {"WCD_HPC_PLUGINS": "toy"}
PG = "127.0.0.1:5432/wcd_hpc_test"

FORMS = {
    # the form: (url, the secret it carries, what mask() shows)
    "userinfo": (
        "postgresql://wcd:s3cr:et@db.example/x",
        "s3cr:et",
        "postgresql://wcd:***@db.example/x",
    ),
    "raw-at-in-password": (
        "postgresql://wcd:p@ss@word@db.example:5432/x",
        "ss@word",
        "postgresql://wcd:***@db.example:5432/x",
    ),
    "query-password": (
        "postgresql+psycopg://wcd@db.example/x?sslmode=require&password=hunter2",
        "hunter2",
        "postgresql+psycopg://wcd@db.example/x?sslmode=require&password=***",
    ),
    "mlflow-token": (
        "https://mlflow.example/?token=abc123",
        "abc123",
        "https://mlflow.example/?token=***",
    ),
    "query-secret-words": (
        "http://h/x?api_key=k1&client_secret=k2&sslpassword=k3",
        "k1",
        "http://h/x?api_key=***&client_secret=***&sslpassword=***",
    ),
    "conninfo": ("host=db password='p w' dbname=x", "p w", "host=db password=*** dbname=x"),
    "no-secret": ("postgresql://wcd@db.example/x", "", "postgresql://wcd@db.example/x"),
    "journal": ("journal:/runs/x/journal.log", "", "journal:/runs/x/journal.log"),
}


@pytest.mark.parametrize("form", sorted(FORMS), ids=sorted(FORMS))
def test_mask_hides_every_form_of_secret(form: str) -> None:
    url, secret, shown = FORMS[form]
    assert mask(url) == shown
    removed = without_secrets(url)
    if secret:
        assert secret not in removed and secret not in mask_text(f"cannot open '{url}': refused")


def test_secrets_inside_any_message_and_any_log_line_are_masked(caplog) -> None:
    message = "boom for postgresql://u:pw1@h/d and http://m/?token=tk2; password=pw3 end"
    assert mask_text(message) == (
        "boom for postgresql://u:***@h/d and http://m/?token=*** password=*** end"
    )
    log = logging.getLogger("wcd_hpc.test_secrets")
    log.addFilter(MaskSecrets())
    with caplog.at_level(logging.INFO, logger=log.name):
        log.warning("retrying %s", "postgresql://u:pw4@h/d")
    assert "pw4" not in caplog.text and "u:***@h" in caplog.text


def _files_text(*roots: Path) -> str:
    parts = []
    for root in roots:
        for path in sorted(root.rglob("*")) if root.exists() else []:
            if path.is_file():
                parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


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
    return json.dumps([list(r) for r in rows])


@pytest.mark.slow
@pytest.mark.parametrize("form", ["userinfo", "query-password"])
def test_a_canary_password_appears_nowhere_after_every_command(
    cli, testplugins, toy_experiment, tmp_path, pg_url, form
) -> None:
    canary = pg_url.split(":")[2].split("@")[0]  # the test role's real password
    url = (
        f"postgresql://wcd:{canary}@{PG}"
        if form == "userinfo"
        else f"postgresql+psycopg://wcd@{PG}?password={canary}"
    )
    name = f"canary-{uuid.uuid4().hex[:10]}"
    exp = toy_experiment(name=name, trials=1, storage=url)
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
    assert "wcd:***@" in failed.err or "password=***" in failed.err
    seen.append(failed.out + failed.err)

    assert canary not in "\n".join(seen)
    files = _files_text(tmp_path / "runs", tmp_path / "scripts")
    assert (tmp_path / "runs" / "mlflow.db").exists() and "mlartifacts" in str(
        list((tmp_path / "runs").iterdir())
    )
    assert canary not in files  # run dir, logs, trial files, experiment.json, MLflow store
    assert canary not in _study_rows(pg_url, name)


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
