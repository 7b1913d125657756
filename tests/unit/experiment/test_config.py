"""Tests of experiment files, profiles and plugin resolution (wcd_hpc.experiment.config)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from wcd_hpc.experiment.config import (
    DEFAULTS,
    ConfigError,
    Experiment,
    Resources,
    load_experiment,
    load_profile,
)
from wcd_hpc.experiment.resolve import resolve
from wcd_hpc.experiment.space import ListOf, LogUniform, RandInt

QUICK = """\
name: footprint-lenet           # study name
dataset: {name: footprint-sim, params: {primaries: [gamma, proton], events: 2000}}
model: lenet
metric: {name: f1, direction: maximize}
trials: 64
epochs: 5
param_space:
  lr: loguniform(1e-4, 1e-2)
  batch_size: randint(32, 256)
  optimizer: choice(['adam', 'sgd'])
  channels: [randint(2, 20), randint(2, 20)]
sampler: tpe
pruner: median
storage: journal
seed: 0
runs_dir: runs
workers: 2
executor: local
resources: {gpus: 1, cpus: 4, mem_gb: 16, time: "02:00:00"}
"""

MINIMAL = """\
name: quick
dataset: footprint-sim
model: lenet
trials: 4
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def write(text: str, name: str = "quick.yaml") -> str:
    Path(name).write_text(textwrap.dedent(text), encoding="utf-8")
    return name


