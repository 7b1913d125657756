"""Reports inside an epoch (issue 24 point 2): ``report_every: F``, steps in samples seen."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from torch import nn

from wcd_hpc.api import Model
from wcd_hpc.engine.fit import Interrupted, report_marks
from wcd_hpc.engine.search import make_pruner
from wcd_hpc.engine.trial import run_trial

optuna.logging.set_verbosity(optuna.logging.ERROR)
ROOT = Path(__file__).resolve().parents[3]
QUARTERS = [50, 100, 150, 200, 250, 300, 350, 400]  # mlp_context: 200 training events


class Blind(nn.Module):
    """Trains a linear layer but scores validation events on a feature with no class in it:
    its curve is known (accuracy near 0.5 at every report)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.linear(x)
        score = x[:, 1] - x[:, 2]
        return torch.stack([-score, score], dim=1) + 0 * self.linear(x)


def _ctx(mlp_context: Any, where: Path, epochs: int = 2, model: Any = None) -> Any:
    ctx = mlp_context(epochs=epochs, where=where)
    extras = {**ctx.exp.extras, "report_every": 0.25, "report_subsample": 40}
    ctx = dataclasses.replace(ctx, exp=dataclasses.replace(ctx.exp, extras=extras))
    return ctx if model is None else dataclasses.replace(ctx, model=Model("mlp", model))


def _study(pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    sampler = optuna.samplers.RandomSampler(seed=0)
    return optuna.create_study(
        direction="maximize", sampler=sampler, pruner=pruner or optuna.pruners.NopPruner()
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_report_marks_split_an_epoch_into_equal_shares() -> None:
    assert report_marks(200, 0.25) == [50, 100, 150]
    assert report_marks(200, 1.0) == [] and report_marks(10, 0.3) == [3, 6, 9]


def test_quarter_reports_are_four_steps_per_epoch_in_samples_seen(mlp_context, tmp_path) -> None:
    study = _study()
    run_trial(_ctx(mlp_context, tmp_path), study.ask())
    assert sorted(study.trials[0].intermediate_values) == QUARTERS
    out = tmp_path / "trials" / "0"
    assert [r["epoch"] for r in _lines(out / "metrics.jsonl")] == [1, 2]  # one line per epoch
    inside = _lines(out / "reports.jsonl")
    assert [(r["epoch"], r["samples"]) for r in inside] == [
        (1, 50), (1, 100), (1, 150), (2, 250), (2, 300), (2, 350)
    ]  # fmt: skip
    assert all(0.0 <= r["val_accuracy"] <= 1.0 for r in inside)
    # Each report carries its epoch's seconds so far: the cost of a trial stopped mid-epoch.
    for epoch in (1, 2):
        seconds = [r["seconds"] for r in inside if r["epoch"] == epoch]
        assert seconds == sorted(seconds) and seconds[0] > 0


def test_the_benchmarks_count_the_seconds_of_an_epoch_stopped_by_a_report(tmp_path) -> None:
    """``benchmarks/chance_share.py`` (and the quality race through it): a trial pruned inside
    its second epoch costs its first epoch plus the second one's seconds to its last report."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import chance_share
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    trial = tmp_path / "trials" / "3"
    trial.mkdir(parents=True)
    (trial / "metrics.jsonl").write_text(json.dumps({"seconds": 2.0, "val_roc_auc": 0.8}) + "\n")
    reports = [(1, 0.5), (2, 0.6), (2, 1.1)]
    (trial / "reports.jsonl").write_text(
        "".join(json.dumps({"epoch": e, "seconds": s}) + "\n" for e, s in reports)
    )
    judged = chance_share.trial_of(trial / "metrics.jsonl", 1000)
    assert judged is not None and judged.seconds == pytest.approx(3.1) and not judged.chance
    (trial / "metrics.jsonl").unlink()  # stopped inside its first epoch: counted, not "chance"
    (trial / "reports.jsonl").write_text(json.dumps({"epoch": 1, "seconds": 0.4}) + "\n")
    first = chance_share.trial_of(trial / "metrics.jsonl", 1000)
    assert first is not None and first.seconds == pytest.approx(0.4) and not first.chance


def test_a_trial_resumed_mid_epoch_reports_the_same_steps(mlp_context, tmp_path) -> None:
    whole = _study()
    run_trial(_ctx(mlp_context, tmp_path / "whole"), whole.ask())
    ctx = _ctx(mlp_context, tmp_path / "cut")
    reports = tmp_path / "cut/trials/0/reports.jsonl"

    def in_epoch_2() -> bool:  # after the report at 300 samples, before the epoch's end
        return reports.exists() and len(reports.read_text().splitlines()) >= 5

    study = _study()
    trial = study.ask()
    with pytest.raises(Interrupted):
        run_trial(ctx, trial, in_epoch_2)
    run_trial(ctx, optuna.Trial(study, trial._trial_id), resume=True)
    assert study.trials[0].intermediate_values == whole.trials[0].intermediate_values
    steps = [r["samples"] for r in _lines(reports)]
    assert steps == [r["samples"] for r in _lines(tmp_path / "whole/trials/0/reports.jsonl")]


def _finished(study: optuna.Study, value: float, rung: bool = False) -> None:
    """A complete trial whose curve is ``value`` at every quarter (and ASHA's first rung)."""
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            value=value,
            params={"x": 0.5},
            distributions={"x": FloatDistribution(0, 1)},
            intermediate_values=dict.fromkeys(QUARTERS, value),
            system_attrs={"completed_rung_0": value} if rung else {},
        )
    )


@pytest.mark.parametrize(
    ("name", "options"),
    [("median", {"startup_trials": 1, "warmup_epochs": 1}), ("asha", {"min_epochs": 0.25})],
)
def test_median_and_asha_prune_inside_the_first_epoch(
    mlp_context, tmp_path, name: str, options: dict[str, float]
) -> None:
    pruner = make_pruner(name, 2, options, unit=200)
    study = _study(pruner)
    for _ in range(3):
        _finished(study, 1.0, rung=name == "asha")
    trial = study.ask()
    ctx = _ctx(mlp_context, tmp_path, model=lambda params, spec: Blind())
    with pytest.raises(optuna.TrialPruned, match="pruned after 50 samples in epoch 1"):
        run_trial(ctx, trial)
    frozen = study.trials[-1]
    assert frozen.user_attrs["pruned_because"] == "pruner"
    assert list(frozen.intermediate_values) == [50]


def test_pruner_units_are_samples_when_reports_fall_inside_the_epoch() -> None:
    asha = make_pruner("asha", 4, {"min_epochs": 0.25}, unit=1000)
    assert isinstance(asha, optuna.pruners.SuccessiveHalvingPruner)
    assert asha._min_resource == 250
    assert make_pruner("asha", 4, {"min_epochs": 2})._min_resource == 2  # per-epoch: epochs
    median = make_pruner("median", 6, {"warmup_epochs": 2}, unit=1000)
    assert median._n_warmup_steps == 1001  # the first epoch is never judged, as per epoch
