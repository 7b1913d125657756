"""CI-sized runs of the model zoo through the real CLI: sweeps, ``train`` and ``evaluate``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wcd_hpc.api import DataSpec, Split, Splits
from wcd_hpc.engine.evaluate import EvaluateError, load_run
from wcd_hpc.engine.fit import pick_device
from wcd_hpc.engine.train import midpoint
from wcd_hpc.engine.trial import Context, run_trial
from wcd_hpc.experiment.config import Experiment
from wcd_hpc.experiment.space import Space
from wcd_hpc.plugins import get_registry

pytestmark = pytest.mark.slow
PNG = b"\x89PNG\r\n\x1a\n"
# Tiny versions of the zoo, each trainable in seconds on a CPU.
SMALL_SPACES = {
    "resnet": "  blocks: [1, 1, 1, 1]\n  channels: [4, 8, 8, 16, randint(16, 24)]\n",
    "cae": "  depth: 2\n  latent: randint(10, 20)\n",
    "vae": "  layers: [randint(64, 96), 32, 16, 8]\n",
    "mlp": "  hidden: [randint(16, 32), 8]\n",
}


def _experiment(tmp_path: Path, model: str, space: str, runs: Path | None = None) -> Path:
    path = tmp_path / f"{model}.yaml"
    path.write_text(
        (f"runs_dir: {runs}\n" if runs else "") + f"name: zoo-{model}\n"
        "dataset: {name: footprint-sim, params: {primaries: [gamma, proton], events: 600, "
        "grid: 40}}\n"
        f"model: {model}\nmetric: f1\ntrials: 1\nepochs: 2\npruner: none\nexecutor: local\n"
        "prune_chance: false\n"  # about artifacts: a tiny trial may well sit at chance
        f"param_space:\n  batch_size: 64\n  optimizer: adam\n{space}"
    )
    return path


def _assert_trial_files(trial: Path) -> None:
    assert {"model.pt", "result.json", "binned.json", "data_spec.json"} <= {
        p.name for p in trial.iterdir()
    }
    for name in ("confusion.png", "roc.png", "q.png"):
        assert (trial / "plots" / name).read_bytes()[:8] == PNG
    binned = json.loads((trial / "binned.json").read_text())
    assert binned["bins"] and sum(row["events"] for row in binned["bins"]) == 90  # 15 % of 600
    assert binned["all"]["q_factor"] is not None and binned["all"]["q_factor"] > 0


@pytest.fixture(scope="module")
def shared_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One runs dir for the sweeps below, so they share one simulated data set (runs/.cache)."""
    return tmp_path_factory.mktemp("zoo-runs")


@pytest.mark.parametrize("model", sorted(SMALL_SPACES))
def test_ci_sized_sweep_of_each_model_finishes_with_artifacts(
    cli, tmp_path, shared_runs, model
) -> None:
    res = cli("sweep", str(_experiment(tmp_path, model, SMALL_SPACES[model], shared_runs)))
    assert res.code == 0, res.err
    assert "1/1 trials finished: 1 complete" in res.out
    _assert_trial_files(shared_runs / f"zoo-{model}" / "trials" / "0")


def test_trace_cnn_trial_runs_end_to_end_on_synthetic_traces(tmp_path: Path) -> None:
    """The engine path a traces sweep takes: run_trial with trace-cnn on (N, 4, 64) tensors."""
    import optuna
    import torch

    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        y = rng.integers(0, 2, n)
        x = rng.normal(0, 1, (n, 4, 64)) + (y == 0)[:, None, None] * 2.0
        meta = {"energy": 10 ** rng.uniform(2.5, 4.0, n)}
        return Split(torch.tensor(x, dtype=torch.float32), torch.tensor(y), meta)

    registry = get_registry()
    model = registry.models["trace-cnn"].obj
    fixed = {"channels": [4, 8], "hidden": 8, "batch_size": 32, "lr": 1e-2}
    space = Space.from_mapping(model.space).merged(fixed)
    exp = Experiment(
        name="traces", dataset="traces-sim", dataset_params={}, model="trace-cnn",
        metric="roc_auc", direction="maximize", trials=1, epochs=2, param_space={},
    )  # fmt: skip
    splits = Splits(split(300), split(60), split(60), DataSpec((4, 64), 2, ("muon", "em")))
    metrics = {name: entry.obj for name, entry in registry.metrics.items()}
    ctx = Context(exp, space, model, metrics, splits, tmp_path, pick_device())
    flat = {name: midpoint(dist) for name, dist in space.distributions().items()}
    value = run_trial(ctx, optuna.trial.FixedTrial(flat))  # type: ignore[arg-type]
    assert value > 0.9  # the classes differ by two standard deviations
    trial = tmp_path / "trials" / "0"
    assert (trial / "plots" / "roc.png").exists() and (trial / "binned.json").exists()
    assert json.loads((trial / "data_spec.json").read_text())["input_shape"] == [4, 64]


