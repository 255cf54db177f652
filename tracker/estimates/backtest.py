"""Deployment-faithful backtest of the estimator on an event log.

Each case is a job and each event the completion of a stage named by its activity; a stage lasts
from the case's previous event, and the first event is the case start. The log is replayed in
time order. After every event but a case's last, the case's remaining time is predicted from what
was known at the last refit only: cases whose last event came before it, and cases still running
then (right-censored). Nothing later leaks in.

At each refit the candidate predictors of the P50 (:data:`CANDIDATES`: the direct "what remained
for past jobs here" estimate, the same refined by who handled the case's last event when the log
names resources, the plain median by activity, the service's history model as it answers (its own
pick among the stage simulation, its direct table, the median and their blends), and two geometric
blends) are scored on two sets of earlier predictions whose biases pull opposite
ways: the newest ones old enough for most of their cases to have closed (the open ones counted by
their certain error, which favours long predictions), and all those of the cases that closed last
(exact, but short cases close first), each set weighing the same however many rows it has - and
the best one answers until the next refit. The plain median, the bar itself, answers whenever no
other candidate beats it clearly (by 1 % and by two standard errors): with misleading evidence the
estimate is never worse than the bar. Until 30 cases have closed in the evidence, the bar is
raised to the median age of the cases still running (the cold start): the few cases closed that
early are the short ones, and before any has closed the bar says every case ends now. The cold
start ends for good once the candidates have been scored: where evidence thins out later (the end
of a log, when a few long cases are all that run) the bar itself answers, since the age of those
survivors says nothing of the time they have left.
The P90 is always the direct estimate's: a censoring-aware quantile of what remained for past
cases in the same position and at the same age (a geometric blend of two P90s is no quantile, and
the plain median's comes from the closed cases alone, the short ones). It is calibrated
split-conformally on the first set (its predictions made after the cold start by a model fitted
on at least half as many closed cases as the current one), a job still open counted as a miss
once past its P90 and before that as its chance of still making it, so the calibration follows
drift.

The bar is the replay baseline: at each prediction's instant, the median remaining time after the
same activity of the cases closed before it (all activities pooled when that one has none). It is
written beside each prediction in the predictions file.
"""

from __future__ import annotations

import csv
import heapq
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from tracker.estimates.eventlog import EventLog, WorkingTime, iso_utc
from tracker.estimates.history import BoolArray, FloatArray, IntArray, VisitTable
from tracker.estimates.model import (
    BOUND,
    MIN_SAMPLES,
    N_BUCKETS,
    CalibrationEvidence,
    HistoryModel,
    calibrate,
    evidence_window,
    fit_visit_table,
    prefix_bucket,
)
from tracker.estimates.residual import SHRINKAGE, grouped_quantiles, residual_quantiles, shrink
from tracker.estimates.selection import choose, geometric_blend

_DAY = 86_400.0
_PREFIXES = 10
_TENTHS = 10
_AGE_BUCKETS = 5
_SIMULATED_PATHS = 250  # per position: enough for a P50 and P90 to compete with, four times cheaper
_MATURITY = 0.5  # P90 calibration heeds models fitted on at least this share of the current one's cases


class WorkingCalendar(WorkingTime, Protocol):
    """The part of the business calendar the backtest needs (POSIX seconds in, out)."""

    def add_working_seconds_many(self, start_epoch: npt.ArrayLike, seconds: npt.ArrayLike) -> FloatArray: ...


class ElapsedTime:
    """Working time that is elapsed time (a 24x7 calendar) without a calendar's day tables: a log
    spanning years, with estimates reaching years ahead, costs nothing to convert."""

    def working_seconds_between_many(
        self, start_epoch: npt.ArrayLike, end_epoch: npt.ArrayLike
    ) -> FloatArray:
        start, end = np.broadcast_arrays(
            np.asarray(start_epoch, np.float64), np.asarray(end_epoch, np.float64)
        )
        return np.asarray(np.maximum(end - start, 0.0), dtype=np.float64)

    def add_working_seconds_many(self, start_epoch: npt.ArrayLike, seconds: npt.ArrayLike) -> FloatArray:
        return np.asarray(np.add(start_epoch, seconds), dtype=np.float64)


@dataclass(frozen=True)
class BacktestOptions:
    """How often to refit and how the model is fitted.

    A refit happens a simulated ``refit_every_s`` after the last one once ``min_closed_growth``
    more cases have closed, or sooner once closed cases or events seen have grown by
    ``refit_growth`` (so the sparse start of a log is not starved). Each fit sees the newest cases
    (by start) back to the ``history_cases``-th newest finished one, running cases included, as a
    service would load a bounded history. The choice of candidate and the P90 calibration look at
    ``evidence`` earlier predictions: fewer follow drift sooner, more are steadier.
    """

    refit_every_s: float = _DAY
    refit_growth: float = 0.1
    history_cases: int = 20_000
    window: int = 2000
    evidence: int = 1000
    min_closed_growth: float = 0.02
    half_life_s: float | None = None
    min_samples: int = MIN_SAMPLES
    seed: int = 0
    cost_prior: float = 30.0


@dataclass(frozen=True)
class PrefixScore:
    prefix_length: int
    predictions: int
    mae_days: float
    baseline_mae_days: float


@dataclass(frozen=True)
class TenthScore:
    """Scores of the predictions made in one tenth of the log's time span (1 = the first).

    A P90 reaching past the log's last event can never be seen missed: a case still running when
    the log was cut ends, in the log, at its last event. ``decidable`` counts the predictions whose
    P90 falls within the log, and ``p90_coverage_decidable`` is their coverage: near the end of a
    log cut at a date, the plain coverage tends to 1 whatever the estimator does.
    """

    tenth: int
    predictions: int
    mae_days: float
    baseline_mae_days: float
    p90_coverage: float
    decidable: int
    p90_coverage_decidable: float


