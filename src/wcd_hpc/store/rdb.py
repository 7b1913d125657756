"""Riding out a lost database connection (a PostgreSQL restart, a fail-over, a network blip).

Every storage call of a worker goes through :class:`RetryingRDBStorage`. When a call fails because
the connection was lost, it waits with exponential backoff (0.5 s, 1 s, 2 s, … at most 10 s
apart, for up to ``RETRY_SECONDS`` in all), logs one line per retry naming the masked URL, and
tries again; the pool's pre-ping replaces the dead connections. Anything else (a constraint, a
finished trial) is raised at once, as before.

Retrying is only safe for calls whose second run cannot write twice:

- reads, and the upserts ``set_*_attr``, ``set_trial_param``, ``set_trial_intermediate_value``
  and ``record_heartbeat``, which leave the same row whether they ran once or twice;
- ``set_trial_state_values`` to a finished state: if the first run committed but its answer was
  lost, the retry raises "already finished"; the trial is then read back and, when it already
  has the state we asked for, that is our own write and counts as success. Setting RUNNING (a
  worker taking a WAITING trial) is retried as is: if the first run had committed, the retry
  answers False, Optuna takes another trial and the first is left RUNNING with no heartbeat, for
  the reaper to re-enqueue. A trial run twice would be worse than one retried;
- ``create_new_trial`` (and ``_create_new_trial``, which Optuna's cache calls) is the one
  insert: every new trial carries a random token in its system attributes, and before a retry the
  study is searched for that token, so a trial whose insert committed just before the connection
  dropped is returned instead of created again. (Optuna's own five quick retries inside
  ``_create_new_trial`` cover deadlocks and lie below this; they see the same lost connection.)

When the window (:data:`RETRY_SECONDS`, or ``$WCD_HPC_STORAGE_RETRY_S``) is spent the call
raises :class:`~wcd_hpc.errors.StorageUnreachable`, one line naming the masked URL, the window and
the driver's last words, never the chain of Optuna's and SQLAlchemy's wrappers. From then on this
process counts that storage as unreachable: every further call gets one try and no wait, until
one succeeds. A worker that meets the outage inside a trial therefore gives up within one window
(not one window per call still to come: the report, the training time, the heartbeat), leaves the
trial for resumption (:mod:`wcd_hpc.queue.outage`) and exits with status 69; a local sweep stops
its workers the same way (:mod:`wcd_hpc.launch.local`). Between tries the delay doubles up to
:data:`MAX_DELAY`, so a database back after 90 s is found within seconds of its return.

Not retried: ``create_new_study`` and ``delete_study`` (login-node operations where a clear error is
better than a guess), and storage construction (a wrong URL should fail fast).
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from wcd_hpc.errors import StorageUnreachable, one_line
from wcd_hpc.store.schema import SYSTEM_CREATE_TOKEN

log = logging.getLogger("wcd_hpc.store.storage")
#: How long a call is retried across a lost connection before the storage counts as
#: unreachable (seconds); ``$WCD_HPC_STORAGE_RETRY_S`` sets another window.
RETRY_SECONDS = 60.0
ENV_RETRY = "WCD_HPC_STORAGE_RETRY_S"
FIRST_DELAY = 0.5
#: Longest wait between two tries: after an outage the storage is found again within seconds.
MAX_DELAY = 10.0
#: Storages (by masked URL) this process found unreachable for a whole window, and since when
#: (epoch s): their calls get one try each until one succeeds (see the module docstring).
UNREACHABLE: dict[str, float] = {}
TOKEN_ATTR = SYSTEM_CREATE_TOKEN
T = TypeVar("T")
R = TypeVar("R")

# Calls whose repetition writes nothing twice (see the module docstring).
IDEMPOTENT = (
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_all_studies",
    "get_trial",
    "get_all_trials",
    "get_n_trials",
    "get_best_trial",
    "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id",
    "get_trial_params",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "get_trial_param",
    "set_study_user_attr",
    "set_study_system_attr",
    "set_trial_param",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "record_heartbeat",
    # Private methods that optuna.storages._CachedStorage (Optuna 5) calls on its backend.
    "_get_trials",
    "_get_best_trial_id",
    "_get_stale_trial_ids",
    "_set_trial_param",
)


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps: Optuna re-raises as StorageInternalError) is a lost
    connection, as opposed to a problem with the call itself."""
    from sqlalchemy import exc as sa

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (sa.OperationalError, sa.InterfaceError)):
            return True
        if isinstance(current, sa.DBAPIError) and current.connection_invalidated:
            return True
        if (
            type(current).__module__.startswith("psycopg")
            and "Operational" in type(current).__name__
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def _first_line(exc: BaseException) -> str:
    while exc.__cause__ is not None:  # the driver's message says more than Optuna's wrapper
        exc = exc.__cause__
    return one_line(exc)


def retry_window() -> float:
    """The retry window in seconds: ``$WCD_HPC_STORAGE_RETRY_S`` when it is a positive number,
    else :data:`RETRY_SECONDS`."""
    try:
        value = float(os.environ.get(ENV_RETRY, ""))
    except ValueError:
        return RETRY_SECONDS
    return value if math.isfinite(value) and value > 0 else RETRY_SECONDS


def recovered(where: str) -> None:
    """A call to ``where`` succeeded: its calls are retried for a whole window again."""
    UNREACHABLE.pop(where, None)


class Backoff:
    """Exponential delays until the retry window is spent; each wait logs one line.

    A storage this process already found unreachable gets no wait at all (see the module
    docstring): the first lost connection raises at once.
    """

    def __init__(self, where: str, what: str) -> None:
        self.where, self.what, self.window = where, what, retry_window()
        self.budget = 0.0 if where in UNREACHABLE else self.window
        self.spent, self.delay, self.count = 0.0, FIRST_DELAY, 0

    def wait(self, exc: BaseException) -> None:
        """Sleep before the next try, or raise :class:`StorageUnreachable` when time is up.

        ``exc`` is what the try raised; one of ours (a proxy's own line) is raised as it is
        once it is a :class:`StorageUnreachable`, anything else becomes one.
        """
        if self.spent >= self.budget:
            UNREACHABLE.setdefault(self.where, time.time())
            if isinstance(exc, StorageUnreachable):
                raise exc
            raise StorageUnreachable(
                f"storage {self.where} unreachable for {self.window:g} s ({_first_line(exc)})"
            ) from exc
        self.count += 1
        delay = min(self.delay, self.budget - self.spent)
        log.warning(
            "storage %s: connection lost in %s (%s); retry %d in %.1f s",
            self.where,
            self.what,
            _first_line(exc),
            self.count,
            delay,
        )
        time.sleep(delay)
        self.spent += delay
        self.delay = min(self.delay * 2, MAX_DELAY)


def retry_call(where: str, what: str, call: Callable[[], T]) -> T:
    """Run ``call``; on a lost connection wait and run it again (it must be idempotent)."""
    result = retry_while(call, lost=connection_lost, pause=Backoff(where, what).wait)
    recovered(where)
    return result


def retry_while(
    call: Callable[[], T],
    *,
    lost: Callable[[BaseException], bool],
    pause: Callable[[BaseException], None],
) -> T:
    """Run the idempotent ``call`` again after each failure that ``lost`` recognises (the
    connection or the proxy went away) and a ``pause``, which raises once time is up. Shared by
    the database storage and the gRPC proxy's client, which differ only in those two."""
    while True:
        try:
            return call()
        except Exception as exc:
            if not lost(exc):
                raise
            pause(exc)


#: The modules Optuna's RDBStorage imports lazily, on its first use in a process.
_LAZY_MODULES = (
    "sqlalchemy.orm",
    "sqlalchemy.exc",
    "sqlalchemy.dialects.postgresql",
    "sqlalchemy.dialects.mysql",
    "sqlalchemy.dialects.sqlite",
    "alembic.command",
    "alembic.config",
    "alembic.migration",
    "alembic.script",
    "optuna.storages._rdb.models",
)
_IMPORTING = threading.Lock()


def _import_lazy_modules() -> None:
    """Import what Optuna's RDBStorage imports on first use, one thread at a time.

    Two threads of one process opening their first RDB storage at once (two sweeps started
    from one program) imported ``sqlalchemy.orm`` side by side, and one of them got it
    half-initialised (``partially initialized module 'sqlalchemy.orm.exc'``): CPython breaks
    an import deadlock between threads by handing one of them the unfinished module."""
    with _IMPORTING:
        for name in _LAZY_MODULES:
            importlib.import_module(name)


class RetryingRDBStorage(RDBStorage):
    """An RDBStorage whose calls survive a database restart without writing anything twice."""

    def __init__(self, url: str, *, masked: str, **kwargs: Any) -> None:
        self.masked_url = masked
        _import_lazy_modules()
        super().__init__(url, **kwargs)

    def _create_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None = None
    ) -> FrozenTrial:
        # Optuna's cache (which wraps every RDBStorage a study uses) calls this private method;
        # the public create_new_trial goes through it too.
        # A template that already carries a token keeps it: it was tagged by a client of the
        # gRPC proxy (wcd_hpc.store.grpcstore), which searches for that token after a lost answer.
        given = template_trial.system_attrs.get(TOKEN_ATTR) if template_trial else None
        token = given if isinstance(given, str) else uuid.uuid4().hex
        template = tagged(template_trial, token)
        created = create_once(
            lambda: super(RetryingRDBStorage, self)._create_new_trial(study_id, template),
            lost=connection_lost,
            pause=Backoff(self.masked_url, "create_new_trial").wait,
            search=lambda: with_token(self.get_all_trials(study_id, deepcopy=False), token),
            where=self.masked_url,
        )
        recovered(self.masked_url)
        return created

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        done = set_state_once(
            lambda: super(RetryingRDBStorage, self).set_trial_state_values(trial_id, state, values),
            lost=connection_lost,
            pause=Backoff(self.masked_url, "set_trial_state_values").wait,
            arrived=lambda: self.get_trial(trial_id).state == state,
        )
        recovered(self.masked_url)
        return done


