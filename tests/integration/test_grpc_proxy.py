"""``storage: grpc://`` through a real ``wcd-hpc storage serve`` in front of the real PostgreSQL.

The proxy runs as a subprocess on a free loopback port (``--port 0``; it prints the port it
took), with a short claim-lock lease so that a dead holder's lease lapses within the test. On the
one-node dev cluster, Slurm jobs reach it on loopback as well.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import optuna
import pytest
from conftest import dev_pg_password
from optuna.trial import TrialState

from wcd_hpc.errors import ConfigError
from wcd_hpc.experiment.addresses import grpc_address
from wcd_hpc.queue.claims import OVER_BUDGET
from wcd_hpc.queue.schema import TRIAL_FAIL_REASON
from wcd_hpc.store.grpcstore import LockClient, acquire, claim_lock
from wcd_hpc.store.storage import open_storage
from wcd_hpc.store.urls import kind

ROOT = Path(__file__).resolve().parents[2]
DEV = str(ROOT / "slurm/profiles/dev.toml")
TOY = {"WCD_HPC_PLUGINS": "toy"}
LEASE_S = 1.5
QUICK = {"WCD_HPC_GRPC_WAIT_S": "1"}  # an unreachable proxy: give up after a second


class Proxy:
    """A running ``wcd-hpc storage serve``: its process and the URL workers use."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc, self.url = proc, url
        self.host, self.port = grpc_address(url)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)


