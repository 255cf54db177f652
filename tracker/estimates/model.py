"""History model: remaining working time of open jobs, learned per workflow from past stage visits.

How an estimate is made (all the heavy work happens once, at fit time):

1. **Stage durations** are Kaplan-Meier distributions of the newest ``window`` visits per stage,
   open visits right-censored. With few samples they are mixed with the stage's planned PERT
   beta distribution, weight n / (n + n0) on history.
2. **Next stage** comes from observed transitions (rework loops and skips included, END when a
   job closed after the visit), plus one pseudo-observation of the workflow's declared order, so
   a stage without observed transitions follows the plan.
3. **Monte Carlo** (fixed seed): from every position (inside stage *s*, just after stage *x*,
   not started) many futures are simulated; the remaining time of a job that has already spent
   *a* in its stage is read off the futures whose first stage lasted longer than *a*
   (S(a + x) / S(a)), so P50/P90 are quantiles of the total, not sums of quantiles.
4. **Direct history**: where a position has at least ``min_samples`` past jobs, their actual
   remaining times (KM, open jobs censored) take over from the simulation, refined by the job's
   age and number of completed stages; each finer group is pulled towards the coarser one by
   n / (n + n0), so a thin group moves the estimate only as far as its evidence allows. This
   keeps the dependencies a first-order chain misses (long-waiting jobs keep waiting, late rework).
   A second table groups the same moments by position and by who finished the job's last stage
   (when visits name two people or more), for the candidate that scales the direct estimate by
   who has the job.
5. Past the last elapsed time that history covers, the residual grows in proportion to the
   elapsed time (a heavy-tail, "Lindy" extrapolation), so an overrunning job keeps a widening,
   non-zero range.
6. **Calibration**: P90 is scaled so that ~90 % of recent outcomes fall before it:
   split-conformal on the newest finished jobs (which the model has seen, so they may widen P90
   but never narrow it), then, when the caller keeps earlier predictions, on what became of
   those (jobs still open counted by what is already certain), moving from the first factor to
   the second as their outcomes accumulate.

Everything lands in a table indexed by (position row, elapsed on a log grid); prediction is a
vectorised lookup with linear interpolation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import Any, BinaryIO, Literal, get_args

import numpy as np

from tracker.estimates.history import (
    BoolArray,
    CaseHistory,
    FloatArray,
    IntArray,
    JobProgress,
    PlannedStage,
    VisitTable,
)
from tracker.estimates.model_direct import (
    GRID,
    DirectLevel,
    Moments,
    RankedMoments,
    add_level,
    direct_level,
    moments_of,
    run_starts,
)
from tracker.estimates.model_survival import km_masses, newest_per_group
from tracker.estimates.selection import Why, choose, geometric_blend

Basis = Literal["planned", "blend", "history"]

N_BUCKETS = 12
N_AGES = 12
_BASES: tuple[Basis, ...] = ("planned", "blend", "history")
_PLANNED, _BLEND, _HISTORY = 0, 1, 2
_MAX_STEPS = 500
_LEVELS = 256  # resolution of the inverse CDFs used to draw stage durations
_TAIL = 1.0 - np.log(1.0 - (np.arange(5) + 0.5) / 5)  # 1 + Exp(1) quintile midpoints
_PATH_BUDGET = 200_000
_GUIDE_CELLS = 1_000_000  # entries of a transition table's guide (see _Draws), however many stages
_CALIBRATION_CASES = 500
CALIBRATION_PRIOR = 10.0  # outcomes that weigh as much as the model's own P90
MIN_SAMPLES = 10  # past jobs a direct-history group needs; shrinkage weighs the thin ones
_FACTORS = np.exp(np.linspace(np.log(0.5), np.log(4.0), 64))  # the P90 factors tried, 1/2 to 4
_UNSCALED = int(np.argmin(np.abs(_FACTORS - 1.0)))
_FORMAT = "tracker.history-model/1"
_IN_META = ("stage_keys", "laws", "handler_names")  # the _Fitted fields saved apart from the arrays


def age_bucket(age_s: FloatArray) -> IntArray:
    """Bucket of a job's working age: under an hour, then doubling (1-2 h, 2-4 h, ...) to bucket 11."""
    hours = np.maximum(np.asarray(age_s, dtype=np.float64), 0.0) / 3600.0
    doubling = np.floor(np.log2(np.maximum(hours, 1.0))).astype(np.int64) + 1
    return np.where(hours < 1.0, 0, np.minimum(doubling, N_AGES - 1))


def prefix_bucket(completed: IntArray) -> IntArray:
    """Bucket of a completed-stage count: 0-4 exactly, then geometric (x1.5) up to bucket 11."""
    k = np.maximum(np.asarray(completed, dtype=np.int64), 0)
    coarse = 5 + np.floor(np.log(np.maximum(k, 5) / 5.0) / np.log(1.5)).astype(np.int64)
    return np.where(k < 5, k, np.minimum(coarse, N_BUCKETS - 1))


@dataclass(frozen=True)
class StageOutlook:
    """One stage ahead of a job: how likely it is to be visited and how long a visit takes."""

    key: str
    probability: float
    expected_visits: float
    expected_duration_s: float
    samples: int
    basis: Basis


@dataclass(frozen=True)
class RemainingWork:
    """Remaining working time of one job, with what it is based on."""

    p50_s: float
    p90_s: float
    p90_raw_s: float  # before calibration: what to keep for later calibration evidence
    basis: Basis
    samples: int
    current_stage_remaining_s: float | None
    stages: tuple[StageOutlook, ...]


CalibrationSource = Literal["none", "in-sample", "evidence"]


@dataclass(frozen=True)
class Calibration:
    """Conformal scaling of P90 and the share of outcomes at or before P90 (raw and scaled)."""

    p90_factor: float
    coverage_raw: float
    coverage: float
    samples: int
    source: CalibrationSource


@dataclass(frozen=True)
class CalibrationEvidence:
    """Earlier raw P90 predictions and what happened since (working seconds).

    ``observed_s`` is the actual remaining time where ``resolved``; otherwise the job is still
    open and ``observed_s`` is the time elapsed since the prediction (a lower bound). ``since_s``
    is the time elapsed since the prediction for every job, and ``raw_p50_s`` the P50 each P90
    came with (together they say how likely an open job still is to make its P90); without them
    every outcome counts as known in full (the jobs a model was fitted on).
    """

    raw_p90_s: FloatArray
    observed_s: FloatArray
    resolved: BoolArray
    since_s: FloatArray | None = None
    raw_p50_s: FloatArray | None = None

    def __post_init__(self) -> None:
        if (self.since_s is None) != (self.raw_p50_s is None):
            raise ValueError("since_s and raw_p50_s come together")


