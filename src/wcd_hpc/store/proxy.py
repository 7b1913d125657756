"""``wcd-hpc storage serve``: Optuna's gRPC storage proxy in front of a database, plus a claim lock.

A few hundred workers each holding one to three PostgreSQL connections exceed the database's
default ``max_connections`` of 100; one proxy process holding a handful of connections does not.
Workers then use ``storage: grpc://HOST:PORT`` (:mod:`wcd_hpc.store.grpcstore` is their side).

What the server is made of, and why:

- **The backend** is opened with our own :func:`~wcd_hpc.store.storage.open_storage`, so
  database calls are retried across a lost connection (:mod:`wcd_hpc.store.rdb`) while the
  workers' calls simply take longer, and wrapped in Optuna's in-process cache the way
  ``optuna.storages.get_storage`` wraps an RDB storage (Optuna's docs warn that the proxy is
  slow without it). Its pool is a few connections (``connections``), whatever the number of
  workers: requests queue for a connection instead of the database queueing for slots.
  Journal files and another proxy are refused: Optuna's proxy does not support
  ``JournalStorage`` (optuna/optuna#6084), and a proxy of a proxy only adds a hop.
- **The storage service** is Optuna's own servicer. Built here rather than with
  ``optuna.storages.run_grpc_proxy_server`` for two reasons: that function has no way to stop on
  a signal, and it binds with gRPC's default ``SO_REUSEPORT``, under which a second proxy
  started on the same port *succeeds* and the kernel splits the workers between two processes
  with two lock tables. Here the port is bound exclusively, so a taken port is one clear line.
- **The claim lock service** (``wcd_hpc.ClaimLock``): a table of leases keyed by study name.
  ``Acquire`` never blocks (granted or not, at once), so waiting workers poll from their side
  and no server thread is ever parked on a lock, whatever the number of waiters; the thread pool
  only has to cover calls in flight. A lease lapses ``lease_s`` after it was last granted or
  renewed, so a killed holder frees the lock by itself.

The proxy is a single point of the sweep: while it is down workers retry for up to 60 s
(:mod:`wcd_hpc.store.grpcstore`), then stop with one line; nothing is lost, since every write
went through to the database, and a restarted proxy serves the same study. It has no
authentication and no encryption: bind it to a cluster-internal interface only.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

import optuna

from wcd_hpc.errors import ConfigError, StorageError, one_line
from wcd_hpc.store.storage import open_storage
from wcd_hpc.store.urls import kind, mask

if TYPE_CHECKING:  # grpc is imported when a proxy starts, not by every `wcd-hpc` command
    import grpc

log = logging.getLogger("wcd_hpc.store.proxy")
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 13000
#: Server threads: each call in flight takes one (lock calls return at once, storage calls take
#: milliseconds), so this serves hundreds of workers; raise it if calls queue.
DEFAULT_THREADS = 64
#: Database connections of the proxy (pool size); threads wait for one rather than fail.
DEFAULT_CONNECTIONS = 8
#: A claim takes milliseconds and its holder renews the lease every third of it.
DEFAULT_LEASE_S = 60.0
#: Seconds calls in flight get to finish once SIGTERM/SIGINT arrives.
GRACE_S = 5.0
SERVABLE = ("postgresql", "mysql", "sqlite")


class LockTable:
    """Who holds each study's claim lock, and until when (a lease, renewed by asking again)."""

    def __init__(self, lease_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lease_s, self._clock = lease_s, clock
        self._held: dict[str, tuple[str, float]] = {}
        self._mutex = threading.Lock()

    def acquire(self, key: str, holder: str) -> bool:
        """Grant (or renew) the lock when it is free, lapsed, or already ``holder``'s."""
        with self._mutex:
            now = self._clock()
            current = self._held.get(key)
            if current is not None and current[0] != holder and current[1] > now:
                return False
            if current is not None and current[0] != holder:
                log.warning(
                    "claim lock of %s: the lease of %s lapsed (holder gone?)", key, current[0]
                )
            self._held[key] = (holder, now + self.lease_s)
            return True

    def release(self, key: str, holder: str) -> bool:
        """Free the lock if ``holder`` has it; anything else (not held, lapsed) is no error."""
        with self._mutex:
            current = self._held.get(key)
            if current is None or current[0] != holder:
                return False
            del self._held[key]
            return True


def lock_service(table: LockTable) -> grpc.GenericRpcHandler:
    """The ``wcd_hpc.ClaimLock`` service on ``table``: JSON in and out, no generated code."""
    import grpc

    from wcd_hpc.store.grpcstore import ACQUIRE, LOCK_SERVICE, RELEASE, decode, encode

    def fields(request: dict[str, Any], context: grpc.ServicerContext) -> tuple[str, str]:
        study, holder = request.get("study"), request.get("holder")
        if not isinstance(study, str) or not isinstance(holder, str):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "expected {study, holder} strings")
        return str(study), str(holder)

    def acquire(request: dict[str, Any], context: grpc.ServicerContext) -> dict[str, Any]:
        granted = table.acquire(*fields(request, context))
        return {"granted": granted, "lease_s": table.lease_s}

    def release(request: dict[str, Any], context: grpc.ServicerContext) -> dict[str, Any]:
        return {"released": table.release(*fields(request, context))}

    def handler(call: Callable[..., dict[str, Any]]) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            call, request_deserializer=decode, response_serializer=encode
        )

    return grpc.method_handlers_generic_handler(
        LOCK_SERVICE, {ACQUIRE: handler(acquire), RELEASE: handler(release)}
    )


