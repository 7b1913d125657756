"""Dataset file paths made absolute when an experiment is planned, before a study records them.

A path in an experiment file is relative to the directory the command was run from, like every
other path on the command line. Workers start elsewhere: a hand-submitted ``worker.sbatch`` in
whatever directory ``sbatch`` was run from, an array task in Slurm's working directory. So the
parameters a dataset declares as paths (``Dataset.path_params``) are resolved once, here, and the
study stores absolute paths.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from wcd_hpc.experiment.config import Experiment


def with_absolute_paths(exp: Experiment, dataset: Any, base: Path | None = None) -> Experiment:
    """``exp`` with the dataset's relative path parameters resolved against ``base`` (cwd)."""
    names = tuple(getattr(dataset, "path_params", ()) or ())
    params = dict(exp.dataset_params)
    changed = False
    for name in names:
        value = params.get(name)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            params[name] = str(((base or Path.cwd()) / Path(value).expanduser()).resolve())
            changed = True
    return dataclasses.replace(exp, dataset_params=params) if changed else exp
