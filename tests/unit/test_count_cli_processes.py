"""``scripts/count_cli_processes.py``: the tests start fewer than 40 CLI processes (issue 27).

Each ``wcd-hpc`` process costs a Python start and the import of torch; the count is what keeps
the CI time down, so it is checked here and not only printed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _counter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("count", ROOT / "scripts/count_cli_processes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAIN = "from wcd_hpc." + "__main__ import"  # split, or this file would count itself
SAMPLE = f"""\
import sys
CLI_IN_A_PROCESS = True

def test(cli):
    cli("status")                            # the module asks: a process
    cli("status", subprocess=False)          # asked back into this process
    cli("plugins", without_torch=True)
    helper(cli, "sweep", subprocess=True)    # a helper that passes it on
    run([sys.executable, "-m", "wcd_hpc", "worker"])
    data = ["/py", "-m", "wcd_hpc"]          # a command compared, never run
    code = "{MAIN} main; main()"
"""


def test_every_kind_of_cli_process_is_counted_once_and_data_is_not(tmp_path) -> None:
    source = tmp_path / "test_sample.py"
    source.write_text(SAMPLE)
    found = sorted(_counter().sites(source))
    assert [line for line, _ in found] == [5, 7, 8, 9, 11]


def test_the_tests_start_fewer_than_40_cli_processes(capsys) -> None:
    assert _counter().main([str(ROOT / "tests"), "--max", "39"]) == 0, capsys.readouterr().out
