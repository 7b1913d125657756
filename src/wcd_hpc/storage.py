"""Storage URLs: where the study (the queue) lives, how to open it, and how to show it safely.

A study is addressed by one string that every worker can be given: ``journal:/abs/path.log`` for
Optuna's journal file on a shared filesystem, or an SQLAlchemy URL (``sqlite:///…``,
``postgresql://…``). Passwords are masked wherever a URL is shown, and workers receive URLs through
the environment rather than argv so ``ps`` on a shared login node never shows them.
"""

from __future__ import annotations

import contextlib
import os
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

ENV_STORAGE = "WCD_HPC_STORAGE"
JOURNAL_FILE = "journal.log"
_PASSWORD = re.compile(r"^(?P<head>[a-zA-Z][\w+.-]*://[^:/@]*:)(?P<pw>[^@]*)(?P<tail>@.*)$")


class StorageError(RuntimeError):
    """A storage URL that cannot be used; the message is one line, with the password masked."""


def mask(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (safe to print or log)."""
    match = _PASSWORD.match(url)
    if not match:
        return url
    return f"{match['head']}***{match['tail']}"


def resolve(spec: str, run_dir: Path) -> str:
    """Turn an experiment's ``storage`` value into a URL every worker can open.

    ``journal`` means the journal file inside the study's run directory; relative journal paths
    become absolute because workers may start in another working directory.
    """
    if spec == "journal":
        return f"journal:{(run_dir / JOURNAL_FILE).resolve()}"
    if spec.startswith("journal:"):
        return f"journal:{Path(spec.removeprefix('journal:')).expanduser().resolve()}"
    if spec.startswith("sqlite:///"):
        path = spec.removeprefix("sqlite:///")
        if path and not path.startswith("/"):
            return f"sqlite:///{Path(path).resolve()}"
    return spec


def kind(url: str) -> str:
    """The storage family: ``journal``, ``sqlite``, ``postgresql``, ``mysql`` or ``other``."""
    if url.startswith("journal:"):
        return "journal"
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    return scheme if scheme in ("sqlite", "postgresql", "mysql") else "other"


def _journal_path(url: str) -> Path:
    return Path(url.removeprefix("journal:"))


def open_storage(url: str) -> BaseStorage:
    """Open the storage behind ``url``; errors name the masked URL and the cause in one line.

    Journal files use Optuna's open-based lock (``O_CREAT | O_EXCL`` on a lock file), which is
    atomic on NFSv3+ unlike ``flock``; RDB storages get a small pool with pre-ping so a worker
    survives idle connections being dropped.
    """
    family = kind(url)
    try:
        if family == "journal":
            path = _journal_path(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = JournalFileOpenLock(str(path))
            return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
        engine: dict[str, Any] = {"pool_pre_ping": True}
        if family == "sqlite":
            engine["connect_args"] = {"timeout": 60}
        elif family in ("postgresql", "mysql"):
            engine.update(pool_size=2, max_overflow=2, pool_recycle=300)
        return RDBStorage(url, engine_kwargs=engine, skip_compatibility_check=False)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"cannot open storage {mask(url)}: {mask(first)}") from None


def study_exists(storage: BaseStorage, name: str) -> bool:
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    return True


def list_studies(storage: BaseStorage) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage=storage)]


@contextlib.contextmanager
def claim_lock(url: str, storage: BaseStorage, study: str) -> Iterator[None]:
    """Serialise "count finished trials, then ask for a new one" across all workers.

    Without it two workers can both see N-1 trials and both start one, overshooting the budget.
    Journal and sqlite files use a lock file beside them (same NFS-safe open lock as the journal);
    PostgreSQL uses a session advisory lock keyed by the study name; other storages go unlocked.
    """
    family = kind(url)
    if family in ("journal", "sqlite"):
        target = _journal_path(url) if family == "journal" else Path(url.removeprefix("sqlite:///"))
        lock = JournalFileOpenLock(f"{target}.{study}.claim")
        lock.acquire()
        try:
            yield
        finally:
            lock.release()
    elif family == "postgresql" and isinstance(storage, RDBStorage):
        from sqlalchemy import text

        key = zlib.crc32(f"wcd-hpc:{study}".encode())
        with storage.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    else:
        yield


def from_env(value: str | None) -> str:
    """The storage URL given on the command line, else ``$WCD_HPC_STORAGE``."""
    url = value or os.environ.get(ENV_STORAGE)
    if not url:
        raise StorageError(f"no storage given: pass --storage URL or set {ENV_STORAGE}")
    return url
