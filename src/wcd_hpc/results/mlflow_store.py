"""A local MLflow store that follows its runs directory when the directory is moved or copied.

With the default local store, ``sqlite:///<runs>/mlflow.db``, sync puts a study's artifacts in
``<runs>/mlartifacts/<study>``. MLflow's SQL store keeps that location as an *absolute* URI,
once per experiment (``experiments.artifact_location``) and, derived from it when they are
created, once per run (``runs.artifact_uri``), per logged model
(``logged_models.artifact_location``) and per model version (``model_versions.storage_location``,
and ``source`` where it is a path). It accepts no relative location: ``create_experiment``
resolves one against the current directory, and there is no call to change a location later.
So after ``mv runs moved``, a sync from ``moved`` would write new artifacts to the old place (or
fail there) and every old run, model and version would point at files that are gone.

:func:`relocate` repairs that before a sync starts, in the database itself: every experiment
that sync created (tagged ``wcd_hpc.study``) whose location has the shape sync gives it,
``…/mlartifacts/<study>`` (or ``<study>-<identity>``), but under another directory than this
database's, has that prefix replaced in the four places above. It runs only when the artifacts
are where the database says they should now be, or are gone from the old place (a move, or a
copy made with them); a database moved without its ``mlartifacts`` keeps pointing at the old
files. Other experiments in the
database, and stores that are not local SQLite files (an ``mlflow server``, whose
``mlflow-artifacts:`` locations are relative to the server already), are never touched.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from contextlib import closing
from pathlib import Path

from wcd_hpc.results.syncdata import ARTIFACTS_DIR, TAG_STUDY, local_artifacts, sqlite_file

__all__ = ["relocate"]


def _local_path(uri: str) -> Path | None:
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("file", "") or parsed.netloc not in ("", "localhost"):
        return None
    return Path(urllib.parse.unquote(parsed.path))


def _moved(value: str | None, old: str, new: str) -> str | None:
    """``value`` with the prefix ``old`` replaced by ``new``; None when it does not start so."""
    if value is None:
        return None
    if value == old or value.startswith(old + "/"):
        return new + value[len(old) :]
    return None


def _tables(con: sqlite3.Connection) -> set[str]:
    return {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _rewrite(con: sqlite3.Connection, exp_id: int, old: str, new: str) -> None:
    """Replace the location prefix ``old`` with ``new`` wherever MLflow stored it."""
    tables = _tables(con)
    con.execute(
        "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?", (new, exp_id)
    )
    per_experiment = [("runs", "run_uuid", "artifact_uri")]
    if "logged_models" in tables:
        per_experiment.append(("logged_models", "model_id", "artifact_location"))
    for table, key, column in per_experiment:
        rows = con.execute(
            f"SELECT {key}, {column} FROM {table} WHERE experiment_id = ?", (exp_id,)
        ).fetchall()
        for ident, value in rows:
            if (moved := _moved(value, old, new)) is not None:
                con.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (moved, ident))
    if "model_versions" not in tables:
        return
    versions = con.execute("SELECT name, version, source, storage_location FROM model_versions")
    for name, version, source, storage in versions.fetchall():
        new_source, new_storage = _moved(source, old, new), _moved(storage, old, new)
        if new_source is not None or new_storage is not None:
            con.execute(
                "UPDATE model_versions SET source = ?, storage_location = ? "
                "WHERE name = ? AND version = ?",
                (new_source or source, new_storage or storage, name, version),
            )


def relocate(uri: str) -> list[str]:
    """Point this local store's wcd-hpc experiments at its own ``mlartifacts``; their names.

    A no-op (an empty list) for any URI that is not a ``sqlite:///`` file that exists.
    """
    db = sqlite_file(uri)
    if db is None or not db.is_file():
        return []
    root = db.parent / ARTIFACTS_DIR
    moved: list[str] = []
    with closing(sqlite3.connect(db, timeout=60)) as con, con:
        if not {"experiments", "experiment_tags"} <= _tables(con):
            return []
        rows = con.execute(
            "SELECT e.experiment_id, t.value, e.artifact_location FROM experiments e "
            "JOIN experiment_tags t ON t.experiment_id = e.experiment_id WHERE t.key = ?",
            (TAG_STUDY,),
        ).fetchall()
        for exp_id, name, stored in rows:  # name: the study's (a study's folder may add "-id")
            old_dir = _local_path(stored) if stored else None
            if old_dir is None:
                continue
            folder = old_dir.name
            if not (folder == name or folder.startswith(f"{name}-")):
                continue  # a location sync did not choose: not ours to move
            if old_dir.parent.name != ARTIFACTS_DIR:
                continue
            target = root / folder
            new = local_artifacts(uri, folder) or target.as_uri()
            if stored == new:
                continue
            if old_dir.exists() and not target.exists():
                continue  # the database moved without its artifacts
            _rewrite(con, exp_id, stored.rstrip("/"), new)
            moved.append(name)
    return moved
