"""Reports inside an epoch (``report_every`` below 1): what is scored, and where it is kept.

With epochs of many minutes and a few epochs per trial, one report per epoch leaves successive
halving little room (issue 24: at most ≈ 2.3× of the compute saved with 4 epochs). Every
``report_every`` of an epoch the trial scores its objective on a fixed validation subsample
(``report_subsample`` events, drawn once from the experiment's seed, so every trial and every
report is judged on the same events) and reports it at a step that counts the samples trained
so far: pruners then compare trials at the same amount of training, and ASHA's rungs are in
samples (:func:`wcd_hpc.engine.search.make_pruner`). The epoch's end still scores the whole
validation split, as with one report per epoch, at step ``epoch × training events``.

``metrics.jsonl`` keeps one line per epoch; the reports inside an epoch go to ``reports.jsonl``.
A trial resumed from its last checkpoint redoes the epoch that was cut: its batches, and so its
report steps, are the same, and the steps the pruner has already judged are not judged again.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wcd_hpc.api import Split


def val_subsample(split: Split, size: int, seed: int) -> Split:
    """``size`` events of ``split`` drawn once from ``seed`` (all of it when it is smaller);
    inputs read lazily keep their first ``size`` events (a random gather would read them all)."""
    n = len(split)
    if size >= n:
        return split
    if not isinstance(split.x, torch.Tensor):
        return Split(split.x[0:size], split.y[:size], {k: v[:size] for k, v in split.meta.items()})
    index = np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
    at = torch.from_numpy(index)
    meta = {k: np.asarray(v)[index] for k, v in split.meta.items()}
    return Split(split.x[at.to(split.x.device)], split.y[at.to(split.y.device)], meta)


@dataclass(frozen=True)
class Clock:
    """Where a trial stands in its training, as the chance-level rule counts it
    (:class:`wcd_hpc.engine.verdicts.ChanceRule`): its reports so far, those inside an epoch
    included, and its optimizer steps (a batch of ``batch`` events per step; inputs read lazily
    drop a window's last partial batch, so there a few steps fewer are counted than taken)."""

    marks: tuple[int, ...]  # the samples into an epoch at which a report falls inside it
    train: int  # training events
    batch: int

    def at(self, epoch: int, samples: int | None = None) -> tuple[int, int]:
        """``(report number, optimizer steps)`` at the report ``samples`` into ``epoch`` (one
        of ``marks``), or at the end of ``epoch`` when ``samples`` is None."""
        reports = len(self.marks) + 1
        steps = math.ceil(self.train / max(self.batch, 1))
        if samples is None:
            return epoch * reports, epoch * steps
        inside = self.marks.index(samples) + 1
        return (epoch - 1) * reports + inside, (epoch - 1) * steps + math.ceil(
            samples / max(self.batch, 1)
        )


def append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def trim(path: Path, epoch: int) -> None:
    """Drop the reports of epochs after ``epoch`` (the resumed checkpoint's): they are redone."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if int(json.loads(line)["epoch"]) <= epoch]
    path.write_text("".join(line + "\n" for line in kept))