def load_error(text: str, **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_experiment(write(text), **kwargs)
    return info.value


def registry(**space: object) -> SimpleNamespace:
    def entry(**attrs: object) -> SimpleNamespace:
        return SimpleNamespace(obj=SimpleNamespace(**attrs))

    default_space = space or {"lr": "loguniform(1e-5, 1e-1)", "depth": "randint(1, 4)"}
    # These models take any parameter (the name check has tests of its own, below).
    return SimpleNamespace(
        models={
            "lenet": entry(space=default_space, extra_params=True),
            "mlp": entry(space={}, extra_params=True),
        },
        datasets={"footprint-sim": entry(), "traces": entry()},
        metrics={
            "accuracy": entry(direction="maximize"),
            "f1": entry(direction="maximize"),
            "loss": entry(direction="minimize"),
        },
    )


# --- loading ----------------------------------------------------------------------------------


def test_full_example_loads_every_field() -> None:
    exp = load_experiment(write(QUICK))
    assert exp == Experiment(
        name="footprint-lenet",
        dataset="footprint-sim",
        dataset_params={"primaries": ["gamma", "proton"], "events": 2000},
        model="lenet",
        metric="f1",
        direction="maximize",
        trials=64,
        epochs=5,
        param_space={
            "lr": "loguniform(1e-4, 1e-2)",
            "batch_size": "randint(32, 256)",
            "optimizer": "choice(['adam', 'sgd'])",
            "channels": "[randint(2, 20), randint(2, 20)]",
        },
        sampler="tpe",
        pruner="median",
        storage="journal",
        seed=0,
        runs_dir="runs",
        workers=2,
        executor="local",
        resources=Resources(gpus=1, cpus=4, mem_gb=16, time="02:00:00"),
        source="quick.yaml",
    )


def test_flow_sequence_of_expressions_keeps_its_raw_text() -> None:
    exp = load_experiment(write(QUICK))
    _, space = resolve(exp, registry())
    assert space.params["channels"] == ListOf((RandInt(2, 20), RandInt(2, 20)))


def test_block_sequence_items_are_parsed_one_by_one() -> None:
    exp = load_experiment(
        write(MINIMAL + "param_space:\n  channels:\n    - randint(2, 20)\n    - 8\n    - true\n")
    )
    assert exp.param_space["channels"] == ["randint(2, 20)", 8, True]


def test_number_literals_in_param_space_are_understood() -> None:
    exp = load_experiment(
        write(MINIMAL + "param_space:\n  lr: loguniform(1e-4, 1e-2)\n  shift: -1\n  tiny: 1e-4\n")
    )
    _, space = resolve(exp, registry())
    assert space.params["lr"] == LogUniform(1e-4, 1e-2)
    assert space.rebuild({"lr": 0.001, "depth": 2})["shift"] == -1
    assert space.rebuild({"lr": 0.001, "depth": 2})["tiny"] == 1e-4


def test_shorthands_and_defaults_fill_a_minimal_file() -> None:
    exp = load_experiment(write(MINIMAL + "metric: f1\n"))
    assert (exp.dataset, exp.dataset_params, exp.model) == ("footprint-sim", {}, "lenet")
    assert (exp.metric, exp.direction) == ("f1", None)
    assert exp.epochs == DEFAULTS["epochs"]
    assert exp.resources == Resources()
    assert (exp.sampler, exp.pruner, exp.storage, exp.executor) == (
        "tpe",
        "median",
        "journal",
        "auto",
    )


def test_model_mapping_form_is_accepted() -> None:
    assert (
        load_experiment(write(MINIMAL.replace("model: lenet", "model: {name: mlp}"))).model == "mlp"
    )


def test_unquoted_slurm_time_is_kept_as_text() -> None:
    exp = load_experiment(write(MINIMAL + "resources:\n  time: 02:00:00\n"))
    assert exp.resources.time == "02:00:00"


def test_key_lines_are_recorded() -> None:
    exp = load_experiment(write(QUICK))
    assert exp.lines["trials"] == 5
    assert exp.lines["param_space.channels"] == 11
    assert exp.lines["resources.cpus"] == 19


def test_to_dict_is_json_and_round_trips() -> None:
    exp = load_experiment(write(QUICK))
    data = json.loads(json.dumps(exp.to_dict()))
    assert "lines" not in data
    assert data["resources"] == {
        "gpus": 1,
        "cpus": 4,
        "mem_gb": 16,
        "time": "02:00:00",
        "trials_per_gpu": 1,
    }
    assert Experiment.from_dict(data) == exp


def test_from_dict_rejects_unknown_keys() -> None:
    data = load_experiment(write(QUICK)).to_dict()
    data["bogus"] = 1
    with pytest.raises(ConfigError, match="bogus: unknown key"):
        Experiment.from_dict(data)


# --- error shapes -----------------------------------------------------------------------------


def test_config_error_string_omits_missing_parts() -> None:
    assert str(ConfigError("a.yaml", "trials", 7, "bad")) == "a.yaml:7: trials: bad"
    assert str(ConfigError("a.yaml", None, 7, "bad")) == "a.yaml:7: bad"
    assert str(ConfigError("a.yaml", "trials", None, "bad")) == "a.yaml: trials: bad"
    assert str(ConfigError("a.yaml", None, None, "bad")) == "a.yaml: bad"
    err = ConfigError("a.yaml", "k", 1, "m")
    assert isinstance(err, ValueError)
    assert (err.file, err.key, err.line, err.message) == ("a.yaml", "k", 1, "m")


def test_wrong_trials_type_names_file_line_key_and_value() -> None:
    err = load_error(QUICK.replace("trials: 64", "trials: five"))
    assert str(err) == "quick.yaml:5: trials: expected a positive integer, got 'five'"
    assert (err.file, err.key, err.line) == ("quick.yaml", "trials", 5)


@pytest.mark.parametrize(
    ("line", "key", "fragment"),
    [
        ("trials: 0", "trials", "expected a positive integer, got 0"),
        ("trials: true", "trials", "expected a positive integer, got True"),
        ("epochs: 2.5", "epochs", "expected a positive integer, got 2.5"),
        ("workers: -1", "workers", "expected a positive integer, got -1"),
        ("seed: -3", "seed", "expected an integer >= 0, got -3"),
        ("name: 'bad name!'", "name", "expected a study name"),
        ("name: " + "x" * 65, "name", "at most 64 characters"),
        ("name: 123", "name", "got 123"),  # YAML's integer, never a name by accident
        ("name: 1.5", "name", "got 1.5"),
        (
            "sampler: tpee",
            "sampler",
            "expected one of tpe, tpe-independent, random, cmaes, grid, qmc, got 'tpee'",
        ),
        ("pruner: medain", "pruner", "did you mean 'median'?"),
        ("executor: slurmm", "executor", "expected one of auto, local, slurm"),
        ("storage: redis://x", "storage", "expected journal, journal:PATH or a URL"),
        ("storage: 'journal:'", "storage", "expected journal, journal:PATH or a URL"),
        ("runs_dir: ''", "runs_dir", "expected a non-empty string, got ''"),
        ("metric: {name: f1, direction: up}", "metric.direction", "expected maximize or minimize"),
        ("dataset: {name: x, parms: {}}", "dataset.parms", "did you mean 'params'?"),
        ("dataset: {params: {}}", "dataset", "missing required key 'name'"),
        ("dataset: [a, b]", "dataset.name", "expected a non-empty string, got a list"),
        ("resources: {gpus: -1}", "resources.gpus", "expected an integer >= 0, got -1"),
        ("resources: {cpus: 0}", "resources.cpus", "expected a positive integer, got 0"),
        ("resources: {mem_gb: big}", "resources.mem_gb", "expected a positive number, got 'big'"),
        ("resources: {time: 2h}", "resources.time", "expected a time limit HH:MM:SS"),
        ("resources: {time: '1-25:00:00'}", "resources.time", "D-HH:MM:SS, got '1-25:00:00'"),
        ("resources: {tiem: '01:00:00'}", "resources.tiem", "did you mean 'time'?"),
        ("param_space: [1, 2]", "param_space", "expected a mapping of names to expressions"),
    ],
)
def test_wrong_values_are_located_and_explained(line: str, key: str, fragment: str) -> None:
    top = line.split(":")[0]
    kept = [k for k in MINIMAL.splitlines() if not k.startswith(top + ":")]
    err = load_error("\n".join([*kept, line]) + "\n")
    assert err.file == "quick.yaml"
    assert err.key == key
    assert err.line == len(kept) + 1
    assert fragment in str(err)
    assert str(err).startswith(f"quick.yaml:{err.line}: {key}: ")


@pytest.mark.parametrize(
    "value", ["storage: journal", "storage: journal:/scratch/j.log", "storage: sqlite:///a.db",
              "storage: postgresql://u@h/db", "storage: postgresql+psycopg2://h/db",
              "storage: mysql://h/db", "resources: {time: '1-02:00:00'}", "pruner: none",
              "pruner: null", "resources: {time: '48:00:00'}"],
)  # fmt: skip
def test_accepted_settings_load(value: str) -> None:
    load_experiment(write(MINIMAL + value + "\n"))


def test_unknown_top_level_key_suggests_the_closest() -> None:
    err = load_error(MINIMAL + "trails: 4\n")
    assert str(err) == "quick.yaml:5: trails: unknown key; did you mean 'trials'?"


def test_unknown_key_without_close_match_lists_known_keys() -> None:
    assert "(known: name, dataset, model" in str(load_error(MINIMAL + "zzz: 1\n"))


@pytest.mark.parametrize("missing", ["name", "dataset", "model", "trials"])
def test_missing_required_key_is_named(missing: str) -> None:
    text = "".join(
        line + "\n" for line in MINIMAL.splitlines() if not line.startswith(missing + ":")
    )
    assert str(load_error(text)) == f"quick.yaml: {missing}: missing required key"


def test_unquoted_nested_brackets_in_a_flow_list_get_a_quoting_hint() -> None:
    err = load_error(MINIMAL + "param_space:\n  ch: [choice([1, 2]), 3]\n")
    assert err.line == 6 and "quote search-space expressions" in err.message


def test_yaml_syntax_error_gives_line_and_problem() -> None:
    err = load_error("name: a\ndataset: x\nmodel: [lenet\ntrials: 3\n")
    assert err.file == "quick.yaml" and err.key is None
    assert err.line is not None and err.line >= 3
    assert str(err).startswith(f"quick.yaml:{err.line}: invalid YAML: ")


def test_bad_indentation_is_reported_with_its_line() -> None:
    err = load_error("name: a\n  model: b\n")
    assert err.line == 2 and "invalid YAML" in err.message


def test_duplicate_keys_are_rejected() -> None:
    assert str(load_error(MINIMAL + "trials: 8\n")) == (
        "quick.yaml:5: trials: duplicate key (first at line 4)"
    )


@pytest.mark.parametrize(
    ("text", "fragment"), [("", "is empty"), ("- a\n- b\n", "expected a mapping of settings")]
)
def test_non_mapping_documents_are_rejected(text: str, fragment: str) -> None:
    assert fragment in str(load_error(text))


def test_missing_file_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        load_experiment("nope.yaml")
    assert str(info.value) == "nope.yaml: no such file"


def test_directory_instead_of_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_experiment(tmp_path)


def test_bad_param_space_expression_cites_its_line() -> None:
    err = load_error(QUICK.replace("randint(32, 256)", "randint(256, 32)"))
    assert err.key == "param_space.batch_size" and err.line == 9
    assert str(err).startswith("quick.yaml:9: param_space.batch_size: randint() low must not")


def test_bad_list_item_in_flow_sequence_cites_the_item() -> None:
    err = load_error(QUICK.replace("randint(2, 20)]", "randint(2, 0)]"))
    assert (err.key, err.line) == ("param_space.channels[1]", 11)


def test_param_space_mapping_value_is_rejected() -> None:
    err = load_error(MINIMAL + "param_space:\n  lr:\n    low: 1\n")
    assert (err.key, err.line) == ("param_space.lr", 7)


# --- precedence and overrides -----------------------------------------------------------------


def test_precedence_defaults_profile_file_overrides() -> None:
    profile = {
        "runs_dir": "/scratch/runs",
        "workers": 8,
        "storage": "postgresql://db/optuna",
        "resources": {"gpus": 1, "cpus": 16, "time": "08:00:00"},
        "partition": "gpu",  # launcher setting: not an experiment key, ignored here
    }
    text = MINIMAL + "workers: 4\nresources: {cpus: 6}\n"
    exp = load_experiment(write(text), profile=profile, overrides=["resources.time=1-00:00:00"])
    assert exp.runs_dir == "/scratch/runs"  # profile over default
    assert exp.storage == "postgresql://db/optuna"
    assert exp.workers == 4  # file over profile
    assert exp.resources == Resources(gpus=1, cpus=6, mem_gb=8, time="1-00:00:00")
    assert exp.sampler == "tpe"  # default


def test_overrides_set_dotted_keys_and_raw_param_space() -> None:
    exp = load_experiment(
        write(QUICK),
        overrides=[
            "trials=100",
            "resources.cpus=8",
            "dataset.params.events=500",
            "param_space.lr=loguniform(1e-3, 1e-1)",
            "param_space.channels=[randint(4, 8), randint(4, 8)]",
            "metric=loss",
        ],
    )
    assert exp.trials == 100 and exp.resources.cpus == 8
    assert exp.dataset_params == {"primaries": ["gamma", "proton"], "events": 500}
    assert exp.param_space["lr"] == "loguniform(1e-3, 1e-1)"
    assert exp.param_space["channels"] == "[randint(4, 8), randint(4, 8)]"
    assert exp.param_space["batch_size"] == "randint(32, 256)"
    assert (exp.metric, exp.direction) == ("loss", None)  # a shorthand replaces the whole key


def test_override_values_are_plain_yaml_where_no_key_is_special() -> None:
    exp = load_experiment(write(MINIMAL), overrides=["dataset.params={param_space: {a: {b: 1}}}"])
    assert exp.dataset_params == {"param_space": {"a": {"b": 1}}}
    exp = load_experiment(write(MINIMAL), overrides=["dataset.params=# only a comment"])
    assert exp.dataset_params == {}


def test_override_can_supply_a_missing_required_key() -> None:
    text = "".join(line + "\n" for line in MINIMAL.splitlines()[:-1])
    assert load_experiment(write(text), overrides=["trials=3"]).trials == 3


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trials", "--set: trials: expected KEY=VALUE, e.g. trials=100"),
        ("=3", "--set: =3: expected KEY=VALUE"),
        ("trails=3", "--set: trails: unknown key; did you mean 'trials'?"),
        ("trials=five", "--set: trials: expected a positive integer, got 'five'"),
        ("trials.x=1", "--set: trials.x: trials is not a mapping; use trials=VALUE"),
        ("trials=[1", "--set: trials: cannot read '[1'"),
        ("param_space.lr=loguniform(0, 1)", "--set: param_space.lr: loguniform() low must be"),
        ("param_space.a.b=1", "--set: param_space.a.b: expected param_space.NAME=EXPRESSION"),
        ("resources.cpus=0", "--set: resources.cpus: expected a positive integer, got 0"),
    ],
)
def test_bad_override_is_reported_against_set(override: str, expected: str) -> None:
    err = load_error(MINIMAL, overrides=[override])
    assert err.file == "--set"
    assert err.line is None
    assert str(err).startswith(expected)