def _swgo_file(path: Path, n: int, grid: int, rng: np.random.Generator) -> None:
    """A file in the predecessor's layout: data (N, H, W) and a pandas 'info' table."""
    import h5py
    import pandas as pd

    from wcd_hpc.sim.footprints import simulate

    data, info = simulate(["gamma", "proton"], n, 99, grid=grid)
    with h5py.File(path, "w") as fh:
        fh.create_dataset("data", data=data.astype(np.float32))
    energy = info["E0 (GeV)"] if "E0 (GeV)" in info else info["E0"]
    table = pd.DataFrame({"E0 (GeV)": energy, "Y_class": info["Y_class"].astype(np.float64)})
    table.to_hdf(path, key="info", mode="a")


def test_train_uses_midpoints_then_evaluate_scores_a_new_file(cli, tmp_path) -> None:
    exp = _experiment(tmp_path, "lenet", "  channels: [randint(4, 8), 6]\n  lr: 3e-3\n")
    res = cli("train", str(exp), "--set", "param_space.optimizer=choice(['sgd', 'adam'])")
    assert res.code == 0, res.err
    run = tmp_path / "runs" / "zoo-lenet" / "train" / "trials" / "0"
    params = json.loads((run / "params.json").read_text())["params"]
    # randint(4, 8) -> 6, the constant lr stays, a choice takes its first option
    assert params["channels"] == [6, 6] and params["lr"] == 3e-3 and params["optimizer"] == "sgd"
    assert params["batch_size"] == 64
    _assert_trial_files(run)
    # keep: best (the default): the objective is the best validation value of metrics.jsonl
    result = json.loads((run / "result.json").read_text())
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    name = f"val_{result['metric']}"
    best = max(history, key=lambda r: r[name])  # the first of equal values: ties keep the earlier
    assert (result["objective"], result["kept_epoch"]) == (best[name], best["epoch"])
    assert f"(epoch {best['epoch']} of {len(history)}, keep: best)" in res.out
    assert json.loads((run / "experiment.json").read_text())["model"] == "lenet"
    again = cli("train", str(exp))
    assert again.code == 0 and (run.parent / "1" / "model.pt").exists()  # never overwrites

    h5 = tmp_path / "Test_gamma_proton.h5"
    _swgo_file(h5, 200, 40, np.random.default_rng(5))
    res = cli("evaluate", str(run), str(h5))
    assert res.code == 0, res.err
    assert "200 events" in res.out and "per energy bin" in res.out and "q_factor" in res.out
    out = run / "evaluations" / "Test_gamma_proton"
    scores = json.loads((out / "metrics.json").read_text())
    assert scores["events"] == 200 and 0.0 <= scores["metrics"]["accuracy"] <= 1.0
    assert sum(r["events"] for r in json.loads((out / "binned.json").read_text())["bins"]) == 200
    assert (out / "plots" / "q.png").read_bytes()[:8] == PNG

    wrong = cli("evaluate", str(run), str(h5), "--data-key", "traces")
    assert wrong.code == 2 and "missing dataset 'traces'" in wrong.err
    assert len(wrong.err.strip().splitlines()) == 1
    with pytest.raises(EvaluateError, match="no such run directory"):
        load_run(tmp_path / "nowhere", get_registry())


def test_trace_cnn_sweep_on_simulated_traces_tags_muons_above_chance(cli, tmp_path) -> None:
    (tmp_path / "muons.yaml").write_text(
        "name: zoo-trace-cnn\ndataset: {name: traces-sim, params: {events: 2000}}\n"
        "model: trace-cnn\nmetric: roc_auc\ntrials: 1\nepochs: 2\npruner: none\nexecutor: local\n"
        "param_space:\n  batch_size: 64\n  optimizer: adam\n  lr: 0.003\n"
    )
    res = cli("sweep", "muons.yaml")
    assert res.code == 0, res.err
    result = json.loads((tmp_path / "runs/zoo-trace-cnn/trials/0/result.json").read_text())
    assert result["test"]["roc_auc"] > 0.75  # muon vs EM-only traces, far from a coin toss