@dataclass(frozen=True)
class _StageLaws:
    """Per-stage duration distributions, flattened for vectorised sampling."""

    quantiles: FloatArray  # (stages, _LEVELS + 1): inverse CDF of the history part at i / _LEVELS
    samples: IntArray  # finished visits per stage
    history_weight: FloatArray  # n / (n + n0); 1 when the stage has no plan
    has_prior: BoolArray
    prior_low: FloatArray
    prior_span: FloatArray
    prior_alpha: FloatArray
    prior_beta: FloatArray
    mean: FloatArray  # blended mean duration per stage
    basis: IntArray

    def sample(self, stages: IntArray, rng: np.random.Generator) -> FloatArray:
        u = rng.random(stages.size) * _LEVELS
        i = u.astype(np.int64)
        low = self.quantiles[stages, i]
        draws = low + (u - i) * (self.quantiles[stages, i + 1] - low)
        use_prior = self.has_prior[stages] & (rng.random(stages.size) >= self.history_weight[stages])
        if use_prior.any():
            s = stages[use_prior]
            beta = rng.beta(self.prior_alpha[s], self.prior_beta[s])
            draws[use_prior] = self.prior_low[s] + self.prior_span[s] * beta
        return draws

    def residual_mean(self, stage: int, elapsed: float) -> float:
        """Expected working time left in ``stage`` after ``elapsed`` (history part only)."""
        row = self.quantiles[stage]
        values = (row[1:] + row[:-1]) / 2  # each of equal probability
        later = values[values > elapsed]
        if later.size == 0:
            return elapsed  # beyond every sample: mean residual life grows with age
        return float(later.mean() - elapsed)


@dataclass(frozen=True)
class _Fitted:
    """Everything a fit produces besides the calibration (saved and loaded as arrays)."""

    stage_keys: tuple[str, ...]
    laws: _StageLaws
    transitions: FloatArray
    q50: FloatArray  # rows x GRID: residual P50 (raw)
    q90: FloatArray  # rows x GRID: residual P90 (raw)
    direct_samples: IntArray  # rows x GRID: past jobs behind the value, 0 where simulated
    rows_by_position: IntArray
    rows_by_stages: IntArray
    rows_by_age: IntArray
    position_basis: IntArray
    position_samples: IntArray
    stage_p90: FloatArray  # P90 of one visit's working duration, per stage
    handler_keys: IntArray  # sorted keys position * (handlers + 1) + handler + 1 with a row of their own
    handler_rows: IntArray  # the row of each of those keys
    handler_names: tuple[str, ...] = ()


EstimatorName = Literal[
    "direct", "simulation", "median", "direct_simulation_blend", "direct_median_blend", "direct_by_resource"
]
ESTIMATORS: tuple[EstimatorName, ...] = (
    "direct",
    "simulation",
    "median",
    "direct_simulation_blend",
    "direct_median_blend",
    "direct_by_resource",
)
_BLENDED: dict[str, tuple[EstimatorName, EstimatorName]] = {
    "direct_simulation_blend": ("direct", "simulation"),
    "direct_median_blend": ("direct", "median"),
}
BOUND = 3.0
"""No remaining time exceeds this many times the longest job the workflow has seen (or the job's
own age, when it is older still)."""


@dataclass(frozen=True)
class Selection:
    """Which candidate the model answers with, why, and the longest job seen (the bound's base).

    ``direct``: what remained for past jobs in the same position (finest group with enough
    history, backed by the simulation); ``simulation``: the stage simulation alone; ``median``:
    the plain median remaining time per position, whatever the time already spent; the blends:
    geometric means of ``direct`` and one of the others; ``direct_by_resource``: ``direct`` scaled
    by how much longer (or shorter) past jobs in the same position had left when the same person had
    finished their last stage (unscaled where that group is too small, or nobody is named).

    The choice is the P50's. The P90 is always ``direct``'s, calibrated: a quantile of the
    remaining time of jobs that stood where the job stands and had run as long (open ones
    censored). A geometric blend of two P90s is no quantile, and the plain median's ignores the
    time already spent, so a job running late would keep the P90 of a fresh one.
    """

    estimator: EstimatorName = "direct"
    reason: str = "not scored"
    longest_s: float = float("inf")
    why: Why = "not_scored"
    outcomes: int = 0
    """How many closed jobs the candidates were scored on."""


