"""What ``sync`` reads and how it talks to MLflow: tracking URIs, the connection check, the
trial directory's files, fingerprints, and the cleaning that keeps credentials out of MLflow.

Kept apart from :mod:`wcd_hpc.results.sync` (the run bookkeeping) so each stays small; nothing here
writes anywhere.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial

from wcd_hpc import __version__
from wcd_hpc.environ import environment
from wcd_hpc.errors import SyncError, one_line
from wcd_hpc.queue.schema import RESULT_FILE
from wcd_hpc.store.urls import is_secret_key, mask, stored_text

ENV_TRACKING = "MLFLOW_TRACKING_URI"
# Bump when what sync uploads for a trial changes, so the next sync refreshes every run.
# 2: per-energy-bin metrics and table, every file under plots/, version and source tags.
# 3: the bins as a table (``mlflow.log_table``) and the objective per bin, no ``bin_*`` steps.
FORMAT = 3
#: Beside a local store's database: one folder of artifacts per study.
ARTIFACTS_DIR = "mlartifacts"
#: The tag that marks an MLflow experiment or run as made by sync for a study.
TAG_STUDY = "wcd_hpc.study"
#: A trial run's trial number.
TAG_TRIAL = "wcd_hpc.trial"
#: The objective per energy bin is one metric per bin, ``test_<metric>_lgE_<lo>_<hi>``.
BIN_INFIX = "_lgE_"
#: The per-energy-bin table: CSV for the UI's artifact view, JSON for ``mlflow.load_table``.
TABLES_DIR, TABLE_CSV, TABLE_JSON = "tables", "energy_bins.csv", "energy_bins.json"
#: The finalists' pick per energy bin (mean ± std over seeds) on the study's parent run.
FINAL_TABLE_JSON = "finalists_energy_bins.json"
#: Keys never synced as a parameter or tag: secrets, and the study's storage URL (even masked,
#: it says where the study lives, which is nobody's business in a shared MLflow).
NOT_SYNCED = ("storage",)


def default_tracking_uri(runs_root: Path) -> str:
    """A local MLflow store under the runs root: the quickstart needs no server.

    SQLite rather than MLflow's file store, which is deprecated and has no Model Registry.
    """
    return f"sqlite:///{(runs_root / 'mlflow.db').resolve()}"


def tracking_uri_for(flag: str | None, runs_root: Path) -> str:
    """``--tracking-uri`` beats ``$MLFLOW_TRACKING_URI`` beats the local default store.

    A given ``sqlite:///`` store must be a file in a directory that exists: MLflow would create
    every missing directory of a mistyped path, anywhere the user may write.
    """
    given, origin = flag, "--tracking-uri"
    if not given:
        given, origin = os.environ.get(ENV_TRACKING), f"${ENV_TRACKING}"
    if not given:
        return default_tracking_uri(runs_root)
    db = sqlite_file(given)
    if db is not None and not db.parent.is_dir():
        raise SyncError(
            f"{origin} {mask(given)}: directory {db.parent} does not exist; "
            "create it or name a file in an existing one"
        )
    return given


def sqlite_file(uri: str) -> Path | None:
    """The database file of a local ``sqlite:///`` store (absolute); None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?")[0]).resolve()


def local_artifacts(uri: str, study: str) -> str | None:
    """Where a local (sqlite) store keeps a study's artifacts: ``mlartifacts/<study>`` beside
    the database (MLflow's own default would be ``./mlruns`` in whatever directory sync ran).

    :func:`wcd_hpc.results.mlflow_store.relocate` keeps it so when the directory moves.
    """
    db = sqlite_file(uri)
    return None if db is None else (db.parent / ARTIFACTS_DIR / study).as_uri()


def env_defaults(values: Mapping[str, str]) -> contextlib.AbstractContextManager[None]:
    """Set environment variables that are not set already, for the duration of the block.

    MLflow reads its settings from the environment at each call; this keeps a library caller's
    environment as it was.
    """
    return environment(values, override=False)


