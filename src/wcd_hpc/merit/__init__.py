"""The figures of merit of a classifier, defined once: cuts, their numbers and their intervals.

Every place that quotes a gamma/hadron number — the sweep's objective, ``result.json``,
``binned.json``, the tables, MLflow, the figures, the classical baseline — computes it here, so
one name means one quantity everywhere (SCIENCE.md, "Numbers a referee accepts"). Pure numpy and
scipy: it sits below the plugins, so the metric plugins and the result writers both import it.

**Cuts.** A cut keeps the events whose signal score is at least a threshold ``t``. Three cuts:

- ``q_factor`` — the cut of largest Q = ε_s/√ε_b among the cuts that keep at least
  ``min_background`` background events (default :data:`MIN_BACKGROUND` = 10). With fewer the
  "optimum" is the Poisson fluctuation of one or two events. When no cut keeps that many (a sample
  with fewer background events in all) there is no value, and the reason says so. The optimum is
  *at the reach* when it sits at the tightest cut the minimum allows: a larger sample could show a
  larger Q, so the value is a lower limit (when that cut keeps every signal event it equals the
  sample's reach √(N_b/min_background)).
- ``q_at_eff`` — Q at the cut that keeps a fixed fraction of the signal (``efficiency``, default
  :data:`SIGNAL_EFFICIENCY` = 0.5): a stable objective, because the cut does not chase the tail.
  When that cut keeps fewer than ``min_background`` background events, ε_b is counted as
  ``min_background`` events: the value is the largest the sample can show, a lower limit, flagged
  ``at_reach`` — never an infinity.
- ``gamma_eff_1e2`` / ``gamma_eff_1e3`` — the largest ε_s among cuts with ε_b ≤ 10⁻² / 10⁻³.
  "Not measurable" (no value, with the reason) when the sample cannot put ``min_background``
  background events behind that survival, i.e. when N_b · survival < min_background.

**Choose on one sample, quote on another.** :func:`choose_cuts` picks the thresholds on one sample
(the validation split); :func:`measure` applies given thresholds to another (the test split). The
objective is a validation number, chosen and quoted on validation, like any objective.

**Intervals** (central, :data:`CONFIDENCE` = 68.27 %, the ±1σ of physics figures): efficiencies
get Clopper–Pearson (exact, never undercovers); Q, AUC and F1 get a percentile bootstrap over the
events (:data:`RESAMPLES` resamples, seeded with :data:`SEED`, so a rerun gives the same interval).
The bootstrap is vectorised: each resample is a row of event multiplicities, and every statistic
is computed from weighted counts, so a few hundred resamples of 10⁴ events cost well under a
second. When the cut was chosen on the same sample, each resample chooses its own cut again
(the interval then includes the cut's own jitter).
"""

from wcd_hpc.merit.cuts import (
    CUT_METRICS,
    MIN_BACKGROUND,
    SIGNAL_EFFICIENCY,
    SURVIVALS,
    Choice,
    Settings,
    Value,
    choose,
    choose_cuts,
    measure,
    measure_all,
    q_at_eff,
    q_factor,
    selection_curve,
    survival_efficiency,
)
from wcd_hpc.merit.intervals import (
    CONFIDENCE,
    RESAMPLES,
    SEED,
    bootstrap_auc,
    bootstrap_f1,
    clopper_pearson,
    format_values,
    percentile_interval,
    resample_weights,
    rounded,
)

__all__ = [
    "CONFIDENCE",
    "CUT_METRICS",
    "MIN_BACKGROUND",
    "RESAMPLES",
    "SEED",
    "SIGNAL_EFFICIENCY",
    "SURVIVALS",
    "Choice",
    "Settings",
    "Value",
    "bootstrap_auc",
    "bootstrap_f1",
    "choose",
    "choose_cuts",
    "clopper_pearson",
    "format_values",
    "measure",
    "measure_all",
    "percentile_interval",
    "q_at_eff",
    "q_factor",
    "resample_weights",
    "rounded",
    "selection_curve",
    "survival_efficiency",
]
