"""Projected final cost of a job (P50/P90) from its plan, its actual cost and past jobs.

Two sources, blended by how much history there is:

* **planned** (earned value): progress is the planned cost of the work done, EV; the job's own
  cost performance CPI = EV / AC is shrunk toward a population CPI by fraction complete, because a
  single job's early CPI is unreliable; EAC = AC + (BAC - EV) / CPI.
* **history**: ratios final cost / cost so far of finished jobs at the same stage, applied to AC
  (or remaining-cost samples when nothing has been spent yet).

With ``n`` history samples the history gets weight ``n / (n + n0)``. Cost never goes down, so
P90 >= P50 >= AC; amounts are never negative and are rounded to the currency's minor units.

The method is implemented once, in float64 over numpy arrays (:func:`project_costs_many`, one
element per job, for the bulk recomputation); :func:`project_cost` runs the same core on arrays
of length 1 and converts the result to ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

import numpy as np
import numpy.typing as npt

CostBasis = Literal["actual", "planned", "history", "blend"]
# ``CostProjections.basis`` holds indexes into this tuple.
COST_BASES: tuple[CostBasis, ...] = ("actual", "planned", "history", "blend")
BASIS_ACTUAL, BASIS_PLANNED, BASIS_HISTORY, BASIS_BLEND = range(4)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BasisArray = npt.NDArray[np.int8]

_ONE = Decimal(1)
# Relative nudge applied before rounding to minor units: it absorbs the binary representation
# error of amounts like 12.34 (so 1234.0000000000002 cents does not ceil to 1235) and is far
# below a minor unit for any realistic amount (< 1e12).
_ROUNDING_SLACK = 8 * float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class CostHistory:
    """What finished jobs did from the same stage on, supplied by the caller.

    ``ratios`` are final cost / cost so far (used when the job has a cost so far);
    ``remaining`` are final cost - cost so far (used when it has none yet).
    """

    ratios: Sequence[float] = ()
    remaining: Sequence[Decimal] = ()


@dataclass(frozen=True)
class CostParams:
    """Tuning knobs, with defaults meant to be explainable rather than optimal."""

    history_prior_n: float = 10.0  # n0: history samples worth as much as the plan
    population_cpi: float = 1.0  # CPI the job's own CPI is shrunk toward (1 / median final/planned)
    planned_p90_margin: float = 0.25  # P90 without history: remaining cost x (1 + margin)

    def __post_init__(self) -> None:
        if self.history_prior_n < 0 or self.population_cpi <= 0 or self.planned_p90_margin < 0:
            raise ValueError("history_prior_n and planned_p90_margin must be >= 0, population_cpi > 0")


@dataclass(frozen=True)
class CostProjection:
    p50: Decimal
    p90: Decimal
    basis: CostBasis
    samples: int  # history samples used
    budget: Decimal | None
    percent_complete: float | None  # by planned cost; None without a plan
    cpi: float | None  # shrunk CPI used by the planned projection

    @property
    def over_budget(self) -> bool:
        return self.budget is not None and is_over_budget(self.p50, self.budget, Decimal(0))

    @property
    def at_risk_budget(self) -> bool:
        return self.budget is not None and self.p90 > self.budget


def is_over_budget(projected_p50: Decimal, quote: Decimal, tolerance: Decimal) -> bool:
    """Over budget: the P50 projected cost is above the quote by more than `tolerance` (a fraction of it,
    0.05 for 5 %; 0 flags any excess)."""
    return projected_p50 > quote * (1 + tolerance)


@dataclass(frozen=True)
class CostProjections:
    """:func:`project_costs_many` result: one element per job.

    ``p50`` and ``p90`` are floats rounded to the minor units (``Decimal(repr(x))`` gives the
    exact amount); ``basis`` indexes :data:`COST_BASES`; ``cpi`` is NaN unless the planned
    projection was used (basis ``planned`` or ``blend``).
    """

    p50: FloatArray
    p90: FloatArray
    basis: BasisArray
    samples: IntArray
    cpi: FloatArray


def project_cost(
    *,
    actual_cost: Decimal,
    planned_costs: Sequence[Decimal] = (),
    completed_stages: int = 0,
    current_fraction: float = 0.0,
    budget: Decimal | None = None,
    history: CostHistory | None = None,
    minor_units: int = 2,
    params: CostParams | None = None,
) -> CostProjection:
    """Project the final cost of a job.

    ``planned_costs`` are in stage order; the first ``completed_stages`` are done and the next
    one is ``current_fraction`` done. ``budget`` (the quote) is the budget at completion; without
    it the planned total is. A job with every stage completed projects exactly its actual cost.
    """
    history = history or CostHistory()
    _check(actual_cost, planned_costs, completed_stages, current_fraction, budget)
    pc: float | None = None
    if planned_costs:
        pc = float(percent_complete_many(planned_costs, completed_stages, current_fraction))
    ratio_p50, ratio_p90, ratio_n = ratio_quantiles(history)
    remaining_p50, remaining_p90, remaining_n = remaining_quantiles(history)
    result = project_costs_many(
        actual_cost=[float(actual_cost)],
        percent_complete=[np.nan if pc is None else pc],
        planned_total=[float(sum(planned_costs, Decimal(0)))],
        budget=[np.nan if budget is None else float(budget)],
        completed=[bool(planned_costs) and completed_stages == len(planned_costs)],
        ratio_p50=[ratio_p50],
        ratio_p90=[ratio_p90],
        ratio_samples=[ratio_n],
        remaining_p50=[remaining_p50],
        remaining_p90=[remaining_p90],
        remaining_samples=[remaining_n],
        minor_units=minor_units,
        params=params,
    )
    unit = _ONE.scaleb(-minor_units)
    p50, p90 = (Decimal(float(a[0])).quantize(unit, ROUND_HALF_UP) for a in (result.p50, result.p90))
    cpi = float(result.cpi[0])
    return CostProjection(
        p50=p50,
        p90=p90,
        basis=COST_BASES[int(result.basis[0])],
        samples=int(result.samples[0]),
        budget=budget,
        percent_complete=pc,
        cpi=None if np.isnan(cpi) else cpi,
    )


def project_costs_many(
    *,
    actual_cost: npt.ArrayLike,
    percent_complete: npt.ArrayLike,
    planned_total: npt.ArrayLike = 0.0,
    budget: npt.ArrayLike = np.nan,
    completed: npt.ArrayLike = False,
    ratio_p50: npt.ArrayLike = np.nan,
    ratio_p90: npt.ArrayLike = np.nan,
    ratio_samples: npt.ArrayLike = 0,
    remaining_p50: npt.ArrayLike = np.nan,
    remaining_p90: npt.ArrayLike = np.nan,
    remaining_samples: npt.ArrayLike = 0,
    minor_units: int = 2,
    params: CostParams | None = None,
) -> CostProjections:
    """Vectorised :func:`project_cost`: the same method on float64 arrays, one element per job.

    Every argument is broadcast to the shape of ``actual_cost``; per job:

    * ``actual_cost``: cost so far (AC), >= 0.
    * ``percent_complete``: share of the plan earned, EV / planned total, in [0, 1], NaN when the
      job has no plan. For a plan priced per stage it is (planned cost of the completed stages +
      ``current_fraction`` x planned cost of the current stage) / planned total; stages weigh
      equally when the plan has no prices. :func:`percent_complete_many` computes it for many
      jobs of one plan.
    * ``planned_total``: the plan's total cost, the budget at completion when there is no budget.
    * ``budget``: the quote, NaN when there is none.
    * ``completed``: every planned stage is done (the projection is then exactly AC).
    * ``ratio_p50``/``ratio_p90``/``ratio_samples`` and ``remaining_p50``/``remaining_p90``/
      ``remaining_samples``: quantiles of the history of the job's current stage, as returned
      by :func:`ratio_quantiles` and :func:`remaining_quantiles` (NaN, NaN, 0 without samples).
      They depend only on the stage, so compute them once per stage of a workflow and gather
      them per job, e.g. ``ratio_p50=stage_ratio_p50[current_stage_index]``.

    Invalid inputs (negative or non-finite costs, ``percent_complete`` outside [0, 1]) raise
    ``ValueError``.
    """
    params = params or CostParams()
    ac = np.asarray(actual_cost, dtype=np.float64)
    shape = ac.shape

    pc, total, bud = (_floats(v, shape) for v in (percent_complete, planned_total, budget))
    r50, r90, m50, m90 = (_floats(v, shape) for v in (ratio_p50, ratio_p90, remaining_p50, remaining_p90))
    rn, mn = (
        np.broadcast_to(np.asarray(v, dtype=np.int64), shape) for v in (ratio_samples, remaining_samples)
    )
    done = np.broadcast_to(np.asarray(completed, dtype=np.bool_), shape)
    # NaN compares False, so a missing budget or plan passes these checks.
    if not (np.isfinite(ac).all() and (ac >= 0).all()):
        raise ValueError("actual_cost must be finite and >= 0")
    if not (np.isfinite(total).all() and (total >= 0).all()) or ((bud < 0) | np.isinf(bud)).any():
        raise ValueError("planned_total and budget must be finite and >= 0")
    if ((pc < 0) | (pc > 1) | np.isinf(pc)).any():
        raise ValueError("percent_complete must be in [0, 1] or NaN")

    # Planned (earned value): EAC = AC + (BAC - EV) / CPI, the CPI shrunk toward the population's.
    population_cpi = params.population_cpi
    has_plan = ~np.isnan(pc)
    bac = np.where(np.isnan(bud), total, bud)
    ev = bac * pc
    spent = ac > 0
    own_cpi = np.divide(ev, ac, out=np.zeros(shape), where=spent)
    cpi = np.where(spent, pc * own_cpi + (1 - pc) * population_cpi, population_cpi)
    # Nothing left to earn (pc == 1) leaves nothing to add even when the CPI is 0.
    to_go = np.divide(bac - ev, cpi, out=np.zeros(shape), where=cpi > 0)
    # Nothing spent yet: the job says nothing about its efficiency, the whole BAC is to go.
    plan_p50 = np.where(spent, ac + to_go, bac / population_cpi)
    plan_p90 = ac + (plan_p50 - ac) * (1 + params.planned_p90_margin)

    # History: ratio quantiles applied to AC, or remaining-cost quantiles added to it.
    use_ratio = spent & (rn > 0)
    use_remaining = ~use_ratio & (mn > 0)
    has_history = use_ratio | use_remaining
    samples = np.where(use_ratio, rn, np.where(use_remaining, mn, 0))
    hist_p50 = np.where(use_ratio, ac * r50, ac + m50)
    hist_p90 = np.where(use_ratio, ac * r90, ac + m90)
    weight = np.divide(samples, samples + params.history_prior_n, out=np.zeros(shape), where=has_history)
    blend_p50 = weight * hist_p50 + (1 - weight) * plan_p50
    blend_p90 = weight * hist_p90 + (1 - weight) * plan_p90

    planned = has_plan & ~done
    # Codes of COST_BASES: 0 actual, 1 planned, 2 history, 3 blend (plan and history).
    basis = (planned.astype(np.int8) + 2 * (has_history & ~done)).astype(np.int8)
    p50 = np.choose(basis, [ac, plan_p50, hist_p50, blend_p50])
    p90 = np.choose(basis, [ac, plan_p90, hist_p90, blend_p90])

    if np.isnan(p90).any():  # p90 >= p50 is NaN when either is
        raise ValueError("history quantiles must be finite where their sample count is > 0")
    scale = 10.0**minor_units
    floor = np.ceil(ac * scale * (1 - _ROUNDING_SLACK)) / scale  # AC rounded up: never below it
    p50 = np.maximum(np.floor(p50 * scale * (1 + _ROUNDING_SLACK) + 0.5) / scale, floor)
    p90 = np.maximum(np.floor(p90 * scale * (1 + _ROUNDING_SLACK) + 0.5) / scale, p50)
    return CostProjections(
        p50=p50,
        p90=p90,
        basis=basis,
        samples=np.where(basis >= BASIS_HISTORY, samples, 0).astype(np.int64),
        cpi=np.where(planned, cpi, np.nan),
    )


def _floats(value: npt.ArrayLike, shape: tuple[int, ...]) -> FloatArray:
    array = np.asarray(value, dtype=np.float64)
    return array if array.shape == shape else np.broadcast_to(array, shape)


def ratio_quantiles(history: CostHistory) -> tuple[float, float, int]:
    """P50, P90 and count of the final / so-far cost ratios (each at least 1); NaN, NaN, 0 if none.

    The ``ratio_*`` inputs of :func:`project_costs_many`: call it once per stage of a workflow.
    """
    if not history.ratios:
        return np.nan, np.nan, 0
    ratios = np.maximum(np.asarray(history.ratios, dtype=np.float64), 1.0)
    p50, p90 = np.quantile(ratios, [0.5, 0.9])
    return float(p50), float(p90), len(ratios)


def remaining_quantiles(history: CostHistory) -> tuple[float, float, int]:
    """P50, P90 and count of the remaining-cost samples (each at least 0); NaN, NaN, 0 if none.

    The ``remaining_*`` inputs of :func:`project_costs_many` (used for jobs with no cost so
    far, or without ratio samples): call it once per stage of a workflow.
    """
    if not history.remaining:
        return np.nan, np.nan, 0
    remaining = np.maximum(np.asarray([float(r) for r in history.remaining], dtype=np.float64), 0.0)
    p50, p90 = np.quantile(remaining, [0.5, 0.9])
    return float(p50), float(p90), len(remaining)


def percent_complete_many(
    planned_costs: Sequence[Decimal], completed_stages: npt.ArrayLike, current_fraction: npt.ArrayLike
) -> FloatArray:
    """Share of the planned cost earned, for many jobs following the same plan.

    The first ``completed_stages`` stages are done and the next is ``current_fraction`` done;
    stages weigh equally when nothing is priced. Inputs are not validated.
    """
    weights = np.asarray([float(c) for c in planned_costs], dtype=np.float64)
    if not weights.any():
        weights = np.ones(len(weights))
    before = np.concatenate(([0.0], np.cumsum(weights)))  # weight of the stages before each one
    completed = np.asarray(completed_stages, dtype=np.int64)
    current = np.append(weights, 0.0)[completed] * np.asarray(current_fraction, dtype=np.float64)
    result: FloatArray = (before[completed] + current) / before[-1]
    return result


def _check(
    actual_cost: Decimal,
    planned_costs: Sequence[Decimal],
    completed_stages: int,
    current_fraction: float,
    budget: Decimal | None,
) -> None:
    if actual_cost < 0 or any(c < 0 for c in planned_costs) or (budget is not None and budget < 0):
        raise ValueError("costs and budget must be >= 0")
    if planned_costs and not 0 <= completed_stages <= len(planned_costs):
        raise ValueError(f"completed_stages must be in 0..{len(planned_costs)}")
    if not 0.0 <= current_fraction <= 1.0:
        raise ValueError("current_fraction must be in [0, 1]")
