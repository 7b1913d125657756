"""A study created under an older default resumes from its unchanged file and keeps that default.

``prune_chance.min_steps`` came with 0 and became 16: a study stored before (its
``prune_chance`` without ``min_steps``) must neither be refused as changed nor switch its
remaining trials to the new rule; a ``min_steps`` the user writes is compared as usual.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from wcd_hpc.engine.verdicts import chance_rule
from wcd_hpc.errors import StudyConflict
from wcd_hpc.experiment.config import Experiment, load_experiment
from wcd_hpc.experiment.resume import carried_over, changed_keys
from wcd_hpc.experiment.space import Space
from wcd_hpc.queue.schema import STUDY_EXPERIMENT
from wcd_hpc.queue.study import prepare
from wcd_hpc.store.storage import Storage

SPACE = Space.from_mapping({"lr": "loguniform(1e-4, 1e-2)"})
MEMORY = Storage.parse("memory")


def _experiment(tmp_path: Path, extra: str = "", *sets: str) -> Experiment:
    path = tmp_path / "old.yaml"
    path.write_text(
        "name: old\ndataset: footprint-sim\nmodel: lenet\ntrials: 4\nexecutor: local\n" + extra
    )
    return load_experiment(str(path), overrides=sets)


def _stored(storage: optuna.storages.BaseStorage) -> dict:
    study = optuna.load_study(study_name="old", storage=storage)
    return dict(study.user_attrs[STUDY_EXPERIMENT])


def _aged(storage: optuna.storages.BaseStorage) -> None:
    """Make the stored experiment look as one stored before ``min_steps`` existed."""
    study = optuna.load_study(study_name="old", storage=storage)
    stored = dict(study.user_attrs[STUDY_EXPERIMENT])
    stored["prune_chance"] = {"after": 1, "auc_margin": 0.0}
    study.set_user_attr(STUDY_EXPERIMENT, stored)


def test_a_new_experiment_judges_chance_after_16_steps_and_stores_it(tmp_path: Path) -> None:
    storage = optuna.storages.InMemoryStorage()
    prepare(_experiment(tmp_path), SPACE, MEMORY, storage, tmp_path)
    stored = _stored(storage)["prune_chance"]
    assert stored == {"after": 1, "auc_margin": 0.0, "min_steps": 16}
    assert chance_rule(stored).min_steps == 16


@pytest.mark.parametrize("extra", ["", "prune_chance: true\n", "prune_chance: {auc_margin: 0}\n"])
def test_an_old_study_resumes_from_its_unchanged_file_and_keeps_min_steps_0(
    tmp_path: Path, extra: str
) -> None:
    storage = optuna.storages.InMemoryStorage()
    prepare(_experiment(tmp_path, extra), SPACE, MEMORY, storage, tmp_path)
    _aged(storage)
    resumed = prepare(_experiment(tmp_path, extra), SPACE, MEMORY, storage, tmp_path)
    assert not resumed.created
    stored = _stored(storage)["prune_chance"]
    assert "min_steps" not in stored  # what its workers read: the old rule, 0 steps
    assert chance_rule(stored).min_steps == 0


def test_an_old_study_resumed_with_min_steps_0_written_out_is_the_same_experiment(
    tmp_path: Path,
) -> None:
    storage = optuna.storages.InMemoryStorage()
    prepare(_experiment(tmp_path), SPACE, MEMORY, storage, tmp_path)
    _aged(storage)
    prepare(_experiment(tmp_path, "", "prune_chance.min_steps=0"), SPACE, MEMORY, storage, tmp_path)
    assert chance_rule(_stored(storage)["prune_chance"]).min_steps == 0


@pytest.mark.parametrize(
    "how",
    [("prune_chance: {min_steps: 16}\n",), ("", "prune_chance.min_steps=16")],
    ids=["file", "set"],
)
def test_an_old_study_resumed_with_min_steps_16_written_is_refused_and_left_alone(
    tmp_path: Path, how: tuple[str, ...]
) -> None:
    storage = optuna.storages.InMemoryStorage()
    prepare(_experiment(tmp_path), SPACE, MEMORY, storage, tmp_path)
    _aged(storage)
    with pytest.raises(StudyConflict) as info:
        prepare(_experiment(tmp_path, *how), SPACE, MEMORY, storage, tmp_path)
    text = str(info.value)
    assert "\n" not in text and "(changed: prune_chance)" in text
    assert _stored(storage)["prune_chance"] == {"after": 1, "auc_margin": 0.0}


def test_dropping_a_min_steps_the_study_was_created_with_is_a_change(
    tmp_path: Path,
) -> None:
    storage = optuna.storages.InMemoryStorage()
    forty = _experiment(tmp_path, "prune_chance: {min_steps: 40}\n")
    prepare(forty, SPACE, MEMORY, storage, tmp_path)
    with pytest.raises(StudyConflict):  # dropping a knob the study was created with is a change
        prepare(_experiment(tmp_path), SPACE, MEMORY, storage, tmp_path)
    assert _stored(storage)["prune_chance"]["min_steps"] == 40


def test_carried_over_fills_only_knobs_nobody_wrote(tmp_path: Path) -> None:
    old = {"prune_chance": {"after": 2, "auc_margin": 0.0}}
    unwritten = carried_over(old, _experiment(tmp_path, "prune_chance: {after: 2}\n"))
    assert unwritten.setting("prune_chance") == {"after": 2, "auc_margin": 0.0}
    written = carried_over(old, _experiment(tmp_path, "prune_chance: {min_steps: 8}\n"))
    assert written.setting("prune_chance")["min_steps"] == 8
    off = carried_over(old, _experiment(tmp_path, "prune_chance: false\n"))
    assert off.setting("prune_chance") is False
    assert changed_keys(old | _bare(tmp_path), off) == ["prune_chance"]


def _bare(tmp_path: Path) -> dict:
    exp = _experiment(tmp_path).to_dict()
    exp.pop("prune_chance")
    return exp
