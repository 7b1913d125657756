"""Which process a recorded pid is: enough to signal only processes proven to be ours.

``cancel`` stops a study's local sweep and workers by the pids they recorded in the study. A pid
alone proves nothing: once a worker has exited its pid is free, and after a while (or after a
reboot) the kernel hands it to an unrelated process of the same user, which a bare
``kill(pid)`` would then terminate. So every record carries, besides host and pid, the process's
start time (field 22 of ``/proc/<pid>/stat``, in clock ticks since boot) and the kernel's boot
id; a process is ours only when all four match. Where ``/proc`` is missing nothing can be proven
and nothing is signalled.

Nor where ``/proc`` is another PID namespace's: a container (or ``unshare --pid``) that did not
mount its own ``/proc`` sees the host's, where ``/proc/<pid>`` is whichever *host* process has
that number, not the process ``os.getpid()`` and ``kill`` mean. Its start time would prove the
identity of a stranger. ``/proc`` is trusted only when ``/proc/self`` names this process's own
pid; otherwise a record says that the identity cannot be verified
(:data:`~wcd_hpc.queue.schema.TRIAL_PID_UNVERIFIED`, with the reason), holds no start time, and
is never signalled on; likewise ``cancel`` signals nothing while its own ``/proc`` is foreign.
The ``/proc`` looked at is :data:`PROC` unless a caller names another (the tests fake one).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wcd_hpc.queue.schema import (
    TRIAL_BOOT_ID,
    TRIAL_HOST,
    TRIAL_PID,
    TRIAL_PID_START,
    TRIAL_PID_UNVERIFIED,
)

PROC = Path("/proc")
FOREIGN_PROC = "/proc is not this PID namespace's (/proc/self is not this process)"
NO_PROC = "no /proc to read the process's start time from"


def _root(proc: Path | None) -> Path:
    return PROC if proc is None else proc


def unverifiable(proc: Path | None = None) -> str | None:
    """Why ``/proc`` cannot tell this PID namespace's processes apart, or None when it can."""
    try:
        own = os.readlink(_root(proc) / "self")
    except OSError:
        return NO_PROC
    return None if own == str(os.getpid()) else FOREIGN_PROC


def boot_id(proc: Path | None = None) -> str | None:
    try:
        return (_root(proc) / "sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _fields(pid: int, proc: Path | None) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` from field 3 (the state) on; None without one."""
    try:
        stat = (_root(proc) / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    return stat[stat.rfind(")") + 2 :].split()


def start_time(pid: int, proc: Path | None = None) -> int | None:
    """When process ``pid`` started, in clock ticks since boot; None if it does not exist, or
    if ``/proc`` describes another PID namespace (where ``pid`` is someone else)."""
    if unverifiable(proc) is not None:
        return None
    fields = _fields(pid, proc)
    try:
        return int(fields[19]) if fields is not None else None  # field 22 of the whole line
    except (IndexError, ValueError):
        return None


def has_exited(pid: int, proc: Path | None = None) -> bool:
    """Whether ``pid`` is gone or only a zombie: it has exited, and its parent has not yet
    collected its status. A sweep started by a script that waits for it later (a Python
    ``Popen``, a batch system) stays a zombie meanwhile, and ``kill(pid, 0)`` still succeeds on
    it; waiting for a zombie to disappear would wait for its parent."""
    fields = _fields(pid, proc)
    if fields is not None:
        return fields[:1] == ["Z"]  # field 3: the state
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False  # alive, and no /proc to tell a zombie by


def record(pid: int | None = None, proc: Path | None = None) -> dict[str, Any]:
    """Host, pid, start time and boot id of ``pid`` (default: this process), to store.

    Where ``/proc`` cannot prove who ``pid`` is, the record says why instead of a start time.
    """
    pid = os.getpid() if pid is None else pid
    why = unverifiable(proc)
    rec: dict[str, Any] = {
        TRIAL_HOST: socket.gethostname(),
        TRIAL_PID: pid,
        TRIAL_PID_START: None if why else start_time(pid, proc),
        TRIAL_BOOT_ID: boot_id(proc),
    }
    if why:
        rec[TRIAL_PID_UNVERIFIED] = why
    return rec


def is_running(rec: Mapping[str, Any], proc: Path | None = None) -> bool:
    """Whether the process a record describes is still running here (and is that process).

    False for a record whose identity could not be verified when it was taken, and whenever
    this process's own ``/proc`` cannot verify one: never signal on a guess.
    """
    pid, start, boot = rec.get(TRIAL_PID), rec.get(TRIAL_PID_START), rec.get(TRIAL_BOOT_ID)
    if rec.get(TRIAL_HOST) != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    if rec.get(TRIAL_PID_UNVERIFIED) or unverifiable(proc) is not None:
        return False
    if start is None or boot is None or boot != boot_id(proc):
        return False
    return bool(start_time(pid, proc) == start)
