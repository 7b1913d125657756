"""``wcd-hpc evaluate`` refuses the input that training refuses, before it writes anything."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

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


# --- one checker for evaluate and training ---------------------------------------------------

SPEC_GRID = 8


def _tiny_run(tmp_path: Path) -> Any:
    """A run directory of an untrained one-layer MLP on 8×8 footprints: what evaluate loads."""
    import torch

    from wcd_hpc.api import DataSpec
    from wcd_hpc.default_plugins import mlp
    from wcd_hpc.engine.evaluate import RunInfo

    spec = DataSpec((1, SPEC_GRID, SPEC_GRID), 2, ("gamma", "proton"))
    params = {"hidden": [4]}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.save(mlp.build(params, spec).state_dict(), run_dir / "model.pt")
    return RunInfo(run_dir, "mlp", params, spec, {"normalise": "log1p"})


def _events_file(
    path: Path,
    data: Any = None,
    *,
    n: int = 40,
    labels: Any = None,
    energy: Any = None,
    attrs: Mapping[str, Any] | None = None,
    group: bool = False,
) -> Path:
    import h5py
    import pandas as pd

    if data is None:
        data = np.ones((n, SPEC_GRID, SPEC_GRID), np.float32)
    with h5py.File(path, "w") as fh:
        if group:
            fh.create_group("data").create_dataset("x", data=data)
        else:
            dset = fh.create_dataset("data", data=data)
            for key, value in (attrs or {}).items():
                dset.attrs[key] = value
    rows = len(data)
    table = pd.DataFrame(
        {
            "E0 (GeV)": np.full(rows, 1e4) if energy is None else energy,
            "Y_class": np.arange(rows) % 2 * 1.0 if labels is None else labels,
        }
    )
    table.to_hdf(path, key="info", mode="a")
    return path


#: A file both training and evaluate refuse: (how to write it, the message's end).
REFUSED: dict[str, tuple[Callable[[Path], Path], str]] = {
    "no events": (
        lambda p: _events_file(p, np.zeros((0, SPEC_GRID, SPEC_GRID), np.float32)),
        "'data' holds no events (shape (0, 8, 8))",
    ),
    "string labels": (
        lambda p: _events_file(p, labels=np.array(["gamma", "proton"] * 20, dtype=object)),
        "'Y_class' must hold integers 0..1 (classes ['gamma', 'proton']), got dtype ",
    ),
    "a group as data": (lambda p: _events_file(p, group=True), "'data' is a group, expected"),
    "complex data": (
        lambda p: _events_file(p, np.ones((40, SPEC_GRID, SPEC_GRID), np.complex64)),
        "'data' has dtype complex64, expected float32",
    ),
    "bool data": (
        lambda p: _events_file(p, np.ones((40, SPEC_GRID, SPEC_GRID), bool)),
        "'data' has dtype bool, expected float32",
    ),
    "NaN energy": (
        lambda p: _events_file(p, energy=np.r_[np.full(5, 1e4), np.nan, np.full(34, 1e4)]),
        "column 'E0 (GeV)' of 'info' is NaN at row 5",
    ),
    "negative energy": (
        lambda p: _events_file(p, energy=np.r_[np.full(3, 1e4), -5.0, np.full(36, 1e4)]),
        "column 'E0 (GeV)' of 'info' is a negative energy (-5) at row 3",
    ),
    "duplicate class names": (
        lambda p: _events_file(p, attrs={"class_names": ["gamma", "gamma"]}),
        "class_names ['gamma', 'gamma'] name 'gamma' twice",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_evaluate_and_training_refuse_the_same_files_with_the_same_line(
    tmp_path: Path, case: str
) -> None:
    from wcd_hpc.default_plugins.h5data import FOOTPRINTS, inspect
    from wcd_hpc.engine.evaluate import read_events
    from wcd_hpc.errors import DataError

    make, message = REFUSED[case]
    path = make(tmp_path / "f.h5")
    with pytest.raises(EvaluateError) as evaluated:
        read_events(path, "data", _tiny_run(tmp_path).spec)
    assert str(evaluated.value).startswith(f"{path}: ") and message in str(evaluated.value)
    classes = None if case == "duplicate class names" else ("gamma", "proton")
    with pytest.raises(DataError) as trained:
        inspect(path, FOOTPRINTS, classes)
    assert str(trained.value).startswith(f"{path}: ") and message in str(trained.value)


def test_evaluate_refuses_events_of_another_shape_instead_of_reshaping_them(tmp_path) -> None:
    from wcd_hpc.engine.evaluate import read_events

    spec = _tiny_run(tmp_path).spec
    flat = _events_file(tmp_path / "flat.h5", np.ones((600, SPEC_GRID * SPEC_GRID), np.float32))
    with pytest.raises(EvaluateError, match=r"events of shape \(64,\), but the model takes"):
        read_events(flat, "data", spec)
    # The model's own shape, with or without its channel of one, is fine.
    read_events(_events_file(tmp_path / "ok.h5"), "data", spec)
    channel = np.ones((40, 1, SPEC_GRID, SPEC_GRID), np.float32)
    read_events(_events_file(tmp_path / "channel.h5", channel), "data", spec)


def test_a_directory_or_fifo_given_as_a_file_is_named_for_what_it_is(tmp_path) -> None:
    import os

    from wcd_hpc.engine.evaluate import read_events

    (tmp_path / "d").mkdir()
    with pytest.raises(EvaluateError, match=r"d: is a directory, expected a file$"):
        read_events(tmp_path / "d")
    os.mkfifo(tmp_path / "p")
    with pytest.raises(EvaluateError, match=r"p: is a FIFO \(named pipe\), expected a file$"):
        read_events(tmp_path / "p")


def test_metrics_of_a_single_class_file_are_null_with_a_reason_in_valid_json(tmp_path) -> None:
    import json

    run = _tiny_run(tmp_path)
    path = _events_file(tmp_path / "gammas.h5", labels=np.zeros(40))
    result = evaluate_file(run, path, get_registry(), out=tmp_path / "out")
    assert result.metrics["roc_auc"] is None
    text = (tmp_path / "out" / "metrics.json").read_text()
    assert "NaN" not in text
    stored = json.loads(text)
    assert stored["metrics"]["roc_auc"] is None
    assert stored["undefined"]["roc_auc"] == "undefined: every event is of class 'gamma'"