@dataclass(frozen=True)
class Serving:
    """What a started proxy tells people: the line for the workers, the backend (masked)."""

    address: str  # grpc://HOST:PORT, as workers reach it
    backend: str
    threads: int


def _public_host(host: str) -> str:
    """The host workers should name: this machine's name when listening on every interface."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        return socket.getfqdn()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def check_servable(url: str) -> None:
    """Refuse what Optuna's proxy cannot serve, before anything is opened or bound."""
    family = kind(url)
    if family not in SERVABLE:
        what = {"journal": "a journal file", "grpc": "another proxy"}.get(family, "this storage")
        raise ConfigError(
            "--storage",
            None,
            None,
            f"the gRPC proxy cannot serve {what} ({mask(url)}; Optuna's proxy supports database "
            "storages only); expected postgresql://…, mysql://… or sqlite:///…",
        )


def open_backend(url: str, connections: int) -> optuna.storages.BaseStorage:
    """The database behind the proxy, cached as Optuna's own proxy expects."""
    check_servable(url)
    return optuna.storages.get_storage(open_storage(url, connections=connections))


def serve(
    url: str,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    threads: int = DEFAULT_THREADS,
    connections: int = DEFAULT_CONNECTIONS,
    lease_s: float = DEFAULT_LEASE_S,
    ready: Callable[[Serving], None] = lambda serving: None,
    stop: threading.Event | None = None,
) -> None:
    """Serve the storage at ``url`` on ``host:port`` until SIGTERM/SIGINT (or ``stop`` is set).

    ``port`` 0 picks a free port (what ``ready`` is told is the real one).
    """
    import grpc
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    check_servable(url)
    _check_free(host, port)
    backend = open_backend(url, connections)
    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wcd-proxy"),
        options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", -1)],
    )
    api_pb2_grpc.add_StorageServiceServicer_to_server(  # type: ignore[no-untyped-call]
        OptunaStorageProxyService(backend), server
    )
    server.add_generic_rpc_handlers((lock_service(LockTable(lease_s)),))
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise StorageError(
            f"cannot listen on {host}:{port}: the port is taken (another proxy?) or {host} is not "
            "an address of this machine; choose another --port or --host"
        )
    stop = stop or threading.Event()
    restore = _on_signals(stop)
    try:
        server.start()
        ready(Serving(f"grpc://{_public_host(host)}:{bound}", mask(url), threads))
        while not stop.wait(0.5):  # short waits: the signal handler runs between them
            pass
    finally:
        server.stop(GRACE_S).wait()
        restore()


def _check_free(host: str, port: int) -> None:
    """Refuse a taken port or a foreign address in our words, before gRPC logs its own."""
    try:
        family, kind_, proto, _, addr = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind_, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds
            probe.bind(addr)
    except OSError as exc:
        why = exc.strerror or one_line(exc)
        if exc.errno == errno.EADDRINUSE:
            why += " (another proxy?); choose another --port"
        else:
            why += "; choose a --host that is an address of this machine"
        raise StorageError(f"cannot listen on {host}:{port}: {why}") from None


def _on_signals(stop: threading.Event) -> Callable[[], None]:
    """Set ``stop`` on SIGTERM and SIGINT (main thread only); returns how to put them back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("storage proxy: %s, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
