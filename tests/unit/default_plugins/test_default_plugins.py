"""Behaviour of the built-in plugins: footprint-sim dataset, lenet model and the metrics."""

from __future__ import annotations

import fcntl
import importlib
import logging
import math
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pluggy
import pytest
import torch

from wcd_hpc import hookspecs
from wcd_hpc.api import Dataset, DataSpec, Metric, Model
from wcd_hpc.default_plugins import BUILTIN_PLUGINS, _params, footprint_sim, lenet, metrics

SMALL: dict[str, Any] = {"events": 200, "grid": 40}
NO_META: Mapping[str, np.ndarray] = {}


def _collect() -> dict[str, list[Any]]:
    """Register the built-ins through pluggy exactly as the plugin manager does."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for path in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(path), name=path)
    got: dict[str, list[Any]] = {"models": [], "datasets": [], "metrics": []}
    pm.hook.register_models(register=got["models"].append)
    pm.hook.register_datasets(register=got["datasets"].append)
    pm.hook.register_metrics(register=got["metrics"].append)
    return got


def test_builtin_plugins_register_through_pluggy() -> None:
    got = _collect()
    models = ["cae", "lenet", "mlp", "resnet", "trace-cnn", "vae"]
    assert sorted(m.name for m in got["models"]) == models
    names = ["footprint-h5", "footprint-sim", "traces-h5", "traces-sim"]
    assert sorted(d.name for d in got["datasets"]) == names
    gamma_hadron = ["gamma_eff_1e2", "gamma_eff_1e3", "q_at_eff", "q_factor"]
    assert sorted(m.name for m in got["metrics"]) == ["accuracy", "f1", *gamma_hadron, "roc_auc"]
    assert all(isinstance(m, Metric) and m.direction == "maximize" for m in got["metrics"])
    (model,) = [m for m in got["models"] if m.name == "lenet"]
    assert isinstance(model, Model) and model.space == lenet.SPACE
    (dataset,) = [d for d in got["datasets"] if d.name == "footprint-sim"]
    assert isinstance(dataset, Dataset)
    assert dataset.defaults["primaries"] == ["gamma", "proton"]
    assert dataset.defaults["seed"] == 1234 and dataset.defaults["normalise"] == "log1p"


# --- footprint-sim -------------------------------------------------------------------------


def test_second_load_reads_the_cache_instead_of_simulating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = footprint_sim.load(SMALL, 0, str(tmp_path))
    assert len(list(tmp_path.glob("*.h5"))) == 1
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left no temp file behind

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("simulated again despite a cache file")

    monkeypatch.setattr(footprint_sim, "write_footprints", boom)
    second = footprint_sim.load(SMALL, 0, str(tmp_path))
    assert torch.equal(first.train.x, second.train.x)
    assert np.array_equal(first.test.meta["energy"], second.test.meta["energy"])


def test_unreadable_cache_file_is_regenerated(tmp_path: Path) -> None:
    path = footprint_sim.cache_path(footprint_sim.validate(SMALL), str(tmp_path))
    path.write_bytes(b"not an HDF5 file")
    splits = footprint_sim.load(SMALL, 0, str(tmp_path))
    assert len(splits.train) == 140
    assert footprint_sim.cached_file(footprint_sim.validate(SMALL), str(tmp_path)).events == 200


def test_workers_starting_together_on_a_cold_cache_simulate_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = footprint_sim.write_footprints
    calls = []

    def slow(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        time.sleep(0.5)  # the other worker arrives while this one simulates
        return real(*args, **kwargs)

    monkeypatch.setattr(footprint_sim, "write_footprints", slow)
    params = footprint_sim.validate(SMALL)
    # Two threads open the lock file twice: flock sets them apart as it would two workers.
    with ThreadPoolExecutor(2) as pool:
        infos = list(pool.map(lambda _: footprint_sim.cached_file(params, str(tmp_path)), range(2)))
    assert len(calls) == 1
    assert [info.events for info in infos] == [200, 200]


def test_a_worker_simulates_anyway_when_the_cache_stays_locked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    params = footprint_sim.validate(SMALL)
    path = footprint_sim.cache_path(params, str(tmp_path))
    holder = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)  # a worker stuck in its simulation
    try:
        with caplog.at_level(logging.INFO, logger="wcd_hpc.data"):
            info = _params.cached(
                path,
                footprint_sim.SIMULATED.layout,
                lambda target: footprint_sim.SIMULATED.write(target, params),
                wait_s=0.5,
            )
    finally:
        os.close(holder)
    assert info.events == 200
    assert "waiting for it" in caplog.text and "simulating here too" in caplog.text


def test_cache_file_depends_on_simulation_params_only(tmp_path: Path) -> None:
    def name(**over: Any) -> Path:
        return footprint_sim.cache_path(footprint_sim.validate({**SMALL, **over}), str(tmp_path))

    assert name() == name()
    assert name(seed=1) != name()
    assert name(events=300) != name()
    assert name(primaries=["proton", "iron"]) != name()
    assert name(grid=80) != name()
    assert name(normalise="none", val_fraction=0.2) == name()  # cheap to redo: share simulation


def test_splits_have_the_expected_sizes_shapes_and_metadata(tmp_path: Path) -> None:
    splits = footprint_sim.load(SMALL, 0, str(tmp_path))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (140, 30, 30)
    assert splits.train.x.shape == (140, 1, 40, 40) and splits.train.x.dtype == torch.float32
    assert splits.val.y.dtype == torch.int64
    assert set(splits.val.y.tolist()) <= {0, 1}
    assert splits.spec == DataSpec((1, 40, 40), 2, ("gamma", "proton"))
    for split in (splits.train, splits.val, splits.test):
        truth = {k for k in split.meta if not k.startswith("classical_")}
        assert truth == {"energy", "zenith", "primary", "Nmuons", "weight"}
        assert len(split.meta["classical_compactness_r40"]) == len(split)
        assert all(v.shape == (len(split),) for v in split.meta.values())
        names = np.array(["gamma", "proton"])[split.y.numpy()]
        assert np.array_equal(names, split.meta["primary"])


def test_data_do_not_depend_on_the_trial_seed(tmp_path: Path) -> None:
    a = footprint_sim.load(SMALL, 0, str(tmp_path / "a"))
    b = footprint_sim.load(SMALL, 99, str(tmp_path / "b"))
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)


def test_normalisations(tmp_path: Path) -> None:
    raw = footprint_sim.load({**SMALL, "normalise": "none"}, 0, str(tmp_path))
    log = footprint_sim.load(SMALL, 0, str(tmp_path))
    std = footprint_sim.load({**SMALL, "normalise": "standard"}, 0, str(tmp_path))
    assert torch.allclose(log.val.x, torch.log1p(raw.val.x))
    assert abs(float(std.train.x.mean())) < 1e-3
    assert float(std.train.x.std()) == pytest.approx(1.0, abs=1e-3)
    assert raw.train.x.max() > 1.0  # VEM, not already squashed


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"events": -5}, "'events' must be an integer between 1 and 100000000"),
        ({"events": "many"}, "'events' must be an integer"),
        ({"events": True}, "'events' must be an integer"),
        ({"events": 3}, "'events' must be large enough"),
        ({"grid": 2}, "'grid' must be an integer between 4 and 512"),
        ({"primaries": ["gamma", "helium"]}, "'primaries' must be a list"),
        ({"primaries": ["gamma"]}, "'primaries' must be a list of at least 2"),
        ({"primaries": "gamma"}, "'primaries'"),
        ({"normalise": "zscore"}, "'normalise' must be one of"),
        ({"val_fraction": 1.5}, "'val_fraction' must be a number strictly between 0 and 1"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "val_fraction \\+ test_fraction"),
        ({"seed": -1}, "'seed' must be an integer between 0 and 4294967295"),
        ({"evnts": 10}, "unknown parameter\\(s\\) \\['evnts'\\]"),
    ],
)
def test_bad_params_give_a_precise_error(
    tmp_path: Path, override: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        footprint_sim.load({**SMALL, **override}, 0, str(tmp_path))
    assert not list(tmp_path.iterdir())  # validated before anything was simulated or written


# --- lenet -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 80, 80), (1, 40, 40), (2, 17, 23), (40, 40)])
def test_lenet_builds_for_any_input_shape_and_outputs_class_logits(
    shape: tuple[int, ...],
) -> None:
    spec = DataSpec(shape, 3, ("a", "b", "c"))
    model = lenet.build({"channels": [4, 6], "lr": 1e-3, "batch_size": 32}, spec)
    out = model(torch.zeros(5, *shape))
    assert out.shape == (5, 3)


def test_lenet_uses_the_sampled_channels_and_dropout() -> None:
    model = lenet.build({"channels": [3, 7], "dropout": 0.3}, DataSpec((1, 40, 40), 2, ("a", "b")))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [3, 7]
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.3 for m in model.modules())


@pytest.mark.parametrize(
    "params", [{"channels": [4]}, {"channels": [4, 0]}, {"channels": "4,4"}, {"dropout": 1.0}]
)
def test_lenet_rejects_malformed_params(params: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="lenet"):
        lenet.build(params, DataSpec((1, 40, 40), 2, ("a", "b")))


def test_lenet_learns_to_separate_gamma_from_proton(tmp_path: Path) -> None:
    """The quickstart sweep must show learning: a few plain epochs beat chance clearly."""
    torch.manual_seed(0)
    splits = footprint_sim.load({"events": 1000}, 0, str(tmp_path))
    model = lenet.build({"channels": [8, 16]}, splits.spec)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = splits.train.x, splits.train.y
    for _ in range(6):
        model.train()
        perm = torch.randperm(len(y))
        for i in range(0, len(y), 32):
            idx = perm[i : i + 32]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    model.eval()
    with torch.no_grad():
        score = torch.softmax(model(splits.val.x), dim=1).numpy()
    y_val = splits.val.y.numpy()
    assert metrics.accuracy(y_val, score, NO_META) > 0.7
    assert metrics.roc_auc(y_val, score, NO_META) > 0.75


# --- metrics ---------------------------------------------------------------------------------


def _onehot(labels: list[int], classes: int = 2) -> np.ndarray:
    return np.eye(classes)[labels]


def test_perfect_predictions_score_one() -> None:
    y = np.array([0, 1, 1, 0, 1])
    for fn in (metrics.f1, metrics.accuracy, metrics.roc_auc):
        assert fn(y, _onehot([0, 1, 1, 0, 1]), NO_META) == 1.0


def test_inverted_predictions_score_zero() -> None:
    y = np.array([0, 1, 1, 0])
    for fn in (metrics.f1, metrics.accuracy, metrics.roc_auc):
        assert fn(y, _onehot([1, 0, 0, 1]), NO_META) == 0.0


def test_binary_f1_is_that_of_class_one() -> None:
    y = np.array([1, 1, 0, 0, 1])
    score = _onehot([1, 0, 0, 1, 1])  # tp 2, fp 1, fn 1 -> 2*2 / (4 + 1 + 1)
    assert metrics.f1(y, score, NO_META) == pytest.approx(4 / 6)
    assert metrics.f1(np.array([0, 0]), _onehot([0, 0]), NO_META) == 0.0  # no positives at all


def test_multiclass_f1_is_the_macro_average() -> None:
    y = np.array([0, 1, 2, 2])
    score = _onehot([0, 2, 2, 1], 3)  # per class: 1, 0, 0.5
    assert metrics.f1(y, score, NO_META) == pytest.approx(0.5)


def test_roc_auc_counts_ties_as_half() -> None:
    y = np.array([0, 1, 0, 1])
    p1 = np.array([0.5, 0.5, 0.2, 0.8])  # pairs (pos, neg): .5, 1, 1, 1 -> 3.5 / 4
    score = np.stack([1 - p1, p1], axis=1)
    assert metrics.roc_auc(y, score, NO_META) == pytest.approx(0.875)
    flat = np.full((4, 2), 0.5)
    assert metrics.roc_auc(y, flat, NO_META) == pytest.approx(0.5)
    assert metrics.roc_auc(y, p1, NO_META) == pytest.approx(0.875)  # 1-D: class-1 probability


def test_roc_auc_is_nan_with_a_single_class() -> None:
    assert math.isnan(metrics.roc_auc(np.array([1, 1, 1]), _onehot([0, 1, 1]), NO_META))


def test_multiclass_roc_auc_is_macro_one_vs_rest() -> None:
    y = np.array([0, 1, 2, 0])
    assert metrics.roc_auc(y, _onehot([0, 1, 2, 0], 3), NO_META) == 1.0
    # Wrong one-hot scores, by hand: class 0 -> (0.5 + 0 + 0.5 + 0) / 4 = 1/4 (its two positives
    # score 0, tying one negative each), class 1 -> 0.5 / 3, class 2 -> 1 / 3; mean 1/4.
    assert metrics.roc_auc(y, _onehot([1, 2, 0, 1], 3), NO_META) == pytest.approx(0.25)
    # A class absent from y_true has no ROC curve and is left out of the average.
    assert metrics.roc_auc(np.array([0, 1, 0]), _onehot([0, 1, 0], 3), NO_META) == 1.0


def test_metrics_reject_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="y_score"):
        metrics.accuracy(np.array([0, 1]), np.zeros((3, 2)), NO_META)