def create_once(
    create: Callable[[], R],
    *,
    lost: Callable[[BaseException], bool],
    pause: Callable[[BaseException], None],
    search: Callable[[], R | None],
    where: str,
) -> R:
    """Run the one insert, ``create``, across lost answers without inserting twice.

    After a failure that ``lost`` recognises (the connection or the proxy went away) and a
    ``pause``, ``search`` looks for the row the lost call may have written (by the token its
    template carries): found, the first try arrived and that row is the answer; else try again.
    Shared by the database storage and the gRPC proxy's client, which lose answers alike.
    """
    while True:
        try:
            return create()
        except Exception as exc:
            if not lost(exc):
                raise
            pause(exc)
            found = search()
            if found is not None:
                log.warning("storage %s: the lost create_new_trial had arrived", where)
                return found


def set_state_once(
    call: Callable[[], bool],
    *,
    lost: Callable[[BaseException], bool],
    pause: Callable[[BaseException], None],
    arrived: Callable[[], bool],
) -> bool:
    """Finish a trial across lost answers: a retry that finds it finished asks ``arrived``
    whether it holds the state we asked for, i.e. our first try arrived and only its answer was
    lost (see the module docstring)."""
    retried = False
    while True:
        try:
            return call()
        except UpdateFinishedTrialError:
            if retried and arrived():
                return True
            raise
        except Exception as exc:
            if not lost(exc):
                raise
            pause(exc)
            retried = True


