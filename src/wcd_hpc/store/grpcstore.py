"""Workers on ``grpc://HOST:PORT``: Optuna's storage proxy client, made fit for a sweep.

Why a proxy at all: PostgreSQL's ``max_connections`` is 100 by default and each worker holds one
to three connections, so a few hundred workers cannot all talk to the database. They talk to one
``wcd-hpc storage serve`` process instead (:mod:`wcd_hpc.store.proxy`), which holds a handful of
connections. Optuna's client (``optuna.storages.GrpcStorageProxy``) lacks three things a sweep
relies on, and this module adds them:

- **A clear failure to connect.** A mistyped host is refused at once (its name does not
  resolve); an address where nothing answers within :data:`DEFAULT_WAIT_S` seconds (long enough
  for a worker started just before the proxy) is one line naming the address and what to run.
- **Riding out a proxy restart.** Optuna's client raises on the first ``UNAVAILABLE``. Here the
  calls whose repetition writes nothing twice (the same list as :mod:`wcd_hpc.store.rdb`) are
  retried with the same backoff (0.5 s, 1 s, … for up to 60 s); finishing a trial treats "already
  finished in the state we asked for" after a retry as its own write; creating a trial tags it
  with a token and, after a lost answer, looks for that token before creating another. When the
  proxy stays away longer, the call fails with one line and the worker stops; a trial it held is
  left to be resumed from its checkpoint once the proxy is back (:mod:`wcd_hpc.queue.outage`).
- **The claim lock.** Journal files have a lock file and PostgreSQL an advisory lock; a gRPC
  client has neither. ``storage serve`` also serves a small lock service (``wcd_hpc.ClaimLock``,
  methods ``Acquire``/``Release``, JSON bytes, so no protoc step): an acquire is a non-blocking
  try that the client repeats with short jittered pauses, so a waiting worker never occupies one
  of the server's threads; a granted lock is a *lease* the holder renews while it holds it, so a
  killed worker's lock lapses after the lease (60 s by default) instead of blocking the study.
  Releasing a lock not held is not an error (a restarted proxy holds none). Across a proxy
  restart a claim's lock may be lost while the claim is under way, as a PostgreSQL session's can
  be: :mod:`wcd_hpc.queue.claims` counts again after starting a trial and gives up one that
  overshot the budget.

Heartbeats need nothing: they are trial user attributes and pass through the proxy like any
other write. Caveat of Optuna's client: it caches finished trials for the life of the process
and afterwards only asks for newer or unfinished ones, which is right for a queue (finished
trials do not change) but means a finished trial edited behind the proxy's back is not seen.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import grpc
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, GrpcStorageProxy
from optuna.storages._grpc.auto_generated import api_pb2_grpc
from optuna.storages._grpc.client import GrpcClientCache
from optuna.trial import FrozenTrial, TrialState

from wcd_hpc.errors import MAX_LINE, ConfigError, StorageError, StorageUnreachable, clip, one_line
from wcd_hpc.experiment.addresses import grpc_address
from wcd_hpc.store.rdb import (
    IDEMPOTENT,
    Backoff,
    create_once,
    recovered,
    retry_while,
    set_state_once,
    tagged,
    with_token,
)

log = logging.getLogger("wcd_hpc.store.storage")
T = TypeVar("T")

#: How long opening waits for the proxy to answer; a worker may start a moment before it.
ENV_WAIT = "WCD_HPC_GRPC_WAIT_S"
DEFAULT_WAIT_S = 15.0
#: The lock service ``storage serve`` adds next to Optuna's storage service.
LOCK_SERVICE = "wcd_hpc.ClaimLock"
ACQUIRE, RELEASE = "Acquire", "Release"
#: Deadline of one lock call: it never blocks on the server, so seconds mean a hung proxy.
LOCK_CALL_S = 10.0
#: Pauses between tries of a held lock: from a few milliseconds (claims take milliseconds)
#: doubling up to a quarter second, each jittered so that waiting workers do not move in step.
POLL_FIRST_S, POLL_MAX_S = 0.005, 0.25
#: gRPC's own reconnect backoff grows to two minutes; capped, a restarted proxy is found soon.
RECONNECT_MAX_MS = 2000
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),  # as Optuna's client: a study may be large
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", RECONNECT_MAX_MS),
]


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def decode(data: bytes) -> dict[str, Any]:
    value = json.loads(data.decode()) if data else {}
    return value if isinstance(value, dict) else {}


def hint(host: str, port: int) -> str:
    return f"is `wcd-hpc storage serve` running on {host}:{port}?"


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the proxy could not be reached (as opposed to a refused call)."""
    return isinstance(exc, grpc.RpcError) and exc.code() in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )


