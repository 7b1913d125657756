"""Every file in experiments/ loads and resolves against the installed plugins."""

from __future__ import annotations

from pathlib import Path

import pytest

from wcd_hpc.errors import ConfigError
from wcd_hpc.experiment.config import load_experiment
from wcd_hpc.experiment.resolve import resolve
from wcd_hpc.plugins import get_registry

EXPERIMENTS = sorted((Path(__file__).resolve().parents[3] / "experiments").glob("*.yaml"))


def test_the_predecessors_four_and_the_two_new_experiments_are_there() -> None:
    models = {load_experiment(p).model for p in EXPERIMENTS}
    assert {"lenet", "cae", "resnet", "vae", "trace-cnn"} <= models
    assert len(EXPERIMENTS) >= 6


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_experiment_file_resolves(path: Path) -> None:
    exp = load_experiment(path)
    registry = get_registry()
    if exp.dataset not in registry.datasets:
        pytest.skip(f"dataset plugin '{exp.dataset}' is not registered (yet)")
    exp, space = resolve(exp, registry)
    assert exp.direction == "maximize"
    assert exp.name == path.stem  # one study per file, named after it
    assert space.distributions()  # something to search


@pytest.mark.parametrize("path", [p for p in EXPERIMENTS if p.stem.startswith("iron-proton")])
def test_predecessor_experiments_are_iron_vs_proton_for_five_epochs(path: Path) -> None:
    exp = load_experiment(path)
    assert exp.dataset_params["primaries"] == ["iron", "proton"]
    assert exp.epochs == 5 and exp.metric == "f1"


SHIPPED = [*EXPERIMENTS, Path(__file__).resolve().parents[3] / "examples" / "quickstart.yaml"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_experiments_search_no_known_dead_zone(path: Path) -> None:
    """Weight decay from 0.03 up gives constant output; SGD at low rates barely moves in a few
    epochs (issue 24: a third of a quickstart's training seconds went to such networks)."""
    registry = get_registry()
    exp = load_experiment(path)
    if exp.dataset not in registry.datasets:
        pytest.skip(f"dataset plugin '{exp.dataset}' is not registered (yet)")
    _, space = resolve(exp, registry)
    described = space.describe()
    dists = space.distributions()
    if "reg" in dists:
        assert dists["reg"].high <= 1e-3  # type: ignore[attr-defined]
    assert "sgd" not in described.get("optimizer", "")


def test_the_predecessors_space_is_one_setting_away() -> None:
    path = next(p for p in EXPERIMENTS if p.stem == "iron-proton-cnn")
    exp, space = resolve(
        load_experiment(path, overrides=["model.space=predecessor"]), get_registry()
    )
    described = space.describe()
    assert described["reg"] == "loguniform(0.0001, 0.1)"
    assert described["optimizer"] == "choice(['adam', 'sgd'])"
    assert described["lr"] == "loguniform(0.0001, 0.01)"
    assert described["channels"] == "[randint(2, 20), randint(2, 20)]"
    assert exp.setting("model.space") == "predecessor"


def test_an_unknown_model_space_is_one_line_with_a_hint() -> None:
    path = next(p for p in EXPERIMENTS if p.stem == "iron-proton-cnn")
    with pytest.raises(ConfigError) as raised:
        resolve(load_experiment(path, overrides=["model.space=predecesor"]), get_registry())
    text = str(raised.value)
    assert "\n" not in text and "model.space" in text and "did you mean 'predecessor'" in text
