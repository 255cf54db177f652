"""Which estimate changes are worth telling a customer about, with hysteresis.

Every comparison is against what was last *announced*, not what was last computed, so a slow
drift adds up until it crosses a threshold, and a value announced once is not announced again.
``at_risk`` uses separate enter and exit thresholds and ``stuck`` fires once per stage visit, so
a forecast wobbling around a threshold does not notify again and again.

The rules themselves are defined here once and read by the API flags, the events and the pages:
:func:`promise_deadline`, :func:`late_by_working_s` and :func:`is_at_risk` (the event adds hysteresis
on top of it), :func:`is_stuck` and :func:`is_overdue`; over budget is
:func:`tracker.estimates.cost.is_over_budget`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from tracker.domain.events import EventType
from tracker.estimates.calendar import BusinessCalendar

BoolArray = npt.NDArray[np.bool_]
FIRST_ETA_P90 = "first_eta_p90"
"""Kept beside the announced state: the first P90 completion the job was given, to tell when it is overdue."""
JsonValue = str | int | float | bool | None
EventValue = datetime | Decimal | float | None


@dataclass(frozen=True)
class ChangeThresholds:
    """When a change is worth an event; durations are in working days of the calendar."""

    eta_min_days: float = 1.0  # the P50 ETA must move by more than this ...
    eta_min_fraction_of_remaining: float = 0.10  # ... or this share of the announced remaining time
    cost_min_fraction: float = 0.05  # the P50 cost must move by more than this share
    at_risk_enter_days: float = 0.0  # at risk once the P90 ETA is this much after the promise
    at_risk_exit_days: float = 0.5  # back on track once it is this much before the promise
    stuck_factor: float = 1.0  # stuck once in the stage longer than this times its P90 duration


@dataclass(frozen=True)
class AnnouncedState:
    """What the customer was last told; persisted with the job between recomputations."""

    eta_p50: datetime | None = None
    cost_p50: Decimal | None = None
    at_risk: bool = False
    stuck_visit_id: str | None = None  # the stage visit a `stuck` event was sent for

    def to_payload(self) -> dict[str, JsonValue]:
        return {
            "eta_p50": _json(self.eta_p50),
            "cost_p50": _json(self.cost_p50),
            "at_risk": self.at_risk,
            "stuck_visit_id": self.stuck_visit_id,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, JsonValue]) -> AnnouncedState:
        eta, cost, visit = payload.get("eta_p50"), payload.get("cost_p50"), payload.get("stuck_visit_id")
        return cls(
            eta_p50=datetime.fromisoformat(eta) if isinstance(eta, str) else None,
            cost_p50=Decimal(cost) if isinstance(cost, str) else None,
            at_risk=payload.get("at_risk") is True,
            stuck_visit_id=visit if isinstance(visit, str) else None,
        )


@dataclass(frozen=True)
class FreshEstimate:
    """The estimate just computed for a job, with what is needed to judge it."""

    eta_p50: datetime | None
    eta_p90: datetime | None
    cost_p50: Decimal | None
    promised_at: datetime | None = None
    stage_visit_id: str | None = None
    stage_elapsed_s: float = 0.0  # working seconds spent in the current stage visit
    stage_p90_s: float | None = None  # P90 working duration of the current stage


@dataclass(frozen=True)
class ChangeEvent:
    """One notifiable change.

    ``old`` is the reference that was crossed (announced ETA or cost, promised date, stage P90 in
    seconds) and ``new`` the value that crossed it; ``payload`` repeats them as JSON primitives.
    """

    type: EventType
    """One of the estimate's event types: eta_moved, cost_moved, at_risk, back_on_track, stuck."""
    old: EventValue
    new: EventValue
    payload: dict[str, JsonValue] = field(hash=False)


@dataclass(frozen=True)
class Changes:
    events: tuple[ChangeEvent, ...]
    announced: AnnouncedState  # to persist in place of the previous one


