"""Journal-file integrity: find exactly where a log went bad, and salvage its valid prefix.

Optuna's ``JournalFileBackend`` stores a study as one JSON operation per line, appended under a
lock. How it reacts to damage (checked with Optuna 5.0 on real files,
see tests/unit/store/test_journal.py):

- a *partial last line* (no newline: a write cut off by a full disk, a quota, a node crash) is
  skipped on read, so the study still opens; but the next append is glued onto that fragment and
  from then on every read raises ``JSONDecodeError`` for every worker;
- a bad line followed by any other line (garbage in the middle) makes every read raise;
- a bad *complete* last line is skipped until something is appended after it, then the same.

So a bad last line is a log about to break, and a bad line in the middle is a broken one. This
module turns both into one line naming the file, the line number and what is wrong, with the
salvage command, instead of a traceback from deep inside Optuna, and it refuses to append after a
fragment (the one write that would turn a recoverable log into a broken one). A prefix of a journal
is always a consistent study (it is what the study was at that moment), which is why salvage keeps
the longest valid prefix and drops everything from the first bad line on.

A line can also be JSON with an ``op_code`` and still be one Optuna cannot replay: an unknown
op_code, a missing field, a field of the wrong type (a hand edit, a tool writing its own records).
Replay indexes the fields without checking them, so such a line fails every worker on every open
with a KeyError or AssertionError from deep inside Optuna. It is a bad line like any other and is
reported the same way, as one line naming the file, the line number and the problem, never as a
traceback: :data:`_OPERATIONS` says what Optuna 5 writes and replays for each op_code.
"""

from __future__ import annotations

import errno
import functools
import json
import os
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.storages.journal._base import BaseJournalSnapshot
from optuna.storages.journal._storage import JournalOperation as Op
from optuna.study import StudyDirection
from optuna.trial import TrialState

from wcd_hpc.errors import StorageError, StorageUnavailable
from wcd_hpc.output.files import disk_full_text, free_bytes, is_disk_full
from wcd_hpc.store import snapshots

_TAIL = 1 << 16  # how much of the end of the file the cheap tail check reads
#: Free bytes under which a damaged journal's filesystem counts as full (the likely cause).
FULL_BELOW = 1 << 20


class JournalCorrupt(StorageError):
    """A journal file with a bad line; the message is one line with the salvage command."""


class JournalUnwritable(StorageUnavailable):
    """A journal that cannot be written now: its filesystem is full or read-only, or it is not
    writable to us. Nothing was half-written: the journal is as valid as before."""


def unwritable(path: Path, exc: OSError) -> JournalUnwritable:
    """The one line for a write to the journal ``path`` (or its lock file) that failed."""
    if is_disk_full(exc):
        why = disk_full_text(path)
    elif exc.errno == errno.EROFS:
        why = "its filesystem is read-only"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        why = f"permission denied ({exc.filename or path})"
    else:
        why = exc.strerror or str(exc)
    return JournalUnwritable(
        f"{path}: cannot write to the journal: {why}; nothing was half-written: make room or "
        "make it writable, then run the same command again"
    )


@dataclass(frozen=True)
class Scan:
    """The result of reading a journal: how much of it is valid and the first problem, if any."""

    path: Path
    good_lines: int
    good_bytes: int
    bad_line: int | None = None  # 1-based number of the first bad line
    problem: str = ""
    lines_after: int = 0  # lines after the bad one (lost by a salvage)

    @property
    def ok(self) -> bool:
        return self.bad_line is None

    def message(self) -> str:
        after = f" ({self.lines_after} more line(s) follow it)" if self.lines_after else ""
        text = (
            f"{self.path}:{self.bad_line}: corrupt journal: {self.problem}{after}; keep the "
            f"{self.good_lines} valid line(s) before it with: wcd-hpc journal salvage {self.path}"
        )
        free = free_bytes(self.path)
        if free is not None and free < FULL_BELOW:  # the likely cause, and salvage needs room
            text += f" (first make room: {disk_full_text(self.path)})"
        return text


# --- What Optuna's replay needs from each operation -----------------------------------------------
#
# Derived from optuna/storages/journal/_storage.py (Optuna 5): what ``JournalStorage._write_log``
# and its callers write, and what the ``JournalStorageReplayResult._apply_*`` methods read. Each
# line is checked on its own: whether an id names an existing study or trial is left to Optuna,
# whose replay skips another worker's operations on unknown ones.

_Kind = tuple[str, Callable[[Any], bool]]  # what a value must be (for the message), and the test


