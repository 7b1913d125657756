"""Experiment files any YAML tool can write: load-and-dump keeps their meaning, quoting is safe.

People generate and rewrite experiment files with PyYAML and OmegaConf (Hydra). Whatever such a
tool writes back must mean the same search space; a list item in quotes must be the distribution
it spells, never a string constant that fails every trial at run time; and a quoted expression
where a constant is meant is refused in one line before any study exists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from omegaconf import OmegaConf  # the test extra installs it
from optuna.distributions import IntDistribution

from wcd_hpc.errors import ConfigError
from wcd_hpc.experiment.config import load_experiment
from wcd_hpc.experiment.resolve import resolve
from wcd_hpc.experiment.space import Fixed, ListOf, RandInt, Space
from wcd_hpc.plugins import get_registry

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted([*(ROOT / "examples").glob("*.yaml"), *(ROOT / "experiments").glob("*.yaml")])


def _pyyaml(src: Path, dst: Path) -> None:
    dst.write_text(yaml.safe_dump(yaml.safe_load(src.read_text()), sort_keys=False))


def _omegaconf_save(src: Path, dst: Path) -> None:
    OmegaConf.save(OmegaConf.load(src), dst)


def _omegaconf_to_yaml(src: Path, dst: Path) -> None:
    dst.write_text(OmegaConf.to_yaml(OmegaConf.load(src)))


TOOLS: dict[str, Callable[[Path, Path], None]] = {
    "pyyaml": _pyyaml,
    "omegaconf-save": _omegaconf_save,
    "omegaconf-to_yaml": _omegaconf_to_yaml,
}


def _resolved(path: Path) -> tuple[dict[str, Any], Space]:
    exp, space = resolve(load_experiment(path), get_registry())
    settings = exp.to_dict()
    for key in ("source", "param_space"):  # where it was read; the space is compared as a space
        settings.pop(key, None)
    return settings, space


def _experiment(tmp_path: Path, param_space: str, name: str = "quoting") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\n"
        "dataset: {name: footprint-sim, params: {events: 200, grid: 40}}\n"
        "model: lenet\n"
        "trials: 2\n"
        "executor: local\n"
        "param_space:\n"
        f"  {param_space}\n"
    )
    return path


def test_every_shipped_file_writes_its_lists_in_the_canonical_spelling() -> None:
    assert len(SHIPPED) >= 7
    for path in SHIPPED:
        loaded = yaml.safe_load(path.read_text())
        for key, value in (loaded.get("param_space") or {}).items():
            # A YAML list here would be split at the commas of its calls by any YAML tool.
            assert not isinstance(value, list), f"{path.name}: param_space.{key}"


@pytest.mark.parametrize("tool", TOOLS, ids=str)
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_shipped_file_dumped_by_a_yaml_tool_resolves_to_the_same_experiment_and_space(
    tool: str, path: Path, tmp_path: Path
) -> None:
    copy = tmp_path / path.name
    TOOLS[tool](path, copy)
    settings, space = _resolved(path)
    copied, copied_space = _resolved(copy)
    assert copied_space == space
    assert copied_space.describe() == space.describe()
    assert copied == settings


@pytest.mark.parametrize("tool", ["pyyaml", "omegaconf-save"])
def test_the_dry_run_of_a_dumped_quickstart_shows_the_same_space(cli, tmp_path, tool) -> None:
    quickstart = ROOT / "examples" / "quickstart.yaml"
    copy = tmp_path / "copy.yaml"
    TOOLS[tool](quickstart, copy)
    original = cli("sweep", str(quickstart), "--dry-run", "--json", "--executor", "local")
    dumped = cli("sweep", str(copy), "--dry-run", "--json", "--executor", "local")
    assert original.code == 0 and dumped.code == 0, original.err + dumped.err
    assert json.loads(dumped.out)["space"] == json.loads(original.out)["space"]
    assert json.loads(dumped.out)["space"]["channels"] == "[randint(4, 12), randint(4, 16)]"
    assert not (tmp_path / "runs").exists()


LIST_SPELLINGS = {
    "quoted whole list (canonical)": 'channels: "[randint(4, 12), randint(4, 16)]"',
    "flow list of quoted items": 'channels: ["randint(4, 12)", "randint(4, 16)"]',
    "single-quoted items": "channels: ['randint(4, 12)', 'randint(4, 16)']",
    "block list": "channels:\n    - randint(4, 12)\n    - randint(4, 16)",
    "unquoted flow list (kept for old files)": "channels: [randint(4, 12), randint(4, 16)]",
}


@pytest.mark.parametrize("spelling", LIST_SPELLINGS.values(), ids=list(LIST_SPELLINGS))
def test_every_list_spelling_means_two_distributions(tmp_path: Path, spelling: str) -> None:
    _, space = _resolved(_experiment(tmp_path, spelling))
    assert space.params["channels"] == ListOf((RandInt(4, 12), RandInt(4, 16)))
    assert space.distributions()["channels.0"] == IntDistribution(4, 12)
    assert space.distributions()["channels.1"] == IntDistribution(4, 16)


def test_quoted_items_mix_distributions_and_constants(tmp_path: Path) -> None:
    _, space = _resolved(_experiment(tmp_path, 'channels: ["randint(4, 12)", 6]'))
    assert space.params["channels"] == ListOf((RandInt(4, 12), Fixed(6)))


def test_the_canonical_spelling_is_one_string_to_every_yaml_tool(tmp_path: Path) -> None:
    path = _experiment(tmp_path, 'channels: "[randint(4, 12), randint(4, 16)]"')
    channels = "[randint(4, 12), randint(4, 16)]"
    assert yaml.safe_load(path.read_text())["param_space"]["channels"] == channels
    assert OmegaConf.load(path).param_space.channels == channels


def test_the_unquoted_flow_list_is_not_canonical_a_yaml_tool_breaks_it_and_is_told_why(
    tmp_path: Path,
) -> None:
    path = _experiment(tmp_path, "channels: [randint(4, 12), randint(4, 16)]")
    assert yaml.safe_load(path.read_text())["param_space"]["channels"][0] == "randint(4"
    _resolved(path)  # wcd-hpc itself still reads it from the source text
    dumped = tmp_path / "dumped.yaml"
    _pyyaml(path, dumped)
    with pytest.raises(ConfigError) as refused:
        _resolved(dumped)
    message = str(refused.value)
    assert re.match(rf"{re.escape(str(dumped))}:\d+: param_space\.channels\[0\]: syntax", message)
    assert 'quote the whole list: "[randint(2, 20), randint(2, 20)]"' in message
    assert "\n" not in message


QUOTED_CONSTANTS = {
    "quoted item in a quoted list": (
        "channels: \"['randint(4, 12)', 6]\"",
        "param_space.channels[0]",
        "'randint(4, 12)'",
    ),
    "quoted item in an unquoted flow list": (
        'channels: ["randint(4, 12)", randint(4, 16)]',
        "param_space.channels[0]",
        "'randint(4, 12)'",
    ),
    "quoted option of choice()": (
        "optimizer: choice(['randint(1, 2)'])",
        "param_space.optimizer",
        "'randint(1, 2)'",
    ),
    "an expression quoted twice": (
        "lr: \"'loguniform(1e-4, 1e-2)'\"",
        "param_space.lr",
        "'loguniform(1e-4, 1e-2)'",
    ),
}


@pytest.mark.parametrize(
    ("written", "key", "shown"), QUOTED_CONSTANTS.values(), ids=list(QUOTED_CONSTANTS)
)
@pytest.mark.parametrize("dry_run", [False, True], ids=["sweep", "dry-run"])
def test_a_quoted_expression_where_a_constant_is_meant_is_refused_in_one_line_and_no_study(
    cli, tmp_path, written, key, shown, dry_run
) -> None:
    path = _experiment(tmp_path, written)
    res = cli("sweep", str(path), "--executor", "local", *(["--dry-run"] if dry_run else []))
    assert res.code == 2, res.err
    assert res.out == "" and res.err.count("\n") == 1
    assert res.err.startswith(f"error: {path}:7: {key}: the quoted string {shown} is a ")
    assert res.err.rstrip().endswith("write the expression without quotes")
    assert not (tmp_path / "runs").exists()


def test_quoted_words_and_numbers_stay_constants(tmp_path: Path) -> None:
    # Words the search-space language must not read as calls; a model's domain would refuse
    # them (optimizer), so the space is read as the YAML gives it, before resolution.
    path = _experiment(tmp_path, "optimizer: \"choice(['adam', 'sgd-momentum', '(adam)'])\"")
    space = Space.from_mapping(yaml.safe_load(path.read_text())["param_space"])
    assert space.describe()["optimizer"] == "choice(['adam', 'sgd-momentum', '(adam)'])"
