"""Opening the storage a study lives in, and the claim lock that keeps the budget exact.

URLs themselves (their kinds, masking, precedence) are :mod:`wcd_hpc.store.urls`. Workers
receive URLs through the environment rather than argv so ``ps`` on a shared login node never
shows them.

Journal files live on the cluster's shared filesystem, usually NFS, so their lock is Optuna's
``JournalFileOpenLock``: a lock file created with ``open(O_CREAT | O_EXCL)``, which NFSv3+ servers
perform atomically, whereas ``flock``/``fcntl`` locks are emulated or silently local on many NFS
clients (the reason sqlite is single-node only), waited for with short jittered sleeps
(:class:`~wcd_hpc.store.filelock.PollingLock`) so that many workers share it fairly. A lock file
left by a killed worker is broken after a 30 s grace period in which its mtime did not change.
Damaged journals are reported by :mod:`wcd_hpc.store.journal` (file, line, salvage command).
PostgreSQL and MySQL go through :mod:`wcd_hpc.store.rdb`, which retries calls with backoff across
a lost connection without writing anything twice; the schema is created by ``sweep`` (creating
the study), so workers find it.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage, JournalStorage, RDBStorage

from wcd_hpc.errors import StorageError, one_line
from wcd_hpc.store import journal
from wcd_hpc.store.filelock import PollingLock
from wcd_hpc.store.rdb import RetryingRDBStorage, connection_lost, retry_call
from wcd_hpc.store.urls import chosen, for_driver, journal_file, kind, mask, mask_text


@dataclass(frozen=True)
class Storage:
    """A storage URL parsed once: its family, its file, its printable form, its open and lock.

    The URL used to ride beside the study into every queue call, and each call re-derived the
    family from it and cut sqlite paths by hand. A process parses the URL once into this value
    and hands the value on. The URL itself is kept out of ``repr`` (it may hold a password), so
    a value logged or shown in a traceback prints only :attr:`masked`, as does ``str()``.
    """

    url: str = field(repr=False)
    #: ``journal``, ``sqlite``, ``postgresql``, ``mysql``, ``grpc`` or ``other`` (:func:`kind`).
    kind: str
    #: The journal or sqlite file that holds the study; None for a server.
    path: Path | None
    #: The URL with its password masked: what may be printed, logged or stored.
    masked: str

    @classmethod
    def parse(cls, url: str) -> Storage:
        """The storage ``url`` (already resolved, :func:`~wcd_hpc.store.urls.resolve`) names."""
        family = kind(url)
        path: Path | None = None
        if family == "journal":
            path = journal_file(url)
        elif family == "sqlite":
            path = Path(url.removeprefix("sqlite:///"))
        return cls(url, family, path, mask(url))

    def __str__(self) -> str:
        return self.masked

    def open(self, *, connections: int | None = None) -> BaseStorage:
        """Open it (:func:`open_storage`)."""
        return open_storage(self.url, connections=connections)

    def lock(self, storage: BaseStorage, study: str) -> contextlib.AbstractContextManager[None]:
        """The claim lock of ``study`` in it, opened as ``storage`` (:func:`claim_lock`)."""
        return claim_lock(self.url, storage, study)


def chosen_storage(flag: str | None) -> Storage | None:
    """The storage a command was given (``--storage``, else ``$WCD_HPC_STORAGE``), parsed; None
    leaves it to the caller's default (:func:`~wcd_hpc.store.urls.chosen`)."""
    url, _ = chosen(flag)
    return None if url is None else Storage.parse(url)


