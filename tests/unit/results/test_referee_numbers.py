"""Issue 23: one Q everywhere, cuts chosen on validation and applied to test, intervals on
every number, provenance — from the metric through binned.json, tables, figures and a real run."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import Result

from wcd_hpc import merit
from wcd_hpc.default_plugins import metrics
from wcd_hpc.plugins import get_registry
from wcd_hpc.queue.schema import Q_PLOT, Q_VS_ENERGY_PLOT, ROC_PLOT
from wcd_hpc.results.evaluation import write_binned, write_plots
from wcd_hpc.results.quote import BINNED_METRICS, choose_split_cuts
from wcd_hpc.results.syncdata import write_table

NAMES = ("gamma", "proton")


@pytest.fixture(scope="module")
def all_metrics() -> dict[str, metrics.Metric]:
    return {name: entry.obj for name, entry in get_registry().metrics.items()}


def _one_proton_above() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """20 gammas, 100 protons, one energy bin; one proton scores above every gamma.

    Over all cuts the largest ε_γ/√ε_p is 10, at the cut keeping that single proton (ε_γ = 1,
    ε_p = 0.01): Poisson noise. Among cuts keeping ≥ 10 protons it is √10 (ε_p = 0.1).
    """
    p_gamma = np.r_[np.linspace(0.80, 0.90, 20), [0.99], np.linspace(0.05, 0.70, 99)]
    y = np.r_[[0] * 20, [1] * 100]
    meta = {"energy": np.full(120, 2000.0)}
    return y, np.stack([p_gamma, 1 - p_gamma], axis=1), meta


def test_one_q_for_objective_binned_json_table_and_figure(tmp_path: Path, all_metrics) -> None:
    y, probs, meta = _one_proton_above()
    objective = all_metrics["q_factor"].compute(y, probs, metrics.with_signal_class(meta, 0, 120))
    assert objective == pytest.approx(math.sqrt(10))  # not the 10 of the one-proton cut
    # The validation split and the test split hold the same events here, so every place that
    # quotes Q must show the objective's number.
    cuts = choose_split_cuts(y, probs, meta, 0, merit.Settings())
    binned = write_binned(tmp_path, y, probs, meta, NAMES, all_metrics, signal=0, cuts=cuts)
    assert binned["all"]["q_factor"] == pytest.approx(objective)
    assert binned["bins"][0]["q_factor"] == pytest.approx(objective)
    assert binned["bins"][0]["at_reach"]  # the optimum sits at the tightest allowed cut
    write_table(binned["bins"], list(NAMES), tmp_path)
    with (tmp_path / "tables" / "energy_bins.csv").open() as handle:
        row = next(csv.DictReader(handle))
    assert float(row["q_factor"]) == pytest.approx(objective)
    assert {"q_factor_lo", "q_factor_hi"} <= set(row)
    titles = write_plots(tmp_path, y, probs, meta, NAMES, signal=0, binned=binned)
    all_q = binned["all"]
    shown = merit.rounded(all_q["q_factor"], all_q["q_factor_lo"], all_q["q_factor_hi"])
    assert f"Q = {shown}" in titles[Q_PLOT]
    assert "cuts chosen per bin on the validation split" in titles[Q_VS_ENERGY_PLOT]


def test_the_cuts_come_from_validation_and_shuffling_the_test_scores_changes_none(
    tmp_path: Path, all_metrics
) -> None:
    rng = np.random.default_rng(4)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        y = rng.integers(0, 2, n)
        p = np.clip(np.where(y == 0, 0.65, 0.35) + rng.normal(0, 0.2, n), 0, 1)
        return y, np.stack([p, 1 - p], axis=1), {"energy": 10 ** rng.uniform(2.5, 4.0, n)}

    val_y, val_probs, val_meta = sample(3000)
    test_y, test_probs, test_meta = sample(3000)
    cuts = choose_split_cuts(val_y, val_probs, val_meta, 0, merit.Settings())
    first = write_binned(
        tmp_path, test_y, test_probs, test_meta, NAMES, all_metrics, signal=0, cuts=cuts
    )
    shuffled = test_probs[rng.permutation(test_y.size)]
    again = write_binned(
        tmp_path, test_y, shuffled, test_meta, NAMES, all_metrics, signal=0, cuts=cuts
    )
    assert first["cuts_chosen_on"] == again["cuts_chosen_on"] == "validation split"
    assert first["cuts"] == again["cuts"] == cuts["all"]
    assert again["all"]["q_factor"] != first["all"]["q_factor"]  # the test events did change
    # Chosen on the test split instead, the cut would follow the test scores.
    own = write_binned(tmp_path, test_y, test_probs, test_meta, NAMES, all_metrics, signal=0)
    assert own["cuts_chosen_on"] == "this sample" and own["cuts"] != cuts["all"]


def test_every_metric_in_binned_json_has_an_interval(tmp_path: Path, all_metrics) -> None:
    rng = np.random.default_rng(2)
    y = np.r_[[0] * 800, [1] * 1200]
    p = np.clip(np.where(y == 0, 0.7, 0.3) + rng.normal(0, 0.25, 2000), 0, 1)
    meta = {"energy": 10 ** rng.uniform(2.5, 4.0, 2000)}
    write_binned(tmp_path, y, np.stack([p, 1 - p], 1), meta, NAMES, all_metrics, signal=0)
    stored = json.loads((tmp_path / "binned.json").read_text())
    for row in [stored["all"], *stored["bins"]]:
        for name in BINNED_METRICS:
            assert {f"{name}_lo", f"{name}_hi"} <= set(row), name
            if row[name] is None:
                assert row[f"{name}_reason"]  # "not measurable", with the reason
            elif row[f"{name}_lo"] is not None:
                assert (
                    row[f"{name}_lo"] <= row[name] + 1e-9 and row[name] <= row[f"{name}_hi"] + 1e-9
                )
    # 1200 protons: 10^-2 is measurable, 10^-3 (one proton) is not.
    assert stored["all"]["gamma_eff_1e2"] is not None
    assert stored["all"]["gamma_eff_1e3"] is None
    assert "not measurable" in stored["all"]["gamma_eff_1e3_reason"]


def test_a_constant_output_says_so_in_its_figures(tmp_path: Path) -> None:
    y = np.r_[[0] * 50, [1] * 50]
    probs = np.full((100, 2), 0.5)
    meta = {"energy": np.full(100, 2000.0)}
    titles = write_plots(tmp_path, y, probs, meta, NAMES, signal=0)
    assert "constant output" in titles[Q_PLOT]
    assert {ROC_PLOT, Q_VS_ENERGY_PLOT} <= set(titles)


TINY = """\
name: referee
dataset: {name: footprint-sim, params: {primaries: [gamma, proton], events: 240, grid: 8}}
model: mlp
metric: {name: q_at_eff, min_background: 5}
trials: 1
epochs: 1
pruner: none
executor: local
param_space:
  batch_size: 32
  optimizer: adam
  hidden: [8]