def _details(exc: BaseException) -> str:
    """Why a call failed, in the fewest words: gRPC's ``str`` of an error is a multi-line dump
    and its details a chain ("failed to connect to all addresses; …: Connection refused") whose
    last link is the operating system's own reason."""
    details = exc.details() if isinstance(exc, grpc.RpcError) else None
    lines = str(details or "").strip().splitlines()
    return clip(lines[0].rsplit(": ", 1)[-1], MAX_LINE) if lines else one_line(exc)


def open_grpc(url: str) -> BaseStorage:
    """A :class:`RetryingGrpcStorageProxy` on ``url``, once the proxy answers."""
    try:
        host, port = grpc_address(url)
    except ValueError as exc:
        raise ConfigError("storage", None, None, str(exc)) from None
    try:
        socket.getaddrinfo(host, port)
    except OSError:
        raise StorageError(
            f"cannot open storage {url}: host {host!r} not found; {hint(host, port)}"
        ) from None
    try:
        wait = float(os.environ.get(ENV_WAIT) or DEFAULT_WAIT_S)
    except ValueError:
        raise ConfigError(
            f"${ENV_WAIT}", None, None, f"expected seconds, got {os.environ[ENV_WAIT]!r}"
        ) from None
    storage = RetryingGrpcStorageProxy(host=host, port=port)
    try:
        storage.wait_server_ready(timeout=wait)
        LockClient(storage.lock_channel(), host, port).release("", "")  # is it ours?
    except (ConnectionError, grpc.RpcError) as exc:
        storage.close()
        if isinstance(exc, grpc.RpcError) and not unavailable(exc):
            raise
        raise StorageError(
            f"cannot open storage {url}: no answer within {wait:g} s; {hint(host, port)}"
        ) from None
    except StorageError:
        storage.close()
        raise
    return storage


class RetryingGrpcStorageProxy(GrpcStorageProxy):
    """Optuna's proxy client whose calls survive a proxy restart without writing twice."""

    def __init__(self, *, host: str, port: int) -> None:
        self.where = f"grpc://{host}:{port}"
        with warnings.catch_warnings():  # experimental since Optuna 4.2; what we use is stable
            warnings.simplefilter("ignore", ExperimentalWarning)
            super().__init__(host=host, port=port)

    def _setup(self) -> None:
        # Optuna's channel, with gRPC's reconnect backoff capped at RECONNECT_MAX_MS: by
        # default it grows to two minutes, so after an outage of a minute the channel would not
        # even look for a restarted proxy before our retries gave up.
        self._channel = grpc.insecure_channel(f"{self._host}:{self._port}", options=CHANNEL_OPTIONS)
        self._stub = api_pb2_grpc.StorageServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._cache = GrpcClientCache(self._stub)

    def lock_channel(self) -> grpc.Channel:
        """The channel the storage calls use; the claim lock shares it."""
        channel: grpc.Channel = self._channel
        return channel

    def pause(self, what: str) -> Callable[[BaseException], None]:
        """The pause between retries of ``what``: backoff, then one line naming the proxy."""
        backoff = Backoff(self.where, what)
        return lambda exc: pause_or_fail(backoff, exc, self._host, self._port)

    def retry(self, what: str, call: Callable[[], T]) -> T:
        """Run ``call``; while the proxy is unreachable wait and run it again (idempotent only)."""
        result = retry_while(call, lost=unavailable, pause=self.pause(what))
        recovered(self.where)
        return result

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        token = uuid.uuid4().hex
        template = tagged(template_trial, token)

        def search() -> int | None:
            found = with_token(self.get_all_trials(study_id, deepcopy=False), token)
            return None if found is None else found._trial_id

        return create_once(
            lambda: super(RetryingGrpcStorageProxy, self).create_new_trial(study_id, template),
            lost=unavailable,
            pause=self.pause("create_new_trial"),
            search=search,
            where=self.where,
        )

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        return set_state_once(
            lambda: super(RetryingGrpcStorageProxy, self).set_trial_state_values(
                trial_id, state, values
            ),
            lost=unavailable,
            pause=self.pause("set_trial_state_values"),
            arrived=lambda: self.get_trial(trial_id).state == state,
        )


