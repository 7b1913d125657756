"""``start_from``: a new study's first trials are another study's best configurations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState, create_trial

from wcd_hpc.errors import ConfigError
from wcd_hpc.experiment.space import Space
from wcd_hpc.launch.sweep import Plan, plan, start
from wcd_hpc.plugins import get_registry
from wcd_hpc.queue import claims, warmstart
from wcd_hpc.queue.opened import OpenedStudy
from wcd_hpc.queue.schema import STUDY_WARM_START, TRIAL_WARM_START
from wcd_hpc.store.storage import Storage, open_storage
from wcd_hpc.store.urls import resolve

OLD_SPACE = {
    "lr": "loguniform(1e-4, 1e-2)",
    "optimizer": "choice(['adam', 'sgd'])",
    "reg": "loguniform(1e-4, 1e-1)",
    "channels": "[randint(2, 20), randint(2, 20)]",
}
EXPERIMENT = """\
name: {name}
dataset: {{name: footprint-sim, params: {{events: 200}}}}
model: lenet
metric: {{name: f1, direction: maximize}}
trials: 8
epochs: 1
runs_dir: {runs}
executor: local
param_space:
  lr: loguniform(1e-4, 1e-2)
  batch_size: 64
  optimizer: choice(['adam', 'sgd'])
  reg: {reg}
  channels: "[randint(2, 20), randint(2, 20)]"
{extra}"""


def _old_study(runs: Path, values: list[float], reg: float = 3e-4) -> list[dict[str, Any]]:
    """Study ``old`` in its journal under ``runs``: one complete trial per value (plus a pruned
    and a failed one, which never count); returns each complete trial's parameters."""
    url = resolve("journal", runs / "old")
    study = optuna.create_study(study_name="old", storage=open_storage(url), direction="maximize")
    dists: dict[str, BaseDistribution] = Space.from_mapping(OLD_SPACE).distributions()
    made = []
    for i, value in enumerate(values):
        params = {
            "lr": 1e-3 * (1 + i),
            "optimizer": "adam" if i % 2 else "sgd",
            "reg": reg,
            "channels.0": 2 + i,
            "channels.1": 20 - i,
        }
        study.add_trial(create_trial(params=params, distributions=dists, value=value))
        made.append(params)
    for state in (TrialState.PRUNED, TrialState.FAIL):
        params = dict(made[0], lr=9e-3)
        study.add_trial(create_trial(params=params, distributions=dists, state=state))
    return made


@pytest.fixture
def experiment(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str = "new", reg: str = "loguniform(1e-4, 1e-1)", extra: str = "") -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(EXPERIMENT.format(name=name, runs=tmp_path / "runs", reg=reg, extra=extra))
        return path

    return write


def _claim(p: Plan, study: optuna.Study, count: int) -> list[optuna.Trial]:
    taken = []
    for _ in range(count):
        opened = OpenedStudy(study, Storage.parse(p.url), p.run_dir)
        claimed = claims.claim(opened, "test", sample=p.space.suggest)
        assert claimed is not None
        taken.append(claimed[0])
    return taken


def test_a_new_study_starts_with_the_old_studys_best_k_parameter_sets(
    tmp_path: Path, experiment: Callable[..., Path]
) -> None:
    old = _old_study(tmp_path / "runs", [0.71, 0.93, 0.55, 0.88, 0.90])
    p = plan(experiment(extra="start_from: {study: old, top: 3}\n"), get_registry())
    assert p.warm is not None and p.warnings() == []
    study, prepared = start(p)
    assert prepared.warm_started == 3

    first = _claim(p, study, 3)
    best = [old[1], old[4], old[3]]  # values 0.93, 0.90, 0.88
    frozen = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert [frozen[t.number].params for t in first] == best
    assert [frozen[t.number].user_attrs[TRIAL_WARM_START] for t in first] == [
        "old#1",
        "old#4",
        "old#3",
    ]
    (after,) = _claim(p, study, 1)  # then the sampler, as usual
    assert TRIAL_WARM_START not in study.get_trials(deepcopy=False)[after.number].user_attrs
    assert study.user_attrs[STUDY_WARM_START]["trials"] == [1, 4, 3]

    # Resumed: the warm start is done; nothing is enqueued again.
    again = plan(experiment(extra="start_from: {study: old, top: 3}\n"), get_registry())
    assert again.warm is None
    _, prepared = start(again)
    assert prepared.warm_started == 0
    assert not warmstart.enqueue(OpenedStudy(study, Storage.parse(p.url), p.run_dir), p.warm)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert TrialState.WAITING not in states and len(states) == 4


def test_a_parameter_outside_the_new_space_is_skipped_with_a_warning_line(
    tmp_path: Path, experiment: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    old = _old_study(tmp_path / "runs", [0.8, 0.9], reg=0.05)
    path = experiment(reg="loguniform(1e-6, 1e-3)", extra="start_from: old\n")
    p = plan(path, get_registry())
    (line,) = p.warnings()
    assert "'reg'" in line and "0.05" in line and "loguniform(1e-06, 0.001)" in line

    study, _ = start(p)
    first = _claim(p, study, 2)
    for trial, params in zip(first, [old[1], old[0]], strict=True):
        got = study.get_trials(deepcopy=False)[trial.number].params
        assert {k: v for k, v in got.items() if k != "reg"} == {
            k: v for k, v in params.items() if k != "reg"
        }
        assert 1e-6 <= got["reg"] <= 1e-3  # drawn by the sampler, inside the new space

    shown = cli(
        "sweep",
        str(experiment(name="newer", reg="loguniform(1e-6, 1e-3)", extra="start_from: old\n")),
        "--dry-run",
    )
    assert shown.code == 0, shown.err
    warned = [x for x in shown.err.splitlines() if "'reg'" in x]
    assert len(warned) == 1 and "start_from" in warned[0] and "skipped" in warned[0]


def test_a_missing_source_study_is_one_line_at_start_from(
    tmp_path: Path, experiment: Callable[..., Path]
) -> None:
    _old_study(tmp_path / "runs", [0.5])
    with pytest.raises(ConfigError) as raised:
        plan(experiment(extra="start_from: olde\n"), get_registry())
    text = str(raised.value)
    assert "\n" not in text and ": start_from: no study 'olde'" in text
    assert not (tmp_path / "runs" / "new").exists()  # refused before anything was created


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{study: old, tpo: 2}", "start_from.tpo: unknown"),
        ("{study: old, top: 0}", "start_from.top: expected a positive integer"),
        ("{top: 2}", "start_from.study: missing"),
        ("'../old'", "start_from.study: expected a study name"),
        ("{study: old, storage: 'mongodb://x'}", "start_from.storage: expected journal"),
    ],
)
def test_a_malformed_start_from_names_its_key(
    experiment: Callable[..., Path], value: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        plan(experiment(extra=f"start_from: {value}\n"), get_registry())


def test_a_warm_start_never_enqueues_more_than_the_budget(
    tmp_path: Path, experiment: Callable[..., Path]
) -> None:
    _old_study(tmp_path / "runs", [0.1, 0.2, 0.3, 0.4])
    p = plan(experiment(extra="start_from: old\n"), get_registry(), sets=["trials=2"])
    assert p.warm is not None and p.warm.trials == (3, 2)
