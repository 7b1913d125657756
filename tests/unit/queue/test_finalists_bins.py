"""The finalists' report per energy bin (issue 23 point 5): mean ± std over the seeds of the
objective in each bin, on validation and on test, read from each finalist's ``binned.json``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from wcd_hpc.queue import finalists
from wcd_hpc.queue.schema import (
    BINNED_FILE,
    STUDY_BUDGET,
    STUDY_EXPERIMENT,
    STUDY_FINALISTS,
    TRIAL_FINALIST,
    TRIAL_TEST,
    trial_dir,
)
from wcd_hpc.queue.status import summarize

METRIC = "q_at_eff"
LOW, HIGH = (2.5, 3.0), (3.0, 3.5)


def _binned(run_dir: Path, number: int, val: dict, test: dict) -> None:
    """A trial's ``binned.json`` with the objective per bin: validation and test rows."""

    def rows(values: dict) -> list[dict]:
        return [
            {"log10_e_min": lo, "log10_e_max": hi, METRIC: v, f"{METRIC}_lo": None}
            for (lo, hi), v in values.items()
        ]

    folder = trial_dir(run_dir, number)
    folder.mkdir(parents=True)
    payload = {"bins": rows(test), "validation_bins": rows(val), "all": {}}
    (folder / BINNED_FILE).write_text(json.dumps(payload))


def _study(tmp_path: Path) -> optuna.Study:
    """Two ordinary trials (0 and 1); trial 1's configuration retrained with three seeds
    (trials 2, 3, 4), whose per-bin values are made by hand."""
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(STUDY_EXPERIMENT, {"metric": METRIC, "finalists": {"top": 1, "seeds": 3}})
    study.set_user_attr(STUDY_BUDGET, 2)
    dist = {"lr": FloatDistribution(1e-4, 1.0)}
    for value in (1.0, 2.0):
        study.add_trial(create_trial(params={"lr": value / 10}, distributions=dist, value=value))
    study.set_user_attr(STUDY_FINALISTS, [1])
    seeds = [
        # validation per bin, test per bin; the third seed has no low-energy value on test
        ({LOW: 1.0, HIGH: 3.0}, {LOW: 0.8, HIGH: 2.8}),
        ({LOW: 2.0, HIGH: 4.0}, {LOW: 1.2, HIGH: 3.2}),
        ({LOW: 3.0, HIGH: 5.0}, {HIGH: 3.6}),
    ]
    for i, (val, test) in enumerate(seeds):
        trial = create_trial(
            params={"lr": 0.2},
            distributions=dist,
            value=1.5 + i / 10,
            user_attrs={TRIAL_FINALIST: 1, TRIAL_TEST: {METRIC: 1.4}},
        )
        study.add_trial(trial)
        _binned(tmp_path, 2 + i, val, test)
    return study


def test_the_final_pick_gives_mean_and_std_per_energy_bin_on_validation_and_test(
    tmp_path: Path,
) -> None:
    final = finalists.report(_study(tmp_path), run_dir=tmp_path)
    assert final is not None
    low, high = final["bins"]
    assert (low["log10_e_min"], low["log10_e_max"]) == LOW
    assert low["val"] == {"mean": pytest.approx(2.0), "std": pytest.approx(1.0), "n": 3}
    # A seed without a value in a bin is left out of that bin, not counted as zero.
    spread = {"mean": pytest.approx(1.0), "std": pytest.approx(math.sqrt(0.08)), "n": 2}
    assert low["test"] == spread
    assert high["val"]["mean"] == pytest.approx(4.0) and high["val"]["std"] == pytest.approx(1.0)
    assert high["test"]["mean"] == pytest.approx(3.2) and high["test"]["n"] == 3
    assert final["configurations"][0]["bins"] == final["bins"]


def test_status_shows_the_per_bin_table_rounded_and_json_carries_it(tmp_path: Path) -> None:
    study = _study(tmp_path)
    info = summarize(study, tmp_path)
    assert [b["val"]["n"] for b in info["final"]["bins"]] == [3, 3]
    lines = finalists.bin_lines(info["final"])
    assert "q_at_eff" in lines[0] and "log10(E0/GeV)" in lines[0]
    # Rounded to the std's precision: 2.0 ± 1.0, 1.00 ± 0.28.
    assert lines[1].split() == ["2.5–3.0", "validation", "2.0", "±", "1.0", "test", "1.00", "±",
                                "0.28"]  # fmt: skip
    columns, rows = finalists.bin_rows(info["final"])
    assert columns[:2] == ["log10_e_min", "log10_e_max"] and "test_std" in columns
    assert len(rows) == 2 and rows[0][columns.index("val_mean")] == pytest.approx(2.0)


def test_without_the_trials_files_the_report_has_no_bins(tmp_path: Path) -> None:
    final = finalists.report(_study(tmp_path), run_dir=tmp_path / "elsewhere")
    assert final is not None and final["bins"] == []
    assert finalists.bin_lines(final) == [] and finalists.bin_rows(final)[1] == []
    assert finalists.report(_study(tmp_path / "again")) is not None  # no run_dir: no bins


def test_a_spread_is_rounded_to_its_precision_and_rounding_noise_is_no_spread() -> None:
    assert finalists.shown({"mean": 1.234567, "std": 0.0123, "n": 3}) == "1.235 ± 0.012"
    assert finalists.shown({"mean": 1.4, "std": 2.7e-16, "n": 3}) == "1.4 ± 0"
    assert finalists.shown({"mean": 0.91234, "std": None, "n": 1}) == "0.912"
    assert finalists.shown({"mean": None, "std": None, "n": 0}) == "–"