def _parses(parse: Callable[[Any], object]) -> Callable[[Any], bool]:
    def test(value: Any) -> bool:
        try:
            parse(value)
        except (TypeError, ValueError):
            return False
        return True

    return test


@functools.lru_cache(maxsize=1024)  # every trial repeats the same few distributions
def _distribution(text: str) -> BaseDistribution | None:
    try:
        return json_to_distribution(text)
    except Exception:  # whatever Optuna's parser raises, replay would raise too
        return None


def _fits(text: Any, internal: Any) -> bool:
    """Can replay turn ``internal`` into a value of the distribution ``text`` (JSON text)?"""
    dist = _distribution(text) if isinstance(text, str) else None
    if dist is None:
        return False
    try:
        dist.to_external_repr(internal)
    except Exception:  # e.g. an index past a categorical's choices
        return False
    return True


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _or_null(kind: _Kind) -> _Kind:
    return (f"{kind[0]} or null", lambda v: v is None or kind[1](v))


def _list_of(what: str, test: Callable[[Any], bool]) -> _Kind:
    return (what, lambda v: isinstance(v, list) and all(map(test, v)))


def _object_of(what: str, key: Callable[[Any], bool], test: Callable[[Any], bool]) -> _Kind:
    return (what, lambda v: isinstance(v, dict) and all(key(k) and test(x) for k, x in v.items()))


_STATES = {s.value for s in TrialState}
_DIRECTIONS = {d.value for d in StudyDirection}
_INT: _Kind = ("an integer", _is_int)
_STR: _Kind = ("a string", lambda v: isinstance(v, str))
_NUMBER: _Kind = ("a number", _is_number)
_OBJECT: _Kind = ("an object", lambda v: isinstance(v, dict))
_ONE_KEY: _Kind = ("an object with one key", lambda v: isinstance(v, dict) and len(v) == 1)
_TIME: _Kind = ("an ISO date-time", _parses(datetime.fromisoformat))
_STATE: _Kind = ("a TrialState number", lambda v: _is_int(v) and v in _STATES)
_STUDY_DIRECTIONS = _list_of(
    "a list of StudyDirection numbers", lambda d: _is_int(d) and d in _DIRECTIONS
)
_NUMBERS = _list_of("a list of numbers", _is_number)
_DISTRIBUTION: _Kind = (
    "a distribution as JSON text",
    lambda v: isinstance(v, str) and _distribution(v) is not None,
)

#: op_code -> (required fields, optional fields), besides ``op_code`` and ``worker_id``: a string
#: on every operation (replay compares it with its own to tell whose operation it is).
_OPERATIONS: dict[Op, tuple[dict[str, _Kind], dict[str, _Kind]]] = {
    Op.CREATE_STUDY: ({"study_name": _STR, "directions": _STUDY_DIRECTIONS}, {}),
    Op.DELETE_STUDY: ({"study_id": _INT}, {}),
    Op.SET_STUDY_USER_ATTR: ({"study_id": _INT, "user_attr": _ONE_KEY}, {}),
    Op.SET_STUDY_SYSTEM_ATTR: ({"study_id": _INT, "system_attr": _ONE_KEY}, {}),
    Op.CREATE_TRIAL: (
        {"study_id": _INT, "datetime_start": _or_null(_TIME)},
        {  # written for a trial created from a template (enqueue_trial, add_trial)
            "state": _STATE,
            "value": _or_null(_NUMBER),
            "values": _or_null(_NUMBERS),
            "datetime_complete": _TIME,
            "distributions": _object_of("an object of distributions", _STR[1], _DISTRIBUTION[1]),
            "params": _object_of("an object of numbers", _STR[1], _is_number),
            "user_attrs": _OBJECT,
            "system_attrs": _OBJECT,
            "intermediate_values": _object_of(
                "an object of step: number", _parses(int), _is_number
            ),
        },
    ),
    Op.SET_TRIAL_PARAM: (
        {
            "trial_id": _INT,
            "param_name": _STR,
            "param_value_internal": _NUMBER,
            "distribution": _DISTRIBUTION,
        },
        {},
    ),
    Op.SET_TRIAL_STATE_VALUES: (
        {
            "trial_id": _INT,
            "state": _STATE,
            "values": _or_null(_NUMBERS),
        },
        {"datetime_start": _TIME, "datetime_complete": _TIME},  # which one: see _consistency
    ),
    Op.SET_TRIAL_INTERMEDIATE_VALUE: (
        {"trial_id": _INT, "step": _INT, "intermediate_value": _NUMBER},
        {},
    ),
    Op.SET_TRIAL_USER_ATTR: ({"trial_id": _INT, "user_attr": _ONE_KEY}, {}),
    Op.SET_TRIAL_SYSTEM_ATTR: ({"trial_id": _INT, "system_attr": _ONE_KEY}, {}),
    Op.DISCARD_TRIALS: ({}, {}),  # written only by Rustuna; Optuna's replay skips it
}


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


