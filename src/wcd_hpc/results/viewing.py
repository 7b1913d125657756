"""How to look at a study's results: the lines ``sync`` and ``sweep`` end with.

A new user finishes a sweep with the results in a local MLflow store and a journal, and no idea
which command opens them. These lines name the command for MLflow's UI and for optuna-dashboard
on exactly these results, and the direct address of the study's experiment.

MLflow 3 opens an experiment in its GenAI view (traces, no model registry in the sidebar)
unless told otherwise: the UI takes its *workflow type* from the address's ``workflowType``
parameter, else from what the browser last chose, and starts at ``genai``; the experiment's
``mlflow.experimentKind`` tag (which sync sets too) is ignored while the UI's workflow switch is
shown, as it is in 3.17. So the address names the model-training view itself
(``?workflowType=machine_learning``), and once opened the browser keeps that choice.

Nothing here imports MLflow (``sweep`` may print these without having synced).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from wcd_hpc.queue.schema import JOURNAL_FILE
from wcd_hpc.store.urls import kind, without_secrets

__all__ = ["MLFLOW_PORT", "closing_lines", "experiment_url"]

#: Where ``mlflow ui`` listens by default; the dashboard's default is 8080.
MLFLOW_PORT = 5000
DASHBOARD_PORT = 8080
#: The UI's model-training view (its other value, ``genai``, is the default of MLflow 3).
WORKFLOW = "workflowType=machine_learning"


def _server(tracking_uri: str) -> str | None:
    """The address of a tracking server the browser can open; None for a local store."""
    if tracking_uri.startswith(("http://", "https://")):
        return without_secrets(tracking_uri).rstrip("/")
    return None


def experiment_url(tracking_uri: str, experiment_id: str) -> str:
    """The experiment's page in the MLflow UI, in its model-training view."""
    base = _server(tracking_uri) or f"http://127.0.0.1:{MLFLOW_PORT}"
    return f"{base}/#/experiments/{experiment_id}?{WORKFLOW}"


def closing_lines(
    tracking_uri: str, experiment_id: str, storage_url: str, run_dir: Path
) -> list[str]:
    """The commands that open MLflow's UI and optuna-dashboard on these results."""
    lines = []
    if _server(tracking_uri) is None:
        store = without_secrets(tracking_uri)
        ui = ["mlflow", "ui", "--backend-store-uri", store, "--host", "127.0.0.1"]
        lines.append(f"MLflow UI: {shlex.join([*ui, '--port', str(MLFLOW_PORT)])}")
    lines.append(f"  then open {experiment_url(tracking_uri, experiment_id)}")
    if kind(storage_url) == "journal":
        journal = storage_url.removeprefix("journal:")
        target = journal if journal.endswith(".log") else str(run_dir / JOURNAL_FILE)
    else:
        target = without_secrets(storage_url)
    lines.append(f"optuna-dashboard: {shlex.join(['optuna-dashboard', target])}")
    lines.append(
        "  (on a login node: ssh -N -L "
        f"{MLFLOW_PORT}:127.0.0.1:{MLFLOW_PORT} -L {DASHBOARD_PORT}:127.0.0.1:{DASHBOARD_PORT} "
        "you@login from your laptop; see the docs' how-to on viewing results from a login node)"
    )
    return lines
