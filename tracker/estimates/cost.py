"""Projected final cost of a job (P50/P90), anchored to its quote.

The quote is the job's budget at completion (BAC) and the best prior for its size. The workflow's
planned stage costs say how that budget is spread over the stages (their *shares*), not its total:
a job quoted 640 whose plan prices diagnosis at 90 of 960 has 60 of its budget planned for
diagnosis.

**Plan (earned value).** A job in its current stage has the rest of its budget,
``M = BAC x (share of the current stage and those after it)``, still to spend. Costs recorded in
the current stage are part of that stage's share, so while they stay within it the projection does
not move; beyond it they are an overrun, and the stages after it still cost their share. The
stages before count what they cost (``A_e``, the cost when the job entered its current stage), but
at least their share: costs are often recorded late, so a stage left without its costs does not
lower the projection (an underspend shows when the job completes)::

    EAC = max(A_e, BAC x share before) + max(M, spent in this stage + M x after)

where ``after`` is the later stages' part of M. So a new job projects exactly its quote, recording
costs within plan changes nothing, and moving on to the next stage never drops the projection
below what has been spent plus what remains planned.

**History.** For finished jobs, at each stage they entered, what they went on to spend is compared
with what their own plan had left (``M``): as a ratio (scales with the job's size) and as an
additive overrun (in currency). Their quantiles, averaged, give the history's ``M``; it replaces
the plan's with weight ``n / (n + n0)`` for ``n`` samples, so with few samples the projection stays
near earned value. A new job's P50 therefore starts at its quote unless past jobs overran.

Cost never goes down: P90 >= P50 >= AC, rounded to the currency's minor units. Whether a P50 is
over budget is decided by :func:`is_over_budget`, everywhere.

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

from tracker.domain.money import LARGEST

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


def is_over_budget(projected_p50: Decimal, quote: Decimal, tolerance: Decimal) -> bool:
    """The one rule for ``over_budget``: the projected P50 exceeds the quote by more than
    ``tolerance`` (a fraction: 0.05 is 5 %)."""
    return projected_p50 > quote * (1 + tolerance)


@dataclass(frozen=True)
class CostHistory:
    """What finished jobs spent from the same stage on, against what their plan had left there.

    For each past visit of the stage: with ``planned`` the job's budget share of this stage and
    the later ones (its ``M``) and ``spent`` what it went on to spend from the stage's entry,
    ``ratios`` holds spent / planned (when planned > 0) and ``overruns`` spent - planned.
    """

    ratios: Sequence[float] = ()
    overruns: Sequence[Decimal] = ()


@dataclass(frozen=True)
class CostParams:
    """Tuning knobs, with defaults meant to be explainable rather than optimal."""

    history_prior_n: float = 10.0  # n0: history samples worth as much as the plan
    planned_p90_margin: float = 0.25  # P90 from the plan alone: remaining budget x (1 + margin)

    def __post_init__(self) -> None:
        if self.history_prior_n < 0 or self.planned_p90_margin < 0:
            raise ValueError("history_prior_n and planned_p90_margin must be >= 0")


@dataclass(frozen=True)
class CostProjection:
    p50: Decimal
    p90: Decimal
    basis: CostBasis
    samples: int  # history samples used
    budget: Decimal  # the quote, or the planned total when there is none


@dataclass(frozen=True)
class CostProjections:
    """:func:`project_costs_many` result: one element per job.

    ``p50`` and ``p90`` are floats rounded to the minor units (``Decimal(repr(x))`` gives the
    exact amount); ``basis`` indexes :data:`COST_BASES`.
    """

    p50: FloatArray
    p90: FloatArray
    basis: BasisArray
    samples: IntArray


def stage_shares(planned_costs: Sequence[Decimal]) -> tuple[FloatArray, FloatArray]:
    """Each stage's share of the budget, and the share of the stages after it, for stage indexes
    0..len(plan) (the last: every stage done). Stages weigh equally when nothing is priced; a job
    without a plan is one stage."""
    weights = np.asarray([float(c) for c in planned_costs], dtype=np.float64)
    if not weights.any():
        weights = np.ones(max(len(weights), 1))
    shares = weights / weights.sum()
    after = np.append(1.0 - np.cumsum(shares), 0.0)
    return np.append(shares, 0.0), np.maximum(after, 0.0)


def project_cost(
    *,
    actual_cost: Decimal,
    stage_cost: Decimal = Decimal(0),
    planned_costs: Sequence[Decimal] = (),
    stage_index: int = 0,
    budget: Decimal | None = None,
    history: CostHistory | None = None,
    minor_units: int = 2,
    params: CostParams | None = None,
) -> CostProjection:
    """Project the final cost of a job.

    ``stage_cost`` is the part of ``actual_cost`` recorded since the job entered its current stage,
    the stage at ``stage_index`` of ``planned_costs`` (``len(planned_costs)``: every stage is done,
    and the projection is exactly the actual cost). ``budget`` (the quote) is the budget at
    completion; without it the planned total is. ``history`` describes the current stage.
    """
    history = history or CostHistory()
    _check(actual_cost, stage_cost, planned_costs, stage_index, budget)
    share, after = stage_shares(planned_costs)
    index = min(stage_index, len(share) - 1)
    ratio_p50, ratio_p90, ratio_n = ratio_quantiles(history)
    overrun_p50, overrun_p90, overrun_n = overrun_quantiles(history)
    planned_total = sum(planned_costs, Decimal(0))
    result = project_costs_many(
        actual_cost=[float(actual_cost)],
        stage_cost=[float(stage_cost)],
        share_current=[share[index]],
        share_after=[after[index]],
        budget=[np.nan if budget is None else float(budget)],
        planned_total=[float(planned_total)],
        completed=[bool(planned_costs) and stage_index == len(planned_costs)],
        ratio_p50=[ratio_p50],
        ratio_p90=[ratio_p90],
        ratio_samples=[ratio_n],
        overrun_p50=[overrun_p50],
        overrun_p90=[overrun_p90],
        overrun_samples=[overrun_n],
        minor_units=minor_units,
        params=params,
    )
    unit = _ONE.scaleb(-minor_units)
    p50, p90 = (Decimal(float(a[0])).quantize(unit, ROUND_HALF_UP) for a in (result.p50, result.p90))
    return CostProjection(
        p50=p50,
        p90=p90,
        basis=COST_BASES[int(result.basis[0])],
        samples=int(result.samples[0]),
        budget=planned_total if budget is None else budget,
    )


def project_costs_many(
    *,
    actual_cost: npt.ArrayLike,
    stage_cost: npt.ArrayLike = 0.0,
    share_current: npt.ArrayLike = 1.0,
    share_after: npt.ArrayLike = 0.0,
    budget: npt.ArrayLike = np.nan,
    planned_total: npt.ArrayLike = 0.0,
    completed: npt.ArrayLike = False,
    ratio_p50: npt.ArrayLike = np.nan,
    ratio_p90: npt.ArrayLike = np.nan,
    ratio_samples: npt.ArrayLike = 0,
    overrun_p50: npt.ArrayLike = np.nan,
    overrun_p90: npt.ArrayLike = np.nan,
    overrun_samples: npt.ArrayLike = 0,
    minor_units: int = 2,
    params: CostParams | None = None,
) -> CostProjections:
    """Vectorised :func:`project_cost`: the same method on float64 arrays, one element per job.

    Every argument is broadcast to the shape of ``actual_cost``; per job:

    * ``actual_cost``: cost so far (AC), >= 0; ``stage_cost``: the part of it recorded since the
      job entered its current stage, in [0, AC].
    * ``share_current`` / ``share_after``: the budget share of the current stage and of the
      stages after it (:func:`stage_shares`), each in [0, 1].
    * ``budget``: the quote, NaN when there is none (the ``planned_total`` is then the budget).
    * ``completed``: every planned stage is done (the projection is then exactly AC).
    * ``ratio_*`` and ``overrun_*``: quantiles of the current stage's history, as returned by
      :func:`ratio_quantiles` and :func:`overrun_quantiles` (NaN, NaN, 0 without samples). They
      depend only on the stage: compute them once per stage of a workflow and gather them per job.

    Invalid inputs raise ``ValueError``.
    """
    params = params or CostParams()
    ac = np.asarray(actual_cost, dtype=np.float64)
    shape = ac.shape
    spent, current, after, bud, total = (
        _floats(v, shape) for v in (stage_cost, share_current, share_after, budget, planned_total)
    )
    r50, r90, o50, o90 = (_floats(v, shape) for v in (ratio_p50, ratio_p90, overrun_p50, overrun_p90))
    rn, on = (np.broadcast_to(np.asarray(v, dtype=np.int64), shape) for v in (ratio_samples, overrun_samples))
    done = np.broadcast_to(np.asarray(completed, dtype=np.bool_), shape)
    # NaN compares False, so a missing budget passes these checks.
    if not (np.isfinite(ac).all() and (ac >= 0).all()):
        raise ValueError("actual_cost must be finite and >= 0")
    if not (np.isfinite(spent).all() and (spent >= 0).all() and (spent <= ac).all()):
        raise ValueError("stage_cost must be in [0, actual_cost]")
    if not (np.isfinite(total).all() and (total >= 0).all()) or ((bud < 0) | np.isinf(bud)).any():
        raise ValueError("planned_total and budget must be finite and >= 0")
    remaining_share = current + after
    if not (np.isfinite(remaining_share).all() and (current >= 0).all() and (after >= 0).all()):
        raise ValueError("share_current and share_after must be >= 0")
    if (remaining_share > 1 + 1e-9).any():
        raise ValueError("share_current + share_after must be <= 1")

    bac = np.where(np.isnan(bud), total, bud)
    has_budget = bac > 0
    # What remains of the budget from the current stage's entry on (M), and the later stages' part.
    planned_m = bac * remaining_share
    later = np.divide(after, remaining_share, out=np.zeros(shape), where=remaining_share > 0)

    # History: M from the ratio (scaled to this job's budget) and the overrun (in currency),
    # averaged when both exist, then blended with the plan's M by sample count.
    has_ratio, has_overrun = (rn > 0) & (planned_m > 0), on > 0
    has_history = has_ratio | has_overrun
    both = has_ratio & has_overrun
    history_m50 = _mean_of(planned_m * r50, planned_m + o50, has_ratio, has_overrun, both)
    history_m90 = _mean_of(planned_m * r90, planned_m + o90, has_ratio, has_overrun, both)
    samples = np.maximum(np.where(has_ratio, rn, 0), np.where(has_overrun, on, 0))
    weight = np.divide(samples, samples + params.history_prior_n, out=np.zeros(shape), where=has_history)
    weight = np.where(has_budget, weight, 1.0)
    m50 = weight * np.maximum(history_m50, 0.0) + (1 - weight) * planned_m
    m90 = weight * np.maximum(history_m90, 0.0) + (1 - weight) * planned_m * (1 + params.planned_p90_margin)
    m90 = np.maximum(m90, m50)

    # The stages before count at least their share; within the current stage's part of M recorded
    # costs do not move the projection, beyond it they are an overrun and later stages still cost
    # their part.
    before = np.maximum(ac - spent, bac * np.maximum(1.0 - remaining_share, 0.0))
    p50 = before + np.maximum(m50, spent + m50 * later)
    p90 = before + np.maximum(m90, spent + m90 * later)

    basis = np.where(
        done | ~(has_budget | has_history),
        BASIS_ACTUAL,
        np.where(has_budget, np.where(has_history, BASIS_BLEND, BASIS_PLANNED), BASIS_HISTORY),
    ).astype(np.int8)
    p50 = np.where(basis == BASIS_ACTUAL, ac, p50)
    p90 = np.where(basis == BASIS_ACTUAL, ac, p90)

    if np.isnan(p90).any() or np.isnan(p50).any():
        raise ValueError("history quantiles must be finite where their sample count is > 0")
    scale = 10.0**minor_units
    floor = np.ceil(ac * scale * (1 - _ROUNDING_SLACK)) / scale  # AC rounded up: never below it
    p50 = np.maximum(np.floor(p50 * scale * (1 + _ROUNDING_SLACK) + 0.5) / scale, floor)
    p90 = np.maximum(np.floor(p90 * scale * (1 + _ROUNDING_SLACK) + 0.5) / scale, p50)
    p50, p90 = np.minimum(p50, float(LARGEST)), np.minimum(p90, float(LARGEST))
    return CostProjections(
        p50=p50,
        p90=p90,
        basis=basis,
        samples=np.where(basis >= BASIS_HISTORY, samples, 0).astype(np.int64),
    )


def _mean_of(
    first: FloatArray,
    second: FloatArray,
    has_first: npt.NDArray[np.bool_],
    has_second: npt.NDArray[np.bool_],
    both: npt.NDArray[np.bool_],
) -> FloatArray:
    """Per element: the mean of the two where both exist, else the one that does (0 if neither)."""
    one = np.where(has_first, first, np.where(has_second, second, 0.0))
    return np.where(both, (first + second) / 2, one)


def _floats(value: npt.ArrayLike, shape: tuple[int, ...]) -> FloatArray:
    array = np.asarray(value, dtype=np.float64)
    return array if array.shape == shape else np.broadcast_to(array, shape)


def ratio_quantiles(history: CostHistory) -> tuple[float, float, int]:
    """P50, P90 and count of the spent / planned ratios (each at least 0); NaN, NaN, 0 if none.

    The ``ratio_*`` inputs of :func:`project_costs_many`: call it once per stage of a workflow.
    """
    if not history.ratios:
        return np.nan, np.nan, 0
    ratios = np.maximum(np.asarray(history.ratios, dtype=np.float64), 0.0)
    p50, p90 = np.quantile(ratios, [0.5, 0.9])
    return float(p50), float(p90), len(ratios)


def overrun_quantiles(history: CostHistory) -> tuple[float, float, int]:
    """P50, P90 and count of the overruns (spent - planned, in currency); NaN, NaN, 0 if none.

    The ``overrun_*`` inputs of :func:`project_costs_many`: call it once per stage of a workflow.
    """
    if not history.overruns:
        return np.nan, np.nan, 0
    overruns = np.asarray([float(r) for r in history.overruns], dtype=np.float64)
    p50, p90 = np.quantile(overruns, [0.5, 0.9])
    return float(p50), float(p90), len(overruns)


def _check(
    actual_cost: Decimal,
    stage_cost: Decimal,
    planned_costs: Sequence[Decimal],
    stage_index: int,
    budget: Decimal | None,
) -> None:
    if actual_cost < 0 or any(c < 0 for c in planned_costs) or (budget is not None and budget < 0):
        raise ValueError("costs and budget must be >= 0")
    if not 0 <= stage_cost <= actual_cost:
        raise ValueError("stage_cost must be in [0, actual_cost]")
    if not 0 <= stage_index <= len(planned_costs):
        raise ValueError(f"stage_index must be in 0..{len(planned_costs)}")