def pause_or_fail(backoff: Backoff, exc: BaseException, host: str, port: int) -> None:
    """One backoff pause logged with the proxy's own words, or one line when time is up."""
    backoff.wait(
        StorageUnreachable(
            f"proxy {backoff.where} unreachable for {backoff.window:g} s ({_details(exc)}); "
            f"{hint(host, port)}"
        )
    )


def _retrying(name: str) -> Callable[..., Any]:
    def wrapper(self: RetryingGrpcStorageProxy, *args: Any, **kwargs: Any) -> Any:
        method = getattr(GrpcStorageProxy, name)
        return self.retry(name, lambda: method(self, *args, **kwargs))

    wrapper.__name__ = name
    wrapper.__doc__ = getattr(GrpcStorageProxy, name).__doc__
    return wrapper


# Only what the client itself defines: inherited helpers call these and would retry twice.
for _name in (*IDEMPOTENT, "get_all_trials"):
    if _name in vars(GrpcStorageProxy):
        setattr(RetryingGrpcStorageProxy, _name, _retrying(_name))


# --------------------------------------------------------------------------------------------
# The claim lock


class LockClient:
    """The two calls of the lock service, on an existing channel."""

    def __init__(self, channel: grpc.Channel, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._acquire = channel.unary_unary(
            f"/{LOCK_SERVICE}/{ACQUIRE}", request_serializer=encode, response_deserializer=decode
        )
        self._release = channel.unary_unary(
            f"/{LOCK_SERVICE}/{RELEASE}", request_serializer=encode, response_deserializer=decode
        )

    def _call(self, method: Any, study: str, holder: str) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = method({"study": study, "holder": holder}, timeout=LOCK_CALL_S)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise StorageError(
                    f"the gRPC storage proxy on {self.host}:{self.port} serves no claim lock: "
                    "start it with `wcd-hpc storage serve` (Optuna's own proxy server lacks it)"
                ) from None
            raise
        return answer

    def try_acquire(self, study: str, holder: str) -> float | None:
        """The lease in seconds when ``holder`` now holds the study's lock, else None.

        Asked again by the holder, it renews the lease.
        """
        answer = self._call(self._acquire, study, holder)
        return float(answer.get("lease_s", 0.0)) if answer.get("granted") else None

    def release(self, study: str, holder: str) -> bool:
        """Give the lock up; False (not an error) when ``holder`` did not hold it."""
        return bool(self._call(self._release, study, holder).get("released"))


def lock_client(url: str, storage: BaseStorage) -> LockClient:
    host, port = grpc_address(url)
    if isinstance(storage, RetryingGrpcStorageProxy):
        return LockClient(storage.lock_channel(), host, port)
    return LockClient(grpc.insecure_channel(f"{host}:{port}", options=CHANNEL_OPTIONS), host, port)


def acquire(client: LockClient, study: str, holder: str) -> float:
    """Try until granted; returns the lease. Retries through a proxy restart for up to 60 s."""
    where = f"grpc://{client.host}:{client.port}"
    backoff = Backoff(where, "claim_lock")
    pause = POLL_FIRST_S
    while True:
        try:
            lease = client.try_acquire(study, holder)
        except grpc.RpcError as exc:
            if not unavailable(exc):
                raise
            pause_or_fail(backoff, exc, client.host, client.port)
            continue
        if lease is not None:
            return lease
        time.sleep(pause * random.uniform(0.5, 1.5))
        pause = min(pause * 2, POLL_MAX_S)


def _renew(
    client: LockClient, study: str, holder: str, lease: float, done: threading.Event
) -> None:
    """Keep the lease while the claim runs (a claim slowed by a database retry, say)."""
    while not done.wait(max(lease / 3, 0.05)):
        try:
            if client.try_acquire(study, holder) is None:
                log.warning("claim lock of study %s lapsed before the claim ended", study)
                return
        except (grpc.RpcError, StorageError) as exc:
            log.warning("claim lock of study %s: cannot renew (%s)", study, _details(exc))


@contextlib.contextmanager
def claim_lock(url: str, storage: BaseStorage, study: str) -> Iterator[None]:
    """Hold the study's claim lock on the proxy of ``url`` for the duration of the block."""
    client = lock_client(url, storage)
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    lease = acquire(client, study, holder)
    done = threading.Event()
    renewer = threading.Thread(
        target=_renew, args=(client, study, holder, lease, done), name="claim-lease", daemon=True
    )
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join()
        try:
            client.release(study, holder)
        except grpc.RpcError as exc:
            # A restarted proxy holds no locks, a gone one lets the lease lapse: nothing to undo.
            if not unavailable(exc):
                raise