#: Per op_code, what :func:`_record_problem` checks, flattened once: (field, what it must be,
#: its test, optional?). Every line of a journal goes through that check on every open, and a
#: 10,000-trial study has over 600,000 lines; building the field list per line cost a quarter
#: of the time a worker took to open such a journal.
_CHECKS: dict[int, tuple[Op, tuple[tuple[str, str, Callable[[Any], bool], bool], ...]]] = {
    int(op): (
        op,
        tuple(
            (field, what, test, field in optional)
            for field, (what, test) in {"worker_id": _STR, **required, **optional}.items()
        ),
    )
    for op, (required, optional) in _OPERATIONS.items()
}


def _record_problem(record: Any) -> str:
    """Why Optuna's replay cannot apply ``record`` (one parsed line), or "" when it can."""
    if not isinstance(record, dict) or "op_code" not in record:
        return "JSON but not an Optuna journal record (no op_code)"
    code = record["op_code"]
    entry = _CHECKS.get(code) if _is_int(code) else None
    if entry is None:
        return f"unknown op_code {_show(code)}"
    op, checks = entry
    for field, what, test, optional in checks:
        if field not in record:
            if optional:
                continue
            return f"{op.name} without {field!r}"
        if not test(record[field]):
            return f"{op.name} {field!r} is not {what}: {_show(record[field])}"
    if op is Op.SET_TRIAL_USER_ATTR or op is Op.SET_TRIAL_INTERMEDIATE_VALUE:
        return ""  # the most frequent lines: nothing between their fields to check
    return _consistency(op, record)


def _consistency(op: Op, record: dict[str, Any]) -> str:
    """What replay needs between the fields of one operation."""
    if op is Op.SET_TRIAL_STATE_VALUES:
        state = TrialState(record["state"])
        needed = "datetime_start" if state == TrialState.RUNNING else "datetime_complete"
        if (state == TrialState.RUNNING or state.is_finished()) and needed not in record:
            return f"{op.name} to {state.name} without {needed!r}"
    elif op is Op.SET_TRIAL_PARAM:
        if not _fits(record["distribution"], record["param_value_internal"]):
            value = _show(record["param_value_internal"])
            return f"{op.name} 'param_value_internal' {value} is outside its distribution"
    elif op is Op.CREATE_TRIAL:
        if record.get("value") is not None and record.get("values") is not None:
            return f"{op.name} with both 'value' and 'values'"
        dists = record.get("distributions", {})
        for name, internal in record.get("params", {}).items():
            if not _fits(dists.get(name), internal):
                return f"{op.name} param {name!r} is outside its distribution (or has none)"
    return ""


def _problem(line: bytes) -> str:
    """Why ``line`` is not a journal record, or "" when it is one."""
    if not line.endswith(b"\n"):
        return f"partial last line ({len(line)} bytes, no newline): a write was cut off"
    try:
        record = json.loads(line)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        return f"not JSON ({str(exc).splitlines()[0]})"
    return _record_problem(record)


def scan(path: Path) -> Scan:
    """Stream through the whole file once and stop at the first bad line (counting the rest)."""
    good_lines = good_bytes = 0
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            problem = _problem(line)
            if problem:
                rest = sum(1 for _ in fh)
                return Scan(path, good_lines, good_bytes, number, problem, rest)
            good_lines += 1
            good_bytes += len(line)
    return Scan(path, good_lines, good_bytes)


def check_journal(path: Path) -> None:
    """Raise :class:`JournalCorrupt` if ``path`` has a bad line; a missing file is fine.

    A problem on the last line is re-checked while holding the journal's own lock, because a
    reader without it may see another worker's append half-way; a fragment that is still there
    with the lock held was left by a writer that died.
    """
    if not path.exists():
        return
    found = scan(path)
    if found.ok:
        return
    if found.lines_after == 0:
        lock = JournalFileOpenLock(str(path))
        lock.acquire()
        try:
            found = scan(path)
        finally:
            lock.release()
        if found.ok:
            return
    raise JournalCorrupt(found.message())


def check_tail(path: Path) -> None:
    """The cheap check run whenever a journal is opened: is the last line complete and valid?

    Bad lines in the middle need no separate pass: Optuna's replay on open raises for them, and
    :class:`CheckedJournalBackend` turns that into the precise message with a full scan.
    """
    if not path.exists() or _tail_ok(path):
        return
    check_journal(path)


