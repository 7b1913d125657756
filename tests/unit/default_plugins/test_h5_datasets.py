"""The HDF5 datasets: predecessor files read as written, lazy splits, and one-line errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from wcd_hpc.api import LazyInputs, Split
from wcd_hpc.default_plugins import footprint_sim, h5_datasets, traces_sim
from wcd_hpc.default_plugins.h5data import H5Inputs, assign_rows
from wcd_hpc.engine.fit import _lazy_batches, fit

COLUMNS = ["ID_shower", "E0 (GeV)", "theta0 (deg)", "Nmuons", "Y_class"]


def predecessor_file(path: Path, n: int = 160, shape: tuple[int, ...] = (80, 80)) -> Path:
    """A file written the way the SWGO/LIP files were: h5py ``data`` + ``DataFrame.to_hdf``.

    Sorted by class (all iron, then all proton), contiguous storage, no attributes.
    """
    rng = np.random.default_rng(0)
    y = np.repeat([0.0, 1.0], [n // 2, n - n // 2])
    data = rng.exponential(1.0 + y[:, None, None], (n, *shape)).astype(np.float32)
    with h5py.File(path, "w") as fh:
        fh.create_dataset("data", data=data)
    info = pd.DataFrame(
        {
            "ID_shower": np.arange(n, dtype=np.float64),
            "E0 (GeV)": rng.uniform(1e3, 1e4, n),
            "theta0 (deg)": rng.uniform(0, 30, n),
            "Nmuons": rng.poisson(20, n).astype(np.float64),
            "Y_class": y,
        }
    )
    info.to_hdf(path, key="info", mode="a")
    return path


def load(params: dict[str, Any], name: str = "footprint-h5") -> Any:
    return h5_datasets.load(name, params, 0, "unused")


def test_predecessor_file_loads_with_its_classes_and_metadata(tmp_path: Path) -> None:
    path = predecessor_file(tmp_path / "Train_iron_proton.h5")
    splits = load({"path": str(path), "normalise": "none"})
    assert (len(splits.train), len(splits.val), len(splits.test)) == (112, 24, 24)
    assert splits.spec.class_names == ("iron", "proton") and splits.spec.input_shape == (1, 80, 80)
    truth = {k for k in splits.val.meta if not k.startswith("classical_")}
    assert truth == {"energy", "zenith", "Nmuons", "primary"}
    # The classical gamma/hadron discriminants, from the raw events (issue 23 point 4).
    assert len(splits.val.meta["classical_hit_tanks"]) == len(splits.val)
    names = np.array(["iron", "proton"])[splits.test.y.numpy()]
    assert np.array_equal(splits.test.meta["primary"], names)
    with h5py.File(path, "r") as fh:  # rows are the file's rows, values untouched
        raw = fh["data"][:]
    info = pd.read_hdf(path, "info")
    for split in (splits.train, splits.val, splits.test):
        ids = np.array([np.flatnonzero(info["E0 (GeV)"] == e)[0] for e in split.meta["energy"]])
        assert torch.equal(split.x[:, 0], torch.from_numpy(raw[ids]))
        assert np.array_equal(split.y.numpy(), info["Y_class"].to_numpy()[ids].astype(int))
    # The file is sorted by class, yet every split holds both classes.
    assert all(set(s.y.tolist()) == {0, 1} for s in (splits.train, splits.val, splits.test))


def test_train_and_test_file_pair(tmp_path: Path) -> None:
    train = predecessor_file(tmp_path / "Train_x.h5", n=100)
    test = predecessor_file(tmp_path / "Test_x.h5", n=40)
    splits = load({"train": str(train), "test": str(test), "val_fraction": 0.2})
    assert (len(splits.train), len(splits.val), len(splits.test)) == (80, 20, 40)


def test_lazy_split_reads_the_same_values_as_the_in_memory_one(tmp_path: Path) -> None:
    path = predecessor_file(tmp_path / "f.h5", n=200)
    for norm in ("log1p", "standard"):
        mem = load({"path": str(path), "normalise": norm, "in_memory": True})
        lazy = load({"path": str(path), "normalise": norm, "in_memory": False})
        assert isinstance(lazy.train.x, H5Inputs) and isinstance(lazy.train.x, LazyInputs)
        assert lazy.train.x.shape == tuple(mem.train.x.shape)
        assert torch.allclose(lazy.val.x[0 : len(lazy.val)], mem.val.x)
        assert torch.allclose(lazy.train.x[7:45], mem.train.x[7:45])
    assert abs(float(mem.train.x.mean())) < 1e-4 and float(mem.train.x.std()) == pytest.approx(
        1, abs=1e-3
    )


class CountingInputs:
    """Lazy inputs whose value is the event index; records how many events each read asked for."""

    def __init__(self, n: int, block: int) -> None:
        self.n, self.block, self.shape, self.reads = n, block, (n, 1), [0]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: slice) -> torch.Tensor:
        start, stop, _ = key.indices(self.n)
        self.reads.append(stop - start)
        return torch.arange(start, stop, dtype=torch.float32)[:, None]


def test_lazy_batches_cover_every_event_once_shuffled_and_in_bounded_reads() -> None:
    x = CountingInputs(2000, block=32)
    y = torch.arange(2000)
    batches = list(_lazy_batches(x, y, 64, torch.Generator().manual_seed(1)))
    seen = torch.cat([b[0][:, 0] for b in batches]).long()
    assert torch.equal(torch.cat([b[1] for b in batches]), seen)  # labels travel with inputs
    assert sorted(seen.tolist()) == list(range(2000))
    assert not torch.equal(seen, torch.arange(2000))
    assert max(x.reads) <= 32 * 32  # at most one window of blocks is read at once
    assert all(len(b[1]) == 64 for b in batches[:-1])
    again = list(_lazy_batches(x, y, 64, torch.Generator().manual_seed(1)))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches, again, strict=True))


def test_fit_trains_on_a_lazy_split(tmp_path: Path) -> None:
    path = predecessor_file(tmp_path / "f.h5", n=128, shape=(8, 8))
    splits = load({"path": str(path), "in_memory": False})
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    losses: list[float] = []
    fit(
        model,
        splits.train,
        {"lr": 1e-2, "batch_size": 16},
        epochs=2,
        seed=0,
        device=torch.device("cpu"),
        after_epoch=lambda s: losses.append(s.train_loss),
    )
    assert len(losses) == 2 and all(np.isfinite(losses))


def test_assign_rows_gives_exact_disjoint_sizes() -> None:
    train, val, test = assign_rows(1001, [0.1, 0.2], seed=3)
    assert (train.size, val.size, test.size) == (701, 100, 200)
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(1001))


def test_simulated_datasets_cache_hdf5_and_traces_have_their_spec(tmp_path: Path) -> None:
    splits = traces_sim.load({"events": 300, "n_pmt": 3}, 0, str(tmp_path))
    assert splits.spec.input_shape == (3, 100) and splits.spec.class_names == ("em", "muon")
    assert {"Nmuons", "Nem", "signal", "npe"} <= set(splits.test.meta)
    (cache,) = tmp_path.glob("traces-sim-*.h5")
    again = h5_datasets.load("traces-h5", {"path": str(cache)}, 0, "")
    assert torch.equal(again.test.x, splits.test.x)  # the cache is an ordinary traces-h5 file


# --- one precise line per broken file --------------------------------------------------------


def _write(path: Path, data: Any, info: pd.DataFrame | None) -> Path:
    with h5py.File(path, "w") as fh:
        if data is not None:
            fh.create_dataset("data", data=data)
    if info is not None:
        info.to_hdf(path, key="info", mode="a")
    return path


def _info(n: int, **over: Any) -> pd.DataFrame:
    cols = {c: np.zeros(n) for c in COLUMNS}
    cols["Y_class"] = np.arange(n) % 2 * 1.0
    return pd.DataFrame({**cols, **over})


BROKEN: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing data": (lambda p: _write(p, None, _info(40)), "missing dataset 'data'"),
    "wrong shape": (
        lambda p: _write(p, np.zeros((40, 80)), _info(40)),
        "'data' has shape \\(40, 80\\)",
    ),
    "missing info": (lambda p: _write(p, np.zeros((40, 4, 4)), None), "missing table 'info'"),
    "row count": (lambda p: _write(p, np.zeros((40, 4, 4)), _info(39)), "'info' has 39 rows"),
    "no label": (
        lambda p: _write(p, np.zeros((40, 4, 4)), _info(40).drop(columns="Y_class")),
        "no 'Y_class' column",
    ),
    "label range": (
        lambda p: _write(p, np.zeros((40, 4, 4)), _info(40, Y_class=np.arange(40) % 3 * 1.0)),
        "'Y_class' must be an integer 0..1 .* got 2.0 at row 2",
    ),
    "label NaN": (
        lambda p: _write(p, np.zeros((40, 4, 4)), _info(40, Y_class=np.r_[np.nan, np.zeros(39)])),
        "'Y_class' must be an integer .* at row 0",
    ),
    "meta NaN": (
        lambda p: _write(
            p,
            np.zeros((40, 4, 4)),
            _info(40, **{"E0 (GeV)": np.r_[np.zeros(5), np.nan, np.zeros(34)]}),
        ),
        "column 'E0 \\(GeV\\)' of 'info' is NaN at row 5",
    ),
    "data NaN": (
        lambda p: _write(
            p,
            np.r_[np.zeros((7, 4, 4)), np.full((1, 4, 4), np.nan), np.zeros((32, 4, 4))],
            _info(40),
        ),
        "'data' holds NaN or inf in event 7",
    ),
    "not hdf5": (lambda p: (p.write_text("hello"), p)[1], "not a readable HDF5 file"),
    "truncated": (
        lambda p: (
            predecessor_file(p, n=64),
            p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
            p,
        )[2],
        "not a readable HDF5 file|truncated|cannot read",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_file_gives_one_line_naming_file_and_problem(tmp_path: Path, case: str) -> None:
    make, message = BROKEN[case]
    path = make(tmp_path / "broken.h5")
    with pytest.raises(ValueError, match=message) as info:
        load({"path": str(path), "in_memory": True})
    text = str(info.value)
    assert text.startswith(str(path)) and "\n" not in text
    if case != "data NaN":  # content is scanned on read; check() looks at structure only
        with pytest.raises(ValueError, match=message):
            h5_datasets.check("footprint-h5", {"path": str(path)})


def test_missing_file_and_bad_params_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"{tmp_path}/nope.h5: file not found"):
        load({"path": str(tmp_path / "nope.h5")})
    with pytest.raises(ValueError, match=r"give either 'path' .* or both 'train' and 'test'"):
        load({"path": "a.h5", "train": "b.h5"})
    with pytest.raises(ValueError, match="give either"):
        load({})
    with pytest.raises(ValueError, match="'in_memory' must be auto, true or false"):
        load({"path": "a.h5", "in_memory": "yes"})
    with pytest.raises(ValueError, match="unknown parameter"):
        load({"path": "a.h5", "paht": 1})
    with pytest.raises(ValueError, match="'classes' must be a list"):
        load({"path": "a.h5", "classes": ["iron"]})


def test_lazy_read_of_nan_fails_with_the_event_number(tmp_path: Path) -> None:
    data = np.zeros((64, 4, 4), np.float32)
    data[50, 1, 1] = np.inf
    path = _write(tmp_path / "f.h5", data, _info(64))
    # A lazy split stays lazy, but its footprints' classical discriminants are computed at
    # load in one bounded pass: the event is named there already, or at the latest on reading.
    with pytest.raises(ValueError, match=f"{path}: 'data' holds NaN or inf in event 50"):
        splits = load({"path": str(path), "in_memory": False, "normalise": "none"})
        parts = [s for s in (splits.train, splits.val, splits.test) if isinstance(s, Split)]
        for s in parts:
            s.x[0 : len(s)]


def test_footprint_sim_check_validates_params_without_simulating(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'events' must be an integer"):
        footprint_sim.check({"events": "many"})
    footprint_sim.check({"events": 100})
    with pytest.raises(ValueError, match="'window_ns / dt_ns' must be at least 8 samples"):
        traces_sim.check({"dt_ns": 10.0, "window_ns": 60.0})


def test_a_single_class_training_file_is_refused_by_check_and_load(tmp_path: Path) -> None:
    path = _write(tmp_path / "iron.h5", np.ones((40, 4, 4)), _info(40, Y_class=np.zeros(40)))
    message = r"every event is of class 'iron': training needs at least two classes"
    with pytest.raises(ValueError, match=message):
        h5_datasets.check("footprint-h5", {"path": str(path)})
    with pytest.raises(ValueError, match=message):
        load({"path": str(path)})


def test_negative_data_trains_with_one_warning_naming_file_and_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = np.ones((64, 4, 4), np.float32)
    data[[9, 40], 2, 2] = -3.0
    path = _write(tmp_path / "neg.h5", data, _info(64))
    with caplog.at_level("WARNING", logger="wcd_hpc.data"):
        load({"path": str(path), "in_memory": True, "normalise": "none"})
        load({"path": str(path), "in_memory": True, "normalise": "none"})
    warned = [r.getMessage() for r in caplog.records if "negative" in r.getMessage()]
    assert len(warned) == 1, warned
    assert warned[0].startswith(f"{path}: 'data' holds negative values (first in event ")
