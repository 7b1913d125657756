"""The classical gamma/hadron baseline: its discriminants on hand-made footprints, its cut
chosen on the training split, and its place in binned.json beside the model (issue 23 point 4)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import Result

from wcd_hpc.results import baseline
from wcd_hpc.results.evaluation import write_binned
from wcd_hpc.results.syncdata import bin_table
from wcd_hpc.sim.discriminants import HIT_KEY, compactness_key, features, muon_key

Cli = Callable[..., Result]


def _cell(x_m: float) -> int:
    """Index of the 80-cell axis (−160…160 m, 4 m cells) whose centre is ``x_m``."""
    return round((x_m + 158.0) / 4.0)


def _core_only() -> np.ndarray:
    """A bright core of four tanks around (0, 0): the signal-weighted core sits at the origin."""
    event = np.zeros((80, 80), dtype=np.float32)
    for y in (-2.0, 2.0):
        for x in (-2.0, 2.0):
            event[_cell(y), _cell(x)] = 1000.0
    return event


def _with_hit(x_m: float, vem: float) -> np.ndarray:
    event = _core_only()
    event[_cell(2.0), _cell(x_m)] = vem
    return event


def test_one_muon_like_hit_beyond_r_adds_one_and_a_hit_inside_r_adds_none() -> None:
    events = np.stack(
        [
            _core_only(),
            _with_hit(82.0, 1.5),  # beyond every radius (30, 40, 60 m), muon-like
            _with_hit(22.0, 1.5),  # muon-like but inside every radius
            _with_hit(50.0, 1.5),  # beyond 30 and 40 m, inside 60 m
            _with_hit(82.0, 12.0),  # beyond every radius, too bright for one muon
        ]
    )
    got = features(events)
    for r, expected in ((30, [0, 1, 0, 1, 0]), (40, [0, 1, 0, 1, 0]), (60, [0, 1, 0, 0, 0])):
        assert got[muon_key(r)].tolist() == expected, r
    assert got[HIT_KEY].tolist() == [4, 5, 5, 5, 5]


def test_compactness_is_hit_tanks_over_the_largest_signal_beyond_r() -> None:
    bright_far = _with_hit(82.0, 12.0)
    bright_far[_cell(-2.0), _cell(-70.0)] = 3.0  # a second, smaller hit beyond R
    got = features(np.stack([bright_far, _with_hit(22.0, 1.5)]))
    assert got[compactness_key(40)][0] == pytest.approx(6 / 12.0)
    # Nothing beyond R: the floor stands in for the largest signal, the event is most compact.
    assert got[compactness_key(40)][1] == pytest.approx(5 / 0.01)


def _samples(seed: int, n: int) -> tuple[baseline.Sample, np.ndarray]:
    """Gamma rays with few muon-like hits, hadrons with many; energies over two bins."""
    rng = np.random.default_rng(seed)
    sig = rng.random(n) < 0.5
    hits = rng.integers(20, 60, n).astype(float)
    meta: dict[str, np.ndarray] = {HIT_KEY: hits}
    for r in (30, 40, 60):
        meta[muon_key(r)] = rng.poisson(np.where(sig, 0.5, 3.0)).astype(float)
        meta[compactness_key(r)] = rng.lognormal(np.where(sig, 1.0, 0.6), 0.5)
    meta["energy"] = 10 ** rng.uniform(2.5, 3.5, n)
    return baseline.Sample(sig, meta), sig


def test_the_baseline_cut_comes_from_the_training_split_not_the_test_split() -> None:
    train, _ = _samples(1, 2000)
    test, _ = _samples(2, 600)
    first, rows = baseline.baseline_rows(train, test, test.meta["energy"], train.meta["energy"])
    shuffled = {k: np.random.default_rng(3).permutation(v) for k, v in test.meta.items()}
    again, rows_again = baseline.baseline_rows(
        train, baseline.Sample(test.is_signal, shuffled), shuffled["energy"], train.meta["energy"]
    )
    assert first is not None and again is not None
    assert first["baseline_cut"] == again["baseline_cut"]
    assert first["baseline_variant"] == again["baseline_variant"]
    assert [r[2]["baseline_cut"] for r in rows] == [r[2]["baseline_cut"] for r in rows_again]
    # Half of the training gamma rays pass the overall cut.
    cut = baseline.choose(train)
    assert cut is not None
    passed = cut.variant.score(train.meta)[train.is_signal] >= cut.threshold
    assert passed.mean() == pytest.approx(0.5, abs=0.05)


def test_binned_json_of_simulated_gamma_proton_footprints_has_baseline_and_gain_per_bin(
    tmp_path: Path,
) -> None:
    from wcd_hpc.plugins import get_registry
    from wcd_hpc.sim.footprints import simulate

    data, info = simulate(["gamma", "proton"], 1200, 5, grid=40)
    meta = {"energy": info["E0 (GeV)"], **features(data)}
    truth = info["Y_class"].astype(np.int64)
    half = truth.size // 2
    part = {k: (v[:half], v[half:]) for k, v in meta.items()}
    train = baseline.Sample(truth[:half] == 0, {k: v[0] for k, v in part.items()})
    test = baseline.Sample(truth[half:] == 0, {k: v[1] for k, v in part.items()})
    # A stand-in model that knows the truth a little.
    rng = np.random.default_rng(0)
    p_gamma = np.clip(0.5 + 0.3 * (truth[half:] == 0) + 0.2 * rng.standard_normal(half), 0, 1)
    probs = np.stack([p_gamma, 1 - p_gamma], axis=1)
    metrics = {n: e.obj for n, e in get_registry().metrics.items()}
    write_binned(tmp_path, truth[half:], probs, test.meta, ["gamma", "proton"], metrics)
    baseline.add_to_binned(
        tmp_path,
        train,
        test,
        scores=probs[:, 0],
        train_energy=train.meta["energy"],
        test_energy=test.meta["energy"],
    )
    binned = json.loads((tmp_path / "binned.json").read_text())
    assert len(binned["bins"]) >= 3
    for row in [binned["all"], *binned["bins"]]:
        for key in ("baseline_q_at_eff", "baseline_q_at_eff_lo", "gain_q_at_eff", "q_at_eff"):
            assert key in row
        if min(row.get("per_class", [1, 1])) > 0:
            assert row["baseline_q_at_eff"] > 0
            assert row["gain_q_at_eff"] == pytest.approx(row["q_at_eff"] / row["baseline_q_at_eff"])
    assert binned["baseline"]["cuts_chosen_on"] == "train"
    # sync logs the per-bin numbers as one MLflow table: the gains reach it as columns.
    table = bin_table(binned["bins"], ["gamma", "proton"])
    assert {"gain_q_at_eff", "baseline_q_at_eff"} <= set(table["columns"])


def test_a_runs_recorded_baseline_cuts_applied_again_give_its_numbers(tmp_path: Path) -> None:
    """``evaluate RUN FILE`` applies the cuts the run chose on its training split (recorded
    in its binned.json); on the run's own test events they give the run's very numbers."""
    from wcd_hpc.sim.footprints import simulate

    data, info = simulate(["gamma", "proton"], 1200, 5, grid=40)
    meta = {"energy": info["E0 (GeV)"], **features(data)}
    truth = info["Y_class"].astype(np.int64)
    half = truth.size // 2
    train = baseline.Sample(truth[:half] == 0, {k: v[:half] for k, v in meta.items()})
    test = baseline.Sample(truth[half:] == 0, {k: v[half:] for k, v in meta.items()})
    energy = test.meta["energy"]
    (tmp_path / "run").mkdir()
    run = baseline.add_to_binned(
        tmp_path / "run",
        train,
        test,
        train_energy=train.meta["energy"],
        test_energy=energy,
    )
    assert run is not None and baseline.recorded(run)
    (tmp_path / "file").mkdir()
    again = baseline.apply_recorded(tmp_path / "file", run, test, test_energy=energy, source="R")
    assert again is not None and again["baseline"]["cuts_from"] == "R"
    rows = zip([again["all"], *again["bins"]], [run["all"], *run["bins"]], strict=True)
    for mine, theirs in rows:
        for key in ("baseline_q_at_eff", "baseline_cut", "baseline_variant"):
            assert mine[key] == theirs[key]
    # A bin of the file the run had no cut for takes the run's overall cut, and says so.
    lowest = min(r["log10_e_min"] for r in run["bins"])
    partial = {**run, "bins": [r for r in run["bins"] if r["log10_e_min"] != lowest]}
    (tmp_path / "partial").mkdir()
    moved = baseline.apply_recorded(tmp_path / "partial", partial, test, test_energy=energy)
    assert moved is not None
    first = next(r for r in moved["bins"] if r["log10_e_min"] == lowest)
    assert first["baseline_cut"] == run["all"]["baseline_cut"]
    assert first["baseline_variant"].endswith("(chosen on all energies)")
    assert not baseline.recorded({"all": {"q_at_eff": 1.0}, "bins": []})


def test_a_model_q_already_in_the_row_is_the_one_the_gain_uses() -> None:
    row = {"q_at_eff": 3.0}
    entries = {"baseline_q_at_eff": 1.5}
    out = baseline._with_gain(row, entries, (9.0, 8.0, 10.0))
    assert out["gain_q_at_eff"] == 2.0 and "q_at_eff" not in out
    unmeasurable = baseline._with_gain({"q_at_eff": None}, entries, (9.0, 8.0, 10.0))
    assert unmeasurable["gain_q_at_eff"] is None


def test_no_baseline_without_gamma_signal_or_features() -> None:
    train, _ = _samples(1, 100)
    assert baseline.applies(["gamma", "proton"], 0, train.meta)
    assert not baseline.applies(["iron", "proton"], 0, train.meta)
    assert not baseline.applies(["gamma", "proton"], 0, {"energy": np.ones(3)})


@pytest.mark.slow
def test_evaluate_baseline_alone_on_a_footprint_file(cli: Cli, tmp_path: Path) -> None:
    from wcd_hpc.sim.footprints import write_footprints

    write_footprints(tmp_path / "gp.h5", ["gamma", "proton"], 600, 7, grid=20)
    done = cli("evaluate", "--baseline", "gp.h5", without_torch=False)
    assert done.code == 0, done.err
    assert "cuts chosen on half of gp.h5" in done.out
    binned = json.loads((tmp_path / "baseline-gp" / "binned.json").read_text())
    assert binned["bins"] and all("baseline_q_at_eff" in r for r in binned["bins"])
    assert "gain_q_at_eff" not in binned["all"]  # no model, no gain
    assert (tmp_path / "baseline-gp" / "plots" / "baseline_vs_energy.png").exists()
    refused = cli("evaluate", "--baseline", "gp.h5", "some/run")
    assert refused.code != 0 and "give no RUN_DIR" in refused.err


TRAIN = """\
name: tiny
dataset: {name: footprint-sim, params: {primaries: [gamma, proton], events: 500, grid: 20}}
model: mlp
metric: accuracy
trials: 1
epochs: 1
pruner: none
executor: local
param_space: {batch_size: 32, optimizer: adam, hidden: [8]}
"""


@pytest.mark.slow
def test_a_trained_gamma_proton_run_has_the_baseline_beside_the_model_per_bin(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "tiny.yaml").write_text(TRAIN)
    done = cli("train", "tiny.yaml")
    assert done.code == 0, done.err
    run = tmp_path / "runs" / "tiny" / "train" / "trials" / "0"
    binned = json.loads((run / "binned.json").read_text())
    assert binned["bins"]
    for row in binned["bins"]:
        assert {"baseline_q_at_eff", "gain_q_at_eff", "baseline_variant"} <= set(row)
    assert (run / "plots" / "baseline_vs_energy.png").exists()
    # evaluate RUN FILE: the run's baseline cuts (chosen on its training split) on the file.
    from wcd_hpc.sim.footprints import write_footprints

    write_footprints(tmp_path / "other.h5", ["gamma", "proton"], 400, 11, grid=20)
    scored = cli("evaluate", str(run), "other.h5")
    assert scored.code == 0, scored.err
    assert "baseline q_at_eff" in scored.out and "no classical baseline" not in scored.out
    out = run / "evaluations" / "other"
    on_file = json.loads((out / "binned.json").read_text())
    assert on_file["bins"] and all("gain_q_at_eff" in r for r in on_file["bins"])
    assert on_file["baseline"]["cuts_chosen_on"] == "train"
    assert on_file["baseline"]["cuts_from"].endswith("binned.json")
    assert (out / "plots" / "baseline_vs_energy.png").exists()
    # A run that records no baseline says why in one line, and how to get one.
    (run / "binned.json").write_text(json.dumps({"bins": [], "all": {}}))
    bare = cli("evaluate", str(run), "other.h5")
    assert bare.code == 0, bare.err
    assert "no classical baseline:" in bare.out and "evaluate --baseline other.h5" in bare.out