def open_storage(url: str, *, connections: int | None = None) -> BaseStorage:
    """Open the storage behind ``url``; errors name the masked URL and the cause in one line.

    Journal files use Optuna's open-based lock (``O_CREAT | O_EXCL`` on a lock file), which is
    atomic on NFSv3+ unlike ``flock``; RDB storages get a small pool with pre-ping so a worker
    survives idle connections being dropped. ``connections`` sizes the pool of a process that
    serves many workers (the gRPC proxy) instead of a worker's one. ``grpc://HOST:PORT`` is
    Optuna's proxy client, with the retries of :mod:`wcd_hpc.store.grpcstore`.
    """
    family = kind(url)
    if family == "grpc":
        from wcd_hpc.store.grpcstore import open_grpc  # grpcio only where a proxy is used

        return open_grpc(url)
    try:
        if family == "journal":
            path = journal_file(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            journal.check_tail(path)
            lock = PollingLock(str(path))
            return JournalStorage(journal.CheckedJournalBackend(path, lock))
        engine: dict[str, Any] = {"pool_pre_ping": True}
        if family == "sqlite":
            engine["connect_args"] = {"timeout": 60}
            return RDBStorage(for_driver(url), engine_kwargs=engine, skip_compatibility_check=False)
        if family in ("postgresql", "mysql"):
            # Bounded, and one connection kept per worker: a claim briefly needs two (the
            # advisory lock's and the storage's) and the heartbeat thread may want a third, but
            # only pool_size stay open afterwards. With pool_size=2 every worker kept two, so
            # 64 workers needed 128 of PostgreSQL's default max_connections of 100.
            engine.update(pool_size=1, max_overflow=2, pool_recycle=300)
            if connections:  # the proxy: its threads wait for a connection, never time out
                engine.update(pool_size=connections, max_overflow=0, pool_timeout=3600)
        with _schema_creation(url):
            return RetryingRDBStorage(for_driver(url), masked=mask(url), engine_kwargs=engine)
    except StorageError:
        raise
    except Exception as exc:
        raise StorageError(f"cannot open storage {mask(url)}: {mask_text(one_line(exc))}") from None


#: The PostgreSQL advisory lock under which Optuna's tables are created in an empty database.
SCHEMA_LOCK = zlib.crc32(b"wcd-hpc:schema")


@contextlib.contextmanager
def _schema_creation(url: str) -> Iterator[None]:
    """Serialise creating Optuna's tables in an empty PostgreSQL database.

    Optuna creates them (and its version rows) when a storage is opened, without a lock: two
    ``sweep``s opening the same empty database at once both create them and one fails with an
    ``IntegrityError``. A database whose schema is complete (the last row Optuna writes,
    ``alembic_version``, is there: every open after the first) is opened without the lock.
    """
    if kind(url) != "postgresql":
        yield
        return
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(for_driver(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            complete = _schema_complete(conn)
        if complete:  # the connection is closed again: a worker's open keeps one, not two
            yield
            return
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": SCHEMA_LOCK})
            conn.commit()
            try:
                yield
            finally:
                with contextlib.suppress(Exception):  # closing the session releases it anyway
                    conn.execute(
                        sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": SCHEMA_LOCK}
                    )
    finally:
        engine.dispose()


def _schema_complete(conn: Any) -> bool:
    import sqlalchemy

    if not sqlalchemy.inspect(conn).has_table("alembic_version"):
        return False
    rows = conn.execute(sqlalchemy.text("SELECT count(*) FROM alembic_version")).scalar()
    return bool(rows)


def study_exists(storage: BaseStorage, name: str) -> bool:
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    return True


@contextlib.contextmanager
def claim_lock(url: str, storage: BaseStorage, study: str) -> Iterator[None]:
    """Serialise "count finished trials, then ask for a new one" across all workers.

    Without it two workers can both see N-1 trials and both start one, overshooting the budget.
    Journal and sqlite files use a lock file beside them (same NFS-safe open lock as the journal);
    PostgreSQL uses a session advisory lock keyed by the study name; ``grpc://`` the lease lock
    that ``wcd-hpc storage serve`` serves (:mod:`wcd_hpc.store.grpcstore`); other storages go
    unlocked.
    A study's ``_storage`` is Optuna's cache around our RDBStorage, hence the unwrapping. If the
    database restarts inside the section, its session and so the lock are gone: acquiring is
    retried with backoff, and releasing a lock whose session died is not an error.
    """
    parsed = Storage.parse(url)
    family, target = parsed.kind, parsed.path
    if target is not None:
        lock = PollingLock(f"{target}.{study}.claim")
        try:
            lock.acquire()
        except OSError as exc:  # its directory is read-only or full: one line, not a traceback
            raise journal.unwritable(target, exc) from exc
        try:
            yield
        finally:
            lock.release()
    elif family == "postgresql" and isinstance(
        rdb := getattr(storage, "_backend", storage), RDBStorage
    ):
        from sqlalchemy import text

        key = zlib.crc32(f"wcd-hpc:{study}".encode())
        conn = retry_call(mask(url), "claim_lock", lambda: _advisory_lock(rdb, key))
        try:
            yield
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.close()
            except Exception as exc:
                # A lost session has released its advisory lock already; nothing left to undo.
                if not connection_lost(exc):
                    raise
                conn.invalidate()
    elif family == "grpc":
        from wcd_hpc.store.grpcstore import claim_lock as proxy_lock

        with proxy_lock(url, storage, study):
            yield
    else:
        yield


def _advisory_lock(storage: RDBStorage, key: int) -> Any:
    """A connection holding the session advisory lock ``key`` (released when it closes)."""
    from sqlalchemy import text

    conn = storage.engine.connect()
    try:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
    except Exception:
        conn.invalidate()
        raise
    return conn