def detect_changes(
    announced: AnnouncedState | None,
    fresh: FreshEstimate,
    *,
    now: datetime,
    calendar: BusinessCalendar,
    thresholds: ChangeThresholds | None = None,
) -> Changes:
    """Events to notify for ``fresh`` given what was ``announced``, and the new announced state.

    The first values ever seen are announced silently (the job's creation is notified elsewhere).
    """
    limits = thresholds or ChangeThresholds()
    state = announced or AnnouncedState()
    day_s = calendar.working_day_seconds
    events: list[ChangeEvent] = []

    if fresh.eta_p50 is not None:
        if state.eta_p50 is None:
            state = replace(state, eta_p50=fresh.eta_p50)
        else:
            moved = _signed_working_seconds(calendar, state.eta_p50, fresh.eta_p50)
            remaining = calendar.working_seconds_between(now, state.eta_p50)
            threshold = max(limits.eta_min_days * day_s, limits.eta_min_fraction_of_remaining * remaining)
            if abs(moved) > threshold:
                payload = {"moved_working_s": moved, "threshold_working_s": threshold}
                events.append(_event(EventType.ETA_MOVED, state.eta_p50, fresh.eta_p50, payload))
                state = replace(state, eta_p50=fresh.eta_p50)

    if fresh.cost_p50 is not None:
        old_cost = state.cost_p50
        if old_cost is None:
            state = replace(state, cost_p50=fresh.cost_p50)
        elif abs(fresh.cost_p50 - old_cost) > abs(old_cost) * Decimal(repr(limits.cost_min_fraction)):
            change = float((fresh.cost_p50 - old_cost) / old_cost) if old_cost else None
            events.append(_event(EventType.COST_MOVED, old_cost, fresh.cost_p50, {"change_fraction": change}))
            state = replace(state, cost_p50=fresh.cost_p50)

    late_s = late_by_working_s(fresh.promised_at, fresh.eta_p90, calendar)
    if fresh.promised_at is None:
        state = replace(state, at_risk=False)  # no promise, nothing to be at risk of breaking
    elif late_s is not None:
        if not state.at_risk and is_at_risk(late_s, calendar=calendar, thresholds=limits):
            flip = EventType.AT_RISK
        elif state.at_risk and late_s < -limits.at_risk_exit_days * day_s:
            flip = EventType.BACK_ON_TRACK
        else:
            flip = None
        if flip is not None:
            events.append(_event(flip, fresh.promised_at, fresh.eta_p90, {"late_by_working_s": late_s}))
            state = replace(state, at_risk=flip is EventType.AT_RISK)

    visit, p90_s = fresh.stage_visit_id, fresh.stage_p90_s
    if (
        visit is not None
        and p90_s is not None
        and visit != state.stuck_visit_id
        and is_stuck(fresh.stage_elapsed_s, p90_s, thresholds=limits)
    ):
        events.append(_event(EventType.STUCK, p90_s, fresh.stage_elapsed_s, {"stage_visit_id": visit}))
        state = replace(state, stuck_visit_id=visit)

    return Changes(tuple(events), state)


def promise_deadline(promised_on: date, calendar: BusinessCalendar) -> datetime:
    """A promised date means by the end of that day, in the business's time zone."""
    return datetime.combine(promised_on + timedelta(days=1), time(), calendar.timezone)


def late_by_working_s(
    promised_at: datetime | None, eta_p90: datetime | None, calendar: BusinessCalendar
) -> float | None:
    """Working seconds from the promise to the P90 completion (negative: that much ahead of it); None
    without a promise or a P90."""
    if promised_at is None or eta_p90 is None:
        return None
    return _signed_working_seconds(calendar, promised_at, eta_p90)


def is_at_risk(
    late_s: float | None, *, calendar: BusinessCalendar, thresholds: ChangeThresholds | None = None
) -> bool:
    """At risk: the P90 completion is after the promise by more than the enter threshold (working time).

    The `at_risk` event enters on this and leaves only once the P90 is back before the promise by the exit
    threshold (hysteresis); the API flag reads this rule as it is.
    """
    limits = thresholds or ChangeThresholds()
    return late_s is not None and late_s > limits.at_risk_enter_days * calendar.working_day_seconds


