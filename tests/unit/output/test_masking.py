"""Masking: every form of a secret in any text, log line or traceback becomes ``***``.

The pure half of the secrets tests; ``tests/integration/test_secrets.py`` sends a canary password
through every command, a real PostgreSQL and MLflow, and looks for it everywhere afterwards.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
from conftest import secret_spellings

from wcd_hpc.errors import ConfigError, StorageError, clip, one_line
from wcd_hpc.output.masking import (
    MaskSecrets,
    mask,
    mask_text,
    masked_traceback,
    stored_text,
    without_secrets,
)
from wcd_hpc.store.urls import chosen  # remembers the password of the storage it is given

FORMS = {
    # the form: (url, the secret it carries, what mask() shows)
    "userinfo": (
        "postgresql://wcd:s3cr:et@db.example/x",
        "s3cr:et",
        "postgresql://wcd@db.example/x",
    ),
    "raw-at-in-password": (
        "postgresql://wcd:p@ss@word@db.example:5432/x",
        "ss@word",
        "postgresql://wcd@db.example:5432/x",
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


#: A password holding each kind of character a password may hold, and how a URL spells it
#: (``%`` is a percent-escape in a URL, so a literal one is written ``%25``).
ODD = {
    "quote": ("Qu'o7te", "Qu'o7te"),
    "double-quote": ('Du"o7te', 'Du"o7te'),
    "backslash": ("Ba\\ck7sl", "Ba\\ck7sl"),
    "at": ("A@t7@sign", "A@t7@sign"),
    "percent": ("Per%7cent", "Per%257cent"),
    "space": ("Spa ce7 x", "Spa ce7 x"),
    "non-ascii": ("Nön-äscii7€", "Nön-äscii7€"),
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
        "boom for postgresql://u@h/d and http://m/?token=*** password=*** end"
    )
    log = logging.getLogger("wcd_hpc.test_masking")
    log.addFilter(MaskSecrets())
    with caplog.at_level(logging.INFO, logger=log.name):
        log.warning("retrying %s", "postgresql://u:pw4@h/d")
    assert "pw4" not in caplog.text and "u@h/d" in caplog.text


@pytest.mark.parametrize("case", sorted(ODD))
def test_a_url_is_masked_in_any_quoting_whatever_its_password_holds(case: str) -> None:
    secret, spelled = ODD[case]
    url = f"postgres://wcd:{spelled}@db.example:5432/x"  # a mistyped scheme: never opened
    texts = [
        f"cannot open {url}: refused",
        f"got {url!r}",
        f"got {url!a}",
        json.dumps({"storage": url, "n": 1}),
        one_line(ValueError(f"bad storage {url!r}")),
        one_line(RuntimeError(f"{url}\nsecond line")),
        str(ConfigError("--storage", "storage", None, f"expected a URL, got {url!r}")),
        str(StorageError(f"({url!r},) and {[url]}")),
        clip(f"{url} {'x' * 200}", 30),  # cut inside the password: masked before the cut
    ]
    for text in texts:
        masked = mask_text(text)
        assert "wcd@db.example" in masked and ":***@" not in masked, masked
        for leak in secret_spellings(secret, spelled):
            assert leak not in masked, (leak, masked)


@pytest.mark.parametrize("case", sorted(ODD))
def test_a_kept_text_names_the_user_but_holds_no_password_shaped_userinfo(case: str) -> None:
    # what a study, an error.txt or MLflow keeps: not even a masked password after the user
    secret, spelled = ODD[case]
    url = f"postgresql+psycopg://wcd:{spelled}@db.example:5432/x?password=q7rx&sslmode=require"
    text = f"cannot load data for {url!r}; then http://m:{spelled}@mlflow/ said password=k7ey"
    kept = stored_text(text)
    assert "postgresql+psycopg://wcd@db.example:5432/x?password=***&sslmode=require" in kept
    assert "http://m@mlflow/ said password=***" in kept, kept
    assert ":***@" not in kept and "q7rx" not in kept and "k7ey" not in kept
    for leak in secret_spellings(secret, spelled):
        assert leak not in kept, (leak, kept)
    try:
        raise RuntimeError(f"driver: {url} refused")
    except RuntimeError as exc:
        trace = masked_traceback(exc)
    assert "RuntimeError: driver: postgresql+psycopg://wcd@db.example:5432/x" in trace
    assert ":***@" not in trace and secret not in trace


@pytest.mark.parametrize("case", sorted(ODD))
def test_a_password_seen_once_is_masked_anywhere_later_in_any_form(case: str) -> None:
    # e.g. a driver's "invalid sslmode value" quoting the password without its URL
    secret, spelled = ODD[case]
    chosen(f"postgresql://wcd:{spelled}-seen@127.0.0.1/x")  # as --storage gives it
    for leak in secret_spellings(f"{secret}-seen", f"{spelled}-seen"):
        assert leak not in mask_text(f'connection is bad: invalid sslmode value: "{leak}"')


def test_a_password_seen_once_leaves_no_masked_userinfo_where_no_url_is_recognised() -> None:
    # a driver writing "user:password@host" without a scheme: masked by value, then the shape
    chosen("postgresql://wcd:Zq81-schemeless@127.0.0.1/x")
    shown = mask_text("could not connect as wcd:Zq81-schemeless@127.0.0.1 (refused)")
    assert shown == "could not connect as wcd@127.0.0.1 (refused)"


def test_log_lines_mask_the_traceback_they_carry(caplog) -> None:
    log = logging.getLogger("wcd_hpc.test_masking.tb")
    log.addFilter(MaskSecrets())
    try:
        raise RuntimeError("driver: postgresql://u:TbCanary1@h/d refused")
    except RuntimeError:
        with caplog.at_level(logging.INFO, logger=log.name):
            log.exception("claim failed")
    handler = logging.StreamHandler(stream := io.StringIO())
    for record in caplog.records:
        handler.handle(record)
    assert "TbCanary1" not in stream.getvalue() and "u@h/d" in stream.getvalue()