def with_token(trials: Sequence[FrozenTrial], token: str) -> FrozenTrial | None:
    """The first of ``trials`` created with ``token`` (see :func:`tagged`), if any."""
    mine = [t for t in trials if t.system_attrs.get(TOKEN_ATTR) == token]
    return min(mine, key=lambda t: t.number) if mine else None


def tagged(template: FrozenTrial | None, token: str) -> FrozenTrial:
    """A copy of ``template`` (or of a fresh RUNNING trial) carrying the creation token."""
    if template is None:
        return FrozenTrial(
            number=-1,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=datetime.now(),
            datetime_complete=None,
            params={},
            distributions={},
            user_attrs={},
            system_attrs={TOKEN_ATTR: token},
            intermediate_values={},
            trial_id=-1,
        )
    copy = FrozenTrial(
        number=template.number,
        state=template.state,
        value=None,
        values=template.values,
        datetime_start=template.datetime_start,
        datetime_complete=template.datetime_complete,
        params=dict(template.params),
        distributions=dict(template.distributions),
        user_attrs=dict(template.user_attrs),
        system_attrs={**template.system_attrs, TOKEN_ATTR: token},
        intermediate_values=dict(template.intermediate_values),
        trial_id=template._trial_id,
    )
    return copy


def _retrying(name: str) -> Callable[..., Any]:
    def wrapper(self: RetryingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        method = getattr(RDBStorage, name)  # looked up per call, like super() would
        return retry_call(self.masked_url, name, lambda: method(self, *args, **kwargs))

    wrapper.__name__ = name
    wrapper.__doc__ = getattr(RDBStorage, name).__doc__
    return wrapper


for _name in IDEMPOTENT:
    if hasattr(RDBStorage, _name):
        setattr(RetryingRDBStorage, _name, _retrying(_name))
