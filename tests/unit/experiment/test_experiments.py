"""Every file in experiments/ loads and resolves against the installed plugins."""

from __future__ import annotations

from pathlib import Path

import pytest

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
