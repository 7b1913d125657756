"""Opening the first RDB storage of a process from several threads at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# A fresh interpreter: in this one the modules are imported long ago. Optuna's constructor is
# replaced by a probe that says whether every module it would import lazily is already whole.
PROBE = textwrap.dedent(
    """
    import sys
    from optuna.storages import RDBStorage
    from wcd_hpc.store import rdb

    seen = []
    RDBStorage.__init__ = lambda self, url, **kw: seen.append(
        [m for m in rdb._LAZY_MODULES if m not in sys.modules]
    )
    assert any(m not in sys.modules for m in rdb._LAZY_MODULES), "imported already"
    rdb.RetryingRDBStorage("sqlite://", masked="sqlite://")
    print(seen)
    """
)


def test_optunas_lazy_rdb_imports_are_done_before_its_constructor_runs() -> None:
    """Two sweeps started in threads of one program got a half-initialised ``sqlalchemy.orm``
    when both made Optuna import it at once; wcd-hpc imports those modules first, one thread
    at a time, so Optuna's constructor finds them whole."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[[]]", out.stdout + out.stderr
