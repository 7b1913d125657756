"""The house keeps its shape: its layers, its one schema module, few loose modules, short ones."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

from wcd_hpc.queue import schema

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "src" / "wcd_hpc"
# The queue's schema, and the few names the storage layer below it writes (it re-exports them).
SCHEMAS = (SRC / "queue" / "schema.py", SRC / "store" / "schema.py")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

ATTRIBUTES = {
    value
    for name, value in vars(schema).items()
    if name.startswith(("STUDY_", "TRIAL_", "SYSTEM_")) and isinstance(value, str)
}
FILES = {
    value
    for name, value in vars(schema).items()
    if name.endswith(("_FILE", "_PLOT", "_SCRIPT", "_DIR")) and isinstance(value, str)
}
# Calls whose first argument names an attribute (Optuna's setters, and dict lookups).
ACCESSORS = {"get", "pop", "setdefault", "set_user_attr", "set_trial_user_attr", "set_system_attr"}


def _modules() -> Iterator[Path]:
    for path in sorted(SRC.rglob("*.py")):
        if path not in SCHEMAS:
            yield path


def _literal(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _on_attributes(node: ast.AST) -> bool:
    """Whether a lookup is made on a trial's or study's attributes (``t.user_attrs[...]``)."""
    target = node.value if isinstance(node, ast.Subscript) else getattr(node, "func", None)
    return "attrs" in ast.unparse(target) if target is not None else False


def _exports(tree: ast.AST) -> set[int]:
    """ids of the string nodes of ``__all__`` (names of functions, not attributes)."""
    return {
        id(element)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
        for element in ast.walk(node.value)
    }


def _offences(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, literal) of every schema name written as a literal where it is used as one.

    Attribute names that are also plain words (``host``, ``test``, ``budget``) are only caught
    where they are looked up on attributes or set: the same words are legitimately keys of
    result files and of ``status --json``. Names with an underscore and file names are caught
    wherever they appear.
    """
    exports = _exports(tree)
    for node in ast.walk(tree):
        text = _literal(node) if id(node) not in exports else None
        # Anywhere: a file name with an extension, or an attribute name no English word shares.
        if text is not None and (
            (text in FILES and "." in text.strip(".")) or (text in ATTRIBUTES and "_" in text)
        ):
            yield node.lineno, text  # type: ignore[attr-defined]
        # An attribute looked up or set by name: t.user_attrs["host"], .get("pid"), set_*_attr.
        keys: list[ast.AST] = []
        if isinstance(node, ast.Subscript) and _on_attributes(node):
            keys.append(node.slice)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            setter = node.func.attr.startswith("set_")
            if node.func.attr in ACCESSORS and node.args and (setter or _on_attributes(node)):
                keys.append(node.args[-2] if setter and len(node.args) > 1 else node.args[0])
            keys += [
                k
                for kw in node.keywords
                if kw.arg in ("user_attrs", "system_attrs") and isinstance(kw.value, ast.Dict)
                for k in kw.value.keys
                if k is not None
            ]
        elif (
            isinstance(node, ast.Compare)
            and any(isinstance(o, ast.In) for o in node.ops)
            and any("attrs" in ast.unparse(c) for c in node.comparators)
        ):
            keys.append(node.left)
        for key in keys:
            name = _literal(key)
            if name in ATTRIBUTES:
                yield key.lineno, name  # type: ignore[attr-defined]
        # A directory of the run layout joined into a path: run_dir / "trials".
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            for side in (node.left, node.right):
                if _literal(side) in FILES:
                    yield side.lineno, str(_literal(side))  # type: ignore[attr-defined]


def test_no_attribute_or_file_name_is_written_outside_the_schema_module() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text!r}"
        for path in _modules()
        for line, text in _offences(ast.parse(path.read_text(), str(path)))
    ]
    assert not found, "use the names of wcd_hpc.queue.schema instead of:\n" + "\n".join(found)


def test_the_literal_check_finds_a_planted_attribute_and_file_name() -> None:
    planted = ast.parse(
        't.user_attrs.get("host")\n'
        'study.set_user_attr("budget", 3)\n'
        'out = run_dir / "trials"\n'
        'open("result.json")\n'
        'x = {"fail_reason": 1}\n'
        'if "suspended" in t.user_attrs: pass\n'
        'result.get("test")\n'  # a key of result.json, not the attribute: allowed
    )
    assert sorted(line for line, _ in _offences(planted)) == [1, 2, 3, 4, 5, 6]


def test_at_most_eight_modules_lie_loose_at_the_package_root() -> None:
    loose = sorted(p.name for p in SRC.glob("*.py") if p.name != "__init__.py")
    assert len(loose) <= 8, loose


def test_every_module_stays_under_about_five_hundred_lines() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 520
    }
    assert not long


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():  # pragma: no cover - the test extras install it
        pytest.fail("lint-imports is missing: pip install -e '.[test]'")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env={"PYTHONPATH": str(tree / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_layers_hold() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("queue/study.py", "import wcd_hpc.engine.trial"),  # queue reaching up to the engine
        ("store/storage.py", "from wcd_hpc.queue import claims"),  # storage reaching the queue
        ("engine/worker.py", "from wcd_hpc.launch import local"),  # engine reaching up
        ("errors.py", "import wcd_hpc.cli"),  # the bottom layer reaching the top
        ("launch/task.py", "import wcd_hpc.__main__"),  # an array task through the CLI
    ],
    ids=[
        "queue-to-engine",
        "store-to-queue",
        "engine-to-launch",
        "errors-to-cli",
        "array-task-to-cli",
    ],
)
def test_an_upward_import_breaks_the_contract_even_when_lazy(
    tmp_path: Path, module: str, upward: str
) -> None:
    shutil.copytree(SRC, tmp_path / "src" / "wcd_hpc")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "wcd_hpc" / module
    target.write_text(target.read_text() + f"\n\ndef _sneaky() -> None:\n    {upward}\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout


def test_no_import_is_ignored_by_the_contracts() -> None:
    import tomllib  # Python 3.11+, like the test above it in test_container

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert [c["name"] for c in contracts["contracts"] if c.get("ignore_imports")] == []


def _cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in imports[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = stack[stack.index(module) :]
            del stack[stack.index(module) :]
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(imports):
        if module not in index:
            visit(module)
    return found


def test_no_module_of_the_package_imports_itself_back_through_others() -> None:
    # Module by module, lazy imports included: finer than the contract's acyclic_siblings,
    # which only compares siblings (an array task once reached the CLI through eight modules).
    graph = grimp.build_graph("wcd_hpc", cache_dir=None)
    imports = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    assert _cycles(imports) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
