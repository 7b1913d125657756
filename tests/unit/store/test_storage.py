"""Storage URLs: resolution for workers elsewhere, and passwords that never show."""

from __future__ import annotations

from pathlib import Path

import pytest

from wcd_hpc.errors import StorageError
from wcd_hpc.store.storage import Storage, open_storage
from wcd_hpc.store.urls import kind, mask, resolve


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://wcd:s3cr:et@db.example/x", "postgresql://wcd@db.example/x"),
        (
            "postgresql+psycopg://u:p@h:5432/d?sslmode=require",
            "postgresql+psycopg://u@h:5432/d?sslmode=require",
        ),
        ("postgresql://u@h/d", "postgresql://u@h/d"),
        ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
        ("journal:/runs/x/journal.log", "journal:/runs/x/journal.log"),
    ],
    # Named ids: pytest would otherwise put the URLs, passwords included, into test ids and
    # from there into .pytest_cache and CI logs.
    ids=["pg-password-with-colon", "psycopg-query", "pg-no-password", "sqlite", "journal"],
)
def test_mask_hides_only_the_password(url: str, shown: str) -> None:
    assert mask(url) == shown


def test_journal_resolves_to_an_absolute_file_in_the_run_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve("journal", Path("runs/s")) == f"journal:{tmp_path}/runs/s/journal.log"
    assert resolve("journal:rel/j.log", Path("x")) == f"journal:{tmp_path}/rel/j.log"
    assert resolve("sqlite:///rel.db", Path("x")) == f"sqlite:///{tmp_path}/rel.db"
    assert resolve("postgresql://h/d", Path("x")) == "postgresql://h/d"


def test_kind_names_the_storage_family() -> None:
    assert [
        kind(u) for u in ("journal:/a", "sqlite:///a", "postgresql+psycopg://h/d", "redis://")
    ] == ["journal", "sqlite", "postgresql", "other"]


def test_unreachable_database_is_one_line_without_the_password() -> None:
    with pytest.raises(StorageError) as info:
        open_storage("postgresql://wcd:hunter2@127.0.0.1:1/nowhere")
    text = str(info.value)
    assert "hunter2" not in text and "\n" not in text
    assert text.startswith("cannot open storage postgresql://wcd@127.0.0.1:1/nowhere: ")


@pytest.mark.filterwarnings("ignore:The value of `grace_period` might be too small")
def test_a_stale_lock_file_is_announced_while_waiting_and_when_removed(
    tmp_path: Path, caplog
) -> None:
    # Left by a killed process, a lock file held every command up for its grace period (30 s)
    # without a word; the wait is announced, with the file, and so is the removal.
    from wcd_hpc.store.filelock import PollingLock

    journal = tmp_path / "journal.log"
    lock = PollingLock(str(journal), grace_period=2)
    Path(lock._lock_file).touch()  # what a killed holder leaves
    with caplog.at_level("WARNING", logger="wcd_hpc.store.storage"):
        assert lock.acquire()
    lock.release()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"waiting for lock file {lock._lock_file}, unchanged for ")
    assert "taken as stale after 2 s" in lines[0]
    assert lines[1].startswith(f"removed lock file {lock._lock_file}: unchanged for ")


def test_a_storage_is_parsed_once_into_its_kind_file_and_masked_form(tmp_path: Path) -> None:
    journal = Storage.parse(f"journal:{tmp_path / 'j.log'}")
    assert (journal.kind, journal.path) == ("journal", tmp_path / "j.log")
    sqlite = Storage.parse(f"sqlite:///{tmp_path / 'a.db'}")
    assert (sqlite.kind, sqlite.path) == ("sqlite", tmp_path / "a.db")
    pg = Storage.parse("postgresql://wcd:s3cret@db.example/x")
    assert (pg.kind, pg.path) == ("postgresql", None)
    # Logged, printed or in a traceback, the value shows only the masked URL.
    assert "s3cret" not in repr(pg) and "s3cret" not in str(pg)
    assert str(pg) == pg.masked == "postgresql://wcd@db.example/x"


def test_a_parsed_storage_opens_and_locks_like_its_url(tmp_path: Path) -> None:
    where = Storage.parse(f"journal:{tmp_path / 'runs' / 's' / 'journal.log'}")
    storage = where.open()
    run_dir = tmp_path / "runs" / "s"
    with where.lock(storage, "s"):  # the claim lock's file, beside the journal while held
        assert [p.name for p in run_dir.glob("journal.log.s.claim*")] != []
    assert [p.name for p in run_dir.glob("journal.log.s.claim*")] == []
