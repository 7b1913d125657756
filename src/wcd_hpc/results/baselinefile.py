"""``wcd-hpc evaluate --baseline FILE.h5``: the classical baseline alone, on a footprint file.

Without a model the baseline still answers "how well does a physicist's cut do on these
events?" (:mod:`wcd_hpc.results.baseline`). Its cut must be chosen on other events than those
it is quoted on, so either ``train`` names a file to choose on (the training file of a
train/test pair), or the file's own events are split in two halves of whole 32-event blocks
(seeded, the dataset reader's :func:`~wcd_hpc.default_plugins.h5data.assign_rows`): the cut
is chosen on one half and quoted on the other. The file is read in bounded pieces; the
discriminants come from the raw signals (VEM), in the tank layout the file describes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wcd_hpc.default_plugins.h5data import FOOTPRINTS, assign_rows, inspect, make_split
from wcd_hpc.errors import DataError
from wcd_hpc.queue.schema import BASELINE_PLOT, PLOTS_DIR
from wcd_hpc.results import baseline, baselineplots
from wcd_hpc.results.plots import Classes, Provenance

__all__ = ["BaselineEvaluation", "evaluate_baseline", "file_sample"]

#: Seed of the half/half split of a file evaluated without a training file.
SPLIT_SEED = 0


@dataclass(frozen=True)
class BaselineEvaluation:
    out: Path
    events: int
    chosen_on: str
    overall: dict[str, Any]
    bins: list[dict[str, Any]]


def _identity(x: np.ndarray) -> np.ndarray:
    return x


def _sample(path: Path, rows: np.ndarray | None, names: tuple[str, ...] | None) -> Any:
    src = inspect(path, FOOTPRINTS, names)
    if "gamma" not in [c.lower() for c in src.classes]:
        raise DataError(
            f"{path}: classes {list(src.classes)} have no 'gamma'; the classical baseline "
            "separates gamma rays (signal) from hadrons"
        )
    picked = np.arange(src.events) if rows is None else rows
    split = make_split(src, picked, FOOTPRINTS, _identity, in_memory=False)
    signal = [c.lower() for c in src.classes].index("gamma")
    is_signal = split.y.numpy() == signal
    return src, baseline.Sample(is_signal, split.meta)


def file_sample(path: Path) -> baseline.Sample:
    """Every event of the footprint file ``path`` as the baseline sees it: which are gamma
    rays, and the discriminants computed from the raw signals (read in bounded pieces)."""
    sample: baseline.Sample = _sample(path, None, None)[1]
    return sample


def evaluate_baseline(
    path: Path, *, train: Path | None = None, out: Path | None = None
) -> BaselineEvaluation:
    """Choose the baseline's cuts on ``train`` (or half of ``path``), quote them on ``path``
    (or its other half); write ``binned.json`` and ``plots/baseline_vs_energy`` to ``out``."""
    if train is None:
        whole = inspect(path, FOOTPRINTS)
        choose_rows, quote_rows = assign_rows(whole.events, [0.5], SPLIT_SEED)
        src, chooser = _sample(path, choose_rows, None)
        _, quoted = _sample(path, quote_rows, None)
        chosen_on = f"half of {path.name} (blocks of 32 events, seed {SPLIT_SEED})"
        quoted_on = f"the other half of {path.name}"
    else:
        src, quoted = _sample(path, None, None)
        _, chooser = _sample(train, None, src.classes)
        chosen_on, quoted_on = train.name, path.name
    target = out or Path.cwd() / f"baseline-{path.stem}"
    target.mkdir(parents=True, exist_ok=True)
    payload = baseline.add_to_binned(
        target,
        chooser,
        quoted,
        train_energy=chooser.meta.get("energy"),
        test_energy=quoted.meta.get("energy"),
    )
    if payload is None:
        raise DataError(
            f"{train or path}: too few events to choose a cut: the baseline needs at least "
            f"{baseline.MIN_TRAIN_EVENTS} gamma and {baseline.MIN_TRAIN_EVENTS} hadron events"
        )
    rows = [r for r in payload["bins"] if "baseline_q_at_eff" in r]
    if rows:
        n = int(np.asarray(quoted.is_signal).size)
        header = Provenance(dataset=path.name, split=f"events: {quoted_on}").header(
            f"N = {n}; cuts chosen on {chosen_on}"
        )
        signal = [c.lower() for c in src.classes].index("gamma")
        folder = target / PLOTS_DIR
        folder.mkdir(exist_ok=True)
        baselineplots.plot_baseline_vs_energy(
            folder / BASELINE_PLOT, rows, Classes(tuple(src.classes), signal), header
        )
    return BaselineEvaluation(
        target, int(np.asarray(quoted.is_signal).size), chosen_on, payload["all"], rows
    )