def start_proxy(secret_pg_url: str, port: int = 0, lease: float = LEASE_S) -> Proxy:
    """Start the proxy (the password reaches it through the environment, never argv)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WCD_HPC_")}
    env["WCD_HPC_STORAGE"] = secret_pg_url
    args = ["storage", "serve", "--host", "127.0.0.1", "--port", str(port), "--lease", str(lease)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "wcd_hpc", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    if "storage: grpc://" not in line:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"storage serve did not start: {line!r} {err[-2000:]}")
    assert dev_pg_password() not in line and "postgresql://wcd@" in line and ":***@" not in line
    return Proxy(proc, line.split("storage: ", 1)[1].strip())


@pytest.fixture(scope="module")
def proxy(secret_pg_url: str) -> Iterator[Proxy]:
    """One proxy for the module, stopped by SIGTERM at the end (and checked to stop cleanly)."""
    running = start_proxy(secret_pg_url)
    yield running
    assert running.stop() == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_error_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def _check_budget(pg_url: str, name: str, budget: int) -> None:
    """Exactly ``budget`` trials, each claimed once, none given up as over the budget."""
    study = optuna.load_study(study_name=name, storage=open_storage(pg_url))
    trials = study.get_trials(deepcopy=False)
    assert [t.number for t in trials] == list(range(budget))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), [
        (t.number, t.state.name, t.user_attrs.get(TRIAL_FAIL_REASON)) for t in trials
    ]
    assert not any(OVER_BUDGET in str(t.user_attrs) for t in trials)
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == budget


# --------------------------------------------------------------------------------------------
# URLs, refusals, unreachable proxies


@pytest.mark.parametrize(
    "url", ["grpc://host", "grpc://host:", "grpc://host:99999", "grpc://host:x", "grpc://:1"]
)
def test_a_grpc_url_without_a_usable_port_is_a_config_error_naming_the_key(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_storage(url)
    assert str(info.value).startswith("storage: expected grpc://HOST:PORT")


def test_kind_of_a_grpc_url_is_grpc() -> None:
    assert kind("grpc://node7:13000") == "grpc"
    assert grpc_address("grpc://[::1]:13000") == ("::1", 13000)


def test_a_sweep_on_an_unknown_proxy_host_is_one_line_and_creates_nothing(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    exp = toy_experiment(name="nohost", storage="grpc://nohost:1")
    res = cli("sweep", str(exp), plugins=testplugins, env=TOY)
    assert res.code != 0
    line = _one_error_line(res.err)
    assert line.startswith("error: cannot open storage grpc://nohost:1: ")
    assert "is `wcd-hpc storage serve` running on nohost:1?" in line
    assert not (tmp_path / "runs").exists()


def test_a_grpc_url_without_a_port_in_the_experiment_is_blamed_on_its_line(
    cli, testplugins, toy_experiment, tmp_path
) -> None:
    exp = toy_experiment(name="noport", storage="grpc://node7")
    res = cli("sweep", str(exp), plugins=testplugins, env=TOY)
    assert res.code == 2
    line = _one_error_line(res.err)
    assert f"{exp}:8: storage: expected grpc://HOST:PORT" in line
    assert not (tmp_path / "runs").exists()


def test_status_against_an_unreachable_proxy_names_the_address_without_a_traceback(cli) -> None:
    port = _free_port()
    res = cli("status", "some-study", "--storage", f"grpc://127.0.0.1:{port}", env=QUICK)
    assert res.code != 0
    line = _one_error_line(res.err)
    assert f"is `wcd-hpc storage serve` running on 127.0.0.1:{port}?" in line


def test_doctor_reports_an_unreachable_proxy_with_its_address(cli) -> None:
    port = _free_port()
    res = cli("doctor", "--storage", f"grpc://127.0.0.1:{port}", "--json", env=QUICK)
    check = next(c for c in res.json()["checks"] if c["name"] == "storage")
    assert not check["ok"] and f"127.0.0.1:{port}" in check["detail"]
    assert "storage serve" in check["fix"]


def test_serve_refuses_a_journal_backend_in_one_line(cli, tmp_path) -> None:
    res = cli("storage", "serve", "--storage", f"journal:{tmp_path}/j.log")
    assert res.code == 2
    assert "cannot serve a journal file" in _one_error_line(res.err)
    assert not (tmp_path / "j.log").exists()


# --------------------------------------------------------------------------------------------
# The proxy itself


def test_doctor_finds_the_running_proxy(cli, proxy: Proxy) -> None:
    res = cli("doctor", "--storage", proxy.url, "--json")
    check = next(c for c in res.json()["checks"] if c["name"] == "storage")
    assert check["ok"], check


def test_a_second_proxy_on_a_taken_port_is_one_line(cli, secret_pg_url: str, proxy: Proxy) -> None:
    # A process: were the port free after all, the server would serve until the timeout ends it.
    env = {"WCD_HPC_STORAGE": secret_pg_url}
    res = cli("storage", "serve", "--port", str(proxy.port), env=env, timeout=60, subprocess=True)
    assert res.code == 2
    line = _one_error_line(res.err)
    assert f"cannot listen on 127.0.0.1:{proxy.port}: Address already in use" in line
    assert dev_pg_password() not in res.out + res.err


def test_a_second_client_cannot_take_the_claim_lock_while_the_first_holds_it(
    proxy: Proxy,
) -> None:
    study = f"lock-{uuid.uuid4().hex[:8]}"
    a = LockClient(grpc.insecure_channel(f"127.0.0.1:{proxy.port}"), proxy.host, proxy.port)
    b = LockClient(grpc.insecure_channel(f"127.0.0.1:{proxy.port}"), proxy.host, proxy.port)
    assert a.try_acquire(study, "a") == LEASE_S
    assert b.try_acquire(study, "b") is None
    assert b.try_acquire(f"{study}-other", "b") is not None  # locks are per study
    assert b.release(study, "b") is False  # not held: no error
    assert a.release(study, "a") is True
    assert b.try_acquire(study, "b") is not None
    assert b.release(study, "b") is True


def test_a_held_claim_lock_is_renewed_past_its_lease(proxy: Proxy) -> None:
    study = f"renew-{uuid.uuid4().hex[:8]}"
    other = LockClient(grpc.insecure_channel(f"127.0.0.1:{proxy.port}"), proxy.host, proxy.port)
    storage = open_storage(proxy.url)
    with claim_lock(proxy.url, storage, study):
        time.sleep(2 * LEASE_S)
        assert other.try_acquire(study, "other") is None
    assert other.try_acquire(study, "other") is not None


HOLD_AND_WAIT = """
import sys, time
from wcd_hpc.store.storage import claim_lock, open_storage
url, study = sys.argv[1], sys.argv[2]
with claim_lock(url, open_storage(url), study):
    print("held", flush=True)
    time.sleep(600)
