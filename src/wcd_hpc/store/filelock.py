"""The journal's lock file, waited for in short random sleeps so that many workers share it.

Journal files live on the cluster's shared filesystem, usually NFS, where ``flock``/``fcntl``
locks are emulated or silently local; Optuna's ``JournalFileOpenLock`` creates a lock file with
``open(O_CREAT | O_EXCL)`` instead, which NFSv3+ servers perform atomically. This module keeps
that file protocol (so it interoperates with plain Optuna processes on the same journal) and
changes only how a process waits for it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import time

from optuna.storages.journal import JournalFileOpenLock

log = logging.getLogger("wcd_hpc.store.storage")


class PollingLock(JournalFileOpenLock):
    """Optuna's NFS-safe lock file (``O_CREAT | O_EXCL``), with waits that stay short and spread.

    Optuna's own ``acquire`` doubles its sleep after every failed attempt, up to 1 s. With many
    workers on one journal (every attribute write and every claim takes such a lock) a waiter
    that has been unlucky a few times sleeps a whole second while the lock is free most of that
    time, and the unlucky ones wait tens of seconds (docs: benchmarks.md, "Storage under
    contention"). Here a waiter sleeps a random time up to a small cap (full jitter), so the
    waiters do not wake in step and none falls behind for long. A lock file whose mtime has not
    changed for ``grace_period`` seconds was left by a killed process and is removed, as Optuna
    does.
    Neither the wait nor the removal is silent: a lock file unchanged for a few seconds is
    announced once (which file, how long until it is taken as stale), and its removal too.
    """

    #: Longest sleep between two attempts: what a waiter may lose after the lock is freed.
    MAX_WAIT_S = 0.05
    #: A lock file unchanged this long (or half the grace period, if shorter) is announced.
    ANNOUNCE_S = 5.0

    def acquire(self) -> bool:
        wait = 0.001
        seen: float | None = None
        unchanged_since = time.monotonic()
        announced = False
        while True:
            try:
                os.close(os.open(self._lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                return True
            except OSError as err:
                if err.errno != errno.EEXIST:
                    raise
            if self.grace_period is not None:
                try:
                    mtime: float | None = os.stat(self._lock_file).st_mtime
                except OSError:
                    mtime = None  # released meanwhile: try again at once
                if mtime is None:
                    continue
                unchanged = time.monotonic() - unchanged_since
                if mtime != seen:
                    seen, unchanged_since = mtime, time.monotonic()
                elif unchanged > self.grace_period:
                    with contextlib.suppress(RuntimeError):  # another waiter broke it first
                        self.release()  # left by a dead process
                        log.warning(
                            "removed lock file %s: unchanged for %.0f s, left by a killed process",
                            self._lock_file,
                            unchanged,
                        )
                    continue
                elif not announced and unchanged > min(self.ANNOUNCE_S, self.grace_period / 2):
                    announced = True
                    log.warning(
                        "waiting for lock file %s, unchanged for %.0f s: if no process holds it "
                        "any more it is taken as stale after %.0f s",
                        self._lock_file,
                        unchanged,
                        self.grace_period,
                    )
            time.sleep(random.uniform(0, wait))
            wait = min(wait * 2, self.MAX_WAIT_S)