def p90_at_risk(
    promised_at: datetime | None,
    eta_p90: datetime,
    *,
    calendar: BusinessCalendar,
    thresholds: ChangeThresholds | None = None,
) -> bool:
    """:func:`is_at_risk` of a P90 against the promise. A P90 not after the promise is never at risk
    under an enter threshold of zero or more, which spares the walk through the calendar (the board
    judges every open job)."""
    limits = thresholds or ChangeThresholds()
    if promised_at is None or (eta_p90 <= promised_at and limits.at_risk_enter_days >= 0):
        return False
    return is_at_risk(late_by_working_s(promised_at, eta_p90, calendar), calendar=calendar, thresholds=limits)


def is_stuck(
    stage_elapsed_s: float, stage_p90_s: float | None, *, thresholds: ChangeThresholds | None = None
) -> bool:
    """Stuck: in the current stage visit for longer than the stage's P90 duration (times the factor)."""
    limits = thresholds or ChangeThresholds()
    return stage_p90_s is not None and stage_elapsed_s > limits.stuck_factor * stage_p90_s


def stage_visit_id(job_id: int, stages_completed: int) -> str:
    """Names a job's current stage visit (each visit the job finishes moves it on)."""
    return f"{job_id}:{stages_completed}"


def was_found_stuck(announced: Mapping[str, JsonValue] | None, visit_id: str) -> bool:
    """The `stuck` event was recorded for this stage visit: :func:`is_stuck` held at a recomputation during
    it, and it still holds (time in a stage only grows), until the job leaves the stage."""
    return announced is not None and AnnouncedState.from_payload(announced).stuck_visit_id == visit_id


def overdue_many(first_eta_p90_s: npt.ArrayLike, now_s: float) -> BoolArray:
    """Overdue: past the latest completion (P90) first given for the job, so the range now shown lies
    beyond it. One element per job, POSIX seconds, NaN where no estimate was ever given (never overdue)."""
    return np.asarray(first_eta_p90_s, dtype=np.float64) < now_s


def is_overdue(announced: Mapping[str, object] | None, now: datetime) -> bool:
    """:func:`overdue_many` for one job, from what it was last announced (with its first P90)."""
    first = (announced or {}).get(FIRST_ETA_P90)
    first_s = datetime.fromisoformat(first).timestamp() if isinstance(first, str) else np.nan
    return bool(overdue_many([first_s], now.timestamp())[0])


# Slack of the pre-filter's comparisons, so that float rounding differences between the scalar and
# vectorised calendar arithmetic, between Decimal and float costs, or between float epochs and
# microsecond datetimes can never hide a change. Values within it of a threshold are kept.
_SLACK_S = 1e-3  # working seconds
_SLACK_REL = 1e-9


