"""Count the places in the tests that start a ``wcd-hpc`` process, and say where they are.

Every CLI process costs a Python start and the import of torch (1.5 to 3 s on a small CI
machine), so the ``cli`` fixture of ``tests/conftest.py`` runs the CLI in the test's own process
unless a call asks for a process. This script reads the test sources (it runs nothing) and counts
the call *sites* that start one; a call inside a loop or a helper counts once:

- a call with ``subprocess=True`` or ``without_torch=True`` (``cli(...)`` or a helper that passes
  them on to it);
- ``cli(...)`` in a module that sets ``CLI_IN_A_PROCESS = True`` (unless ``subprocess=False``);
- a list literal that starts with ``sys.executable`` and holds ``"-m", "wcd_hpc"`` (a direct run);
- a string constant holding ``from wcd_hpc.__main__ import`` (a ``python -c`` program that runs
  the CLI's ``main``), outside ``tests/conftest.py`` whose ``WITHOUT_TORCH`` is the fixture's own.

Usage: ``python scripts/count_cli_processes.py [--max N] [paths...]`` (default ``tests``); prints
one ``path:line: kind`` per site and the total, and exits 1 when the total exceeds ``--max``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _is_true(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _module_wants_process(tree: ast.Module) -> bool:
    """Whether the module sets ``CLI_IN_A_PROCESS = True`` at its top level."""
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            continue
        named = any(isinstance(t, ast.Name) and t.id == "CLI_IN_A_PROCESS" for t in targets)
        if named and _is_true(value):
            return True
    return False


def _is_sys_executable(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "executable"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    )


def _strings(nodes: list[ast.expr]) -> list[object]:
    return [n.value if isinstance(n, ast.Constant) else None for n in nodes]


def sites(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, kind)`` of every place in ``path`` that starts a CLI process."""
    tree = ast.parse(path.read_text(), filename=str(path))
    whole_module = _module_wants_process(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            flags = {k.arg: k.value for k in node.keywords if k.arg}
            named_cli = isinstance(node.func, ast.Name) and node.func.id == "cli"
            if "without_torch" in flags and _is_true(flags["without_torch"]):
                yield node.lineno, "cli(without_torch=True)"
            elif "subprocess" in flags:
                if _is_true(flags["subprocess"]):
                    yield node.lineno, "cli(subprocess=True)"
            elif whole_module and named_cli:
                yield node.lineno, "cli() in a CLI_IN_A_PROCESS module"
        elif isinstance(node, ast.List) and node.elts and _is_sys_executable(node.elts[0]):
            words = _strings(node.elts)
            if any(words[i : i + 2] == ["-m", "wcd_hpc"] for i in range(len(words))):
                yield node.lineno, "[sys.executable, '-m', 'wcd_hpc', ...]"
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and "from wcd_hpc.__main__ import" in node.value
            and path.name != "conftest.py"
        ):
            yield node.lineno, "python -c program calling wcd_hpc.__main__"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=[str(ROOT / "tests")])
    parser.add_argument("--max", type=int, default=None, help="fail when the count exceeds this")
    args = parser.parse_args(argv)
    files = sorted(
        f for p in map(Path, args.paths) for f in ([p] if p.is_file() else p.rglob("*.py"))
    )
    total = 0
    for file in files:
        for line, kind in sorted(sites(file)):
            shown = (
                file.resolve().relative_to(ROOT) if file.resolve().is_relative_to(ROOT) else file
            )
            print(f"{shown}:{line}: {kind}")
            total += 1
    print(f"{total} call sites start a CLI process")
    return 1 if args.max is not None and total > args.max else 0


if __name__ == "__main__":
    sys.exit(main())
