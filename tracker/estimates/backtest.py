"""Deployment-faithful backtest of the history model on an event log.

Each case is a job and each event the completion of a stage named by its activity; a stage lasts
from the case's previous event, and the first event is the case start. The log is replayed in
time order. After every event but a case's last, the case's remaining time is predicted with a
model refitted periodically from what was known at the refit instant only: cases whose last
event came before it, and cases still running then (right-censored). Nothing later leaks in.
P90 is calibrated as the service calibrates it, on the newest finished cases at each refit.

The bar is the usual naive estimate: the median remaining time of finished cases after the same
last activity, trained on the same finished cases.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from tracker.estimates.calendar import BusinessCalendar
from tracker.estimates.eventlog import EventLog, WorkingTime, iso_utc
from tracker.estimates.history import BoolArray, FloatArray, IntArray, VisitTable
from tracker.estimates.model import fit_visit_table

_DAY = 86_400.0
_PREFIXES = 10


class WorkingCalendar(WorkingTime, Protocol):
    """The part of the business calendar the backtest needs (POSIX seconds in, out)."""

    def add_working_seconds_many(self, start_epoch: npt.ArrayLike, seconds: npt.ArrayLike) -> FloatArray: ...


@dataclass(frozen=True)
class BacktestOptions:
    """How often to refit and how the model is fitted.

    A refit happens a simulated ``refit_every_s`` after the last one, or sooner once the number of
    finished cases has grown by ``refit_growth`` (so the sparse start of a log is not starved).
    Each fit sees the newest cases (by start) back to the ``history_cases``-th newest finished
    one, running cases included, as a service would load a bounded history.
    """

    refit_every_s: float = _DAY
    refit_growth: float = 0.1
    history_cases: int = 20_000
    window: int = 2000
    half_life_s: float | None = None
    min_samples: int = 30
    seed: int = 0
    cost_prior: float = 30.0


@dataclass(frozen=True)
class PrefixScore:
    prefix_length: int
    predictions: int
    mae_days: float
    baseline_mae_days: float


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
    cost: CostScore | None
    runtime_s: float
    events_per_s: float
    options: BacktestOptions = field(default_factory=BacktestOptions)

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
    predicted_at: FloatArray
    p50_end: FloatArray
    p90_end: FloatArray
    actual_end: FloatArray
    baseline_end: FloatArray
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
    cal: WorkingCalendar = calendar if calendar is not None else BusinessCalendar.always_open()
    ev = _Events.build(log, cal)
    pred = ev.prediction_order()
    n_pred = pred.size
    p50_s, p90_s, base_s = (np.zeros(n_pred) for _ in range(3))
    cost_p50, cost_p90 = np.zeros(n_pred), np.zeros(n_pred)
    finished = _FinishedPrefixes.build(ev)
    refits = _refit_instants(ev, options)
    bounds = np.append(np.searchsorted(ev.time[pred], refits, side="left"), n_pred)
    s = len(log.activity_names)
    for r, instant in enumerate(refits):
        lo, hi = int(bounds[r]), int(bounds[r + 1])
        if lo == hi:
            continue
        model = fit_visit_table(
            ev.visit_table(instant, options.history_cases, cal),
            [],
            now=datetime.fromtimestamp(instant, UTC),
            window=options.window,
            seed=options.seed,
            half_life_s=options.half_life_s,
            min_samples=options.min_samples,
            current_stage_known=False,
        )
        block = pred[lo:hi]
        p50_s[lo:hi], p90_s[lo:hi], _ = model.remaining_arrays(
            s + ev.activity[block], ev.prefix[block], np.zeros(block.size), ev.age[block]
        )
        base_s[lo:hi] = finished.baseline(ev, instant)[ev.activity[block]]
        if ev.cost_so_far is not None:
            cost_p50[lo:hi], cost_p90[lo:hi] = finished.cost_projection(ev, instant, block, options)
    at = ev.time[pred]
    predictions = Predictions(
        case=ev.case_label[ev.case[pred]],
        prefix_length=ev.prefix[pred],
        predicted_at=at,
        p50_end=cal.add_working_seconds_many(at, p50_s),
        p90_end=cal.add_working_seconds_many(at, p90_s),
        actual_end=ev.case_end[ev.case[pred]],
        baseline_end=cal.add_working_seconds_many(at, base_s),
        cost_so_far=None if ev.cost_so_far is None else ev.cost_so_far[pred],
        cost_p50=None if ev.cost_so_far is None else cost_p50,
        cost_p90=None if ev.cost_so_far is None else cost_p90,
        actual_cost=None if ev.case_cost is None else ev.case_cost[ev.case[pred]],
    )
    runtime = time.perf_counter() - started
    report = _score(predictions, log, name, calendar_name, len(refits), runtime, options)
    return Backtest(report, predictions)


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
    age: FloatArray  # working seconds since the case's first event
    last: BoolArray
    case_end: FloatArray
    remaining_work: FloatArray  # working seconds from this event to the case's last event
    activity_names: tuple[str, ...]
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
            age=worked - worked[start[case]],
            last=prefix == np.diff(start)[case],
            case_end=case_end,
            remaining_work=cal.working_seconds_between_many(times, case_end[case]),
            activity_names=log.activity_names,
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

    def baseline(self, ev: _Events, instant: float) -> FloatArray:
        """Median remaining working time after each activity (all activities pooled when unseen)."""
        groups = self.groups(instant)
        pooled = np.concatenate(groups)
        if pooled.size == 0:
            return np.zeros(len(groups))
        fallback = float(np.median(ev.remaining_work[pooled]))
        return np.array([np.median(ev.remaining_work[g]) if g.size else fallback for g in groups])

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
    """Refit a day (simulated) after the last refit, or when finished cases grew enough."""
    ends = np.sort(ev.case_end)
    last_prediction = float(ev.time[~ev.last].max()) if (~ev.last).any() else float(ev.time.min())
    instants = [float(ev.time.min())]
    while instants[-1] <= last_prediction:
        now = instants[-1]
        done = int(np.searchsorted(ends, now, side="left"))
        target = max(done + 10, int(np.ceil(done * (1 + options.refit_growth))))
        by_growth = float(ends[target - 1]) + 1e-3 if target <= ends.size else np.inf
        instants.append(min(now + options.refit_every_s, by_growth))
    return np.array(instants)


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
        p90_coverage=mean((p.actual_end <= p.p90_end + 1e-6).astype(np.float64)),
        p50_coverage=mean((p.actual_end <= p.p50_end + 1e-6).astype(np.float64)),
        mean_p90_width_days=mean((p.p90_end - p.p50_end) / _DAY),
        by_prefix=by_prefix,
        cost=cost,
        runtime_s=runtime,
        events_per_s=log.n_events / runtime if runtime > 0 else float("inf"),
        options=options,
    )


PREDICTION_HEADER = ("case", "prefix_length", "predicted_at", "p50_end", "p90_end", "actual_end")
COST_HEADER = ("cost_so_far", "cost_p50", "cost_p90", "actual_cost")


def write_predictions(predictions: Predictions, case_names: tuple[str, ...], path: str | Path) -> None:
    """One CSV row per prediction; instants as ISO 8601 UTC."""
    p = predictions
    columns: list[list[Any]] = [
        np.array(case_names, dtype=object)[p.case].tolist(),
        p.prefix_length.tolist(),
        iso_utc(p.predicted_at),
        iso_utc(p.p50_end),
        iso_utc(p.p90_end),
        iso_utc(p.actual_end),
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