@dataclass(frozen=True)
class CostScore:
    mae: float
    baseline_mae: float
    p90_coverage: float


@dataclass(frozen=True)
class BacktestReport:
    """Scores of one backtest run; ``to_json`` gives a JSON-ready dict, ``render`` text."""

    log: str
    calendar: str
    events: int
    cases: int
    predictions: int
    refits: int
    mae_days: float
    baseline_mae_days: float
    mae_days_per_case: float
    baseline_mae_days_per_case: float
    p90_coverage: float
    p50_coverage: float
    mean_p90_width_days: float
    by_prefix: tuple[PrefixScore, ...]
    by_tenth: tuple[TenthScore, ...]
    estimators: dict[str, int]
    cost: CostScore | None
    runtime_s: float
    events_per_s: float
    options: BacktestOptions = field(default_factory=BacktestOptions)
    candidates_mae_days: dict[str, float] = field(default_factory=dict)
    """The P50 MAE each candidate would have had answering every prediction alone (within the same
    bound): ``service`` is what the service's own history model gives on this log."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        lines = [
            f"log               {self.log}",
            f"calendar          {self.calendar}",
            f"events / cases    {self.events} / {self.cases}",
            f"predictions       {self.predictions} ({self.refits} refits)",
            f"P50 MAE           {self.mae_days:.3f} days   (baseline {self.baseline_mae_days:.3f}: "
            f"median remaining after the last activity)",
            f"  per case        {self.mae_days_per_case:.3f} days   "
            f"(baseline {self.baseline_mae_days_per_case:.3f})",
            f"P90 coverage      {self.p90_coverage:.3f}   (P50 coverage {self.p50_coverage:.3f}, "
            f"mean P90 - P50 {self.mean_p90_width_days:.2f} days)",
            "by prefix length  k: n  MAE  baseline",
        ]
        lines += [
            f"  {s.prefix_length:>2}: {s.predictions:>7}  {s.mae_days:7.3f}  {s.baseline_mae_days:7.3f}"
            for s in self.by_prefix
        ]
        lines.append("by tenth of time  t: n  MAE  baseline  P90 coverage  (P90 within the log: n, coverage)")
        lines += [
            f"  {t.tenth:>2}: {t.predictions:>7}  {t.mae_days:7.3f}  {t.baseline_mae_days:7.3f}"
            f"  {t.p90_coverage:.3f}  ({t.decidable}, {t.p90_coverage_decidable:.3f})"
            for t in self.by_tenth
        ]
        lines.append("estimator chosen  " + ", ".join(f"{k} {v}" for k, v in self.estimators.items()))
        alone = ", ".join(f"{k} {v:.3f}" for k, v in self.candidates_mae_days.items())
        lines.append(f"each alone, MAE   {alone}")
        if self.cost is not None:
            lines.append(
                f"cost MAE          {self.cost.mae:.2f}   (no further cost {self.cost.baseline_mae:.2f}), "
                f"P90 coverage {self.cost.p90_coverage:.3f}"
            )
        lines.append(f"runtime           {self.runtime_s:.1f} s ({self.events_per_s:,.0f} events/s)")
        return "\n".join(lines)


@dataclass(frozen=True)
class Predictions:
    """One row per prediction, in time order (POSIX seconds)."""

    case: IntArray
    prefix_length: IntArray
    activity: IntArray
    predicted_at: FloatArray
    p50_end: FloatArray
    p90_end: FloatArray
    actual_end: FloatArray
    baseline_end: FloatArray
    estimator: IntArray  # index in ESTIMATORS of the predictor chosen
    cost_so_far: FloatArray | None = None
    cost_p50: FloatArray | None = None
    cost_p90: FloatArray | None = None
    actual_cost: FloatArray | None = None


@dataclass(frozen=True)
class Backtest:
    report: BacktestReport
    predictions: Predictions


def run_backtest(
    log: EventLog,
    *,
    calendar: WorkingCalendar | None = None,
    calendar_name: str = "24x7",
    options: BacktestOptions | None = None,
    name: str = "",
) -> Backtest:
    """Replay ``log`` in time order and score the predictions (see the module docstring)."""
    started = time.perf_counter()
    options = options or BacktestOptions()
    cal: WorkingCalendar = calendar if calendar is not None else ElapsedTime()
    ev = _Events.build(log, cal)
    pred = ev.prediction_order()
    n_pred = pred.size
    names = CANDIDATES if ev.resource is not None else CANDIDATES[:-1]  # the last needs resources
    p50_all = np.zeros((len(names), n_pred))
    direct90, median90 = np.zeros(n_pred), np.zeros(n_pred)
    p50_s, p90_s, caps = np.zeros(n_pred), np.zeros(n_pred), np.zeros(n_pred)
    chosen = np.zeros(n_pred, dtype=np.int64)
    fitted_on = np.zeros(n_pred, dtype=np.int64)  # closed cases behind the model that answered
    cost_p50, cost_p90 = np.zeros(n_pred), np.zeros(n_pred)
    finished = _FinishedPrefixes.build(ev)
    refits = _refit_instants(ev, options)
    bounds = np.append(np.searchsorted(ev.time[pred], refits, side="left"), n_pred)
    moments = _Moments.build(ev, pred, cal)
    baseline = finished.replay_baseline(ev, pred)
    service: _ServiceModel | None = None
    cold = True
    for r, instant in enumerate(refits):
        lo, hi = int(bounds[r]), int(bounds[r + 1])
        if lo == hi:
            continue
        block = pred[lo:hi]
        known = moments.at(instant, options.history_cases)
        if service is None or service.stale(known):
            service = _ServiceModel.fit(ev, instant, known, options, cal)
        p50_all[:, lo:hi], direct90[lo:hi], median90[lo:hi] = _candidates(
            ev, known, block, service, baseline[lo:hi]
        )
        evidence = moments.evidence(instant, lo, options.evidence, known)
        closed_last = moments.closed_last(instant, options.evidence)
        choice = choose(
            names,
            p50_all[:, np.r_[evidence.rows, closed_last.rows]],
            np.r_[evidence.observed, closed_last.observed],
            np.r_[evidence.resolved, closed_last.resolved],
            default=_DEFAULT,
            weights=np.r_[_equal_share(evidence.rows.size), _equal_share(closed_last.rows.size)],
            cases=moments.case[np.r_[evidence.rows, closed_last.rows]],
        )
        k = names.index(choice.name)
        cold = cold and not choice.errors
        chosen[lo:hi] = ESTIMATORS.index(COLD_START if cold else choice.name)
        fitted_on[lo:hi] = closed = int(known.case_closed.sum())
        mature = fitted_on[evidence.rows] >= _MATURITY * closed
        warm = (chosen[evidence.rows] != ESTIMATORS.index(COLD_START)) & mature
        direct = p50_all[CANDIDATES.index("direct")]
        factor = calibrate(_scalable(direct90, direct, evidence, warm)).p90_factor
        raw90 = direct90[lo:hi]
        if cold:  # nothing known yet: the long-running open cases are all there is
            raw90 = np.maximum(raw90, median90[lo:hi])
        # Never absurd: the service's bound, on the longest case seen (or this one's age).
        cap = caps[lo:hi] = BOUND * np.maximum(known.case_duration.max(initial=0.0), ev.age[block])
        p50 = _cold_start(known, p50_all[k, lo:hi]) if cold else p50_all[k, lo:hi]
        p50_s[lo:hi] = np.minimum(p50, cap)
        p90_s[lo:hi] = np.minimum(np.maximum(raw90 * factor, p50_s[lo:hi]), cap)
        if ev.cost_so_far is not None:
            cost_p50[lo:hi], cost_p90[lo:hi] = finished.cost_projection(ev, instant, block, options)
    at = ev.time[pred]
    predictions = Predictions(
        case=ev.case_label[ev.case[pred]],
        prefix_length=ev.prefix[pred],
        activity=ev.activity[pred],
        predicted_at=at,
        p50_end=cal.add_working_seconds_many(at, p50_s),
        p90_end=cal.add_working_seconds_many(at, p90_s),
        actual_end=ev.case_end[ev.case[pred]],
        baseline_end=cal.add_working_seconds_many(at, baseline),
        estimator=chosen,
        cost_so_far=None if ev.cost_so_far is None else ev.cost_so_far[pred],
        cost_p50=None if ev.cost_so_far is None else cost_p50,
        cost_p90=None if ev.cost_so_far is None else cost_p90,
        actual_cost=None if ev.case_cost is None else ev.case_cost[ev.case[pred]],
    )
    ends = [cal.add_working_seconds_many(at, np.minimum(row, caps)) for row in p50_all] if n_pred else []
    alone = {
        candidate: float(np.abs(end - predictions.actual_end).mean() / _DAY)
        for candidate, end in zip(names, ends, strict=False)
    }
    runtime = time.perf_counter() - started
    report = _score(predictions, log, name, calendar_name, len(refits), runtime, options, alone)
    return Backtest(report, predictions)


# ---------------------------------------------------------------------- candidates


CANDIDATES = (
    "direct",
    "median",
    "service",
    "direct_service_blend",
    "direct_median_blend",
    "direct_by_resource",
)
"""The predictors scored at each refit; the last, which needs resources, only on logs that name them."""
_DEFAULT = "median"
COLD_START = "running"
ESTIMATORS = (*CANDIDATES, COLD_START)
"""What answers a prediction: a scored candidate, or the cold start while too few outcomes are known
to score them (:func:`_cold_start`)."""


@dataclass(frozen=True)
class _Known:
    """What is known at a refit instant about the prediction moments before it (rows of
    :class:`_Moments`), and about the cases begun before it."""

    instant: float
    events: IntArray
    remaining: FloatArray  # working seconds to the case's end, or to the instant while it is open
    closed: BoolArray
    case_duration: FloatArray  # per case begun before the instant (working, censored while open)
    case_closed: BoolArray
    n_closed_cases: int


@dataclass(frozen=True)
class _Evidence:
    rows: IntArray  # indices into the prediction order
    observed: FloatArray
    resolved: BoolArray
    since: FloatArray  # working seconds from the prediction to the instant


@dataclass(frozen=True)
class _Moments:
    """The prediction moments (every event but each case's last) in time order, with the working
    clock of each event and of its case's end, so what is known at any instant is a slice."""

    index: IntArray
    time: FloatArray
    clock: FloatArray
    end_time: FloatArray
    end_clock: FloatArray
    case: IntArray
    case_first_clock: FloatArray
    case_end_clock: FloatArray
    case_first: FloatArray
    case_end: FloatArray
    cal: WorkingCalendar
    origin: float
    by_end: IntArray  # rows in order of their case's end
    end_sorted: FloatArray

    @classmethod
    def build(cls, ev: _Events, pred: IntArray, cal: WorkingCalendar) -> _Moments:
        origin = float(ev.time.min()) if ev.time.size else 0.0

        def clock(t: FloatArray) -> FloatArray:
            return cal.working_seconds_between_many(np.full(t.size, origin), t)

        case_end_clock = clock(ev.case_end)
        return cls(
            index=pred,
            time=ev.time[pred],
            clock=clock(ev.time[pred]),
            end_time=ev.case_end[ev.case[pred]],
            end_clock=case_end_clock[ev.case[pred]],
            case=ev.case[pred],
            case_first_clock=clock(ev.case_first),
            case_end_clock=case_end_clock,
            case_first=ev.case_first,
            case_end=ev.case_end,
            cal=cal,
            origin=origin,
            by_end=np.argsort(ev.case_end[ev.case[pred]], kind="stable"),
            end_sorted=np.sort(ev.case_end[ev.case[pred]], kind="stable"),
        )

    def clock_at(self, instant: float) -> float:
        """Working seconds from the log's start to ``instant``, counted on from the last moment
        before it (a calendar walks day by day: years of log would cost years of days)."""
        before = int(np.searchsorted(self.time, instant, side="right")) - 1
        start, clock = (self.time[before], self.clock[before]) if before >= 0 else (self.origin, 0.0)
        return float(clock + self.cal.working_seconds_between_many(start, max(instant, start)))

    def at(self, instant: float, history_cases: int) -> _Known:
        """Moments before ``instant`` of the newest cases back to the ``history_cases``-th newest
        finished one, and the durations of those cases (open ones censored at ``instant``)."""
        now = self.clock_at(instant)
        begun = int(np.searchsorted(self.case_first, instant, side="left"))
        closed_case = self.case_end[:begun] < instant
        closed_back = np.cumsum(closed_case[::-1])
        oldest = max(begun - 1 - int(np.searchsorted(closed_back, history_cases, side="left")), 0)
        n = int(np.searchsorted(self.time, instant, side="left"))
        rows = np.flatnonzero(self.case[:n] >= oldest)
        closed = self.end_time[rows] < instant
        remaining = np.where(closed, self.end_clock[rows], now) - self.clock[rows]
        cases = slice(oldest, begun)
        duration = (
            np.where(closed_case[cases], self.case_end_clock[cases], now) - self.case_first_clock[cases]
        )
        return _Known(
            instant, self.index[rows], remaining, closed, duration, closed_case[cases], int(closed_case.sum())
        )

    def closed_last(self, instant: float, size: int) -> _Evidence:
        """The predictions of the cases that closed last before ``instant`` (``size`` of them, by
        their case's end) and their actual remaining time."""
        n = int(np.searchsorted(self.end_sorted, instant, side="left"))
        rows = np.sort(self.by_end[max(n - size, 0) : n])
        observed = self.end_clock[rows] - self.clock[rows]
        return _Evidence(
            rows, observed, np.ones(rows.size, dtype=np.bool_), self.clock_at(instant) - self.clock[rows]
        )

    def evidence(self, instant: float, before: int, size: int, known: _Known) -> _Evidence:
        """The predictions made before row ``before`` that calibrate P90 (:func:`evidence_window`),
        with what is known of their outcome: the remaining time when the case has closed, else
        the time since the prediction."""
        now = self.clock_at(instant)
        window = evidence_window(now - self.clock[:before], known.remaining[known.closed], size)
        rows = np.arange(before)[window]
        resolved = self.end_time[rows] < instant
        observed = np.where(resolved, self.end_clock[rows], now) - self.clock[rows]
        return _Evidence(rows, observed, resolved, now - self.clock[rows])


def _scalable(
    raw_p90: FloatArray, raw_p50: FloatArray, evidence: _Evidence, warm: BoolArray
) -> CalibrationEvidence:
    """The calibration evidence of the predictions made after the cold start by a model about as
    mature as the current one (``warm``) that had a P90 to scale, with the P50 it came with.

    Before enough cases have closed, a P90 rests on the open cases alone (or is zero, with nothing
    to go on): outcomes miss it at any factor, and a factor learnt on those (the largest) would
    widen the P90s of a model that has outcomes since (a year of backlog, then P90s three times the
    longest case; BPIC 2013: years of open cases, then P90s four times the closed cases' own). A
    model fitted on fewer than half the closed cases the current one has erred in its own way:
    early in a log it knew only the short cases closed by then, and its misses say little of the
    current model's.
    """
    rows = evidence.rows
    kept = warm & (raw_p90[rows] > 0)
    return CalibrationEvidence(
        raw_p90[rows][kept],
        evidence.observed[kept],
        evidence.resolved[kept],
        evidence.since[kept],
        raw_p50[rows][kept],
    )


def _equal_share(size: int) -> FloatArray:
    """Weights giving a set of ``size`` predictions one unit in all, so the two evidence sets,
    biased opposite ways, weigh the same however many rows each has."""
    return np.full(size, 1.0 / max(size, 1))


def _cold_start(known: _Known, plain: FloatArray) -> FloatArray:
    """Before enough cases have closed to score the candidates: the plain median (``plain``), raised
    to the median working age of the cases still running.

    In a steady process the time a running case has left is distributed like the time running
    cases have already spent (the inspection paradox), so their median age is an estimate of the
    remaining time that needs no closed case. The few cases closed this early are the short ones,
    and with none closed the plain median says every case ends now.
    """
    running = known.case_duration[~known.case_closed]
    if running.size == 0:
        return plain
    return np.maximum(plain, float(np.median(running)))


def _age_buckets(ages: FloatArray, reference: FloatArray) -> IntArray:
    """Bucket of each age among the quintiles of ``reference`` (scale-free: any process's ages)."""
    if reference.size == 0:
        return np.zeros(ages.size, dtype=np.int64)
    edges = np.quantile(reference, [0.2, 0.4, 0.6, 0.8])
    return np.searchsorted(edges, ages, side="right").astype(np.int64)


def _direct(ev: _Events, known: _Known, block: IntArray) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """Remaining time from past moments, backed off: the whole workflow at the job's age <- last
    activity and age <- the two last activities and age <- those and the number of stages done
    <- the whole sequence of activities so far; each finer level shrunk towards the coarser by its
    number of closed samples. Returns the P50 and P90, and, when the log names resources, the P50
    of the same with the resource of the last event right under the last activity (who has a case
    says much about how long it has left, on logs where the activities alone say little), refined
    by the previous activity only: finer groups split by resource are too thin to tell more. Where
    the resources seen so far average fewer closed moments each than the shrinkage's ``n0``, their
    groups could move no estimate even halfway: the direct P50 stands in, and is not computed twice."""
    s = len(ev.activity_names)
    estimate, _ = residual_quantiles(known.case_duration, known.case_closed, ev.age[block])
    moment = known.events
    m_age = ev.age[moment]
    m_key = ev.activity[moment] * _AGE_BUCKETS + _age_buckets(m_age, m_age)
    b_key = ev.activity[block] * _AGE_BUCKETS + _age_buckets(ev.age[block], m_age)

    def refined(
        keys: tuple[IntArray, IntArray, FloatArray], *levels: tuple[IntArray, int]
    ) -> tuple[IntArray, IntArray, FloatArray]:
        m_key, b_key, estimate = keys
        for refine, fan_out in levels:
            m_key, b_key = _dense(m_key * fan_out + refine[moment], b_key * fan_out + refine[block])
            size = int(m_key.max(initial=-1)) + 2  # the groups seen and the empty one
            q, _ = grouped_quantiles(m_key, known.remaining, known.closed, size)
            n = np.bincount(m_key, weights=known.closed, minlength=size).astype(np.float64)
            estimate = shrink(q[b_key], n[b_key], estimate)
        return m_key, b_key, estimate

    by_activity = refined((m_key, b_key, estimate), (np.zeros(ev.activity.size, dtype=np.int64), 1))
    finer = (
        (ev.previous_activity, s + 1),
        (prefix_bucket(ev.prefix), N_BUCKETS),
        (ev.sequence, int(ev.sequence.max(initial=0)) + 1),
    )
    *_, estimate = refined(by_activity, *finer)
    if ev.resource is None:
        return estimate[:, 0], np.maximum(estimate[:, 1], estimate[:, 0]), None
    by_resource = estimate[:, 0]
    seen = np.unique(ev.resource[moment]).size
    if known.closed.sum() >= SHRINKAGE * seen:
        who = (ev.resource, int(ev.resource.max(initial=0)) + 1)
        by_resource = refined(by_activity, who, finer[0])[2][:, 0]
    return estimate[:, 0], np.maximum(estimate[:, 1], estimate[:, 0]), by_resource


def _dense(m_key: IntArray, b_key: IntArray) -> tuple[IntArray, IntArray]:
    """Group keys renumbered 0..n-1 by the moments' keys; a key no moment has gets n (a group
    without samples), so the group tables stay as small as the groups seen."""
    seen, m_dense = np.unique(m_key, return_inverse=True)
    if seen.size == 0:
        return m_dense.astype(np.int64), np.zeros(b_key.size, dtype=np.int64)
    at = np.minimum(np.searchsorted(seen, b_key), seen.size - 1)
    return m_dense.astype(np.int64), np.where(seen[at] == b_key, at, seen.size).astype(np.int64)


def _median(ev: _Events, known: _Known, block: IntArray, plain: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The replay baseline (``plain``: the median remaining time after the same activity of the
    cases closed before each prediction's instant), with the P90 of those closed before the refit."""
    s = len(ev.activity_names)
    closed = known.closed
    act = ev.activity[known.events[closed]]
    q, n = grouped_quantiles(act, known.remaining[closed], np.ones(act.size, dtype=np.bool_), s)
    pooled, _ = grouped_quantiles(
        np.zeros(act.size, dtype=np.int64), known.remaining[closed], np.ones(act.size, dtype=np.bool_), 1
    )
    q = np.where((n > 0)[:, None], q, np.nan_to_num(pooled, nan=0.0))
    return plain, np.maximum(q[ev.activity[block], 1], plain)


def _candidates(
    ev: _Events, known: _Known, block: IntArray, service: _ServiceModel, plain: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """P50 of every candidate (rows in :data:`CANDIDATES` order) for ``block``, and the raw P90s
    of the direct history and of the plain median.

    The blends are geometric means of the direct history and the service's model, and of the
    direct history and the plain median (censored open cases alone can mislead, finished ones alone
    are the short ones). The direct history by resource is left out when the log names none.
    """
    direct50, direct90, by_resource = _direct(ev, known, block)
    median50, median90 = _median(ev, known, block, plain)
    served = service.predict(ev, block)
    rows = [
        direct50,
        median50,
        served,
        geometric_blend(direct50, served),
        geometric_blend(direct50, median50),
    ]
    if by_resource is not None:
        rows.append(by_resource)
    return np.vstack(rows), direct90, median90


@dataclass(frozen=True)
class _ServiceModel:
    """The service's history model, answering as it would in the service (with the candidate it
    chose when fitted), refitted whenever the number of closed cases has doubled since its last
    fit: its stage simulation makes it by far the slowest candidate to fit."""

    model: HistoryModel
    closed_cases: int

    @classmethod
    def fit(
        cls, ev: _Events, instant: float, known: _Known, options: BacktestOptions, cal: WorkingCalendar
    ) -> _ServiceModel:
        model = fit_visit_table(
            ev.visit_table(instant, options.history_cases, cal),
            [],
            now=datetime.fromtimestamp(instant, UTC),
            window=options.window,
            seed=options.seed,
            half_life_s=options.half_life_s,
            min_samples=options.min_samples,
            current_stage_known=False,
            paths_per_position=_SIMULATED_PATHS,
        )
        return cls(model, known.n_closed_cases)

    def stale(self, known: _Known) -> bool:
        return known.n_closed_cases >= max(self.closed_cases * 2, self.closed_cases + 10)

    def predict(self, ev: _Events, block: IntArray) -> FloatArray:
        """The P50 the service's model answers for ``block``."""
        s = len(ev.activity_names)
        p50, _, _ = self.model.remaining_arrays(
            s + ev.activity[block],
            ev.prefix[block],
            np.zeros(block.size),
            ev.age[block],
            None if ev.resource is None else ev.resource[block],
        )
        return p50


# ---------------------------------------------------------------------- event arrays


@dataclass(frozen=True)
class _Events:
    """Per-event arrays with cases renumbered by start time, in working time where it matters."""

    case: IntArray
    case_label: IntArray  # the log's case code of each renumbered case
    case_first: FloatArray
    case_start: IntArray
    activity: IntArray
    time: FloatArray
    entered: FloatArray  # time of the case's previous event (own time for the first)
    duration: FloatArray  # working seconds since the previous event; 0 for the first
    prefix: IntArray  # number of events seen so far in the case, this one included
    previous_activity: IntArray  # activity of the case's previous event; the activity count for the first
    sequence: IntArray  # code of the case's activities so far, in order
    age: FloatArray  # working seconds since the case's first event
    last: BoolArray
    case_end: FloatArray
    remaining_work: FloatArray  # working seconds from this event to the case's last event
    activity_names: tuple[str, ...]
    resource: IntArray | None  # who handled the event, when the log says
    resource_names: tuple[str, ...]
    cost_so_far: FloatArray | None
    case_cost: FloatArray | None

    @classmethod
    def build(cls, log: EventLog, cal: WorkingCalendar) -> _Events:
        log_start = log.case_start
        label = np.argsort(log.time[log_start[:-1]], kind="stable")
        rank = np.empty_like(label)
        rank[label] = np.arange(label.size)
        perm = np.argsort(rank[log.case], kind="stable")  # keeps time order within a case
        case, times, activity = rank[log.case][perm], log.time[perm], log.activity[perm]
        start = np.concatenate(([0], np.cumsum(np.bincount(case, minlength=label.size)))).astype(np.int64)
        prefix = np.arange(times.size, dtype=np.int64) - start[case] + 1
        first = prefix == 1
        entered = np.where(first, times, np.roll(times, 1))
        case_end = times[start[1:] - 1]
        duration = np.where(first, 0.0, cal.working_seconds_between_many(entered, times))
        worked = np.cumsum(duration)
        cost_so_far = case_cost = None
        if log.cost is not None:
            cost = log.cost[perm]
            running = np.cumsum(cost)
            cost_so_far = running - (running - cost)[start[case]]
            case_cost = cost_so_far[start[1:] - 1]
        return cls(
            case=case,
            case_label=label,
            case_first=times[start[:-1]],
            case_start=start,
            activity=activity,
            time=times,
            entered=entered,
            duration=duration,
            prefix=prefix,
            previous_activity=np.where(first, len(log.activity_names), np.roll(activity, 1)),
            sequence=_sequence_codes(activity, first),
            age=worked - worked[start[case]],
            last=prefix == np.diff(start)[case],
            case_end=case_end,
            remaining_work=cal.working_seconds_between_many(times, case_end[case]),
            activity_names=log.activity_names,
            resource=None if log.resource is None else log.resource[perm],
            resource_names=log.resource_names,
            cost_so_far=cost_so_far,
            case_cost=case_cost,
        )

    def prediction_order(self) -> IntArray:
        """Events after which a prediction is made (all but each case's last), in time order."""
        candidates = np.flatnonzero(~self.last)
        return candidates[np.argsort(self.time[candidates], kind="stable")]

    def visit_table(self, instant: float, history_cases: int, cal: WorkingCalendar) -> VisitTable:
        """What was known just before ``instant`` about the newest cases: their events before it,
        open cases censored at ``instant``."""
        newest = int(np.searchsorted(self.case_first, instant, side="left"))
        finished_back = np.cumsum(self.case_end[:newest][::-1] < instant)
        oldest = max(newest - 1 - int(np.searchsorted(finished_back, history_cases, side="left")), 0)
        lo, hi = self.case_start[oldest], self.case_start[newest]
        idx = lo + np.flatnonzero(self.time[lo:hi] < instant)
        cases = self.case[idx]
        firsts = np.flatnonzero(np.r_[True, cases[1:] != cases[:-1]]) if idx.size else np.zeros(0, np.int64)
        lasts = np.r_[firsts[1:], idx.size][: firsts.size] - 1
        finished = self.case_end[cases[firsts]] < instant
        open_s = cal.working_seconds_between_many(self.time[idx[lasts]], np.full(lasts.size, instant))
        return VisitTable(
            stage_keys=self.activity_names,
            case_start=np.r_[firsts, idx.size].astype(np.int64),
            stage=self.activity[idx],
            entered=self.entered[idx],
            duration=self.duration[idx],
            finished=np.ones(idx.size, dtype=np.bool_),
            informative=self.prefix[idx] > 1,
            case_finished=finished,
            case_open_s=np.where(finished, 0.0, open_s),
            handler=None if self.resource is None else self.resource[idx],
            handler_names=self.resource_names,
        )


@dataclass(frozen=True)
class _FinishedPrefixes:
    """Prefixes of all cases grouped by last activity, ordered by when their case finished, so the
    prefixes of cases finished before an instant are a leading slice of each group."""

    index: IntArray
    end: FloatArray
    group_start: IntArray

    @classmethod
    def build(cls, ev: _Events) -> _FinishedPrefixes:
        candidates = np.flatnonzero(~ev.last)
        ends = ev.case_end[ev.case[candidates]]
        order = np.lexsort((ends, ev.activity[candidates]))
        counts = np.bincount(ev.activity[candidates], minlength=len(ev.activity_names))
        return cls(candidates[order], ends[order], np.concatenate(([0], np.cumsum(counts))))

    def groups(self, instant: float) -> list[IntArray]:
        """Per activity: prefixes whose case finished before ``instant``, oldest finish first."""
        return [
            self.index[lo : lo + int(np.searchsorted(self.end[lo:hi], instant, side="left"))]
            for lo, hi in zip(self.group_start[:-1], self.group_start[1:], strict=True)
        ]

    def replay_baseline(self, ev: _Events, pred: IntArray) -> FloatArray:
        """The bar, at each prediction's own instant: the median remaining working time after the
        same activity over the prefixes of cases closed strictly before it (all activities pooled
        when that activity has none yet, 0 before any case has closed)."""
        at = ev.time[pred]
        group_medians = []
        for lo, hi in zip(self.group_start[:-1], self.group_start[1:], strict=True):
            group_medians.append(_running_medians(ev.remaining_work[self.index[lo:hi]]))
        pooled_order = np.argsort(self.end, kind="stable")
        pooled_end = self.end[pooled_order]
        pooled = _running_medians(ev.remaining_work[self.index[pooled_order]])
        before_any = np.searchsorted(pooled_end, at, side="left")
        value = pooled[before_any]
        activity = ev.activity[pred]
        for a, (lo, hi) in enumerate(zip(self.group_start[:-1], self.group_start[1:], strict=True)):
            rows = np.flatnonzero(activity == a)
            count = np.searchsorted(self.end[lo:hi], at[rows], side="left")
            value[rows] = np.where(count > 0, group_medians[a][count], value[rows])
        return value

    def cost_projection(
        self, ev: _Events, instant: float, block: IntArray, options: BacktestOptions
    ) -> tuple[FloatArray, FloatArray]:
        """Final cost P50/P90: cost so far times the final/current ratio seen after the same
        activity (extra cost added when nothing was spent yet), over the newest ``window`` finished
        prefixes per activity, shrunk towards all activities when samples are few."""
        assert ev.cost_so_far is not None and ev.case_cost is not None
        groups = [g[-options.window :] for g in self.groups(instant)]
        sel = np.concatenate(groups)
        activity = ev.activity[sel]
        so_far, final = ev.cost_so_far[sel], ev.case_cost[ev.case[sel]]
        positive = so_far > 0
        s = len(groups)
        ratio = _shrunk_quantiles(activity[positive], final[positive] / so_far[positive], s, 1.0, options)
        extra = _shrunk_quantiles(activity[~positive], final[~positive] - so_far[~positive], s, 0.0, options)
        current, act = ev.cost_so_far[block], ev.activity[block]
        use_ratio = current > 0
        p50 = np.where(use_ratio, current * ratio[act, 0], current + extra[act, 0])
        p90 = np.where(use_ratio, current * ratio[act, 1], current + extra[act, 1])
        return p50, np.maximum(p90, p50)


def _refit_instants(ev: _Events, options: BacktestOptions) -> FloatArray:
    """Refit a day (simulated) after the last refit once at least ``min_closed_growth`` more cases
    have closed (one at least), or sooner when closed cases or events seen grew by ``refit_growth``
    (so the sparse start of a log, where open cases are all there is, is not starved); a quiet
    stretch of a long log costs no refit."""
    ends = np.sort(ev.case_end)
    times = np.sort(ev.time)
    last_prediction = float(ev.time[~ev.last].max()) if (~ev.last).any() else float(ev.time.min())
    instants = [float(ev.time.min())]

    def when(sorted_times: FloatArray, count: int) -> float:
        return float(sorted_times[count - 1]) + 1e-3 if count <= sorted_times.size else np.inf

    while instants[-1] <= last_prediction:
        now = instants[-1]
        done = int(np.searchsorted(ends, now, side="left"))
        seen = int(np.searchsorted(times, now, side="left"))
        by_growth = min(
            when(ends, max(done + 10, int(np.ceil(done * (1 + options.refit_growth))))),
            when(times, max(seen + 10, int(np.ceil(seen * (1 + options.refit_growth))))),
        )
        by_day = when(ends, done + max(1, int(np.ceil(done * options.min_closed_growth))))
        following = min(by_growth, max(now + options.refit_every_s, by_day))
        instants.append(following if np.isfinite(following) else last_prediction + 1.0)
    return np.array(instants)


def _sequence_codes(activity: IntArray, first: BoolArray) -> IntArray:
    """A code per distinct sequence of activities from the case's start to each event."""
    codes: dict[tuple[int, int], int] = {}
    result = np.zeros(activity.size, dtype=np.int64)
    current = 0
    for i, (a, f) in enumerate(zip(activity.tolist(), first.tolist(), strict=True)):
        current = codes.setdefault((0 if f else current, a), len(codes) + 1)
        result[i] = current
    return result


def _running_medians(values: FloatArray) -> FloatArray:
    """``result[k]``: the median (``np.median``'s: mean of the two middle values) of the first k
    values; ``result[0]`` is 0. Two heaps, one pass."""
    low: list[float] = []  # max-heap of the lower half, negated
    high: list[float] = []
    result = np.zeros(values.size + 1)
    for k, v in enumerate(values.tolist(), start=1):
        if low and v > -low[0]:
            heapq.heappush(high, v)
        else:
            heapq.heappush(low, -v)
        if len(low) > len(high) + 1:
            heapq.heappush(high, -heapq.heappop(low))
        elif len(high) > len(low):
            heapq.heappush(low, -heapq.heappop(high))
        result[k] = -low[0] if k % 2 else (high[0] - low[0]) / 2
    return result


def _shrunk_quantiles(
    groups: IntArray, values: FloatArray, s: int, neutral: float, options: BacktestOptions
) -> FloatArray:
    """P50/P90 per group, pulled towards the pooled ones by n0 / (n + n0)."""
    if values.size == 0:
        return np.full((s, 2), neutral)
    pooled = np.quantile(values, [0.5, 0.9])
    result = np.tile(pooled, (s, 1))
    counts = np.bincount(groups, minlength=s)
    for g in np.flatnonzero(counts):
        w = counts[g] / (counts[g] + options.cost_prior)
        result[g] = w * np.quantile(values[groups == g], [0.5, 0.9]) + (1 - w) * pooled
    return result


# ---------------------------------------------------------------------- scoring and output


def _score(
    p: Predictions,
    log: EventLog,
    name: str,
    calendar_name: str,
    refits: int,
    runtime: float,
    options: BacktestOptions,
    alone: dict[str, float],
) -> BacktestReport:
    err = np.abs(p.p50_end - p.actual_end) / _DAY
    base = np.abs(p.baseline_end - p.actual_end) / _DAY

    def mean(values: FloatArray) -> float:
        return float(values.mean()) if values.size else float("nan")

    def per_case(values: FloatArray) -> float:
        if values.size == 0:
            return float("nan")
        counts = np.bincount(p.case, minlength=log.n_cases)
        sums = np.bincount(p.case, weights=values, minlength=log.n_cases)
        return float((sums[counts > 0] / counts[counts > 0]).mean())

    by_prefix = tuple(
        PrefixScore(k, int(mask.sum()), mean(err[mask]), mean(base[mask]))
        for k in range(1, _PREFIXES + 1)
        if (mask := p.prefix_length == k).any()
    )
    covered = (p.actual_end <= p.p90_end + 1e-6).astype(np.float64)
    first, span = (float(log.time.min()), float(np.ptp(log.time))) if log.n_events else (0.0, 0.0)
    tenth = np.minimum(((p.predicted_at - first) / max(span, 1e-9) * _TENTHS).astype(np.int64), _TENTHS - 1)
    decidable = p.p90_end <= float(log.time.max(initial=0.0)) + 1e-6
    by_tenth = tuple(
        TenthScore(
            t + 1,
            int(mask.sum()),
            mean(err[mask]),
            mean(base[mask]),
            mean(covered[mask]),
            int((mask & decidable).sum()),
            mean(covered[mask & decidable]),
        )
        for t in range(_TENTHS)
        if (mask := tenth == t).any()
    )
    estimators = {
        candidate: int((p.estimator == k).sum())
        for k, candidate in enumerate(ESTIMATORS)
        if (p.estimator == k).any()
    }
    cost = None
    if (
        p.cost_p50 is not None
        and p.cost_p90 is not None
        and p.actual_cost is not None
        and p.cost_so_far is not None
    ):
        cost = CostScore(
            mae=mean(np.abs(p.cost_p50 - p.actual_cost)),
            baseline_mae=mean(np.abs(p.cost_so_far - p.actual_cost)),
            p90_coverage=mean((p.actual_cost <= p.cost_p90 + 1e-9).astype(np.float64)),
        )
    return BacktestReport(
        log=name,
        calendar=calendar_name,
        events=log.n_events,
        cases=log.n_cases,
        predictions=int(err.size),
        refits=refits,
        mae_days=mean(err),
        baseline_mae_days=mean(base),
        mae_days_per_case=per_case(err),
        baseline_mae_days_per_case=per_case(base),
        p90_coverage=mean(covered),
        p50_coverage=mean((p.actual_end <= p.p50_end + 1e-6).astype(np.float64)),
        mean_p90_width_days=mean((p.p90_end - p.p50_end) / _DAY),
        by_prefix=by_prefix,
        by_tenth=by_tenth,
        estimators=estimators,
        cost=cost,
        runtime_s=runtime,
        events_per_s=log.n_events / runtime if runtime > 0 else float("inf"),
        options=options,
        candidates_mae_days=alone,
    )


PREDICTION_HEADER = (
    "case",
    "prefix_length",
    "predicted_at",
    "p50_end",
    "p90_end",
    "actual_end",
    "baseline_end",
    "activity",
    "estimator",
)
COST_HEADER = ("cost_so_far", "cost_p50", "cost_p90", "actual_cost")


def write_predictions(
    predictions: Predictions,
    case_names: tuple[str, ...],
    path: str | Path,
    activity_names: tuple[str, ...] = (),
) -> None:
    """One CSV row per prediction; instants as ISO 8601 UTC. ``baseline_end`` is the replay
    baseline's completion (median remaining time after the same activity of the cases closed
    before the prediction), ``estimator`` the candidate chosen for the prediction."""
    p = predictions
    activities = (
        np.array(activity_names, dtype=object)[p.activity].tolist() if activity_names else p.activity.tolist()
    )
    columns: list[list[Any]] = [
        np.array(case_names, dtype=object)[p.case].tolist(),
        p.prefix_length.tolist(),
        iso_utc(p.predicted_at),
        iso_utc(p.p50_end),
        iso_utc(p.p90_end),
        iso_utc(p.actual_end),
        iso_utc(p.baseline_end),
        activities,
        np.array(ESTIMATORS, dtype=object)[p.estimator].tolist(),
    ]
    header = list(PREDICTION_HEADER)
    if (
        p.cost_so_far is not None
        and p.cost_p50 is not None
        and p.cost_p90 is not None
        and p.actual_cost is not None
    ):
        header += COST_HEADER
        columns += [np.round(c, 4).tolist() for c in (p.cost_so_far, p.cost_p50, p.cost_p90, p.actual_cost)]
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(zip(*columns, strict=True))
