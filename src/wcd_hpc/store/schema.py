"""The names the storage layer writes: the journal's file, its snapshot, the create token.

They belong to the same schema as the study-as-queue's names (:mod:`wcd_hpc.queue.schema`,
which re-exports them, so every other module keeps importing them from there), but the storage
layer sits below ``queue`` and may not import it: a journal opened by ``storage serve`` or
``journal check`` needs its snapshot's name without knowing what a trial claim is. They are
written here once; the layout test treats this module and ``queue/schema.py`` as the two places
a schema name may appear as a literal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

#: Trial system attribute that makes creating a trial idempotent across a lost connection
#: (:mod:`wcd_hpc.store.rdb`, :mod:`wcd_hpc.store.grpcstore`).
SYSTEM_CREATE_TOKEN: Final = "wcd_hpc:create_token"

#: A study's default journal, inside its run directory.
JOURNAL_FILE: Final = "journal.log"
#: Beside a journal, ``<journal>.snapshot``: its replayed state (:mod:`wcd_hpc.store.snapshots`).
JOURNAL_SNAPSHOT_SUFFIX: Final = ".snapshot"


def journal_path(run_dir: Path) -> Path:
    """The default journal file of a study: inside its run directory."""
    return run_dir / JOURNAL_FILE
