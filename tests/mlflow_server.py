"""A real ``mlflow server`` on loopback for the sync tests: one per test session.

Its fixture is re-exported by ``tests/conftest.py``, so every module that syncs shares the one
server of its session; a fixture imported into each test module would start one per module.
Each start costs tens of CPU-seconds, and CI runs on two cores.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

MLFLOW = Path(sys.executable).parent / "mlflow"


@dataclass
class Server:
    uri: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(folder: Path, port: int) -> Server:
    """`mlflow server` on loopback with a SQLite database and proxied artifacts; waits for it.

    Without MLflow's job runner: with a database backend the server otherwise starts several
    ``huey`` consumer processes, each importing MLflow, that sync never uses.
    """
    from conftest import need  # at call time: conftest imports this module

    if not MLFLOW.exists():
        need("MLflow server", f"{MLFLOW} missing (pip install -e '.[test]')")
    folder.mkdir(parents=True, exist_ok=True)
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(MLFLOW),
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    server = Server(f"http://127.0.0.1:{port}", proc)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{server.uri}/health", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    server.stop()
    tail = (folder / "server.log").read_text(errors="replace")[-500:]
    need("MLflow server", f"did not answer on {server.uri}: {tail}")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("mlflow"), free_port())
    yield server
    server.stop()
