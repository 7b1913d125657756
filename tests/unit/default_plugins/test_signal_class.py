"""The signal class: an experiment key, checked against the data, seen by every metric."""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
import torch

from wcd_hpc.api import DataSpec, Split
from wcd_hpc.default_plugins import metrics
from wcd_hpc.engine.evaluate import EvaluateError, RunInfo
from wcd_hpc.engine.evaluate import _signal as evaluate_signal
from wcd_hpc.engine.trial import Context, SignalClassError, run_trial, signal_label
from wcd_hpc.errors import ConfigError, DataError, StudyConflict
from wcd_hpc.experiment.config import Experiment, load_experiment
from wcd_hpc.experiment.space import Space
from wcd_hpc.queue.study import prepare
from wcd_hpc.results.evaluation import binned_table, write_binned
from wcd_hpc.store.storage import Storage

IRON_PROTON = """\
name: ip
dataset: {name: footprint-sim, params: {primaries: [iron, proton]}}
model: lenet
metric: f1
trials: 2
signal_class: {value}
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _experiment(value: str, sets: tuple[str, ...] = ()) -> Experiment:
    Path("ip.yaml").write_text(textwrap.dedent(IRON_PROTON.replace("{value}", value)))
    return load_experiment("ip.yaml", overrides=sets)


def _iron_proton_sample() -> tuple[np.ndarray, np.ndarray]:
    """Iron (0) and proton (1): 6 iron right, 4 iron called proton, 10 protons right."""
    y = np.r_[[0] * 10, [1] * 10]
    p_iron = np.r_[[0.9] * 6, [0.2] * 4, [0.1] * 10]
    return y, np.stack([p_iron, 1 - p_iron], axis=1)


def test_f1_scores_the_class_named_by_signal_class() -> None:
    y, probs = _iron_proton_sample()
    # iron: tp 6, fp 0, fn 4 -> 12/16; proton: tp 10, fp 4, fn 0 -> 20/24.
    iron = metrics.f1(y, probs, metrics.with_signal_class({}, 0, y.size))
    proton = metrics.f1(y, probs, metrics.with_signal_class({}, 1, y.size))
    assert iron == pytest.approx(12 / 16)
    assert proton == pytest.approx(20 / 24)


def test_iron_proton_experiments_with_signal_class_iron_and_proton_score_different_f1() -> None:
    y, probs = _iron_proton_sample()
    names = ("iron", "proton")
    scores = {}
    for chosen in ("iron", "proton"):
        label = signal_label(_experiment(chosen), names)
        scores[chosen] = metrics.f1(y, probs, metrics.with_signal_class({}, label, y.size))
    assert scores == {"iron": pytest.approx(0.75), "proton": pytest.approx(20 / 24)}


def test_a_caller_that_passes_no_signal_class_gets_the_old_rules() -> None:
    # Third-party code calling the metrics directly: F1 of class 1, gamma found by primary.
    y, probs = _iron_proton_sample()
    assert metrics.f1(y, probs, {}) == pytest.approx(20 / 24)
    assert metrics.signal_class(y, {}) == 0


def test_the_cut_metrics_select_the_signal_class_of_meta() -> None:
    y = np.r_[[0] * 30, [1] * 50]
    p0 = np.r_[np.linspace(0.7, 0.9, 30), np.linspace(0.1, 0.3, 50)]  # perfectly separated
    probs = np.stack([p0, 1 - p0], axis=1)
    one = metrics.with_signal_class({}, 1, y.size)
    zero = metrics.with_signal_class({}, 0, y.size)
    # The reach sqrt(N_b / 10): all signal kept with the ten least signal-like background.
    assert metrics.q_factor(y, probs, one) == pytest.approx(np.sqrt(3))  # 30 background
    assert metrics.q_factor(y, probs, zero) == pytest.approx(np.sqrt(5))


def test_the_signal_class_rides_in_meta_as_a_per_event_array_through_the_bins() -> None:
    y = np.array([0, 1, 0, 1])
    probs = np.stack([np.array([0.9, 0.2, 0.3, 0.6]), np.array([0.1, 0.8, 0.7, 0.4])], axis=1)
    meta = metrics.with_signal_class({"energy": np.array([200.0, 300.0, 2e3, 3e3])}, 1, 4)
    assert {k: len(v) for k, v in meta.items()} == {"energy": 4, "signal_class": 4}
    f1 = {"f1": metrics.Metric("f1", "maximize", metrics.f1)}
    rows = binned_table(y, probs, meta, f1)
    # Bin 1: proton predicted right (F1 of proton = 1); bin 2: both wrong (F1 0).
    assert [r["f1"] for r in rows] == [1.0, 0.0]


def test_binned_json_records_the_signal_class_and_scores_it(tmp_path: Path) -> None:
    y, probs = _iron_proton_sample()
    f1 = {"f1": metrics.Metric("f1", "maximize", metrics.f1)}
    write_binned(tmp_path, y, probs, {}, ("iron", "proton"), f1, signal=0)
    stored = (tmp_path / "binned.json").read_text()
    assert '"signal_class": "iron"' in stored and '"f1": 0.75' in stored


def test_default_signal_class_is_gamma_then_muon_then_class_one() -> None:
    assert metrics.default_signal_class(("proton", "gamma")) == 1
    assert metrics.default_signal_class(("em", "muon")) == 1
    assert metrics.default_signal_class(("muon", "em")) == 0
    assert metrics.default_signal_class(("iron", "proton")) == 1  # proton, as F1 always was
    # A file read with its layout's default names, whose primary column says gamma:
    y = np.array([0, 0, 1, 1])
    meta = {"primary": np.array(["gamma", "gamma", "proton", "proton"])}
    assert metrics.default_signal_class(("iron", "proton"), y, meta) == 0


def test_signal_class_is_read_from_the_experiment_and_defaults_to_none() -> None:
    assert _experiment("iron").signal_class == "iron"
    assert _experiment("null").signal_class is None
    assert _experiment("null", ("signal_class=proton",)).signal_class == "proton"
    stored = _experiment("iron").to_dict()
    assert stored["signal_class"] == "iron"
    assert Experiment.from_dict(stored).signal_class == "iron"
    old = {k: v for k, v in stored.items() if k != "signal_class"}  # a study from before
    assert Experiment.from_dict(old).signal_class is None


def test_a_signal_class_that_is_not_a_name_is_one_line_with_file_and_line() -> None:
    with pytest.raises(ConfigError) as info:
        _experiment("1")
    assert str(info.value) == "ip.yaml:6: signal_class: expected a class name such as gamma, got 1"
    with pytest.raises(ConfigError, match=r"^ip.yaml:6: signal_class: expected a class name"):
        _experiment("[iron]")


def test_an_unknown_key_near_signal_class_keeps_its_file_and_line() -> None:
    Path("ip.yaml").write_text(IRON_PROTON.replace("{value}", "iron") + "signal_clas: iron\n")
    with pytest.raises(ConfigError) as info:
        load_experiment("ip.yaml")
    assert str(info.value).startswith("ip.yaml:7: signal_clas: unknown key")
    assert "signal_class" in str(info.value)


def test_a_signal_class_the_data_lack_is_one_line_naming_the_key_and_classes() -> None:
    with pytest.raises(SignalClassError) as info:
        signal_label(_experiment("gama"), ("iron", "proton"))
    assert str(info.value) == (
        "ip.yaml:6: signal_class: 'gama' is not a class of dataset 'footprint-sim' "
        "(its classes: iron, proton)"
    )
    # A setting (ConfigError) that no trial can run with: workers stop as on bad data.
    assert isinstance(info.value, ConfigError) and isinstance(info.value, DataError)
    with pytest.raises(SignalClassError, match=r"^--set: signal_class: 'Iron' is not"):
        signal_label(_experiment("null", ("signal_class=Iron",)), ("iron", "proton"))


def test_a_trial_with_a_signal_class_the_data_lack_fails_before_training(tmp_path: Path) -> None:
    spec = DataSpec((4,), 2, ("iron", "proton"))
    split = Split(torch.zeros(2, 4), torch.tensor([0, 1]))
    splits = SimpleNamespace(train=split, val=split, test=split, spec=spec)
    ctx = Context(_experiment("gamma"), None, None, {}, splits, tmp_path, torch.device("cpu"))  # type: ignore[arg-type]
    with pytest.raises(SignalClassError, match="its classes: iron, proton"):
        run_trial(ctx, optuna.trial.FixedTrial({}, number=0))  # type: ignore[arg-type]
    assert not (tmp_path / "trials").exists()  # nothing written, nothing trained


def test_changing_signal_class_on_resume_is_a_change_of_experiment(tmp_path: Path) -> None:
    storage = optuna.storages.InMemoryStorage()
    space = Space.from_mapping({"lr": "loguniform(1e-4, 1e-2)"})
    prepare(_experiment("iron"), space, Storage.parse("memory"), storage, tmp_path)
    prepare(_experiment("iron"), space, Storage.parse("memory"), storage, tmp_path)  # same: resumes
    with pytest.raises(StudyConflict, match=r"changed: signal_class"):
        prepare(_experiment("proton"), space, Storage.parse("memory"), storage, tmp_path)


def test_evaluate_uses_the_runs_signal_class_and_refuses_one_its_model_lacks() -> None:
    spec = DataSpec((4,), 2, ("iron", "proton"))
    y = np.array([0, 1])
    run = RunInfo(Path("run"), "lenet", {}, spec, {}, signal_class="iron")
    assert evaluate_signal(run, y, {}) == 0
    unset = RunInfo(Path("run"), "lenet", {}, spec, {})
    assert evaluate_signal(unset, y, {}) == 1
    wrong = RunInfo(Path("run"), "lenet", {}, spec, {}, signal_class="gamma")
    with pytest.raises(EvaluateError, match="signal_class 'gamma' is not one of"):
        evaluate_signal(wrong, y, {})
