"""The external ViT plugin (plugins/wcd-hpc-vit), installed by the test set-up like any
third-party distribution: it is listed, passes its own tests, and a sweep with it learns."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import need

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
VIT = ROOT / "plugins" / "wcd-hpc-vit"
ONLY_VIT = {"WCD_HPC_PLUGINS": "vit"}

# Small enough for a CPU test, large enough to learn: 4000 footprints at 80x80, 4 epochs,
# 8x8 patches of 10x10 pixels, two layers (measured in this repository's README figures).
EXPERIMENT = """\
name: vit-footprints
dataset: {name: footprint-sim, params: {primaries: [gamma, proton], events: 4000}}
model: vit
metric: {name: roc_auc}
trials: 2
epochs: 4
workers: 2
executor: local
pruner: none
prune_chance: false       # a transformer may start slowly: this is about the plugin, not pruning
param_space:
  depth: 2
  width: 64
  heads: 4
  patch: 10
  dropout: 0.0
  batch_size: 64
  lr: choice([1e-3, 2e-3])
"""


@pytest.fixture(autouse=True)
def _installed() -> None:
    if importlib.util.find_spec("wcd_hpc_vit") is None:
        need("wcd-hpc-vit", "not installed; run scripts/setup.sh --test")


def test_the_vit_is_listed_under_its_own_distribution(cli) -> None:
    res = cli("plugins", "--json", env=ONLY_VIT)
    assert res.code == 0, res.err
    row = next(p for p in res.json()["plugins"] if p["name"] == "vit")
    assert (row["kind"], row["distribution"], row["plugin"]) == ("model", "wcd-hpc-vit", "vit")


def test_the_plugins_own_tests_pass() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WCD_HPC_")}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=VIT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_vit_sweep_on_simulated_footprints_finishes_and_beats_chance(cli, tmp_path) -> None:
    (tmp_path / "vit.yaml").write_text(EXPERIMENT)
    res = cli("sweep", "vit.yaml", env=ONLY_VIT)
    assert res.code == 0, res.err
    assert "2/2 trials finished" in res.out
    info = cli("status", "vit-footprints", "--json", env=ONLY_VIT).json()
    assert info["counts"]["COMPLETE"] == 2
    # Chance is an ROC AUC of 0.5 and an accuracy of 0.5 (the classes are balanced).
    assert info["best"]["value"] > 0.75
    assert info["best"]["test"]["accuracy"] > 0.65
