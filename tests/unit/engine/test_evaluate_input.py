"""``wcd-hpc evaluate`` refuses the input that training refuses, before it writes anything."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest
from conftest import Result

from wcd_hpc.engine.evaluate import EvaluateError, evaluate_file, load_run
from wcd_hpc.plugins import get_registry

Cli = Callable[..., Result]
GRID = 8
# The cheapest run `train` makes: 60 simulated 8×8 footprints, a one-layer MLP, one epoch.
TINY = """\
name: tiny
dataset: {name: footprint-sim, params: {primaries: [gamma, proton], events: 60, grid: 8}}
model: mlp
metric: accuracy
trials: 1
epochs: 1
pruner: none
executor: local
param_space:
  batch_size: 16
  optimizer: adam
  hidden: [8]
"""


def _swgo_file(path: Path, n: int, bad: Mapping[tuple[int, int, int], float] | None = None) -> None:
    """A file in the predecessor's layout (data (N, H, W), a pandas 'info' table) with ``bad``.

    ``bad`` maps (event, row, column) to a value written over the simulated one.
    """
    import h5py
    import pandas as pd

    from wcd_hpc.sim.footprints import simulate

    data, info = simulate(["gamma", "proton"], n, 99, grid=GRID)
    data = data.astype(np.float32)
    for where, value in (bad or {}).items():
        data[where] = value
    with h5py.File(path, "w") as fh:
        fh.create_dataset("data", data=data)
    energy = info["E0 (GeV)"] if "E0 (GeV)" in info else info["E0"]
    table = pd.DataFrame({"E0 (GeV)": energy, "Y_class": info["Y_class"].astype(np.float64)})
    table.to_hdf(path, key="info", mode="a")


@pytest.mark.slow
def test_evaluate_refuses_nan_or_inf_in_data_naming_file_and_event_before_writing(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY)
    trained = cli("train", "tiny.yaml")
    assert trained.code == 0, trained.err
    run = tmp_path / "runs" / "tiny" / "train" / "trials" / "0"
    clean = tmp_path / "Clean.h5"
    _swgo_file(clean, 40)
    assert cli("evaluate", str(run), str(clean)).code == 0  # the run itself can evaluate

    broken = tmp_path / "Broken.h5"
    _swgo_file(broken, 40, {(17, 3, 4): np.nan})
    refused = cli("evaluate", str(run), str(broken))
    assert refused.code == 2
    assert refused.err.strip().splitlines() == [
        f"error: {broken}: 'data' holds NaN or inf in event 17"
    ]
    assert not (run / "evaluations" / "Broken").exists()
    elsewhere = tmp_path / "scores"
    refused = cli("evaluate", str(run), str(broken), "--out", str(elsewhere))
    assert refused.code == 2 and not elsewhere.exists()

    # Read in chunks, an event is still named by its row in the file; -inf is caught before
    # log1p's clipping would have turned it into an empty tank.
    negative = tmp_path / "Negative.h5"
    _swgo_file(negative, 40, {(29, 0, 0): -np.inf, (35, 1, 1): np.inf})
    registry = get_registry()
    with pytest.raises(EvaluateError, match=r"'data' holds NaN or inf in event 29$"):
        evaluate_file(load_run(run, registry), negative, registry, chunk=8)
    assert not (run / "evaluations" / "Negative").exists()
