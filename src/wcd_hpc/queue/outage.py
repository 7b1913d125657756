"""A trial whose worker lost the storage: left to be resumed, never failed for the outage.

A worker that finds the storage unreachable for the whole retry window
(:class:`~wcd_hpc.errors.StorageUnreachable`, :mod:`wcd_hpc.store.rdb`) can no longer write
anything about its trial: not its result, not "suspended", not a failure. What it can still
write is its run directory. So it leaves a note, ``trials/<n>/storage_lost.json`` (when and why),
beside the checkpoint of the trial's last finished epoch, and exits. The trial stays RUNNING in
the study and its heartbeat goes stale.

Once the storage is back, the reaper (:func:`wcd_hpc.queue.reaper.reap`, under the claim lock)
finds the note before it judges the trial: instead of failing it for a stale heartbeat and
re-running its parameters from epoch 1, it marks it suspended with the note's reason, and the
next claim resumes it from its checkpoint, as after any other signal. A note counts only while
the trial has not beaten since it was written: a trial resumed since (new claim, new heartbeat)
has moved on, and its old note is removed unread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from wcd_hpc.output.masking import stored_text
from wcd_hpc.queue.schema import (
    OUTAGE_FILE,
    TRIAL_CLAIMED,
    TRIAL_HEARTBEAT,
    TRIAL_SUSPENDED,
    TRIAL_SUSPENDED_BY,
    trial_dir,
)

log = logging.getLogger("wcd_hpc.claims")


def leave(run_dir: Path, number: int, why: str) -> bool:
    """Note that trial ``number`` was given up for a storage outage; whether the note was written.

    Written whole or not at all (temporary file, then rename): a half-written note would be
    read as none. A note that cannot be written (the run directory is gone or full) leaves the
    trial to the reaper, which fails it for its stale heartbeat and runs its parameters again.
    """
    out = trial_dir(run_dir, number)
    note = {"at": time.time(), "why": stored_text(why)}
    partial = out / f"{OUTAGE_FILE}.{os.getpid()}.tmp"
    try:
        out.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(note) + "\n")
        os.replace(partial, out / OUTAGE_FILE)
    except OSError as exc:
        log.warning("trial %d: cannot leave the outage note (%s)", number, exc)
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        return False
    return True


def _read(path: Path) -> dict[str, object] | None:
    try:
        note = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable outage note (%s); ignored", path, exc)
        return None
    return note if isinstance(note, dict) else None


def take_back(
    study: optuna.Study, running: Sequence[FrozenTrial], run_dir: Path | None
) -> list[FrozenTrial]:
    """Suspend the RUNNING trials given up for an outage; returns the others, to be judged.

    Call it with the claim lock held: marking suspended and a claim resuming the trial must not
    interleave. ``run_dir`` None (a caller that does not know it) takes nothing back.
    """
    if run_dir is None:
        return list(running)
    left = []
    for t in running:
        path = trial_dir(run_dir, t.number) / OUTAGE_FILE
        note = None if t.user_attrs.get(TRIAL_SUSPENDED) else _read(path)
        if note is None:
            left.append(t)
            continue
        beat = t.user_attrs.get(TRIAL_HEARTBEAT, t.user_attrs.get(TRIAL_CLAIMED))
        at = note.get("at")
        given_up = isinstance(at, (int, float)) and (
            not isinstance(beat, (int, float)) or beat <= at
        )
        if given_up:
            why = stored_text(str(note.get("why") or "storage unreachable"))
            storage = study._storage
            storage.set_trial_user_attr(t._trial_id, TRIAL_SUSPENDED_BY, why)
            storage.set_trial_user_attr(t._trial_id, TRIAL_SUSPENDED, True)
            log.warning("trial %d suspended (%s); it resumes from its checkpoint", t.number, why)
        else:
            left.append(t)  # resumed since: an old note
        with contextlib.suppress(OSError):  # kept, it is read again and found old
            path.unlink(missing_ok=True)
    return left
