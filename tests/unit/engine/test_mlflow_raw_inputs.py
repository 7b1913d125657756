"""The registered model takes what a user has: raw VEM footprints in, class probabilities out."""

from __future__ import annotations

from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np
import pytest
from mlflow.models import Model
from test_evaluate_input import _swgo_file

from wcd_hpc.engine import evaluate as evaluate_module
from wcd_hpc.engine.evaluate import evaluate_file, load_run
from wcd_hpc.plugins import get_registry

TINY = """\
name: rawin
dataset: {name: footprint-sim, params: {primaries: [gamma, proton], events: 60, grid: 8}}
model: mlp
metric: accuracy
trials: 1
epochs: 1
pruner: none
prune_chance: false  # a tiny one-epoch net may sit at chance: this test is about its model
executor: local
workers: 1
param_space:
  batch_size: 16
  optimizer: adam
  hidden: [8]
"""


@pytest.mark.slow
@pytest.mark.usefixtures("tempdir_in_tmp_path")
def test_the_registered_model_on_raw_events_gives_what_evaluate_gives(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rawin.yaml").write_text(TINY)
    local = {"MLFLOW_TRACKING_URI": ""}
    swept = cli("sweep", "rawin.yaml", "--no-sync", env=local)
    assert swept.code == 0, swept.err
    synced = cli("sync", "rawin", env=local)
    assert synced.code == 0, synced.err
    assert "model wcd-hpc-rawin v1" in synced.out

    raw = tmp_path / "Raw.h5"
    _swgo_file(raw, 50)  # (N, 8, 8) footprints in VEM, as the SWGO/LIP files hold them
    seen: dict[str, np.ndarray] = {}
    original = evaluate_module.write_evaluation_artifacts

    def capture(target, labels, probs, *args, **kwargs):  # evaluate's own probabilities
        seen["probs"] = probs
        return original(target, labels, probs, *args, **kwargs)

    monkeypatch.setattr(evaluate_module, "write_evaluation_artifacts", capture)
    run_dir = tmp_path / "runs/rawin/trials/0"
    registry = get_registry()
    evaluate_file(load_run(run_dir, registry), raw, registry, out=tmp_path / "eval")

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/runs/mlflow.db")
    uri = "models:/wcd-hpc-rawin@best"
    import h5py

    with h5py.File(raw) as fh:
        events = fh["data"][:].astype(np.float32)
    predicted = np.asarray(mlflow.pyfunc.load_model(uri).predict(events))
    np.testing.assert_allclose(predicted, seen["probs"], atol=1e-5)

    info = mlflow.models.get_model_info(uri)
    meta = info.metadata["wcd_hpc"]
    assert meta["transform"]["kind"] == "log1p" and meta["class_names"] == ["gamma", "proton"]
    assert meta["signal_class"] == "gamma"
    outputs = [c["name"] for c in info.signature.outputs.to_dict()]
    assert outputs == ["gamma", "proton"]
    assert list(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 8, 8]
    local = mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "model"))
    example = Model.load(local).load_input_example(local)
    assert example.shape == (2, 8, 8) and example.max() > 0  # a real event, not zeros
    assert np.all(example >= 0)
