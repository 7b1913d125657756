"""What one race of ``benchmarks/quality.py`` measured, and the numbers a sitting is judged on.

A race is one contender's search in one repeat. Its trials carry when they trained (seconds since
the contender was started), their validation objective, their training seconds and whether they
sat at chance level; from these come the best-so-far curve, the time and the training seconds to
a target, and the share of training seconds spent on chance-level trials. The target is one for
the whole sitting (:func:`choose_target`), so every race is held to the same bar.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Trial:
    number: int
    state: str  # COMPLETE, PRUNED or FAIL
    start: float | None  # its training began, seconds since the contender was started
    end: float | None  # its result existed (wcd-hpc's tell, the end of Hydra's train)
    value: float | None  # validation objective (complete trials)
    test: float | None  # the same metric on the test split (never used to choose)
    epoch_s: float  # training seconds: the sum of its metrics.jsonl epochs
    chance: bool  # pruned because chance, or its last validation AUC interval holds 0.5
    half_width: float | None = None  # of its objective's 68 % bootstrap interval


@dataclass
class Race:
    contender: str
    repeat: int
    wall: float = 0.0
    trials: list[Trial] = field(default_factory=list)
    jobs: int = 0  # Slurm allocations seen by sacct
    held_s: float = 0.0  # slot-seconds Slurm allocated (start-up and idle included)
    error: str | None = None

    def curve(self) -> list[tuple[float, float]]:
        """(time, best validation objective so far) at each complete trial's end."""
        best, out = -math.inf, []
        done = [t for t in self.trials if t.value is not None and t.end is not None]
        for t in sorted(done, key=lambda t: t.end or 0.0):
            best = max(best, t.value or -math.inf)
            out.append((t.end or 0.0, best))
        return out

    def final(self) -> float | None:
        curve = self.curve()
        return curve[-1][1] if curve else None

    def best_trial(self) -> Trial | None:
        done = [t for t in self.trials if t.value is not None]
        return max(done, key=lambda t: t.value or -math.inf) if done else None

    def time_to(self, target: float) -> float | None:
        return next((t for t, b in self.curve() if b >= target), None)

    def train_s(self) -> float:
        return sum(t.epoch_s for t in self.trials)

    def train_s_until(self, when: float) -> float:
        """Training seconds spent before ``when``: a trial running then counts pro rata."""
        spent = 0.0
        for t in self.trials:
            if t.start is None or t.end is None or t.start >= when:
                continue
            share = 1.0 if t.end <= when else (when - t.start) / max(t.end - t.start, 1e-9)
            spent += t.epoch_s * share
        return spent

    def chance_share(self) -> float | None:
        total = self.train_s()
        return sum(t.epoch_s for t in self.trials if t.chance) / total if total else None

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.trials)


@dataclass(frozen=True)
class Target:
    value: float
    top: float  # the best validation objective any race reached
    spread: float  # median over contenders of the IQR of their races' final best values
    noise: float  # median half-width of the races' best trials' 68 % intervals


def iqr(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[2] - q[0]


def choose_target(races: Sequence[Race]) -> Target | None:
    """The best value any race reached, less a margin the sitting itself measured.

    The margin is the larger of two noises: how much one contender's final best moves from
    repeat to repeat (the IQR over repeats, the median of it over contenders), and how much one
    trial's validation value moves with the events it is scored on (the half-width of its 68 %
    bootstrap interval, median over the races' best trials). A target closer to the top than
    either is a lottery ticket: which race reaches it says who was lucky, not who searched well.
    """
    finals = [(r.contender, f) for r in races if (f := r.final()) is not None]
    if not finals:
        return None
    by_contender: dict[str, list[float]] = {}
    for contender, value in finals:
        by_contender.setdefault(contender, []).append(value)
    spread = statistics.median(iqr(v) for v in by_contender.values())
    widths = [b.half_width for r in races if (b := r.best_trial()) and b.half_width is not None]
    noise = statistics.median(widths) if widths else 0.0
    top = max(f for _, f in finals)
    return Target(top - max(spread, noise), top, spread, noise)


@dataclass(frozen=True)
class Spread:
    """Median and range over repeats; a repeat that never reached the target counts as inf."""

    median: float
    low: float
    high: float
    reached: int
    of: int

    @classmethod
    def of_values(cls, values: Sequence[float | None]) -> Spread | None:
        if not values:
            return None
        xs = sorted(math.inf if v is None else v for v in values)
        reached = sum(v is not None for v in values)
        return cls(statistics.median(xs), xs[0], xs[-1], reached, len(values))


def to_target(races: Sequence[Race], target: Target) -> tuple[Spread | None, Spread | None]:
    """(training seconds, wall seconds) to the target over a contender's races."""
    walls = [r.time_to(target.value) for r in races]
    trains = [None if w is None else r.train_s_until(w) for r, w in zip(races, walls, strict=True)]
    return Spread.of_values(trains), Spread.of_values(walls)
