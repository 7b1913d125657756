"""How a worker picks parameters and judges running trials: the sampler and the pruner.

Many workers pull trials from one study at once, so the sampler must not hand two of them the
same parameters. Three things keep them apart:

- each new trial's parameters are sampled inside the claim lock
  (:func:`wcd_hpc.queue.claims.claim`), so a worker's sampler sees every trial claimed before,
  running ones included (TPE's constant liar then treats those as bad results, which pushes the
  next proposal elsewhere);
- :class:`DistinctSampler` draws the whole parameter set jointly and redraws one that another
  trial already has (exactly the same values, which on a discrete space happens by chance);
- TPE's random start-up phase grows with the number of workers: with W workers the first W
  trials all start before any has a result, so ``max(10, 2·W)`` random trials come first.

TPE is multivariate and grouped, so list parameters (``channels.0``, ``channels.1``) are
modelled together rather than one by one.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

from wcd_hpc.experiment.pruning import options_with_defaults
from wcd_hpc.experiment.space import Space
from wcd_hpc.queue.schema import SYSTEM_FIXED_PARAMS

#: How often a duplicate proposal is redrawn from the sampler, then at random, before giving up
#: (a discrete space smaller than the number of trials cannot avoid repeats).
REDRAWS = 8
RANDOM_REDRAWS = 64
_TAKEN_STATES = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING)


def grid_of(space: Space) -> dict[str, list[Any]]:
    """The full grid of a discrete space, for the grid sampler; continuous parameters raise."""
    grid: dict[str, list[Any]] = {}
    for name, dist in space.distributions().items():
        if isinstance(dist, CategoricalDistribution):
            grid[name] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            grid[name] = list(range(dist.low, dist.high + 1, dist.step))
        elif isinstance(dist, FloatDistribution) and dist.step is not None:
            count = round((dist.high - dist.low) / dist.step) + 1
            grid[name] = [dist.low + i * dist.step for i in range(count)]
        else:
            raise ValueError(
                f"the grid sampler needs discrete parameters (choice, range, randint); "
                f"'{name}' is continuous"
            )
    return grid


def grid_size(grid: dict[str, list[Any]]) -> int:
    size = 1
    for values in grid.values():
        size *= len(values)
    return size


def startup_trials(workers: int) -> int:
    """Random trials before TPE models anything: every worker's first trial starts blind."""
    return max(10, 2 * workers)


def worker_seed(seed: int, worker: str) -> int:
    """A sampler seed per worker: reproducible for one experiment seed, different per worker
    (the same seed everywhere would make every worker propose the same start-up trials)."""
    return (seed * 100_003 + zlib.crc32(worker.encode())) % 2**31


def make_sampler(
    name: str, space: Space, *, seed: int = 0, worker: str = "", workers: int = 1
) -> optuna.samplers.BaseSampler:
    """The experiment's sampler, wrapped so that concurrent workers get distinct parameters.

    ``seed`` is the experiment's: the grid sampler needs the same one in every worker (it
    shuffles the grid with it, and workers exchange grid-point numbers), the others get a
    seed of their own per ``worker`` label.
    """
    if name == "grid":  # visits every point once by construction
        return optuna.samplers.GridSampler(grid_of(space), seed=seed)
    seed = worker_seed(seed, worker)
    with warnings.catch_warnings():  # multivariate/group TPE are flagged experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        base: BaseSampler
        if name == "random":
            base = RandomSampler(seed=seed)
        elif name == "cmaes":
            base = optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        elif name == "qmc":
            base = optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
        else:  # "tpe" models parameters jointly; "tpe-independent" one by one, as Hydra's does
            joint = name == "tpe"
            base = optuna.samplers.TPESampler(
                seed=seed,
                constant_liar=True,
                multivariate=joint,
                group=joint,
                n_startup_trials=startup_trials(workers),
            )
    return DistinctSampler(base, space.distributions(), seed, independent=name == "tpe-independent")


def make_pruner(
    name: str, epochs: int, options: Mapping[str, float] | None = None, unit: int = 1
) -> optuna.pruners.BasePruner:
    """The experiment's pruner with its knobs (defaults in :mod:`wcd_hpc.experiment.pruning`).

    ``unit`` is the steps in an epoch: 1 when trials report once per epoch (steps are epochs),
    the training events when they report inside it (``report_every`` below 1: steps are
    samples seen, so ASHA's ``min_resource`` is ``min_epochs`` × the training events, and the
    median's warm-up of W epochs judges from the first report after W − 1 epochs, as it does
    with one report per epoch).
    """
    knobs = options_with_defaults(name, options or {}, epochs)
    if name == "none":
        return optuna.pruners.NopPruner()
    if name in ("asha", "hyperband"):
        least = max(1, math.ceil(knobs["min_epochs"] * unit - 1e-9))
        factor = int(knobs["reduction_factor"])
        if name == "asha":
            return optuna.pruners.SuccessiveHalvingPruner(
                min_resource=least, reduction_factor=factor
            )
        return optuna.pruners.HyperbandPruner(
            min_resource=least, max_resource=max(epochs, 1) * unit, reduction_factor=factor
        )
    warmup = int(knobs["warmup_epochs"])
    steps = warmup if unit == 1 or warmup == 0 else (warmup - 1) * unit + 1
    return optuna.pruners.MedianPruner(
        n_startup_trials=int(knobs["startup_trials"]), n_warmup_steps=steps
    )


def _key(params: Mapping[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
    return tuple(params.get(name) for name in names)


class DistinctSampler(BaseSampler):
    """Draws whole parameter sets and never proposes one a live or finished trial already has.

    The base sampler's joint ("relative") proposal is used when it covers the whole space (TPE
    after its start-up); a base that models each parameter on its own (``independent``, as
    ``tpe-independent``) proposes the set parameter by parameter, here, so that the set can be
    compared with the others; otherwise, and in the start-up phase, the set is drawn at random
    here, jointly. Failed trials do not count: their parameters may be tried again.
    """

    def __init__(
        self,
        base: BaseSampler,
        space: Mapping[str, BaseDistribution],
        seed: int | None,
        *,
        independent: bool = False,
    ) -> None:
        self.base = base
        self.space = dict(space)
        self.random = RandomSampler(seed=seed)
        self.independent = independent

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return dict(self.space)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        names = sorted(search_space)
        taken = self._taken(study, trial, names)
        inner = self.base.infer_relative_search_space(study, trial)
        params: dict[str, Any] = {}
        if set(inner) >= set(search_space):
            for _ in range(REDRAWS):
                params = self.base.sample_relative(study, trial, inner)
                if set(params) >= set(names) and _key(params, names) not in taken:
                    return {n: params[n] for n in names}
        # Parameter by parameter: the base's own model first when it has one, then at random.
        tries = [(self.base, REDRAWS)] if self.independent else []
        for sampler, times in [*tries, (self.random, RANDOM_REDRAWS)]:
            for _ in range(times):
                params = {
                    n: sampler.sample_independent(study, trial, n, d)
                    for n, d in search_space.items()
                }
                if _key(params, names) not in taken:
                    return params
        return params  # the space is exhausted: a repeat is unavoidable

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()
        self.random.reseed_rng()

    @staticmethod
    def _taken(
        study: optuna.Study, trial: FrozenTrial, names: Sequence[str]
    ) -> set[tuple[Any, ...]]:
        taken = set()
        for other in study.get_trials(deepcopy=False, states=_TAKEN_STATES):
            if other.number == trial.number:
                continue
            params = other.params or other.system_attrs.get(SYSTEM_FIXED_PARAMS, {})
            if params:
                taken.add(_key(params, names))
        return taken
