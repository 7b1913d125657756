"""A study made before ``metric.min_background`` existed (issue 23): its q_factor values are of
the old definition (best Q over every cut, no minimum background), so resuming it is refused in
one line that names the study and says what to do, instead of mixing two definitions."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from wcd_hpc.errors import StudyConflict
from wcd_hpc.experiment.config import Experiment, load_experiment
from wcd_hpc.experiment.space import Space
from wcd_hpc.queue.definitions import MIN_BACKGROUND_KEY
from wcd_hpc.queue.schema import STUDY_EXPERIMENT
from wcd_hpc.queue.study import prepare
from wcd_hpc.store.storage import Storage

SPACE = Space.from_mapping({"lr": "loguniform(1e-4, 1e-2)"})

MEMORY = Storage.parse("memory")


def _experiment(tmp_path: Path, metric: str, *sets: str) -> Experiment:
    path = tmp_path / "gh.yaml"
    path.write_text(
        f"name: gh\ndataset: footprint-sim\nmodel: lenet\nmetric: {metric}\ntrials: 4\n"
        "executor: local\n"
    )
    return load_experiment(str(path), overrides=sets)


def _aged(storage: optuna.storages.BaseStorage) -> None:
    """Make the stored experiment look as one stored before the key existed."""
    study = optuna.load_study(study_name="gh", storage=storage)
    stored = dict(study.user_attrs[STUDY_EXPERIMENT])
    del stored[MIN_BACKGROUND_KEY]
    study.set_user_attr(STUDY_EXPERIMENT, stored)


def test_resuming_a_q_factor_study_of_the_old_definition_is_refused(tmp_path: Path) -> None:
    storage = optuna.storages.InMemoryStorage()
    exp = _experiment(tmp_path, "q_factor")
    prepare(exp, SPACE, MEMORY, storage, tmp_path)
    prepare(exp, SPACE, MEMORY, storage, tmp_path)  # the current definition: resumes
    _aged(storage)
    with pytest.raises(StudyConflict) as info:
        prepare(exp, SPACE, MEMORY, storage, tmp_path)
    text = str(info.value)
    assert "\n" not in text and text.startswith("study 'gh' in memory optimises q_factor")
    assert "metric.min_background" in text and "--set name=gh-v2" in text
    stored = optuna.load_study(study_name="gh", storage=storage).user_attrs[STUDY_EXPERIMENT]
    assert MIN_BACKGROUND_KEY not in stored  # refused before the study was touched
    renamed = _experiment(tmp_path, "q_factor", "name=gh-v2")
    assert prepare(renamed, SPACE, MEMORY, storage, tmp_path).created


def test_a_study_whose_metric_has_no_cut_resumes_whatever_its_age(tmp_path: Path) -> None:
    storage = optuna.storages.InMemoryStorage()
    exp = _experiment(tmp_path, "f1")
    prepare(exp, SPACE, MEMORY, storage, tmp_path)
    _aged(storage)
    assert not prepare(exp, SPACE, MEMORY, storage, tmp_path).created


def test_a_changed_minimum_background_is_a_changed_experiment(tmp_path: Path) -> None:
    storage = optuna.storages.InMemoryStorage()
    prepare(_experiment(tmp_path, "q_factor"), SPACE, MEMORY, storage, tmp_path)
    with pytest.raises(StudyConflict, match=r"changed: metric\.min_background"):
        more = _experiment(tmp_path, "q_factor", "metric.min_background=20")
        prepare(more, SPACE, MEMORY, storage, tmp_path)