"""


def test_a_run_keeps_its_validation_cuts_and_evaluate_applies_them(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY)
    res = cli("train", str(tmp_path / "tiny.yaml"))
    assert res.code == 0, res.err
    assert "cuts from validation" in res.out
    run = tmp_path / "runs" / "referee" / "train" / "trials" / "0"
    cuts = json.loads((run / "cuts.json").read_text())
    assert cuts["chosen_on"] == "validation split" and cuts["min_background"] == 5
    result = json.loads((run / "result.json").read_text())
    binned = json.loads((run / "binned.json").read_text())
    assert binned["cuts"] == cuts["all"] and binned["min_background"] == 5
    # The objective per energy bin on validation too, for the finalists' per-bin report.
    # (The splits are drawn apart: an edge bin may hold events of one and not the other.)
    assert len(binned["validation_bins"]) > 1
    assert all("q_at_eff" in r and "q_at_eff_lo" in r for r in binned["validation_bins"])
    for name in ("q_factor", "q_at_eff", "roc_auc", "f1"):
        if name in result["test"]:
            assert result["test"][name] == binned["all"][name]
            assert f"{name}_lo" in result["test"] and f"{name}_hi" in result["test"]
    assert {"objective_lo", "objective_hi"} <= set(result)
    origin = result["provenance"]
    assert origin["software"]["wcd_hpc"] and "commit" in origin["software"]
    assert origin["data"]["kind"] == "simulated (order-of-magnitude physics)"
    assert origin["data"]["seed"] is not None

    data = (run.parents[3] / ".cache").glob("*.h5")
    h5 = next(iter(sorted(data)))
    res = cli("evaluate", str(run), str(h5))
    assert res.code == 0, res.err
    assert "cuts chosen on validation split" in res.out
    out = run / "evaluations" / h5.stem
    scores = json.loads((out / "metrics.json").read_text())
    assert scores["cuts_chosen_on"] == "validation split"
    assert json.loads((out / "binned.json").read_text())["cuts"] == cuts["all"]
    assert scores["provenance"]["data"]["files"][0]["simulator"] == "wcd_hpc.sim.footprints"


def test_the_per_bin_objective_is_the_mean_over_bins_with_enough_events(all_metrics) -> None:
    from wcd_hpc.results.quote import per_bin_mean

    rng = np.random.default_rng(8)
    y = np.r_[[0] * 300, [1] * 300, [0] * 5, [1] * 5]  # the last bin: 5 protons, too few
    p = np.clip(np.where(y == 0, 0.7, 0.3) + rng.normal(0, 0.2, y.size), 0, 1)
    probs = np.stack([p, 1 - p], axis=1)
    energy = np.r_[np.full(300, 500.0), np.full(300, 5000.0)]
    energy = np.r_[energy[rng.permutation(600)], np.full(10, 50000.0)]
    meta = metrics.with_signal_class({"energy": energy}, 0, y.size)
    metric = all_metrics["q_at_eff"]
    settings = merit.Settings()
    per_bin = [
        metric.compute(y[m], probs[m], {k: v[m] for k, v in meta.items()})
        for m in (energy < 1000, (energy > 1000) & (energy < 10000))
    ]
    value = per_bin_mean("q_at_eff", y, probs, meta, metric, settings)
    assert value == pytest.approx(np.mean(per_bin))


def test_status_json_carries_the_objective_and_test_intervals(
    cli: Callable[..., Result], testplugins, toy_experiment
) -> None:
    toy = {"WCD_HPC_PLUGINS": "toy"}
    exp = toy_experiment(name="intervals", trials=1, metric="roc_auc")
    res = cli("sweep", str(exp), plugins=testplugins, env=toy)
    assert res.code == 0, res.err
    assert "best trial 0: roc_auc=" in res.out and "; test roc_auc=" in res.out
    shown = cli("status", "intervals", plugins=testplugins, env=toy).out
    assert "best trial 0: roc_auc=" in shown and " (+" in shown  # rounded, with its interval
    best = cli("status", "intervals", "--json", plugins=testplugins, env=toy).json()["best"]
    lo, hi = best["objective_interval"]
    assert lo <= best["value"] <= hi
    test = best["test"]
    for name in ("roc_auc", "accuracy", "f1"):
        assert test[f"{name}_lo"] <= test[name] <= test[f"{name}_hi"]


def test_the_sweeps_closing_line_survives_a_test_value_that_is_not_measurable() -> None:
    import optuna

    from wcd_hpc.launch.sweep import best_line
    from wcd_hpc.queue.schema import TRIAL_TEST

    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    trial.set_user_attr(TRIAL_TEST, {"gamma_eff_1e2": None, "gamma_eff_1e2_lo": None})
    study.tell(trial, 0.42)
    assert best_line(study, "gamma_eff_1e2") == (
        "best trial 0: gamma_eff_1e2=0.42 (); test gamma_eff_1e2=n/a"
    )