"""


def test_the_claim_lock_of_a_killed_holder_lapses_after_its_lease(proxy: Proxy) -> None:
    study = f"dead-{uuid.uuid4().hex[:8]}"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD_AND_WAIT), proxy.url, study],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        client = LockClient(grpc.insecure_channel(proxy.url[7:]), proxy.host, proxy.port)
        assert client.try_acquire(study, "next") is None
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        killed = time.monotonic()
        acquire(client, study, "next")
        assert time.monotonic() - killed <= LEASE_S + 1.0
    finally:
        holder.kill()
        holder.wait()


def test_a_claim_lock_waits_through_a_proxy_restart(secret_pg_url: str) -> None:
    port = _free_port()
    first = start_proxy(secret_pg_url, port)
    client = LockClient(grpc.insecure_channel(f"127.0.0.1:{port}"), "127.0.0.1", port)
    assert first.stop() == 0
    got: list[float] = []
    thread = threading.Thread(target=lambda: got.append(acquire(client, "restart", "me")))
    thread.start()
    time.sleep(1.0)  # the acquire is retrying against nothing
    second = start_proxy(secret_pg_url, port)
    try:
        thread.join(timeout=30)
        assert got == [LEASE_S]
    finally:
        assert second.stop() == 0


def test_an_optuna_client_call_survives_a_proxy_restart(secret_pg_url: str) -> None:
    port = _free_port()
    first = start_proxy(secret_pg_url, port)
    url = f"grpc://127.0.0.1:{port}"
    name = f"survive-{uuid.uuid4().hex[:8]}"
    study = optuna.create_study(study_name=name, storage=open_storage(url))
    assert first.stop() == 0
    holder: list[Proxy] = []
    later = threading.Timer(1.0, lambda: holder.append(start_proxy(secret_pg_url, port)))
    later.start()
    try:
        study.tell(study.ask(), 1.0)  # ask and tell go through while the proxy comes back
        assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE]
    finally:
        later.join()
        assert holder and holder[0].stop() == 0


def test_eight_clients_claiming_under_the_proxy_lock_never_overshoot(proxy: Proxy) -> None:
    """What a worker's claim does (count, then ask, under the lock), from eight racing clients;
    without the lock several would see room for the last trial and overshoot."""
    name, budget = f"race-{uuid.uuid4().hex[:8]}", 24
    optuna.create_study(study_name=name, storage=open_storage(proxy.url))
    told: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            sampler = optuna.samplers.RandomSampler()
            study = optuna.load_study(
                study_name=name, storage=open_storage(proxy.url), sampler=sampler
            )
            while True:
                with claim_lock(proxy.url, study._storage, name):
                    if len(study.get_trials(deepcopy=False)) >= budget:
                        return
                    time.sleep(0.02)  # a sampler thinking: widens the window a lock must close
                    trial = study.ask()
                study.tell(trial, trial.suggest_float("x", 0, 1))
                told.append(trial.number)
        except BaseException as exc:  # reported by the test, not lost in a thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[0]
    assert sorted(told) == list(range(budget))


# --------------------------------------------------------------------------------------------
# Sweeps through the proxy


@pytest.mark.slow
def test_a_local_sweep_of_three_workers_through_the_proxy_meets_its_budget_exactly(
    cli, testplugins, toy_experiment, pg_url: str, proxy: Proxy
) -> None:
    name = f"grpc-{uuid.uuid4().hex[:12]}"  # the database outlives test runs
    exp = toy_experiment(name=name, trials=6, workers=3, storage=proxy.url)
    res = cli("sweep", str(exp), "--executor", "local", plugins=testplugins, env=TOY)
    assert res.code == 0, res.err[-3000:]
    assert dev_pg_password() not in res.out + res.err
    _check_budget(pg_url, name, 6)
    trials = optuna.load_study(study_name=name, storage=open_storage(pg_url)).trials
    assert len({t.user_attrs["worker"] for t in trials}) >= 2


@pytest.mark.slow
def test_a_slurm_sweep_through_the_proxy_meets_its_budget_exactly(
    cli, testplugins, toy_experiment, pg_url: str, proxy: Proxy, slurm_cluster
) -> None:
    name = f"grpc-slurm-{uuid.uuid4().hex[:12]}"
    exp = toy_experiment(name=name, trials=4, workers=2, storage=proxy.url)
    args = ("sweep", str(exp), "--profile", DEV, "--set", "executor=slurm", "--wait", "--no-sync")
    res = cli(*args, plugins=testplugins, env=TOY)
    assert res.code == 0, res.err[-3000:]
    _check_budget(pg_url, name, 4)
    status = cli("status", name, "--json", "--storage", proxy.url, plugins=testplugins, env=TOY)
    assert status.code == 0, status.err
    assert status.json()["finished"] == 4