def test_bad_profile_value_is_reported_against_the_profile() -> None:
    err = load_error(MINIMAL, profile={"workers": "many"})
    assert str(err) == "<profile>: workers: expected a positive integer, got 'many'"


def test_file_error_after_profile_still_cites_the_file() -> None:
    err = load_error(MINIMAL + "resources: {cpus: 0}\n", profile={"resources": {"gpus": 2}})
    assert (err.file, err.key, err.line) == ("quick.yaml", "resources.cpus", 5)


# --- profiles ---------------------------------------------------------------------------------


def test_profile_is_found_by_name_in_search_dirs(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "hpc.toml").write_text('runs_dir = "/scratch"\n[resources]\ngpus = 1\n')
    profile = load_profile("hpc", [tmp_path / "a", tmp_path / "b"])
    assert profile == {"runs_dir": "/scratch", "resources": {"gpus": 1}}


def test_profile_is_read_from_a_path(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text("workers = 3\n")
    assert load_profile(str(tmp_path / "x.toml"), []) == {"workers": 3}


def test_unknown_profile_name_suggests_known_ones(tmp_path: Path) -> None:
    (tmp_path / "hpc.toml").write_text("")
    with pytest.raises(ConfigError) as info:
        load_profile("hcp", [tmp_path])
    assert info.value.file == "hcp"
    assert "no such profile" in str(info.value) and "did you mean 'hpc'?" in str(info.value)


def test_missing_profile_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_profile(str(tmp_path / "none.toml"), [])


def test_invalid_toml_gives_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('runs_dir = "/x"\nworkers = \n')
    with pytest.raises(ConfigError) as info:
        load_profile(str(path), [])
    assert (info.value.file, info.value.line) == (str(path), 2)
    assert "invalid TOML" in info.value.message


# --- resolve ----------------------------------------------------------------------------------


def test_resolve_fills_direction_from_the_metric_plugin() -> None:
    exp = load_experiment(write(MINIMAL + "metric: loss\n"))
    resolved, _ = resolve(exp, registry())
    assert resolved.direction == "minimize"
    assert exp.direction is None  # the input is not modified


def test_resolve_keeps_an_explicit_direction() -> None:
    exp = load_experiment(write(MINIMAL + "metric: {name: loss, direction: maximize}\n"))
    assert resolve(exp, registry())[0].direction == "maximize"


def test_resolve_merges_the_model_default_space_with_overrides() -> None:
    exp = load_experiment(write(QUICK))
    _, space = resolve(exp, registry())
    assert space.describe() == {
        "lr": "loguniform(0.0001, 0.01)",
        "depth": "randint(1, 4)",
        "batch_size": "randint(32, 256)",
        "optimizer": "choice(['adam', 'sgd'])",
        "channels": "[randint(2, 20), randint(2, 20)]",
    }


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("model: lenet", "model: lenett"),
            "quick.yaml:3: model: unknown model 'lenett'; did you mean 'lenet'? "
            "(known: lenet, mlp)",
        ),
        (
            ("dataset: footprint-sim", "dataset: zzz"),
            "quick.yaml:2: dataset: unknown dataset 'zzz' (known: footprint-sim, traces)",
        ),
        (("trials: 4", "trials: 4\nmetric: f2"), "quick.yaml:5: metric: unknown metric 'f2'"),
    ],
)
def test_resolve_rejects_unknown_plugins(edit: tuple[str, str], expected: str) -> None:
    exp = load_experiment(write(MINIMAL.replace(*edit)))
    with pytest.raises(ConfigError) as info:
        resolve(exp, registry())
    assert str(info.value).startswith(expected)


def test_resolve_rejects_a_metric_plugin_without_direction() -> None:
    reg = registry()
    reg.metrics["odd"] = SimpleNamespace(obj=SimpleNamespace(direction="up"))
    exp = load_experiment(write(MINIMAL + "metric: odd\n"))
    with pytest.raises(ConfigError, match="declares no valid direction"):
        resolve(exp, reg)


def test_resolve_rejects_an_invalid_stored_direction() -> None:
    exp = load_experiment(write(MINIMAL + "metric: f1\n"))
    exp.direction = "sideways"
    with pytest.raises(ConfigError, match=r"metric\.direction: expected maximize or minimize"):
        resolve(exp, registry())


def test_resolve_rejects_a_broken_model_default_space() -> None:
    exp = load_experiment(write(MINIMAL))
    with pytest.raises(ConfigError) as info:
        resolve(exp, registry(lr="loguniform(0, 1)"))
    assert str(info.value).startswith(
        "quick.yaml:3: model: default search space of model 'lenet' is invalid: lr:"
    )


def test_resolve_converts_space_errors_with_the_param_space_line() -> None:
    exp = load_experiment(write(QUICK))
    exp.param_space["batch_size"] = "randint(9, 1)"  # e.g. changed after loading
    with pytest.raises(ConfigError) as info:
        resolve(exp, registry())
    assert (info.value.key, info.value.line) == ("param_space.batch_size", 9)