def may_have_changed(
    *,
    announced_eta_p50: npt.ArrayLike,
    fresh_eta_p50: npt.ArrayLike,
    fresh_eta_p90: npt.ArrayLike,
    promised_at: npt.ArrayLike,
    announced_at_risk: npt.ArrayLike,
    announced_cost_p50: npt.ArrayLike,
    fresh_cost_p50: npt.ArrayLike,
    stage_elapsed_s: npt.ArrayLike,
    stage_p90_s: npt.ArrayLike,
    stuck_announced: npt.ArrayLike,
    now: datetime | float,
    calendar: BusinessCalendar,
    thresholds: ChangeThresholds | None = None,
) -> BoolArray:
    """Vectorised pre-filter of :func:`detect_changes`: False only where it would change nothing.

    One element per job (arrays are broadcast together). Instants are POSIX seconds and costs
    floats, NaN where the corresponding ``AnnouncedState`` / ``FreshEstimate`` field is None:
    ``announced_eta_p50``, ``announced_cost_p50`` and ``announced_at_risk`` come from the
    announced state (no state at all is ``AnnouncedState()``: NaN, NaN, False);
    ``stage_p90_s`` is NaN when the job has no stage visit or no P90 for it;
    ``stuck_announced`` is whether ``stuck`` was already sent for the current visit
    (``announced.stuck_visit_id == fresh.stage_visit_id``). ``now`` is a datetime or POSIX seconds.

    Where the mask is False, ``detect_changes`` would return no event and the announced state
    unchanged, so the job can be skipped; where it is True it must be run (it may still find
    nothing: only comparisons within float rounding of a threshold are decided that way).
    """
    limits = thresholds or ChangeThresholds()
    day_s = calendar.working_day_seconds
    if isinstance(now, datetime) and now.utcoffset() is None:
        raise ValueError(f"naive datetime {now!r}: pass a timezone-aware datetime")
    now_s = now.timestamp() if isinstance(now, datetime) else float(now)
    floats = (
        announced_eta_p50,
        fresh_eta_p50,
        fresh_eta_p90,
        promised_at,
        announced_cost_p50,
        fresh_cost_p50,
        stage_elapsed_s,
        stage_p90_s,
    )
    arrays = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in floats),
        *(np.asarray(v, dtype=np.bool_) for v in (announced_at_risk, stuck_announced)),
    )
    shape = arrays[0].shape
    ann_eta, eta50, eta90, promised, ann_cost, cost, elapsed, p90, at_risk, stuck = (
        a.ravel() for a in arrays
    )

    # ETA: first value (announced silently), or a move beyond the threshold. Working time never
    # exceeds elapsed time, so only moves longer than the minimum threshold in real time are
    # measured on the calendar.
    has_eta, has_ann_eta = ~np.isnan(eta50), ~np.isnan(ann_eta)
    mask: BoolArray = has_eta & ~has_ann_eta
    min_eta_s = limits.eta_min_days * day_s
    candidates = np.flatnonzero(has_eta & has_ann_eta & (np.abs(eta50 - ann_eta) > min_eta_s - _SLACK_S))
    if candidates.size:
        old, new = ann_eta[candidates], eta50[candidates]
        moved = calendar.working_seconds_between_many(np.minimum(old, new), np.maximum(old, new))
        remaining = calendar.working_seconds_between_many(now_s, np.maximum(old, now_s))
        threshold = np.maximum(min_eta_s, limits.eta_min_fraction_of_remaining * remaining)
        mask[candidates] |= moved > threshold * (1 - _SLACK_REL) - _SLACK_S

    # Cost: first value, or a relative move beyond the threshold (any move from 0).
    has_cost = ~np.isnan(cost)
    cost_limit = np.abs(ann_cost) * (limits.cost_min_fraction - _SLACK_REL)
    mask |= has_cost & (np.isnan(ann_cost) | (np.abs(cost - ann_cost) > cost_limit))

    # At risk: a withdrawn promise clears it; otherwise P90 vs promise with hysteresis. The
    # working-time lateness lies between 0 and the real-time one, which discards most jobs.
    has_promise = ~np.isnan(promised)
    mask |= at_risk & ~has_promise
    enter_s, exit_s = limits.at_risk_enter_days * day_s, -limits.at_risk_exit_days * day_s
    late_real = eta90 - promised  # NaN without a promise or a P90: compares False
    candidates = np.flatnonzero(
        np.where(
            at_risk,
            np.minimum(late_real, 0.0) < exit_s + _SLACK_S,
            np.maximum(late_real, 0.0) > enter_s - _SLACK_S,
        )
    )
    if candidates.size:
        due, p90_eta, risky = promised[candidates], eta90[candidates], at_risk[candidates]
        late = calendar.working_seconds_between_many(np.minimum(due, p90_eta), np.maximum(due, p90_eta))
        late = np.where(p90_eta >= due, late, -late)
        slack = _SLACK_S + _SLACK_REL * np.abs(late)
        mask[candidates] |= np.where(risky, late < exit_s + slack, late > enter_s - slack)

    # Stuck: once per stage visit (the same float comparison as detect_changes; NaN compares False).
    mask |= ~stuck & (elapsed > limits.stuck_factor * p90)
    return mask.reshape(shape)


def _signed_working_seconds(calendar: BusinessCalendar, start: datetime, end: datetime) -> float:
    """Working seconds from ``start`` to ``end``, negative when ``end`` is earlier."""
    if end >= start:
        return calendar.working_seconds_between(start, end)
    return -calendar.working_seconds_between(end, start)


def _json(value: EventValue) -> JsonValue:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _event(kind: EventType, old: EventValue, new: EventValue, extra: Mapping[str, JsonValue]) -> ChangeEvent:
    return ChangeEvent(kind, old, new, {"type": kind.value, "old": _json(old), "new": _json(new), **extra})