def connect(uri: str) -> MlflowClient:
    """A client for ``uri`` that has answered one request; otherwise a one-line SyncError.

    The check uses few retries: MLflow's defaults retry an unreachable server for minutes,
    which is right for a flaky network mid-sync but not for telling a user it is down.
    """
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    with env_defaults(quick):
        try:
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            client.search_experiments(max_results=1)
        except Exception as exc:
            raise SyncError(f"cannot reach MLflow at {mask(uri)}: {one_line(exc)}") from None
    return client


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as dotted keys: ``{"channels": [4, 8]}`` → ``channels.0``, ..."""
    if isinstance(value, Mapping):
        items: Iterator[tuple[str, Any]] = ((str(k), v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in items:
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else key))
    return flat


def is_secret(key: str) -> bool:
    """Whether a (dotted) parameter or tag name may hold a credential: never synced."""
    return is_secret_key(key) or any(part in NOT_SYNCED for part in key.lower().split("."))


def clean(values: Mapping[str, Any]) -> dict[str, str]:
    """Parameter/tag values as MLflow wants them, minus anything that may hold a credential."""
    return {
        k: stored_text(str(v))[:6000]
        for k, v in values.items()
        if not is_secret(k) and v is not None
    }


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_epochs(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a killed worker
    return records


def fingerprint(trial: FrozenTrial, folder: Path) -> str:
    """What a trial run was synced from: state, value, attributes and the trial's files."""
    sizes = {}
    for path in sorted(folder.rglob("*")) if folder.exists() else []:
        if path.is_file() and not path.name.endswith(".tmp"):
            sizes[str(path.relative_to(folder))] = path.stat().st_size
    result = folder / RESULT_FILE
    payload = {
        "format": FORMAT,
        "state": trial.state.name,
        "value": trial.value,
        "attrs": clean(flatten(trial.user_attrs)),
        "sizes": sizes,
        "result": result.read_text() if result.exists() else None,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def read_bins(path: Path) -> list[dict[str, Any]]:
    """The per-energy-bin rows of a trial's ``binned.json`` (none when it has no energies)."""
    bins = read_json(path).get("bins")
    return [row for row in bins if isinstance(row, dict)] if isinstance(bins, list) else []


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def bin_metrics(bins: list[dict[str, Any]], metric: str, stamp: int) -> list[Metric]:
    """The objective's test value in each energy bin, the bin in the name
    (``test_q_factor_lgE_3.0_3.5``): a run's charts then show results, never a step axis that
    means a bin index. The other per-bin numbers are in the bin table. Undefined values
    (``null``: Q in a bin with one class) are left out rather than drawn as zero."""
    out = []
    for row in bins:
        number = _number(row.get(metric))
        lo, hi = _number(row.get("log10_e_min")), _number(row.get("log10_e_max"))
        if number is not None and lo is not None and hi is not None:
            out.append(Metric(f"test_{metric}{BIN_INFIX}{lo:.1f}_{hi:.1f}", number, stamp, 0))
    return out


def bin_table(bins: list[dict[str, Any]], classes: list[str]) -> dict[str, list[Any]]:
    """The bins as one table in pandas' "split" layout (what ``mlflow.log_table`` writes and
    ``mlflow.load_table`` reads): edges, events, events per class, then each metric."""
    names = [str(c) for c in classes]
    columns = ["log10_e_min", "log10_e_max", "events"]
    width = max((len(r.get("per_class") or []) for r in bins), default=0)
    per_class = [f"events_{names[i] if i < len(names) else i}" for i in range(width)]
    metrics = [k for r in bins for k in r if k not in columns and k != "per_class"]
    metrics = list(dict.fromkeys(metrics))
    data = []
    for row in bins:
        counts = list(row.get("per_class") or [])
        counts += [None] * (width - len(counts))
        data.append([row.get(k) for k in columns] + counts + [row.get(k) for k in metrics])
    return {"columns": columns + per_class + metrics, "data": data}


def log_table(
    client: MlflowClient, run_id: str, bins: list[dict[str, Any]], classes: list[str]
) -> None:
    """The bins as an MLflow table (``tables/energy_bins.json``, ``mlflow.load_table`` reads
    it; the UI lists it as the run's table). ``log_table`` appends to a table that exists, so a
    re-sync of an updated trial replaces the file instead of doubling its rows."""
    if not bins:
        return
    table = bin_table(bins, classes)
    log_rows(client, run_id, table["columns"], table["data"], TABLE_JSON)


def log_rows(
    client: MlflowClient, run_id: str, columns: list[str], data: list[list[Any]], name: str
) -> None:
    """``data`` as the MLflow table ``tables/<name>``, replaced (not appended to, as
    ``log_table`` would) when the run has it already."""
    import pandas as pd

    frame = pd.DataFrame(data, columns=columns)
    path = f"{TABLES_DIR}/{name}"
    if path not in {f.path for f in client.list_artifacts(run_id, TABLES_DIR)}:
        client.log_table(run_id, frame, path)
        return
    with tempfile.TemporaryDirectory(prefix="wcd-hpc-table-") as tmp:
        target = Path(tmp) / name
        frame.to_json(target, orient="split", index=False)
        client.log_artifact(run_id, str(target), TABLES_DIR)


def write_table(bins: list[dict[str, Any]], classes: list[str], folder: Path) -> list[Path]:
    """The bins as ``tables/energy_bins.csv`` (the UI's artifact view shows it as a table) and
    ``.json`` (for ``mlflow.load_table``) under ``folder``; none without bins."""
    if not bins:
        return []
    table = bin_table(bins, classes)
    (folder / TABLES_DIR).mkdir(exist_ok=True)
    as_json, as_csv = folder / TABLES_DIR / TABLE_JSON, folder / TABLES_DIR / TABLE_CSV
    as_json.write_text(json.dumps(table))
    with as_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(table["columns"])
        writer.writerows(["" if v is None else v for v in row] for row in table["data"])
    return [as_csv, as_json]


def environment_tags() -> dict[str, str]:
    """Package versions of the environment sync runs in, as ``versions.<package>`` tags.

    It is the environment the MLflow model is pickled in (loading it needs compatible
    versions); a worker records no versions of its own. CUDA and the NVIDIA driver are added
    when torch sees a GPU here.
    """
    import mlflow
    import optuna
    import torch

    tags = {
        "versions.wcd_hpc": __version__,
        "versions.python": platform.python_version(),
        "versions.torch": torch.__version__,
        "versions.optuna": optuna.__version__,
        "versions.mlflow": mlflow.__version__,
    }
    if torch.cuda.is_available():
        tags["versions.cuda"] = str(torch.version.cuda)
        driver = nvidia_driver()
        if driver:
            tags["versions.cuda_driver"] = driver
    return tags


def nvidia_driver() -> str | None:
    """The NVIDIA driver version (``nvidia-smi``; torch does not report it)."""
    try:
        proc = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = proc.stdout.split() if proc.returncode == 0 else []
    return lines[0] if lines else None


def git_commit() -> str | None:
    """The commit of the checkout wcd-hpc runs from, when it is one (an editable install)."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def millis(stamp: Any) -> int | None:
    return int(stamp.timestamp() * 1000) if stamp is not None else None


def log_batched(client: MlflowClient, run_id: str, **lists: list[Any]) -> None:
    """``log_batch`` within MLflow's limits (1000 entries, 100 params or tags per call)."""
    for kind, size in (("metrics", 1000), ("params", 100), ("tags", 100)):
        entries = lists.get(kind, [])
        for start in range(0, len(entries), size):
            chunk = entries[start : start + size]
            client.log_batch(
                run_id,
                metrics=chunk if kind == "metrics" else (),
                params=chunk if kind == "params" else (),
                tags=chunk if kind == "tags" else (),
            )
