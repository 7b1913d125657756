"""The key table (wcd_hpc.experiment.keys): one declaration per key, read by every part."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wcd_hpc.cli import PROG_NAME, app
from wcd_hpc.experiment import checks, keys
from wcd_hpc.experiment.config import (
    DEFAULTS,
    ConfigError,
    Experiment,
    load_experiment,
    validate_profile,
)
from wcd_hpc.experiment.keys import Key
from wcd_hpc.experiment.resume import changed_keys

MINIMAL = """\
name: probe
dataset: {name: footprint-sim, params: {events: 200}}
model: mlp
trials: 2
executor: local
"""

#: The one edit a new key takes.
PROBE = Key(
    "probe_every",
    checks.integer(1, 50),
    5,
    "how often the probe runs, in batches",
    "10",
    "integer",
)


@pytest.fixture
def probe_key(monkeypatch: pytest.MonkeyPatch) -> Key:
    monkeypatch.setattr(keys, "KEYS", (*keys.KEYS, PROBE))
    return PROBE


def _write(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "probe.yaml"
    path.write_text(MINIMAL + extra, encoding="utf-8")
    return path


def test_a_key_added_to_the_table_is_read_from_the_file_and_from_set(probe_key, tmp_path) -> None:
    exp = load_experiment(_write(tmp_path, "probe_every: 7\n"))
    assert exp.setting("probe_every") == 7
    exp = load_experiment(_write(tmp_path, "probe_every: 7\n"), overrides=["probe_every=9"])
    assert exp.setting("probe_every") == 9
    assert load_experiment(_write(tmp_path)).setting("probe_every") == 5  # its default


def test_a_key_added_to_the_table_is_checked_with_file_line_and_key(probe_key, tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        load_experiment(_write(tmp_path, "probe_every: 0\n"))
    assert str(info.value).endswith(":6: probe_every: expected a positive integer, got 0")
    with pytest.raises(ConfigError) as info:
        load_experiment(_write(tmp_path), overrides=["probe_every=51"])
    assert str(info.value) == (
        "--set: probe_every: expected a positive integer of at most 50, got 51"
    )


def test_a_key_added_to_the_table_is_stored_and_compared_on_resume(probe_key, tmp_path) -> None:
    exp = load_experiment(_write(tmp_path, "probe_every: 7\n"))
    stored = json.loads(json.dumps(exp.to_dict()))
    assert stored["probe_every"] == 7 and Experiment.from_dict(stored) == exp
    again = load_experiment(_write(tmp_path, "probe_every: 8\n"))
    assert changed_keys(stored, again) == ["probe_every"]  # not mutable: a new experiment
    del stored["probe_every"]  # a study stored before the key existed: its default
    assert changed_keys(stored, load_experiment(_write(tmp_path))) == []


def test_a_key_added_to_the_table_is_in_the_dry_run(probe_key, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, "probe_every: 7\n")
    res = CliRunner().invoke(app, ["sweep", str(path), "--dry-run", "--json"], prog_name=PROG_NAME)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["settings"]["probe_every"] == 7


def test_a_key_a_profile_may_set_is_taken_from_a_profile(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(keys, "KEYS", (*keys.KEYS, dataclasses.replace(PROBE, profile=True)))
    validate_profile({"probe_every": 3}, "site.toml")
    exp = load_experiment(_write(tmp_path), profile={"probe_every": 3})
    assert exp.setting("probe_every") == 3


def test_a_profile_may_not_set_a_key_the_table_keeps_from_profiles() -> None:
    with pytest.raises(ConfigError, match=r"site\.toml: trials: unknown key"):
        validate_profile({"trials": 3}, "site.toml")


def test_every_key_has_what_the_reference_page_shows() -> None:
    rows = keys.reference()
    assert [r["name"] for r in rows] == [k.name for k in keys.KEYS]
    for row in rows:
        assert row["type"] and row["allowed"] and row["doc"] and row["example"], row["name"]
    assert DEFAULTS["epochs"] == 10 and DEFAULTS["resources.gpus"] == 0


def test_every_attribute_of_an_experiment_is_a_key_of_the_table() -> None:
    """A typed attribute that no key fills would be a second, undocumented declaration."""
    filled = {"source", "extras", "lines", "origins", "given", "resources"}
    for key in keys.KEYS:
        field = key.field if key.field != "" else key.name.replace(".", "_")
        filled.update(field if isinstance(field, tuple) else [field])
    assert {f.name for f in dataclasses.fields(Experiment)} <= filled
