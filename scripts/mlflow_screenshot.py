#!/usr/bin/env python3
"""Check in a real browser that the address ``sync`` prints opens the study's runs in MLflow.

MLflow 3 opens experiments in its GenAI view unless the address asks for the model-training view
(``wcd_hpc.results.viewing``); a unit test cannot see what the UI renders, so this script does:

1. starts ``mlflow server`` on loopback (a SQLite store in a temporary directory);
2. runs a tiny sweep (one trial of the ``mlp`` model on 60 simulated 8×8 footprints, one epoch)
   and syncs it to that server with ``wcd-hpc sync``;
3. opens the address ``sync`` printed with headless Chromium (``apt-get install chromium``),
   dumps the rendered page and checks that the runs table lists the study's run ("2 matching
   runs": the parent and its trial), and that the model-training view (with the model registry
   in the sidebar, not the GenAI overview) is what opened;
4. with ``--png FILE``, also saves a screenshot of that page (not committed anywhere).

Exit status 0 when the check passes, 1 with the reason otherwise. Run it from the repository
root: ``.venv/bin/python scripts/mlflow_screenshot.py --png /tmp/mlflow.png``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TINY = """\
name: look
dataset: {name: footprint-sim, params: {primaries: [gamma, proton], events: 60, grid: 8}}
model: mlp
metric: accuracy
trials: 1
epochs: 1
pruner: none
executor: local
workers: 1
param_space:
  batch_size: 16
  optimizer: adam
  hidden: [8]
"""
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
#: The study's parent run, the first row of the runs table (its trials are nested under it,
#: collapsed: MLflow keeps which rows are expanded in the browser, not in the address).
RUN_NAME = "look"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(folder: Path, port: int) -> subprocess.Popen[bytes]:
    mlflow = Path(sys.executable).parent / "mlflow"
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # no huey consumers
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    stop(proc)
    raise SystemExit(f"mlflow server did not start; see {folder / 'server.log'}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wcd_hpc(*args: str, cwd: Path) -> str:
    env = {**os.environ, "MLFLOW_TRACKING_URI": "", "COLUMNS": "300"}
    proc = subprocess.run(
        [sys.executable, "-m", "wcd_hpc", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"wcd-hpc {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no headless browser found: apt-get install -y chromium")


def chromium(url: str, *mode: str, profile: Path) -> str:
    """Load ``url`` headless, give its scripts time to render, return stdout (the DOM)."""
    proc = subprocess.run(
        [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={profile}", "--window-size=1600,1000",
         "--virtual-time-budget=20000", *mode, url],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    return proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", type=Path, help="also save a screenshot to this file")
    parser.add_argument("--dom", type=Path, help="also save the rendered page (HTML) here")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="open the address without its view parameter (MLflow's default view): the check "
        "is then expected to fail, which shows it tells the two views apart",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wcd-hpc-look-") as tmp:
        root = Path(tmp)
        (root / "server").mkdir()
        port = free_port()
        server = start_server(root / "server", port)
        try:
            (root / "look.yaml").write_text(TINY)
            wcd_hpc("sweep", "look.yaml", "--no-sync", cwd=root)
            said = wcd_hpc("sync", "look", "--tracking-uri", f"http://127.0.0.1:{port}", cwd=root)
            found = re.search(r"then open (\S+)", said)
            if not found:
                print(f"sync printed no address:\n{said}")
                return 1
            url = found.group(1)
            if args.plain:
                url = url.split("?")[0]
            print(f"sync printed: {url}")
            dom = chromium(url, "--dump-dom", profile=root / "browser")
            if args.dom:
                args.dom.write_text(dom)
            if args.png:
                chromium(url, f"--screenshot={args.png.resolve()}", profile=root / "browser-png")
                print(f"screenshot: {args.png}")
        finally:
            stop(server)
    problems = []
    text = re.sub(r"<[^>]+>", "", dom)  # "<strong>2</strong> matching runs"
    if not re.search(r"\b2\s*matching runs", text) or f">{RUN_NAME}<" not in dom:
        problems.append(f"no runs table listing the run {RUN_NAME} and its trial")
    if "Model registry" not in dom:
        problems.append("no model registry in the sidebar (the GenAI view?)")
    if problems:
        print("FAILED: " + "; ".join(problems) + f" ({len(dom)} characters of DOM)")
        return 1
    print(f"ok: the runs table lists {RUN_NAME}, in the model-training view")
    return 0


if __name__ == "__main__":
    sys.exit(main())
