"""Which process a recorded pid is: enough to signal only processes proven to be ours.

``cancel`` stops a study's local sweep and workers by the pids they recorded in the study. A pid
alone proves nothing: once a worker has exited its pid is free, and after a while (or after a
reboot) the kernel hands it to an unrelated process of the same user, which a bare
``kill(pid)`` would then terminate. So every record carries, besides host and pid, the process's
start time (field 22 of ``/proc/<pid>/stat``, in clock ticks since boot) and the kernel's boot
id; a process is ours only when all four match. Where ``/proc`` is missing nothing can be proven
and nothing is signalled.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wcd_hpc.queue.schema import TRIAL_BOOT_ID, TRIAL_HOST, TRIAL_PID, TRIAL_PID_START

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str | None:
    try:
        return _BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def start_time(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot; None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return None


def record(pid: int | None = None) -> dict[str, Any]:
    """Host, pid, start time and boot id of ``pid`` (default: this process), to store."""
    pid = os.getpid() if pid is None else pid
    return {
        TRIAL_HOST: socket.gethostname(),
        TRIAL_PID: pid,
        TRIAL_PID_START: start_time(pid),
        TRIAL_BOOT_ID: boot_id(),
    }


def is_running(rec: Mapping[str, Any]) -> bool:
    """Whether the process a record describes is still running here (and is that process)."""
    pid, start, boot = rec.get(TRIAL_PID), rec.get(TRIAL_PID_START), rec.get(TRIAL_BOOT_ID)
    if rec.get(TRIAL_HOST) != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    if start is None or boot is None or boot != boot_id():
        return False
    return bool(start_time(pid) == start)