class HistoryModel:
    """Fitted estimator for one workflow. Build it with :func:`fit_history`."""

    def __init__(self, fitted: _Fitted, calibration: Calibration, selection: Selection | None = None) -> None:
        self._fit = fitted
        self._codes = {key: i for i, key in enumerate(fitted.stage_keys)}
        self._handlers = {name: i for i, name in enumerate(fitted.handler_names)}
        self.calibration = calibration
        self.selection = selection or Selection()

    @property
    def stage_keys(self) -> tuple[str, ...]:
        return self._fit.stage_keys

    @property
    def n_stages(self) -> int:
        return len(self.stage_keys)

    def with_calibration(self, calibration: Calibration) -> HistoryModel:
        """The same model with another P90 calibration."""
        return HistoryModel(self._fit, calibration, self.selection)

    def with_selection(self, selection: Selection) -> HistoryModel:
        """The same model answering with another candidate."""
        return HistoryModel(self._fit, self.calibration, selection)

    def position_bases(self) -> list[Basis]:
        """What the estimate of a job just entering each position rests on, by position code."""
        fit = self._fit
        direct = fit.direct_samples[fit.rows_by_position, 0] > 0
        return [
            "history" if direct[p] else _BASES[fit.position_basis[p]]
            for p in range(fit.rows_by_position.size)
        ]

    def stage_p90_s(self) -> FloatArray:
        """P90 of one visit's working duration, per stage code (history blended with the plan)."""
        return self._fit.stage_p90.copy()

    def save(self, file: BinaryIO, extra: Mapping[str, Any] | None = None) -> None:
        """Write the model (and JSON-able ``extra``) as a compressed ``.npz``, without pickle."""
        fit = self._fit
        arrays = {f"laws.{f.name}": getattr(fit.laws, f.name) for f in fields(_StageLaws)}
        arrays |= {f.name: getattr(fit, f.name) for f in fields(_Fitted) if f.name not in _IN_META}
        meta = {
            "format": _FORMAT,
            "stage_keys": list(fit.stage_keys),
            "handler_names": list(fit.handler_names),
            "calibration": asdict(self.calibration),
            "selection": {
                "estimator": self.selection.estimator,
                "reason": self.selection.reason,
                "why": self.selection.why,
                "outcomes": self.selection.outcomes,
                "longest_s": None if np.isinf(self.selection.longest_s) else self.selection.longest_s,
            },
            "extra": dict(extra or {}),
        }
        np.savez_compressed(file, meta=np.array(json.dumps(meta)), **arrays)

    @classmethod
    def load(cls, file: BinaryIO) -> tuple[HistoryModel, dict[str, Any]]:
        """Read what :meth:`save` wrote: the model and its ``extra``."""
        with np.load(file, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != _FORMAT:
                raise ValueError(f"unsupported history model format {meta.get('format')!r}")
            laws = _StageLaws(**{f.name: data[f"laws.{f.name}"] for f in fields(_StageLaws)})
            # Models saved before handlers were learnt have no handler table: an empty one.
            arrays: dict[str, Any] = {
                f.name: data[f.name] if f.name in data.files else np.zeros(0, np.int64)
                for f in fields(_Fitted)
                if f.name not in _IN_META
            }
        fitted = _Fitted(
            stage_keys=tuple(meta["stage_keys"]),
            laws=laws,
            handler_names=tuple(meta.get("handler_names", ())),
            **arrays,
        )
        chosen = meta.get("selection") or {}
        stored = chosen.get("estimator")
        selection = Selection(
            estimator=next((name for name in ESTIMATORS if name == stored), "direct"),
            reason=chosen.get("reason", "not scored"),
            longest_s=float("inf") if chosen.get("longest_s") is None else float(chosen["longest_s"]),
            why=next((why for why in get_args(Why) if why == chosen.get("why")), "not_scored"),
            outcomes=int(chosen.get("outcomes", 0)),
        )
        return cls(fitted, Calibration(**meta["calibration"]), selection), meta["extra"]

    # ------------------------------------------------------------------ prediction

    def positions(self, current: IntArray, last_completed: IntArray) -> IntArray:
        """Position codes from stage codes (-1 for none): inside s, after x, or not started."""
        s = self.n_stages
        return np.where(current >= 0, current, np.where(last_completed >= 0, s + last_completed, 2 * s))

    def handler_codes(self, names: Sequence[str | None]) -> IntArray:
        """Codes of who finished each job's last stage, as the model knows them (-1: nobody, or
        someone without history)."""
        known = self._handlers
        return np.fromiter(
            (-1 if name is None else known.get(name, -1) for name in names), np.int64, len(names)
        )

    def remaining_arrays(
        self,
        positions: IntArray,
        completed: IntArray,
        elapsed_s: FloatArray,
        job_age_s: FloatArray | None = None,
        handlers: IntArray | None = None,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Vectorised core: (P50, calibrated P90, raw P90) of remaining working seconds.

        ``job_age_s`` is each job's working time since it started (NaN or None: unknown);
        ``handlers``, who finished its last stage (:meth:`handler_codes`; None: unknown).
        """
        return self._candidate_arrays(
            self.selection.estimator, positions, completed, elapsed_s, job_age_s, handlers
        )

    def _candidate_arrays(
        self,
        estimator: str,
        positions: IntArray,
        completed: IntArray,
        elapsed_s: FloatArray,
        job_age_s: FloatArray | None,
        handlers: IntArray | None = None,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """P50 of ``estimator``; P90 of the direct history whatever the estimator (see
        :class:`Selection`)."""
        located = self._locate(positions, completed, elapsed_s, job_age_s)
        p50, direct90 = self._quantiles("direct", positions, located)
        if estimator == "direct_by_resource":
            p50 = p50 * self._handler_ratio(positions, handlers, located)
        if estimator in _BLENDED:
            first, second = (self._quantiles(name, positions, located)[0] for name in _BLENDED[estimator])
            p50 = geometric_blend(first, second)
        elif estimator not in ("direct", "direct_by_resource"):
            p50 = self._quantiles(estimator, positions, located)[0]
        raw90 = np.maximum(direct90, p50)
        p90 = np.maximum(raw90 * self.calibration.p90_factor, p50)
        # Never absurd: at most BOUND times the longest job seen, or this job's own age.
        age = np.zeros(positions.size) if job_age_s is None else np.nan_to_num(job_age_s, nan=0.0)
        cap = BOUND * np.maximum(self.selection.longest_s, np.maximum(age, elapsed_s))
        return np.minimum(p50, cap), np.minimum(p90, cap), np.minimum(raw90, cap)

    def _quantiles(
        self, estimator: str, positions: IntArray, located: tuple[IntArray, IntArray, FloatArray, FloatArray]
    ) -> tuple[FloatArray, FloatArray]:
        """P50 and raw P90 of direct, simulation or median for jobs ``located`` in the tables
        (:meth:`_locate`), before calibration and the bound."""
        rows, g, frac, scale = located
        if estimator == "simulation":
            rows = positions
        elif estimator == "median":
            rows = self._fit.rows_by_position[positions]
            g, frac, scale = np.zeros_like(g), np.zeros_like(frac), np.ones_like(scale)
        p50 = _interpolate(self._fit.q50, rows, g, frac, scale)
        return p50, np.maximum(_interpolate(self._fit.q90, rows, g, frac, scale), p50)

    def _handler_ratio(
        self,
        positions: IntArray,
        handlers: IntArray | None,
        located: tuple[IntArray, IntArray, FloatArray, FloatArray],
    ) -> FloatArray:
        """How much longer (or shorter) past jobs in each job's position had left when the same
        person had finished their last stage, against all of them, at the job's elapsed time; 1
        where that group is too small, or nobody the model knows is named. It scales the direct
        estimate, so what the finer groups know (the job's age, the stages it has done) is kept."""
        fit = self._fit
        ratio = np.ones(positions.size)
        if handlers is None or fit.handler_keys.size == 0:
            return ratio
        wanted = positions * (len(fit.handler_names) + 1) + handlers + 1
        at = np.minimum(np.searchsorted(fit.handler_keys, wanted), fit.handler_keys.size - 1)
        found = fit.handler_keys[at] == wanted
        _, g, frac, scale = located
        own = _interpolate(fit.q50, fit.handler_rows[at], g, frac, scale)
        everyone = _interpolate(fit.q50, fit.rows_by_position[positions], g, frac, scale)
        ratio[found] = np.maximum(own[found], 60.0) / np.maximum(everyone[found], 60.0)
        return ratio

    def remaining_many(self, jobs: Sequence[JobProgress]) -> tuple[FloatArray, FloatArray]:
        """P50 and P90 remaining working seconds of many jobs (a table lookup, no simulation)."""
        codes, n = self._codes, len(jobs)
        current = np.fromiter(
            (-1 if j.current_stage is None else codes.get(j.current_stage, -2) for j in jobs), np.int64, n
        )
        last = np.fromiter(
            (-1 if j.last_completed_stage is None else codes.get(j.last_completed_stage, -2) for j in jobs),
            np.int64,
            n,
        )
        completed = np.fromiter((j.completed_stages for j in jobs), np.int64, n)
        elapsed = np.fromiter((j.elapsed_in_stage_s for j in jobs), np.float64, n)
        age = np.fromiter((np.nan if j.job_age_s is None else j.job_age_s for j in jobs), np.float64, n)
        handlers = self.handler_codes([j.handled_by for j in jobs])
        p50, p90, _ = self.remaining_arrays(
            self._positions_known(current, last), completed, elapsed, age, handlers
        )
        return p50, p90

    def remaining(self, job: JobProgress) -> RemainingWork:
        """Remaining working time of one job, explained stage by stage."""
        current = -1 if job.current_stage is None else self._codes.get(job.current_stage, -2)
        last = -1 if job.last_completed_stage is None else self._codes.get(job.last_completed_stage, -2)
        position = self._positions_known(np.array([current]), np.array([last]))
        completed = np.array([job.completed_stages])
        elapsed = np.array([job.elapsed_in_stage_s], dtype=np.float64)
        age = np.array([np.nan if job.job_age_s is None else job.job_age_s])
        handler = self.handler_codes([job.handled_by])
        p50, p90, raw90 = self.remaining_arrays(position, completed, elapsed, age, handler)
        pos = int(position[0])
        rows, g, _, _ = self._locate(position, completed, elapsed, age)
        direct = int(self._fit.direct_samples[rows[0], g[0]])
        basis: Basis
        if direct > 0:
            basis, samples = "history", direct
        else:
            basis, samples = _BASES[self._fit.position_basis[pos]], int(self._fit.position_samples[pos])
        return RemainingWork(
            p50_s=float(p50[0]),
            p90_s=float(p90[0]),
            p90_raw_s=float(raw90[0]),
            basis=basis,
            samples=samples,
            current_stage_remaining_s=(
                self._fit.laws.residual_mean(pos, job.elapsed_in_stage_s) if pos < self.n_stages else None
            ),
            stages=self._outlook(pos),
        )

    def _positions_known(self, current: IntArray, last: IntArray) -> IntArray:
        # A stage the model has never heard of: estimate the whole workflow afresh.
        unknown = (current == -2) | ((current == -1) & (last == -2))
        return np.where(unknown, 2 * self.n_stages, self.positions(current, last))

    def _locate(
        self, positions: IntArray, completed: IntArray, elapsed_s: FloatArray, job_age_s: FloatArray | None
    ) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
        """Table row (finest level known for the job) and elapsed-grid cell of each job."""
        a = np.where(positions == 2 * self.n_stages, 0.0, np.maximum(elapsed_s, 0.0))
        by_stages = positions * N_BUCKETS + prefix_bucket(completed)
        rows = self._fit.rows_by_stages[by_stages]
        if job_age_s is not None:
            known = ~np.isnan(job_age_s)
            # The age bucket is the job's age when its current stage began (or its last one ended).
            ages = age_bucket(np.where(known, job_age_s - a, 0.0))
            by_age = (positions * N_AGES + ages) * N_BUCKETS + prefix_bucket(completed)
            rows = np.where(known, self._fit.rows_by_age[by_age], rows)
        g = np.clip(np.searchsorted(GRID, a, side="right") - 1, 0, GRID.size - 2)
        frac = np.clip((a - GRID[g]) / (GRID[g + 1] - GRID[g]), 0.0, 1.0)
        scale = np.maximum(a / GRID[-1], 1.0)  # beyond the grid the residual keeps growing with age
        return rows, g, frac, scale

    def _outlook(self, position: int) -> tuple[StageOutlook, ...]:
        s = self.n_stages
        start = _first_step(self._fit.transitions, position, s)
        visits, reach = _visits(self._fit.transitions, start)
        laws = self._fit.laws
        return tuple(
            StageOutlook(
                key=self.stage_keys[j],
                probability=float(reach[j]),
                expected_visits=float(visits[j]),
                expected_duration_s=float(laws.mean[j]),
                samples=int(laws.samples[j]),
                basis=_BASES[laws.basis[j]],
            )
            for j in np.argsort(-visits, kind="stable")
            if visits[j] > 1e-3
        )


def _interpolate(
    table: FloatArray, rows: IntArray, g: IntArray, frac: FloatArray, scale: FloatArray
) -> FloatArray:
    low = table[rows, g]
    return np.maximum((low + frac * (table[rows, g + 1] - low)) * scale, 0.0)


# ---------------------------------------------------------------------- fitting


def fit_history(
    cases: Iterable[CaseHistory],
    planned: Sequence[PlannedStage],
    *,
    now: datetime,
    window: int = 2000,
    seed: int = 0,
    half_life_s: float | None = None,
    prior_strength: float = 5.0,
    min_samples: int = MIN_SAMPLES,
    evidence: CalibrationEvidence | None = None,
    current_stage_known: bool = True,
) -> HistoryModel:
    """Learn a workflow's history model from past and open jobs.

    ``window`` bounds the newest samples used per stage (and per position); ``half_life_s``
    optionally down-weights old samples; ``prior_strength`` is n0 of the planned-estimate
    shrinkage; ``min_samples`` is the group size below which direct history backs off to the
    stage simulation. ``evidence`` calibrates P90 on earlier predictions; without it, on the
    newest finished jobs. See :func:`fit_visit_table` for ``current_stage_known``.
    """
    table = VisitTable.from_cases(cases, [stage.key for stage in planned])
    return fit_visit_table(
        table,
        planned,
        now=now,
        window=window,
        seed=seed,
        half_life_s=half_life_s,
        prior_strength=prior_strength,
        min_samples=min_samples,
        evidence=evidence,
        current_stage_known=current_stage_known,
    )


def fit_visit_table(
    table: VisitTable,
    planned: Sequence[PlannedStage],
    *,
    now: datetime,
    window: int = 2000,
    seed: int = 0,
    half_life_s: float | None = None,
    prior_strength: float = 5.0,
    min_samples: int = MIN_SAMPLES,
    evidence: CalibrationEvidence | None = None,
    current_stage_known: bool = True,
    paths_per_position: int = 1000,
) -> HistoryModel:
    """:func:`fit_history` on the array form (what the backtest uses).

    ``paths_per_position`` caps the simulated futures from each position (the backtest, which refits
    often, uses fewer). ``current_stage_known=False`` is for histories from event logs, which record
    completions only: jobs are then always predicted "just after stage x", and the direct history
    of positions inside stages is not built (the stage simulation still covers them).
    """
    planned_by_key = {stage.key: stage for stage in planned}
    missing = [stage.key for stage in planned if stage.key not in table.stage_keys]
    if missing:
        raise ValueError(f"planned stages missing from the visit table: {missing}")
    s = len(table.stage_keys)
    rng = np.random.default_rng(seed)
    now_epoch = now.timestamp()

    def recency(times: FloatArray) -> FloatArray:
        if half_life_s is None:
            return np.ones(times.size)
        return np.asarray(0.5 ** (np.maximum(now_epoch - times, 0.0) / half_life_s), dtype=np.float64)

    # Stage duration laws and transitions from the newest `window` visits per stage.
    case = table.case_of_visit
    is_last = np.zeros(table.stage.size, dtype=np.bool_)
    is_last[table.case_start[1:][np.diff(table.case_start) > 0] - 1] = True
    newest = newest_per_group(table.stage, table.entered, window, table.finished & table.informative)
    weights = recency(table.entered)
    laws = _stage_laws(table, planned_by_key, newest & table.informative, weights, prior_strength)
    transitions = _transitions(table, planned, newest, is_last, case, weights, window)

    # Simulated futures from every position.
    n_pos = 2 * s + 1
    paths = int(np.clip(_PATH_BUDGET // n_pos, min(300, paths_per_position), paths_per_position))
    d1, total = _futures(laws, transitions, paths, rng)
    q50, q90 = _simulated_rows(d1, total, n_pos, paths, max(paths // 50, 10))

    # Direct history of remaining times, ever finer: by position; then by how long the job has been
    # running and how many stages it has completed (or the latter alone when its age is unknown).
    # Each level backs off to the coarser one wherever its groups are thin.
    moments = moments_of(table, is_last, case, inside_stages=current_stage_known)
    ranked = RankedMoments.of(moments, recency(moments.time))
    timeless = moments.position == 2 * s

    def level(
        tables: tuple[FloatArray, FloatArray, IntArray], parent_rows: IntArray, fan_out: int, keys: IntArray
    ) -> tuple[tuple[FloatArray, FloatArray, IntArray], IntArray]:
        found = direct_level(keys, ranked, window=window, min_samples=min_samples, timeless=timeless)
        return add_level(tables, np.repeat(parent_rows, fan_out), found)

    stages = prefix_bucket(moments.completed)
    by_age = moments.position * N_AGES + age_bucket(moments.age)
    markov = (q50, q90, np.zeros((n_pos, GRID.size), dtype=np.int64))
    tables, rows_by_position = level(markov, np.arange(n_pos), 1, moments.position)
    tables, rows_by_stages = level(tables, rows_by_position, N_BUCKETS, moments.position * N_BUCKETS + stages)
    tables, rows = level(tables, rows_by_position, N_AGES, by_age)
    tables, rows_by_age = level(tables, rows, N_BUCKETS, by_age * N_BUCKETS + stages)
    # By who finished the job's last stage, backed by the position's row; only when two people or
    # more are named (one person's jobs are everyone's). The moments naming nobody form no group: a
    # job moved on by nobody named, or by someone without history, is nobody's in particular.
    handler_keys = handler_rows = np.zeros(0, np.int64)
    if len(table.handler_names) > 1:
        fan_out = len(table.handler_names) + 1
        # The (position, handler) pairs seen, numbered densely: a log may name thousands of people.
        pairs, pair = np.unique(moments.position * fan_out + moments.handler + 1, return_inverse=True)
        found = direct_level(pair, ranked, window=window, min_samples=min_samples, timeless=timeless)
        named = pairs[found.keys] % fan_out != 0
        found = DirectLevel(found.keys[named], found.q50[named], found.q90[named], found.samples[named])
        tables, rows_by_pair = add_level(tables, rows_by_position[pairs // fan_out], found)
        handler_keys, handler_rows = pairs[found.keys], rows_by_pair[found.keys]
    q50, q90, direct_samples = tables
    q90 = np.maximum(q90, q50)

    position_basis, position_samples = _position_bases(laws, transitions, s)
    visit_draws = laws.sample(np.repeat(np.arange(s), 2000), rng).reshape(s, 2000)
    fitted = _Fitted(
        stage_keys=table.stage_keys,
        laws=laws,
        transitions=transitions,
        q50=q50,
        q90=q90,
        direct_samples=direct_samples,
        rows_by_position=rows_by_position,
        rows_by_stages=rows_by_stages,
        rows_by_age=rows_by_age,
        position_basis=position_basis,
        position_samples=position_samples,
        stage_p90=np.quantile(visit_draws, 0.9, axis=1) if s else np.zeros(0),
        handler_keys=handler_keys,
        handler_rows=handler_rows,
        handler_names=table.handler_names,
    )
    model = HistoryModel(fitted, Calibration(1.0, float("nan"), float("nan"), 0, "none"))
    model = model.with_selection(_select(model, moments, table, _longest(table, planned)))
    # Jobs the model was fitted on flatter it: their evidence may widen P90, never narrow it.
    in_sample = calibrate(_in_sample_evidence(model, moments, table), source="in-sample")
    if in_sample.p90_factor < 1.0:
        in_sample = replace(in_sample, p90_factor=1.0, coverage=in_sample.coverage_raw)
    if evidence is None or evidence.raw_p90_s.size == 0:
        return model.with_calibration(in_sample)
    # Earlier estimates and what became of them: out of sample, so they may narrow P90 too; a few
    # outcomes move the factor a little from the in-sample one.
    return model.with_calibration(calibrate(evidence, prior_factor=in_sample.p90_factor))


def evidence_window(since_s: FloatArray, closed_remaining_s: FloatArray, size: int) -> slice:
    """Which earlier predictions calibrate P90, among those with ``since_s`` working seconds from
    each to now (oldest first): the newest ``size`` made long enough ago for most of their jobs to
    have closed (longer ago than the P80 of ``closed_remaining_s``, the remaining times of jobs
    that closed), or the newest ``size`` of all when fewer than half as many are that old.

    Newer predictions would be decided mostly by the jobs that closed early; older ones follow
    drift less closely.
    """
    horizon = float(np.quantile(closed_remaining_s, 0.8)) if closed_remaining_s.size else 0.0
    old_enough = int(np.searchsorted(-since_s, -horizon, side="left"))
    end = old_enough if old_enough >= min(size, since_s.size) // 2 else since_s.size
    return slice(max(end - size, 0), end)


def calibrate(
    evidence: CalibrationEvidence,
    target: float = 0.9,
    source: CalibrationSource = "evidence",
    prior_factor: float = 1.0,
) -> Calibration:
    """Split-conformal factor for P90: the smallest factor ``f`` whose scaled P90 covers
    ``target`` of the outcomes.

    A closed job is a hit or a miss by its outcome, and a job still open past its scaled P90 a
    miss. A job still open within its scaled P90 counts as its chance of making it
    (:func:`_open_chance`): at most ``target``, less the longer it has run, so open jobs never
    vouch for a factor the closed ones do not support. Leaving them out instead would let the jobs
    that closed early speak for the long P90s, and only the short P90s pass soon enough to be seen
    missed: the factor would swing with the share of each. No factor reaching the target gives
    the largest. The factor is pulled towards ``prior_factor`` (1: the model as it is) in log scale
    by ``d / (d + CALIBRATION_PRIOR)``, ``d`` the outcomes decided at the raw P90, so a few outcomes
    move it a little and many all the way; it stays within [1/2, 4]: calibration corrects a model,
    it does not replace it.
    ``source`` names the evidence; without any, the calibration's source is ``none``.
    """
    n = int(evidence.raw_p90_s.size)
    if n == 0:
        return Calibration(1.0, float("nan"), float("nan"), 0, "none")
    raw = np.maximum(evidence.raw_p90_s, 60.0)
    scaled = _FACTORS * raw[:, None]
    covered = (evidence.resolved[:, None] & (evidence.observed_s[:, None] <= scaled)).astype(np.float64)
    decided = evidence.resolved.copy()
    if evidence.since_s is not None and evidence.raw_p50_s is not None:
        still_open = ~evidence.resolved
        covered[still_open] = _open_chance(
            evidence.raw_p50_s[still_open], raw[still_open], evidence.since_s[still_open], target
        )
        decided |= evidence.since_s >= raw
    coverage = covered.mean(axis=0)
    reached = np.flatnonzero(coverage >= target)
    at = int(reached[0]) if reached.size else _FACTORS.size - 1
    d = int(decided.sum())
    weight = d / (d + CALIBRATION_PRIOR)
    factor = float(np.exp(weight * np.log(_FACTORS[at]) + (1.0 - weight) * np.log(prior_factor)))
    at_factor = min(int(np.searchsorted(_FACTORS, factor - 1e-12)), _FACTORS.size - 1)
    return Calibration(
        p90_factor=factor,
        coverage_raw=float(coverage[_UNSCALED]),
        coverage=float(coverage[at_factor]),
        samples=n,
        source=source,
    )


def _open_chance(raw_p50: FloatArray, raw_p90: FloatArray, since: FloatArray, target: float) -> FloatArray:
    """The chance, for each open job (rows) and each factor ``f`` (columns), that it ends within
    ``f`` times its P90 given it has run ``since``, with its estimate scaled by ``f`` too.

    The estimate is read as a log-logistic law through its P50 and P90 (the usual law of a
    duration with a long right tail): the chance is ``1 - (1 - target) / S(since / f)``, at most
    ``target`` at the start and zero once the scaled P90 has passed.
    """
    median = np.clip(raw_p50, 1.0, raw_p90)
    shape = np.log(target / (1.0 - target)) / np.maximum(np.log(raw_p90 / median), 0.05)
    ran = np.maximum(since, 1.0)[:, None] / _FACTORS
    log_odds = np.clip(shape[:, None] * np.log(ran / median[:, None]), -50.0, 50.0)
    survival = 1.0 / (1.0 + np.exp(log_odds))
    return np.asarray(np.clip(1.0 - (1.0 - target) / np.maximum(survival, 1e-12), 0.0, 1.0))


# ---------------------------------------------------------------------- stage laws and transitions


def _stage_laws(
    table: VisitTable,
    planned: dict[str, PlannedStage],
    use: BoolArray,
    weights: FloatArray,
    prior_strength: float,
) -> _StageLaws:
    s = len(table.stage_keys)
    pooled = (
        *km_masses(table.duration[use], table.finished[use], weights[use]),
        float(table.duration[use].max(initial=0.0)),
    )
    quantiles = np.zeros((s, _LEVELS + 1))
    levels = np.arange(_LEVELS + 1) / _LEVELS
    samples = np.zeros(s, dtype=np.int64)
    hist_mean = np.zeros(s)
    for stage in range(s):
        mask = use & (table.stage == stage)
        samples[stage] = int((mask & table.finished).sum())
        support, mass, leftover = km_masses(table.duration[mask], table.finished[mask], weights[mask])
        longest = float(table.duration[mask].max(initial=0.0))
        if samples[stage] == 0:
            support, mass, leftover, longest = pooled
        support, probs = _with_tail(support, mass, leftover, longest)
        cdf = np.cumsum(probs)
        quantiles[stage] = support[np.minimum(np.searchsorted(cdf, levels - 1e-12), support.size - 1)]
        hist_mean[stage] = float(support @ probs)
    has_prior = np.array([key in planned for key in table.stage_keys], dtype=np.bool_)
    low, mode, high = (
        np.array([getattr(planned[k], attr) if k in planned else 0.0 for k in table.stage_keys])
        for attr in ("optimistic_s", "most_likely_s", "pessimistic_s")
    )
    span = high - low
    safe = np.where(span > 0, span, 1.0)
    alpha = np.where(span > 0, 1 + 4 * (mode - low) / safe, 1.0)
    beta = np.where(span > 0, 1 + 4 * (high - mode) / safe, 1.0)
    weight = np.where(has_prior, samples / (samples + prior_strength), 1.0)
    pert_mean = (low + 4 * mode + high) / 6
    mean = np.where(has_prior, weight * hist_mean + (1 - weight) * pert_mean, hist_mean)
    basis = np.where(
        has_prior & (samples == 0),
        _PLANNED,
        np.where(~has_prior | (weight >= 0.9), _HISTORY, _BLEND),
    )
    return _StageLaws(
        quantiles=quantiles,
        samples=samples,
        history_weight=weight,
        has_prior=has_prior,
        prior_low=low,
        prior_span=span,
        prior_alpha=alpha,
        prior_beta=beta,
        mean=mean,
        basis=basis.astype(np.int64),
    )


def _with_tail(
    support: FloatArray, mass: FloatArray, leftover: float, longest: float
) -> tuple[FloatArray, FloatArray]:
    """Support and probabilities. The mass the KM curve leaves beyond the longest (open) visit is
    spread as an exponential tail whose mean residual equals that visit's length."""
    if leftover > 1e-9 and longest > 0:
        support = np.concatenate([support, longest * _TAIL])
        mass = np.concatenate([mass, np.full(_TAIL.size, leftover / _TAIL.size)])
    if mass.sum() <= 0:
        return np.zeros(1), np.ones(1)
    return support, mass / mass.sum()


def _transitions(
    table: VisitTable,
    planned: Sequence[PlannedStage],
    newest: BoolArray,
    is_last: BoolArray,
    case: IntArray,
    weights: FloatArray,
    window: int,
) -> FloatArray:
    """Row-stochastic matrix: rows are stages then START; columns are stages then END."""
    s = len(table.stage_keys)
    counts = np.zeros((s + 1, s + 1))
    source = newest & ~is_last
    idx = np.flatnonzero(source)
    np.add.at(counts, (table.stage[idx], table.stage[idx + 1]), weights[idx])
    ended = newest & is_last & table.case_finished[case]
    np.add.at(counts, (table.stage[ended], np.full(int(ended.sum()), s)), weights[ended])
    firsts = table.case_start[:-1][np.diff(table.case_start) > 0]
    firsts = firsts[np.argsort(-table.entered[firsts], kind="stable")[:window]]
    np.add.at(counts, (np.full(firsts.size, s), table.stage[firsts]), weights[firsts])
    # One pseudo-observation of the declared order: it decides only where history is silent.
    code = {key: i for i, key in enumerate(table.stage_keys)}
    order = [code[stage.key] for stage in planned]
    for here, there in zip([s, *order], [*order, s], strict=True):
        if here != s or there != s:
            counts[here, there] += 1.0
    empty = counts.sum(axis=1) == 0
    counts[empty, s] = 1.0
    return np.asarray(counts / counts.sum(axis=1, keepdims=True), dtype=np.float64)


def _first_step_table(transitions: FloatArray, s: int) -> FloatArray:
    """Where a job goes next when it is known to be open: after x (no END), or from START."""
    after = transitions[:s, :s].copy()
    marginal = transitions[:s, :s].sum(axis=0) + transitions[s, :s]
    fallback = marginal / marginal.sum() if marginal.sum() > 0 else np.full(s, 1.0 / max(s, 1))
    silent = after.sum(axis=1) == 0
    after[silent] = fallback
    after /= after.sum(axis=1, keepdims=True)
    rows = np.vstack([after, transitions[s, :s] if transitions[s, :s].sum() > 0 else fallback])
    # END column: never taken as a first step.
    return np.asarray(
        np.hstack([rows / rows.sum(axis=1, keepdims=True), np.zeros((s + 1, 1))]), dtype=np.float64
    )


def _first_step(transitions: FloatArray, position: int, s: int) -> FloatArray:
    """Distribution of the first stage still ahead of a job at ``position`` (length s + 1, END last)."""
    if position < s:
        start = np.zeros(s + 1)
        start[position] = 1.0
        return start
    row: FloatArray = _first_step_table(transitions, s)[position - s]
    return row


def _visits(transitions: FloatArray, start: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Expected visits per stage and probability of visiting it at least once."""
    s = transitions.shape[0] - 1
    q = transitions[:s, :s] * (1 - 1e-9)
    fundamental = np.linalg.inv(np.eye(s) - q)
    visits = start[:s] @ fundamental
    reach = np.clip(visits / np.maximum(np.diag(fundamental), 1.0), 0.0, 1.0)
    return visits, reach


@dataclass(frozen=True)
class _Draws:
    """The nonzero cells of a row-stochastic table (column s = END), flattened, with a guide table:
    for each of ``width`` equal slices of a row's [0, 1), the first cell that a draw in that slice
    can land on. A draw reads the guide and steps forward past the cells it lies beyond, about
    cells / ``width`` steps, where a binary search over every cell took about log2(cells) random
    reads (dense tables, where anything follows anything, spent most of a fit there)."""

    within: FloatArray  # cumulative probability of each cell within its row; the row's last is 1
    columns: IntArray
    guide: IntArray  # (rows, width): the first cell of the row whose cumulative exceeds slice / width

    @classmethod
    def of(cls, table: FloatArray) -> _Draws:
        ending = np.zeros_like(table)
        ending[:, -1] = 1.0
        table = np.where(table.sum(axis=1, keepdims=True) > 0, table, ending)  # nothing ahead: END
        rows, columns = np.nonzero(table)
        cumulative = np.cumsum(table[rows, columns])
        first = np.searchsorted(rows, np.arange(table.shape[0]), side="left")
        within = cumulative - np.r_[0.0, cumulative][first][rows]
        last = np.r_[first[1:], rows.size] - 1
        within[last] = 1.0  # the last cell of a row closes it exactly
        n_rows = table.shape[0]
        cells = int(np.diff(np.r_[first, rows.size]).max(initial=1))
        width = max(min(cells, _GUIDE_CELLS // max(n_rows, 1)), 1)
        slices = np.arange(width) / width
        guide = np.searchsorted(rows + within, np.arange(n_rows)[:, None] + slices[None, :], side="right")
        return cls(within, columns.astype(np.int64), np.minimum(guide, last[:, None]))

    def draw(self, rows: IntArray, rng: np.random.Generator) -> IntArray:
        """One column per row index: the first cell of the row whose cumulative exceeds a uniform
        draw (the row's last cell closes at 1, so the steps never leave the row)."""
        u = rng.random(rows.size)
        width = self.guide.shape[1]
        cell: IntArray = self.guide[rows, (u * width).astype(np.int64)]
        behind = np.flatnonzero(self.within[cell] <= u)
        while behind.size:
            cell[behind] += 1
            behind = behind[self.within[cell[behind]] <= u[behind]]
        return self.columns[cell]


def _simulate(
    laws: _StageLaws, transitions: FloatArray, first: IntArray, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Duration of the first stage and total remaining time of each simulated future."""
    s = transitions.shape[0] - 1
    steps = _Draws.of(transitions)
    d1 = np.zeros(first.size)
    total = np.zeros(first.size)
    current = first.copy()
    alive = np.flatnonzero(current < s)
    # The last 0.1 % of futures (endless rework) are cut short: they do not move P50 or P90.
    for step in range(_MAX_STEPS):
        if alive.size <= first.size // 1000:
            break
        duration = laws.sample(current[alive], rng)
        if step == 0:
            d1[alive] = duration
        total[alive] += duration
        nxt = steps.draw(current[alive], rng)
        current[alive] = nxt
        alive = alive[nxt < s]
    return d1, total


def _futures(
    laws: _StageLaws, transitions: FloatArray, paths: int, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """``paths`` simulated futures from each position, in position order (see :func:`_simulate`).

    Only the futures from inside each stage are simulated. A job just after stage x (or not
    started) is inside its next stage y once it moves on, so its futures are those of the stages
    drawn as next, taken without repeats (a cyclic run from a random start among each y's): half
    the simulation, and where y always follows x the two positions answer alike.
    """
    s = transitions.shape[0] - 1
    if s == 0:  # a workflow without stages: nothing lies ahead of a job
        return np.zeros(paths), np.zeros(paths)
    d1, total = _simulate(laws, transitions, np.repeat(np.arange(s), paths), rng)
    after = np.arange((s + 1) * paths) // paths
    nxt = _Draws.of(_first_step_table(transitions, s)).draw(after, rng)
    order = np.lexsort((nxt, after))
    starts = run_starts(after[order] * (s + 1) + nxt[order])
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size) - np.repeat(starts, np.diff(np.r_[starts, order.size]))
    offset = rng.integers(0, paths, s + 1)[after]
    taken = nxt * paths + (rank + offset) % paths
    return np.r_[d1, d1[taken]], np.r_[total, total[taken]]


def _simulated_rows(
    d1: FloatArray, total: FloatArray, n_pos: int, paths: int, min_paths: int
) -> tuple[FloatArray, FloatArray]:
    """Residual quantiles on the elapsed grid per position: futures whose first stage outlasts a."""
    q50 = np.zeros((n_pos, GRID.size))
    q90 = np.zeros((n_pos, GRID.size))
    for pos in range(n_pos):
        block = slice(pos * paths, (pos + 1) * paths)
        order = np.argsort(d1[block], kind="stable")
        first, rest = d1[block][order], total[block][order]
        if pos == n_pos - 1:  # not started: time since creation says nothing about the stages
            q50[pos], q90[pos] = _median_p90(rest)
            continue
        cut = np.searchsorted(first, GRID, side="right")
        valid = paths - cut >= min_paths
        for k in np.unique(cut[valid]):
            at = np.flatnonzero(valid & (cut == k))
            lo, hi = _median_p90(rest[k:])
            q50[pos, at], q90[pos, at] = lo - GRID[at], hi - GRID[at]
        last = int(np.flatnonzero(valid)[-1]) if valid.any() else 0
        _extend_tail(q50[pos], q90[pos], last)
    return q50, q90


def _median_p90(values: FloatArray) -> tuple[float, float]:
    n = values.size
    i50, i90 = (n - 1) // 2, min(int(np.ceil(0.9 * n)) - 1, n - 1)
    part = np.partition(values, (i50, i90))
    return float(part[i50]), float(part[i90])


def _extend_tail(q50: FloatArray, q90: FloatArray, last: int) -> None:
    """Past the last supported grid point the residual grows in proportion to elapsed time."""
    growth = np.maximum(GRID[last + 1 :] / max(GRID[last], GRID[1]), 1.0)
    q50[last + 1 :] = q50[last] * growth
    q90[last + 1 :] = q90[last] * growth


def _position_bases(laws: _StageLaws, transitions: FloatArray, s: int) -> tuple[IntArray, IntArray]:
    """Basis and sample count of the simulation from each position, over the stages it may visit."""
    n_pos = 2 * s + 1
    basis = np.full(n_pos, _PLANNED, dtype=np.int64)  # nothing learned where nothing lies ahead
    samples = np.zeros(n_pos, dtype=np.int64)
    if s == 0:
        return basis, samples
    first = np.vstack([np.eye(s, s + 1), _first_step_table(transitions, s)])
    q = transitions[:s, :s] * (1 - 1e-9)
    visits = first[:, :s] @ np.linalg.inv(np.eye(s) - q)
    for pos in range(n_pos):
        ahead = visits[pos] > 0.05
        kinds = set(laws.basis[ahead].tolist())
        samples[pos] = int(laws.samples[ahead].sum())
        if kinds:
            basis[pos] = kinds.pop() if len(kinds) == 1 else _BLEND
    return basis, samples


def _longest(table: VisitTable, planned: Sequence[PlannedStage]) -> float:
    """The longest job the workflow has seen (open ones so far), or its whole plan at the slowest."""
    worked = np.bincount(table.case_of_visit, weights=table.duration, minlength=table.n_cases)
    seen = float((worked + table.case_open_s).max(initial=0.0))
    return max(seen, sum(stage.pessimistic_s for stage in planned)) or float("inf")


def _recent_moments(model: HistoryModel, moments: Moments, table: VisitTable) -> BoolArray:
    """Moments of the newest closed jobs (by their last stage entry), except "not started"."""
    closed_cases = np.flatnonzero(table.case_finished & (np.diff(table.case_start) > 0))
    last_entry = table.entered[table.case_start[1:][closed_cases] - 1]
    recent = closed_cases[np.argsort(-last_entry, kind="stable")[:_CALIBRATION_CASES]]
    return np.asarray(np.isin(moments.case, recent) & (moments.position != 2 * model.n_stages))


def _select(model: HistoryModel, moments: Moments, table: VisitTable, longest: float) -> Selection:
    """Score every candidate on the newest closed jobs, replayed from each of their moments."""
    pick = _recent_moments(model, moments, table)
    bounded = model.with_selection(Selection(longest_s=longest))
    # Without a handler table, by resource would be direct itself: not a candidate.
    names = ESTIMATORS if model._fit.handler_keys.size else ESTIMATORS[:-1]
    p50 = np.vstack(
        [
            bounded._candidate_arrays(
                name,
                moments.position[pick],
                moments.completed[pick],
                np.zeros(int(pick.sum())),
                moments.age[pick],
                moments.handler[pick],
            )[0]
            for name in names
        ]
    )
    choice = choose(names, p50, moments.remaining[pick], moments.closed[pick], default=ESTIMATORS[0])
    chosen = next(name for name in ESTIMATORS if name == choice.name)
    scored_jobs = int(np.unique(moments.case[pick]).size)  # each job is replayed from several moments
    return Selection(chosen, choice.reason, longest, choice.why, scored_jobs)


def _in_sample_evidence(model: HistoryModel, moments: Moments, table: VisitTable) -> CalibrationEvidence:
    """Recently closed jobs, replayed from each of their moments at zero elapsed time."""
    pick = _recent_moments(model, moments, table)
    _, _, raw90 = model.remaining_arrays(
        moments.position[pick],
        moments.completed[pick],
        np.zeros(int(pick.sum())),
        moments.age[pick],
        moments.handler[pick],
    )
    return CalibrationEvidence(raw90, moments.remaining[pick], np.ones(raw90.size, dtype=np.bool_))


__all__ = [
    "GRID",
    "Basis",
    "Calibration",
    "CalibrationEvidence",
    "HistoryModel",
    "RemainingWork",
    "Selection",
    "StageOutlook",
    "calibrate",
    "fit_history",
    "fit_visit_table",
    "prefix_bucket",
]
