"""A trial keeps its best validation epoch, not its last (issue 28): ``keep: best | last``."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from torch import nn

from wcd_hpc.api import Model
from wcd_hpc.engine.fit import Interrupted
from wcd_hpc.engine.trial import run_trial

optuna.logging.set_verbosity(optuna.logging.ERROR)
BATCHES = 7  # mlp_context: 200 training events in batches of 32
#: How much of the true signal the validation scores carry after each epoch: peaks at epoch 2.
QUALITY = {1: 0.0, 2: 1.0, 3: 0.5, 4: 0.2}


class Peaking(nn.Module):
    """Trains a real linear layer (its weights change every epoch) and counts its training
    steps in a buffer; evaluated, it scores events with the quality of the epoch it has reached,
    so its validation metric peaks at epoch 2 and a model loaded from epoch 2 scores as epoch 2."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 2)
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.steps += 1
            return self.linear(x)
        q = QUALITY[min(4, max(1, math.ceil(int(self.steps) / BATCHES)))]
        signal = x.sum(dim=1) - 4  # every feature is noise + class: this separates them well
        score = q * signal + (1 - q) * 3 * (x[:, 1] - x[:, 2])  # x1 - x2 carries no class
        return torch.stack([-score, score], dim=1) + 0 * self.linear(x)


def _ctx(mlp_context: Any, where: Path, epochs: int, keep: str = "best") -> Any:
    ctx = mlp_context(epochs=epochs, where=where)
    extras = {**ctx.exp.extras, "keep": keep, "prune_chance": False}
    exp = dataclasses.replace(ctx.exp, extras=extras)
    return dataclasses.replace(ctx, exp=exp, model=Model("mlp", lambda p, s: Peaking()))


def _study() -> optuna.Study:
    """Seeded: every run draws the same parameters, so their training is the same."""
    sampler = optuna.samplers.RandomSampler(seed=0)
    return optuna.create_study(
        direction="maximize", sampler=sampler, pruner=optuna.pruners.NopPruner()
    )


def _run(ctx: Any, stop: Any = lambda: False) -> tuple[optuna.Study, float]:
    study = _study()
    return study, run_trial(ctx, study.ask(), stop)


def _files(where: Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, torch.Tensor]]:
    out = where / "trials" / "0"
    result = json.loads((out / "result.json").read_text())
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return result, history, torch.load(out / "model.pt", weights_only=True)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def epoch_two(mlp_context: Any, tmp_path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """What a run that stops at epoch 2 writes (the reference: training is deterministic)."""
    _run(_ctx(mlp_context, tmp_path / "two", 2, keep="last"))
    result, _, weights = _files(tmp_path / "two")
    return result, weights


def test_a_trial_keeps_the_weights_and_objective_of_its_best_validation_epoch(
    mlp_context: Any, tmp_path: Path, epoch_two: Any
) -> None:
    study, value = _run(_ctx(mlp_context, tmp_path / "best", 4))
    result, history, weights = _files(tmp_path / "best")
    values = [r["val_accuracy"] for r in history]
    assert values.index(max(values)) == 1 and values[3] < values[1]  # the peak is epoch 2
    assert result["kept_epoch"] == 2 and result["keep"] == "best" and result["epochs"] == 4
    assert value == result["objective"] == values[1] == result["val"]["val_accuracy"]
    reference, reference_weights = epoch_two
    assert _same(weights, reference_weights)  # model.pt holds epoch 2's tensors
    assert int(weights["steps"]) == 2 * BATCHES
    assert result["test"] == reference["test"]  # test metrics from those weights
    assert study.trials[0].user_attrs["kept_epoch"] == 2
    assert study.trials[0].user_attrs["test"] == reference["test"]
    # The pruner saw every epoch's own value, not the kept one.
    assert list(study.trials[0].intermediate_values.values()) == values


def test_keep_last_keeps_the_last_epoch_as_before(mlp_context: Any, tmp_path: Path) -> None:
    _, value = _run(_ctx(mlp_context, tmp_path / "last", 4, keep="last"))
    result, history, weights = _files(tmp_path / "last")
    assert result["kept_epoch"] == 4 and value == history[-1]["val_accuracy"]
    assert int(weights["steps"]) == 4 * BATCHES


def test_the_kept_epoch_survives_a_suspend_and_resume(
    mlp_context: Any, tmp_path: Path, epoch_two: Any
) -> None:
    ctx = _ctx(mlp_context, tmp_path / "resumed", 4)
    history = tmp_path / "resumed/trials/0/metrics.jsonl"

    def after_epoch_3() -> bool:
        return history.exists() and len(history.read_text().splitlines()) >= 3

    study = _study()
    trial = study.ask()
    with pytest.raises(Interrupted):
        run_trial(ctx, trial, after_epoch_3)
    checkpoint = torch.load(tmp_path / "resumed/trials/0/checkpoint.pt", weights_only=False)
    assert checkpoint["epoch"] == 3 and checkpoint["kept"]["epoch"] == 2  # resume: the last
    value = run_trial(ctx, optuna.Trial(study, trial._trial_id), resume=True)
    result, history_lines, weights = _files(tmp_path / "resumed")
    assert [r["epoch"] for r in history_lines] == [1, 2, 3, 4]
    assert result["kept_epoch"] == 2 and value == history_lines[1]["val_accuracy"]
    assert _same(weights, epoch_two[1])
    assert result["test"] == epoch_two[0]["test"]