def _tail_ok(path: Path) -> bool:
    size = path.stat().st_size
    if size == 0:
        return True
    with path.open("rb") as fh:
        fh.seek(max(0, size - _TAIL))
        tail = fh.read()
    if not tail.endswith(b"\n"):
        return False
    start = tail.rfind(b"\n", 0, len(tail) - 1)
    if start < 0 and size > len(tail):
        return True  # a last line longer than the window: its newline is all we can check cheaply
    return not _problem(tail[start + 1 :])


def set_user_attrs(trial: optuna.trial.BaseTrial, attrs: Mapping[str, Any]) -> None:
    """Set several user attributes of ``trial``; on a journal, in one append.

    Every append takes the journal's lock and waits for the disk (fsync); a claim records about
    fifteen attributes, and with a hundred workers one append per attribute kept the journal's
    lock busy enough to stretch every claim. The lines written are exactly the ones Optuna's
    ``set_trial_user_attr`` writes, one per attribute, in the same order.
    """
    if not isinstance(trial, optuna.Trial):  # a FixedTrial (``train``) keeps them in memory
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return
    storage = trial.storage
    if isinstance(storage, JournalStorage):
        with storage._thread_lock:
            writer = storage._replay_result.worker_id
            storage._backend.append_logs(
                [
                    {
                        "op_code": Op.SET_TRIAL_USER_ATTR,
                        "worker_id": writer,
                        "trial_id": trial._trial_id,
                        "user_attr": {key: value},
                    }
                    for key, value in attrs.items()
                ]
            )
            storage._sync_with_backend()
    else:
        for key, value in attrs.items():
            storage.set_trial_user_attr(trial._trial_id, key, value)
    trial._cached_frozen_trial.user_attrs.update(attrs)  # what Trial.set_user_attr also does


class CheckedJournalBackend(JournalFileBackend, BaseJournalSnapshot):
    """Optuna's journal backend with precise corruption errors and no append after a fragment,
    and snapshots that spare a large journal's replay (:mod:`wcd_hpc.store.snapshots`)."""

    def __init__(self, path: Path, lock: JournalFileOpenLock) -> None:
        super().__init__(str(path), lock_obj=lock)
        self._path = path
        self._file_lock = lock

    def save_snapshot(self, snapshot: bytes) -> None:
        """Keep Optuna's replayed state (it asks every 100 trials it creates), as of the lines
        read so far: it has just read the journal to its end and replayed all of it."""
        lines = max(self._log_number_offset)
        if lines > 0:
            snapshots.save(self._path, lines, self._log_number_offset[lines], snapshot)

    def load_snapshot(self) -> bytes | None:
        """A snapshot that belongs to this journal; reading then goes on after its last line."""
        found = snapshots.load(self._path)
        if found is None:
            return None
        lines, offset, payload = found
        self._log_number_offset[lines] = offset
        return payload

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        """Optuna's records, stopping with the file:line message at one replay cannot apply."""
        try:
            for record in super().read_logs(log_number_from):
                problem = _record_problem(record)
                if problem:
                    break
                yield record
            else:
                return
        except ValueError:
            found = scan(self._path)
            if found.ok:
                raise
            raise JournalCorrupt(found.message()) from None
        found = scan(self._path)
        raise JournalCorrupt(
            found.message() if not found.ok else f"{self._path}: corrupt journal: {problem}"
        )

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append under the lock, refusing to glue a record onto a fragment.

        If our own write fails part-way (disk full, quota), the bytes it did write are cut off
        again while the lock is still held, so the log stays valid for the other workers. The
        write goes straight to the file descriptor: a buffered file would try the unwritten
        rest again when it is closed, after the cut, and leave the very fragment the cut
        removed. Any failure to write (full, read-only, not ours) is :class:`JournalUnwritable`.
        """
        data = ("\n".join(json.dumps(r, separators=(",", ":")) for r in logs) + "\n").encode()
        try:
            self._file_lock.acquire()
        except OSError as exc:  # the lock file cannot be created: the directory is not writable
            raise unwritable(self._path, exc) from exc
        try:
            if self._path.exists() and not _tail_ok(self._path):
                raise JournalCorrupt(scan(self._path).message())
            _append(self._path, data)
        finally:
            self._file_lock.release()


def _append(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` whole and synced, or not at all (:class:`JournalUnwritable`)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as exc:
        raise unwritable(path, exc) from exc
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            os.ftruncate(fd, start)
            raise unwritable(path, exc) from exc
    finally:
        os.close(fd)
