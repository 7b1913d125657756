"""Shared fixtures: the CLI as a user runs it, the test plugin package, real services.

The tests mirror the packages: ``tests/unit/<package>/`` holds in-process tests of one package of
``src/wcd_hpc`` (root modules in ``tests/unit/``), ``tests/integration/`` the tests that need a
real service (the dev Slurm cluster, PostgreSQL, an ``mlflow server``, the gRPC proxy, a tmpfs)
or run a sweep end to end. ``scripts/test.sh`` runs the unit stage first and stops there on a
failure, then the integration stage. The unit stage uses every core (pytest-xdist); the
integration stage runs two lanes side by side, each one test at a time: the tests that share the
one Slurm queue (the ``slurm_cluster`` fixture cancels the jobs that appeared during its test) or
the shared PostgreSQL database (marked ``shared_services`` below), and all the others. Tests that
stop or restart PostgreSQL do it to a server of their own (``private_pg``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import subprocess as _subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow_server import mlflow_server

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
__all__ = ["mlflow_server"]  # one MLflow server per session, for every module that syncs

#: The role and database slurm/dev-cluster/postgres-up creates. Tests reach them by a URL without a
#: password (the password is in a pgpass file, as the docs tell users to keep it); only the tests
#: that check a password never shows (``secret_pg_url``) put one in the URL, built at run time.
PG_ROLE, PG_DATABASE, PG_HOST, PG_PORT = "wcd", "wcd_hpc_test", "127.0.0.1", 5432


@functools.cache
def dev_pg_password() -> str:
    """The dev role's password, from where ``slurm/dev-cluster/postgres-up`` takes it:
    ``$WCD_HPC_TEST_PG_PASSWORD``, else the user's pgpass entry for exactly this database.

    Read once, before :func:`_pgpass_for_the_session` points ``$PGPASSFILE`` elsewhere. With
    neither (postgres-up not run here, or a server that trusts every login) it is a random
    string: the tests that check a password is never shown still have one to look for, and no
    password is written in the repository.
    """
    if os.environ.get("WCD_HPC_TEST_PG_PASSWORD"):
        return os.environ["WCD_HPC_TEST_PG_PASSWORD"]
    entry = f"{PG_HOST}:{PG_PORT}:{PG_DATABASE}:{PG_ROLE}:"
    pgpass = Path(os.environ.get("PGPASSFILE") or Path.home() / ".pgpass")
    try:
        lines = pgpass.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    for line in lines:
        if line.startswith(entry) and line != entry:
            return re.sub(r"\\(.)", r"\1", line.removeprefix(entry))
    return secrets.token_urlsafe(12)


def _dev_pg_url(*, password: bool = False) -> str:
    """``$WCD_HPC_TEST_PG``, else the dev database, its password inline only when asked for."""
    if os.environ.get("WCD_HPC_TEST_PG"):
        return os.environ["WCD_HPC_TEST_PG"]
    from sqlalchemy.engine import URL

    secret = dev_pg_password() if password else None
    url = URL.create("postgresql", PG_ROLE, secret, PG_HOST, PG_PORT, PG_DATABASE)
    return url.render_as_string(hide_password=False)


def _pgpass_for_the_session(folder: Path) -> None:
    """Point libpq at a pgpass file (mode 600) holding the dev role's password, unless the user
    gave ``$PGPASSFILE`` or ``$PGPASSWORD``: servers that check passwords then accept the
    password-less URL, in the tests and in the workers and Slurm jobs they start."""
    if os.environ.get("PGPASSFILE") or os.environ.get("PGPASSWORD"):
        return
    escaped = dev_pg_password().replace("\\", "\\\\").replace(":", "\\:")
    pgpass = folder / "pgpass"
    pgpass.touch(mode=0o600)
    pgpass.write_text(f"{PG_HOST}:{PG_PORT}:{PG_DATABASE}:{PG_ROLE}:{escaped}\n")
    os.environ["PGPASSFILE"] = str(pgpass)


def need(service: str, reason: str) -> None:
    """Skip for a missing service outside CI; in CI a missing service is a failure."""
    if IN_CI:
        pytest.fail(f"{service} is required in CI: {reason}")
    pytest.skip(f"{service} unavailable: {reason}")


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture(scope="session")
def testplugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test plugin distribution, pip-installed into its own directory (not the venv).

    Adding the directory to PYTHONPATH makes its entry points visible to exactly the processes
    that ask for it, so the broken plugin inside never leaks into other tests or the venv.
    """
    import shutil

    target = tmp_path_factory.mktemp("site")
    # Built from a private copy: pip writes build/ and egg-info beside the sources, and two
    # xdist workers building the one source tree at once break each other's build.
    source = tmp_path_factory.mktemp("testplugins-src") / "testplugins"
    shutil.copytree(
        FIXTURES / "testplugins", source, ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
    )
    return target


LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"  # as configure_logging's

# The ``wcd-hpc`` entry point in a process where ``import torch`` fails (None in sys.modules):
# what must work on a login node without paying for torch.
WITHOUT_TORCH = (
    "import sys; sys.modules['torch'] = None; sys.argv[0] = 'wcd-hpc'; "
    "from wcd_hpc.__main__ import main; main()"
)


def _in_process(args: tuple[str, ...], env: dict[str, str], cwd: Path) -> Result:
    """Run ``wcd-hpc ARGS`` in this process as :func:`wcd_hpc.__main__.main` would in its own.

    What a fresh process would not share with the tests around it is set up and put back: the
    environment, the working directory, ``sys.path`` (with the environment's ``PYTHONPATH``, as
    a process would have it) and the plugin registry (rebuilt from that path and the
    environment's allow-list), the modules imported from that path and from model files, torch's
    thread count, signal handlers, a copy of the app (plugin verbs are added to the copy),
    masked standard streams and a log handler on them (pytest's own handlers would swallow our
    INFO lines otherwise). Our error family becomes the one ``error:`` line through the app's own
    ``__call__``; a bug prints its traceback on stderr and exits 1, as Python does.
    """
    import copy
    import importlib
    import logging
    import signal
    import traceback

    from click.testing import CliRunner

    import wcd_hpc.plugins as registry_module
    from wcd_hpc.cli import PROG_NAME, app
    from wcd_hpc.engine.startup import configure_logging
    from wcd_hpc.experiment.modelfiles import MODULE_PREFIX
    from wcd_hpc.output.masking import mask_standard_streams
    from wcd_hpc.store.urls import SECRET_VARIABLES

    saved_env, saved_cwd, saved_path = dict(os.environ), os.getcwd(), list(sys.path)
    signals = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2]
    saved_signals = {sig: signal.getsignal(sig) for sig in signals}
    root = logging.getLogger()
    saved_level = root.level
    # A `worker` sets torch's thread count from $WCD_HPC_THREADS, for the whole process.
    torch = (
        importlib.import_module("torch") if "WCD_HPC_THREADS" in env else sys.modules.get("torch")
    )
    saved_threads = torch.get_num_threads() if torch is not None else None
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    # What a fresh process would find first on its path: the plugin sites of the test.
    added = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
    sys.path[:0] = added
    importlib.invalidate_caches()
    registry_module._CACHE = None
    fresh = copy.copy(app)
    fresh.registered_commands = list(app.registered_commands)
    fresh.registered_groups = list(app.registered_groups)
    code = 0
    runner = CliRunner()
    try:
        with runner.isolation() as (out, err, _):
            mask_standard_streams(*SECRET_VARIABLES)
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
            )
            root.addHandler(handler)
            root.setLevel(logging.WARNING)
            try:
                configure_logging()
                registry_module.get_registry().add_commands(fresh)
                fresh(args=list(args), prog_name=PROG_NAME)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if exc.code is not None and not isinstance(exc.code, int):
                    print(exc.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                root.removeHandler(handler)
            stdout = out.getvalue().decode(errors="replace")
            stderr = (err.getvalue() if err is not None else b"").decode(errors="replace")
    finally:
        root.setLevel(saved_level)
        torch = sys.modules.get("torch")
        if torch is not None and saved_threads is not None:
            torch.set_num_threads(saved_threads)
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        for sig, handler_ in saved_signals.items():
            signal.signal(sig, handler_)
        registry_module._CACHE = None
        for name, module in list(sys.modules.items()):
            file = str(getattr(module, "__file__", "") or "")
            from_path = bool(added) and file.startswith(tuple(added))
            if from_path or name.startswith(MODULE_PREFIX):  # model files: a process's own
                del sys.modules[name]
        importlib.invalidate_caches()
    return Result(code, stdout, stderr)


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Result]:
    """Run ``wcd-hpc ARGS`` in ``tmp_path``, as a user would, and return its exit status and output.

    In this process by default, integration tests included (:func:`_in_process`: the import of
    torch and a Python start, 1.5 to 3 s, saved per call, and a traceback that points into the
    test). A call that needs what only a process has asks for one with ``subprocess=True``: its
    own signals, a pid that ``cancel`` may stop, a timeout that ends a hang, what a real process
    prints at exit, an exit status set by ``os._exit``; ``CLI_IN_A_PROCESS = True`` in a test
    module asks for one for every call. ``without_torch=True`` (always a process) runs it where
    torch cannot be imported at all. ``timeout`` bounds a process only. The call sites that start
    a process are counted by ``scripts/count_cli_processes.py`` (fewer than 40).
    """
    module_wants_process = (
        bool(getattr(request.module, "CLI_IN_A_PROCESS", False))
        or os.environ.get("WCD_HPC_TEST_CLI") == "process"  # to compare both ways of running it
    )

    def run(
        *args: str,
        plugins: Path | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 600,
        cwd: Path | None = None,
        without_torch: bool = False,
        subprocess: bool | None = None,
    ) -> Result:
        full = {k: v for k, v in os.environ.items() if not k.startswith("WCD_HPC_")}
        full["COLUMNS"] = "200"
        if plugins is not None:  # before the tree's own path, if it has one
            full["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(plugins), full.get("PYTHONPATH")])
            )
        full.update(env or {})
        as_process = module_wants_process if subprocess is None else subprocess
        if not (as_process or without_torch):
            return _in_process(args, full, cwd or tmp_path)
        entry = ["-c", WITHOUT_TORCH] if without_torch else ["-m", "wcd_hpc"]
        proc = _subprocess.run(
            [sys.executable, *entry, *args],
            cwd=cwd or tmp_path,
            env=full,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real PostgreSQL database (``slurm/dev-cluster/postgres-up`` provisions it), by a URL
    without a password (see :func:`_pgpass_for_the_session`)."""
    try:
        import sqlalchemy
    except ImportError:  # pragma: no cover
        need("PostgreSQL", "sqlalchemy missing")
    _pgpass_for_the_session(tmp_path_factory.mktemp("pgpass"))
    url = _dev_pg_url()
    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        need("PostgreSQL", f"{type(exc).__name__} (run slurm/dev-cluster/postgres-up)")
    return url


@pytest.fixture(scope="session")
def secret_pg_url(pg_url: str) -> str:
    """The same database by a URL with the dev role's password inline, for the tests that check
    that a password typed into a URL is never shown (its spelling: :func:`dev_pg_password`)."""
    return _dev_pg_url(password=True)


#: The password of every private PostgreSQL server: tests check it never reaches the output.
PRIVATE_PG_SECRET = "private-secret"


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of one test's own: its data directory, port, how to stop and start it.

    Tests that take the database away (an outage, a restart) use one, so that no other test
    and no other user of the shared server (``slurm/dev-cluster/postgres-up``) sees it go."""

    bin: Path
    data: Path
    port: int

    @property
    def url(self) -> str:
        """The database ``private``, no password (the server trusts loopback)."""
        return f"postgresql://wcd@127.0.0.1:{self.port}/private"

    @property
    def secret_url(self) -> str:
        """The same with :data:`PRIVATE_PG_SECRET` inline, for tests that check it never shows."""
        from sqlalchemy.engine import URL

        url = URL.create("postgresql", "wcd", PRIVATE_PG_SECRET, "127.0.0.1", self.port, "private")
        return url.render_as_string(hide_password=False)

    def _ctl(self, *args: str) -> None:
        opts = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        cmd = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts, *args]
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True, timeout=60
        )

    def start(self) -> None:
        self._ctl("-l", str(self.data / "server.log"), "-w", "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")

    def sql(self, statement: str) -> None:
        psql = [str(self.bin / "psql"), "-h", str(self.data), "-p", str(self.port)]
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *psql, "-d", "postgres", "-c", statement],
            check=True,
            capture_output=True,
            timeout=60,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of the test's own (needs root, a postgres user and initdb): database
    ``private`` owned by ``wcd`` with the password :data:`PRIVATE_PG_SECRET`."""
    pg = _pg_bin()
    usable = os.geteuid() == 0 and pg is not None and shutil.which("runuser") is not None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        usable = False
    if not usable:
        reason = "a private PostgreSQL cluster needs root, runuser, a postgres user and initdb"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    assert pg is not None
    data = Path(tempfile.mkdtemp(prefix="wcd-pg-"))
    shutil.chown(data, "postgres", "postgres")
    subprocess.run(
        ["runuser", "-u", "postgres", "--", str(pg / "initdb"), "-D", str(data), "-A", "trust"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    cluster = PrivatePostgres(pg, data, _free_port())
    cluster.start()
    try:
        cluster.sql(f"CREATE ROLE wcd LOGIN PASSWORD '{PRIVATE_PG_SECRET}'")
        cluster.sql("CREATE DATABASE private OWNER wcd")
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # stopped already
            cluster.stop()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm_partition() -> str:
    """The real one-node Slurm of ``slurm/dev-cluster/up``; returns the partition name."""
    import shutil

    if shutil.which("sbatch") is None:
        need("Slurm", "sbatch not on PATH (run slurm/dev-cluster/up as root)")
    proc = subprocess.run(["sinfo", "-h", "-o", "%P %t"], capture_output=True, text=True)
    if proc.returncode != 0 or "gpu" not in proc.stdout:
        need("Slurm", f"sinfo: {proc.stderr.strip() or proc.stdout.strip() or 'no gpu partition'}")
    return "gpu"


def _queued_jobs() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%A"], capture_output=True, text=True).stdout
    return set(out.split())


@pytest.fixture
def slurm_cluster(slurm_partition: str) -> Iterator[str]:
    """The dev cluster, left as the test found it: jobs the test left queued are cancelled.

    A test that fails or times out mid-sweep would otherwise leave its array holding the four
    GPUs (a task signalled at its time limit requeues itself), and every later Slurm test would
    wait behind it.
    """
    before = _queued_jobs()
    yield slurm_partition
    left = sorted(_queued_jobs() - before)
    if left:
        subprocess.run(["scancel", *left], capture_output=True)
        deadline = time.monotonic() + 60
        while _queued_jobs() & set(left) and time.monotonic() < deadline:
            time.sleep(1)


TOY_EXPERIMENT = """\
name: {name}
dataset: {{name: toy-blobs, params: {{events: 300}}}}
model: toy-mlp
metric: {{name: {metric}}}
trials: {trials}
epochs: 2
pruner: {pruner}
storage: {storage}
workers: {workers}
executor: local
prune_chance: false
trial_plots: {plots}
"""


@pytest.fixture
def toy_experiment(tmp_path: Path) -> Callable[..., Path]:
    """Write a fast experiment using the test plugin's toy dataset and model.

    Its trials draw no figures (``trial_plots: false``) unless ``plots=True``: on toy-sized
    trials the figures are most of the CPU a test spends, and only a few tests look at them.
    """

    def write(
        name: str = "toy",
        trials: int = 4,
        workers: int = 1,
        storage: str = "journal",
        pruner: str = "none",
        metric: str = "accuracy",
        extra: str = "",
        plots: bool = False,
    ) -> Path:
        path = tmp_path / f"{name}.yaml"
        text = TOY_EXPERIMENT.format(
            name=name,
            trials=trials,
            workers=workers,
            storage=storage,
            pruner=pruner,
            metric=metric,
            plots=str(plots).lower(),
        )
        path.write_text(text + extra)
        return path

    return write


@pytest.fixture
def mlp_context(tmp_path: Path) -> Callable[..., Any]:
    """A trial context on blobs the ``mlp`` model learns in a second: run_trial without a study.

    ``mlp_context(epochs=2, placement=None)``; imports torch only when called. Chance-level
    pruning is off unless ``prune_chance`` says otherwise: a network at random initialisation
    sits near AUC 0.5 now and then, and the tests that use this are about something else.
    """

    def make(
        epochs: int = 2, placement: Any = None, where: Path | None = None, prune_chance: Any = False
    ) -> Any:
        import numpy as np
        import torch

        from wcd_hpc.api import DataSpec, Split, Splits
        from wcd_hpc.engine.fit import pick_device
        from wcd_hpc.engine.trial import Context
        from wcd_hpc.experiment.config import Experiment
        from wcd_hpc.experiment.space import Space
        from wcd_hpc.plugins import get_registry

        rng = np.random.default_rng(0)

        def split(n: int) -> Split:
            y = rng.integers(0, 2, n)
            x = rng.normal(0, 1, (n, 8)) + y[:, None]
            return Split(torch.tensor(x, dtype=torch.float32), torch.tensor(y), {})

        registry = get_registry()
        model = registry.models["mlp"].obj
        space = Space.from_mapping(model.space).merged({"hidden": "[8, 4]", "batch_size": 32})
        exp = Experiment(
            name="ctx", dataset="x", dataset_params={}, model="mlp", metric="accuracy",
            direction="maximize", trials=1, epochs=epochs, param_space={},
        )  # fmt: skip
        exp.extras["prune_chance"] = prune_chance
        splits = Splits(split(200), split(60), split(60), DataSpec((8,), 2, ("a", "b")))
        metrics = {name: entry.obj for name, entry in registry.metrics.items()}
        extra = {} if placement is None else {"placement": placement}
        run_dir = where or tmp_path
        return Context(exp, space, model, metrics, splits, run_dir, pick_device(), **extra)

    return make


def secret_spellings(secret: str, spelled: str) -> list[str]:
    """Every way ``secret`` could show up in a text: raw, as the URL spells it, escaped."""
    forms = {secret, spelled, repr(secret)[1:-1], ascii(secret)[1:-1], json.dumps(secret)[1:-1]}
    return sorted(forms)


def trials_once_created(journal: Path, name: str) -> list[Any]:
    """The trials of study ``name`` in ``journal``, or none while a sweep in another process has
    yet to write it: the journal file exists from the moment the sweep opens its storage, a moment
    before the study is in it, and a poll that falls in between must wait, not fail."""
    import optuna

    from wcd_hpc.store.storage import open_storage

    if not journal.exists():
        return []
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(f"journal:{journal}"))
    except KeyError:  # optuna's "Record does not exist": the study is not written yet
        return []
    return study.get_trials()


def write_plugin(site: Path, name: str, code: str) -> Path:
    """Install plugin ``name`` as bare files in ``site`` (for PYTHONPATH): distribution and entry
    point ``name``, module ``name`` with underscores; returns ``site``."""
    module = name.replace("-", "_")
    info = site / f"{module}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[wcd_hpc]\n{name} = {module}\n")
    (site / f"{module}.py").write_text(code)
    return site


#: Files whose tests use the shared dev Slurm cluster in some test (an sbatch of their own, the
#: queue, the ``slurm_cluster`` fixture's clean-up), or count and list what the shared PostgreSQL
#: database holds. Their tests are marked ``shared_services``: ``scripts/test.sh`` runs them one at
#: a time in one lane, and every other integration test in a second lane beside it.
SHARED_SERVICE_FILES = frozenset(
    {
        "test_budget.py",
        "test_container.py",
        "test_grpc_proxy.py",
        "test_model_files.py",
        "test_pruning.py",
        "test_site.py",
        "test_slurm.py",
        "test_worker_spec.py",
        "test_secrets.py",
        "test_sweep.py",
        "test_storage_concurrency.py",
    }
)
SHARED_SERVICE_FIXTURES = frozenset({"slurm_partition", "slurm_cluster", "pg_url", "secret_pg_url"})
#: Files that share nothing but run in the services lane all the same, so that the two lanes end
#: together: the PostgreSQL restart (80-90 s, a server of its own), the finalists' sweeps
#: (about 110 s) and the MLflow syncs (about 150 s; in the CI of 2026-12-06 the other lane ran
#: 1,156 s to this one's 913 s without them) would lengthen the longer one.
SERVICES_LANE_TOO = frozenset({"test_pg_resilience.py", "test_finalists.py", "test_sync.py"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests under ``tests/integration/`` (``-m "not integration"`` leaves them out), and
    those of them that share the Slurm queue or the shared database ``shared_services``.

    A marker and two pytest processes, not xdist groups: pytest-xdist 3.8 tags a grouped test by
    rewriting ``item._nodeid``, which pytest 9.2 no longer reads, so its groups silently do
    nothing (two Slurm tests then ran at once and cancelled each other's jobs)."""
    for item in items:
        path = Path(str(item.path))
        if "integration" not in path.parts:
            continue
        item.add_marker(pytest.mark.integration)
        fixtures = set(getattr(item, "fixturenames", ()))
        shared = path.name in SHARED_SERVICE_FILES or fixtures & SHARED_SERVICE_FIXTURES
        if shared or path.name in SERVICES_LANE_TOO:
            item.add_marker(pytest.mark.shared_services)


@pytest.fixture
def tempdir_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Python's temporary folders of this test go under its ``tmp_path``: MLflow's
    ``load_model("models:/…")`` downloads the model (and its ``MLmodel`` file, once more) into
    ``tempfile.mkdtemp()`` folders it never removes, which would pile up in ``/tmp``."""
    folder = tmp_path / "tempfile"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder
