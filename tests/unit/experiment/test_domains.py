"""Parameter domains: a training value or a model parameter outside what it may be is refused by
validation (file:line: key), for constants and for the reach of search expressions, before any
run directory or study exists; plugins declare domains the same way the built-in models do."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wcd_hpc.api import Domain, Model
from wcd_hpc.cli import PROG_NAME, app
from wcd_hpc.errors import ConfigError
from wcd_hpc.experiment.config import load_experiment
from wcd_hpc.experiment.resolve import resolve
from wcd_hpc.plugins import Entry, _malformed, get_registry

EXPERIMENT = """\
name: dom
dataset: {{name: footprint-sim, params: {{events: 200}}}}
model: {model}
trials: 2
epochs: 1
executor: local
param_space:
  {entry}
"""


def _write(tmp_path: Path, entry: str, model: str = "lenet") -> Path:
    path = tmp_path / "dom.yaml"
    path.write_text(EXPERIMENT.format(model=model, entry=entry), encoding="utf-8")
    return path


def _refusal(path: Path, registry: object = None) -> str:
    with pytest.raises(ConfigError) as caught:
        resolve(load_experiment(path), registry or get_registry())
    return str(caught.value)


@pytest.mark.parametrize(
    ("model", "entry", "expected"),
    [
        (
            "lenet",
            "optimizer: sgdd",
            "expected one of adam, adamw, sgd, got 'sgdd'; did",
        ),
        ("lenet", "batch_size: 0", "batch_size: expected an integer from 1 to 1,000,000, got 0"),
        ("lenet", "lr: -1", "lr: expected a number in (0, 10], got -1"),
        ("lenet", "reg: -1", "reg: expected a number from 0 to 10, got -1"),
        ("lenet", "dropout: 2", "dropout: expected a number in [0, 1), got 2"),
        ("mlp", "hidden: []", "hidden: expected a list of 1 or more items"),
        ("mlp", "hidden: [64, 0]", "hidden[1]: expected an integer from 1 to 65,536, got 0"),
        ("lenet", "lr: uniform(-1, 1)", "lr: expected a number in (0, 10]; uniform(-1.0, 1.0)"),
        ("lenet", "batch_size: randint(0, 64)", "randint(0, 64) reaches 0"),
        ("lenet", "batch_size: uniform(8, 64)", "draws fractions"),
        ("lenet", "dropout: uniform(0, 1)", "uniform(0.0, 1.0) reaches 1.0"),
        ("lenet", "optimizer: choice(['adam', 'lbfgs'])", "offers 'lbfgs'"),
        ("lenet", "batch_size: 100000000000000000000", "got 100000000000000000000"),
    ],
)
def test_a_value_outside_its_domain_is_refused_with_file_line_and_key(
    tmp_path, model, entry, expected
) -> None:
    message = _refusal(_write(tmp_path, entry, model))
    assert message.startswith(f"{tmp_path / 'dom.yaml'}:8: param_space."), message
    assert expected in message


@pytest.mark.parametrize(
    "entry",
    ["optimizer: Adam", "batch_size: range(16, 64, 16)", "reg: 0", "lr: loguniform(1e-4, 1)"],
)
def test_values_inside_their_domains_pass(tmp_path, entry) -> None:
    resolve(load_experiment(_write(tmp_path, entry)), get_registry())


@pytest.mark.parametrize("verb", ["train", "sweep"])
def test_train_and_sweep_refuse_before_creating_a_run_directory_or_a_study(
    tmp_path, monkeypatch, verb
) -> None:
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, "batch_size: 0")
    res = CliRunner().invoke(app, [verb, str(path)], prog_name=PROG_NAME)
    assert isinstance(res.exception, ConfigError), res.output  # `wcd-hpc` prints it as one line
    assert "dom.yaml:8: param_space.batch_size: expected an integer" in str(res.exception)
    assert not (tmp_path / "runs").exists()


def test_a_set_value_outside_its_domain_is_blamed_on_the_flag(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, "lr: 0.001")
    res = CliRunner().invoke(
        app, ["sweep", str(path), "--dry-run", "--set", "param_space.reg=-1"], prog_name=PROG_NAME
    )
    assert "--set: param_space.reg: expected a number from 0 to 10, got -1" in str(res.exception)


def _with_model(model: Model) -> object:
    registry = get_registry()
    source = next(iter(registry.models.values())).source
    entry = Entry("model", model.name, model, source)
    return dataclasses.replace(registry, models={**registry.models, model.name: entry})


def test_a_plugin_model_declares_domains_that_validation_checks(tmp_path) -> None:
    model = Model(
        name="probe-net",
        build=lambda params, spec: None,  # type: ignore[arg-type,return-value]
        space={"depth": "randint(1, 4)"},
        domains={"depth": Domain.integer(1, 8), "act": Domain.choice(["relu", "gelu"])},
        extra_params=("act",),
    )
    assert _malformed("model", model) is None
    registry = _with_model(model)
    message = _refusal(_write(tmp_path, "depth: randint(1, 9)", "probe-net"), registry)
    assert "param_space.depth: expected an integer from 1 to 8; randint(1, 9) reaches 9" in message
    message = _refusal(_write(tmp_path, "act: rleu", "probe-net"), registry)
    assert (
        "param_space.act: expected one of relu, gelu, got 'rleu'; did you mean 'relu'?" in message
    )
    # The training loop's domains apply to a plugin's model as to the built-in ones.
    assert "batch_size" in _refusal(_write(tmp_path, "batch_size: -3", "probe-net"), registry)


def test_a_plugin_whose_default_space_leaves_its_domains_is_refused_at_registration() -> None:
    model = Model(
        name="bad-net",
        build=lambda params, spec: None,  # type: ignore[arg-type,return-value]
        space={"width": "randint(0, 4)", "lr": "loguniform(1e-4, 100)"},
        domains={"width": Domain.integer(1, 64)},
    )
    assert _malformed("model", model) == (
        "model 'bad-net': default space: width: expected an integer from 1 to 64; "
        "randint(0, 4) reaches 0"
    )
    typo = dataclasses.replace(model, space={}, domains={"width": (1, 64)})  # type: ignore[dict-item]
    assert "domains must map parameter names to wcd_hpc.Domain" in str(_malformed("model", typo))


def test_every_built_in_model_default_space_lies_in_its_domains() -> None:
    registry = get_registry()
    for name, entry in registry.models.items():
        assert _malformed("model", entry.obj) is None, name