def test_param_space_names_the_model_does_not_take_are_refused_with_a_suggestion() -> None:
    reg = registry()
    reg.models["strict"] = SimpleNamespace(
        obj=SimpleNamespace(space=reg.models["lenet"].obj.space, extra_params=("dropout",))
    )
    text = MINIMAL.replace("model: lenet", "model: strict") + "param_space:\n  lrr: 0.01\n"
    exp = load_experiment(write(text))
    with pytest.raises(ConfigError) as info:
        resolve(exp, reg)
    assert "param_space.lrr: model 'strict' takes no parameter 'lrr'; did you mean 'lr'?" in str(
        info.value
    )
    assert info.value.line == exp.lines["param_space.lrr"]
    ok = (
        MINIMAL.replace("model: lenet", "model: strict")
        + "param_space:\n  dropout: 0.1\n  reg: 0\n"
    )
    resolve(load_experiment(write(ok)), reg)  # declared extras and training keys are fine


def test_top_level_x_keys_hold_yaml_anchors_and_are_otherwise_ignored() -> None:
    path = write(
        "x-common: &c {events: 100, grid: 8}\n"
        "x-space: &s {lr: 'loguniform(1e-4, 1e-2)'}\n"
        "name: anchors\ndataset: {name: footprint-sim, params: *c}\nmodel: lenet\ntrials: 2\n"
        "param_space: *s\n"
    )
    exp = load_experiment(path)
    assert exp.dataset_params == {"events": 100, "grid": 8}
    assert exp.param_space == {"lr": "loguniform(1e-4, 1e-2)"}
    assert not any(k.startswith("x-") for k in exp.to_dict())


def test_no_key_of_the_table_could_be_taken_for_an_anchor_holder() -> None:
    from wcd_hpc.experiment import keys

    assert not [name for name in keys.top_names() if name.startswith("x-")]
