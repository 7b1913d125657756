"""The documentation site: generated references that follow the code, and examples that run.

The references are generated at every build by ``scripts/docs_hooks.py``; these tests hold the
generators to what the program really offers (every command of ``wcd-hpc -h``, every key the
validator accepts with its default, every profile key, every hook), and fail a key that the
validator gains without documentation. ``scripts/test.sh`` builds the site with warnings as
errors, so a broken link fails there.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import typer.rich_utils
from typer.testing import CliRunner

from wcd_hpc import hookspecs
from wcd_hpc.cli import PROG_NAME, app
from wcd_hpc.experiment import checks, keys
from wcd_hpc.launch.settings import ContainerSettings, SlurmSettings
from wcd_hpc.launch.sweep import plan
from wcd_hpc.plugins import get_registry
from wcd_hpc.scaffold import DOCS_URL

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT / "scripts"))
import docs_hooks  # noqa: E402  (scripts/ is not a package)


def _commands_of_help(path: list[str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The command names ``wcd-hpc [PATH] -h`` lists in its Commands panel."""
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 200)
    shown = CliRunner().invoke(app, [*path, "-h"], prog_name=PROG_NAME).output
    panel = shown[shown.index("─ Commands ─") :]
    return re.findall(r"^│ (\S+)\s{2,}", panel, re.M)


def test_the_cli_reference_lists_every_command_of_minus_h(monkeypatch: pytest.MonkeyPatch) -> None:
    reference = docs_hooks.cli_reference()
    headings = set(re.findall(r"^## `(wcd-hpc [^`]+)`$", reference, re.M))
    top = _commands_of_help([], monkeypatch)
    assert {"sweep", "status", "help", "journal"} <= set(top)
    for name in top:
        assert f"wcd-hpc {name}" in headings
        if name in ("journal", "storage", "plugins"):
            for sub in _commands_of_help([name], monkeypatch):
                assert f"wcd-hpc {name} {sub}" in headings
    assert "wcd-hpc task-workers" not in headings  # hidden from -h, hidden here
    sweep = reference[reference.index("## `wcd-hpc sweep`") :]
    assert "| `--set` | text, repeatable |" in sweep.split("\n## ")[0]


def _key_rows(reference: str) -> dict[str, list[str]]:
    rows = {}
    for line in reference.splitlines():
        match = re.match(r"^\| `([^`]+)` \|(.*)\|$", line)
        if match:
            rows[match.group(1)] = [c.strip() for c in match.group(2).split(" | ")]
    return rows


def test_the_key_reference_lists_every_key_the_validator_accepts_with_its_default() -> None:
    rows = _key_rows(docs_hooks.experiment_reference())
    assert [r for r in rows if "." not in r or r.split(".")[0] in keys.GROUPS] == [
        k.name for k in keys.KEYS
    ]
    for key in keys.KEYS:
        default = rows[key.name][1]
        if key.required:
            assert default == "required", key.name
        elif key.default is None:
            assert default == "none", key.name
        elif key.default in ({}, ""):
            assert default == "empty", key.name
        else:
            expected = str(key.default).lower() if isinstance(key.default, bool) else key.default
            assert default == f"`{expected}`", key.name
        assert rows[key.name][2] == key.rule.allowed.replace("|", "\\|"), key.name
    assert rows["model.sha256"][4] == "yes"  # may change on resume: the acknowledgement


def test_a_key_added_to_the_validator_without_documentation_fails_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    documented = keys.Key("fake_key", checks.integer(1, 9), 3, "a probe", "4", "integer")
    monkeypatch.setattr(keys, "KEYS", (*keys.KEYS, documented))
    assert "| `fake_key` | integer | `3` |" in docs_hooks.experiment_reference()
    silent = keys.Key("fake_key", checks.integer(1, 9), 3, "", "4", "integer")
    monkeypatch.setattr(keys, "KEYS", (*keys.KEYS[:-1], silent))
    with pytest.raises(LookupError, match=r"without documentation.*fake_key"):
        docs_hooks.experiment_reference()


def test_the_profile_reference_lists_every_key_a_profile_takes() -> None:
    reference = docs_hooks.profile_reference()
    for key in (*keys.profile_names(), "description"):
        assert f"| `{key}` |" in reference
    for table, cls in (("slurm", SlurmSettings), ("container", ContainerSettings)):
        for name in cls.__dataclass_fields__:
            assert f"| `{table}.{name}` |" in reference, f"{table}.{name}"
    assert "| `slurm.grace_s` | `120` |" in reference


def test_the_hook_reference_has_every_hook_spec() -> None:
    reference = docs_hooks.hooks_reference()
    for name in (n for n in dir(hookspecs) if n.startswith("register_")):
        assert re.search(rf"^## `{name}\(\w+\)`$", reference, re.M), name


def test_every_generated_marker_has_a_generator_and_every_generator_a_page() -> None:
    used = set()
    for page in DOCS.rglob("*.md"):
        used |= set(docs_hooks.MARKER.findall(page.read_text()))
    assert used == set(docs_hooks.GENERATORS)


def test_every_benchmark_script_is_named_in_the_docs() -> None:
    text = "\n".join(p.read_text() for p in DOCS.rglob("*.md"))
    for script in (ROOT / "benchmarks").glob("*.py"):
        assert script.name in text, script.name


def test_the_documentation_url_is_one_everywhere() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'Documentation = "{DOCS_URL}"' in pyproject.split("[project.urls]")[1]
    assert f"site_url: {DOCS_URL}" in (ROOT / "mkdocs.yml").read_text()


def test_the_own_model_tutorial_plans_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = (DOCS / "tutorials" / "own-model.md").read_text()
    (tmp_path / "my_net.py").write_text(re.findall(r"```python\n(.*?)```", page, re.S)[0])
    (tmp_path / "my_net.yaml").write_text(re.findall(r"```yaml\n(.*?)```", page, re.S)[0])
    monkeypatch.chdir(tmp_path)
    p = plan(Path("my_net.yaml"), get_registry())
    assert p.exp.model == "./my_net.py:MyNet"
    assert "hidden" in p.space.params
    assert [f.ref.attribute for f in p.files] == ["MyNet"]
