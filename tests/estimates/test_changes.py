from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tracker.domain.events import EventType
from tracker.estimates.calendar import BusinessCalendar
from tracker.estimates.changes import (
    AnnouncedState,
    ChangeEvent,
    ChangeThresholds,
    FreshEstimate,
    detect_changes,
    is_at_risk,
    late_by_working_s,
    may_have_changed,
    p90_at_risk,
)

PARIS = ZoneInfo("Europe/Paris")
CALENDAR = BusinessCalendar.for_country("FR")  # Mon-Fri 08:00-18:00: a working day is 10 h
NOW = datetime(2024, 6, 3, 9, tzinfo=PARIS)  # Monday
ETA = datetime(2024, 6, 5, 12, tzinfo=PARIS)  # Wednesday noon, 23 working hours away
PROMISED = datetime(2024, 6, 7, 18, tzinfo=PARIS)  # Friday evening
ANNOUNCED = AnnouncedState(eta_p50=ETA, cost_p50=Decimal("1000.00"))


def fresh(**overrides: object) -> FreshEstimate:
    values: dict[str, object] = {
        "eta_p50": ETA,
        "eta_p90": ETA + timedelta(days=1),
        "cost_p50": Decimal("1000.00"),
        "promised_at": PROMISED,
    }
    values.update(overrides)
    return FreshEstimate(**values)  # type: ignore[arg-type]


def types(announced: AnnouncedState | None, estimate: FreshEstimate, now: datetime = NOW) -> list[EventType]:
    return [event.type for event in detect_changes(announced, estimate, now=now, calendar=CALENDAR).events]


def replay(estimates: list[FreshEstimate], announced: AnnouncedState = ANNOUNCED) -> list[ChangeEvent]:
    """Recompute in sequence, persisting the announced state between runs as the service does."""
    events: list[ChangeEvent] = []
    for estimate in estimates:
        result = detect_changes(announced, estimate, now=NOW, calendar=CALENDAR)
        announced = result.announced
        events.extend(result.events)
    return events


def test_first_estimate_is_announced_silently() -> None:
    result = detect_changes(None, fresh(), now=NOW, calendar=CALENDAR)
    assert result.events == ()
    assert result.announced == ANNOUNCED


def test_no_event_when_nothing_moves_enough() -> None:
    estimate = fresh(eta_p50=ETA + timedelta(hours=9), cost_p50=Decimal("1049.99"))
    result = detect_changes(ANNOUNCED, estimate, now=NOW, calendar=CALENDAR)
    assert result.events == ()
    assert result.announced == ANNOUNCED  # still compared with what was announced


def test_eta_moving_more_than_a_working_day_is_announced() -> None:
    later = datetime(2024, 6, 6, 13, tzinfo=PARIS)  # 11 working hours later
    result = detect_changes(ANNOUNCED, fresh(eta_p50=later), now=NOW, calendar=CALENDAR)
    (event,) = result.events
    assert (event.type, event.old, event.new) == (EventType.ETA_MOVED, ETA, later)
    assert event.payload["moved_working_s"] == 11 * 3600
    assert event.payload["new"] == "2024-06-06T13:00:00+02:00"
    assert result.announced.eta_p50 == later


def test_eta_moving_earlier_is_announced_too() -> None:
    earlier = datetime(2024, 6, 3, 17, tzinfo=PARIS)
    (event,) = detect_changes(ANNOUNCED, fresh(eta_p50=earlier), now=NOW, calendar=CALENDAR).events
    assert event.payload["moved_working_s"] == -15 * 3600


def test_a_weekend_between_etas_does_not_count_as_a_move() -> None:
    friday_evening = datetime(2024, 6, 7, 18, tzinfo=PARIS)
    announced = AnnouncedState(eta_p50=friday_evening)
    monday_morning = datetime(2024, 6, 10, 8, 30, tzinfo=PARIS)
    assert types(announced, fresh(eta_p50=monday_morning)) == []


def test_ten_percent_of_remaining_time_beats_one_day_for_long_jobs() -> None:
    far = datetime(2024, 9, 2, 12, tzinfo=PARIS)  # ~3 months: 10 % is about 6 working days
    announced = AnnouncedState(eta_p50=far)
    three_days_later = datetime(2024, 9, 5, 12, tzinfo=PARIS)
    assert types(announced, fresh(eta_p50=three_days_later)) == []
    eight_days_later = datetime(2024, 9, 12, 12, tzinfo=PARIS)
    assert types(announced, fresh(eta_p50=eight_days_later)) == [EventType.ETA_MOVED]
    # The same three-day move is news when the job is almost done.
    assert types(announced, fresh(eta_p50=three_days_later), now=far - timedelta(days=2)) == [
        EventType.ETA_MOVED
    ]


def test_small_drifts_add_up_against_the_announced_eta() -> None:
    # 4 working hours later at each recomputation: announced once 12 h > 10 h have accumulated.
    drift = [fresh(eta_p50=CALENDAR.add_working_seconds(ETA, hours * 3600)) for hours in (4, 8, 12)]
    assert [e.type for e in replay(drift)] == [EventType.ETA_MOVED]


def test_cost_moving_more_than_five_percent_is_announced() -> None:
    result = detect_changes(ANNOUNCED, fresh(cost_p50=Decimal("1060.00")), now=NOW, calendar=CALENDAR)
    (event,) = result.events
    assert (event.type, event.old, event.new) == (
        EventType.COST_MOVED,
        Decimal("1000.00"),
        Decimal("1060.00"),
    )
    assert event.payload["change_fraction"] == pytest.approx(0.06)
    assert result.announced.cost_p50 == Decimal("1060.00")
    assert types(ANNOUNCED, fresh(cost_p50=Decimal("940.00"))) == [EventType.COST_MOVED]


def test_any_cost_after_a_zero_announcement_is_announced() -> None:
    announced = AnnouncedState(eta_p50=ETA, cost_p50=Decimal(0))
    assert types(announced, fresh(cost_p50=Decimal("0.01"))) == [EventType.COST_MOVED]


def test_p90_after_the_promise_puts_the_job_at_risk_then_back_on_track() -> None:
    late = fresh(eta_p90=PROMISED + timedelta(days=3))  # Monday evening
    at_risk = detect_changes(ANNOUNCED, late, now=NOW, calendar=CALENDAR)
    (event,) = at_risk.events
    assert (event.type, event.old, event.new) == (EventType.AT_RISK, PROMISED, late.eta_p90)
    assert event.payload["late_by_working_s"] == 10 * 3600
    assert at_risk.announced.at_risk
    recovered = detect_changes(at_risk.announced, fresh(), now=NOW, calendar=CALENDAR)
    assert [e.type for e in recovered.events] == [EventType.BACK_ON_TRACK]
    assert not recovered.announced.at_risk


def test_a_p90_wobbling_around_the_promise_emits_once() -> None:
    # Working hours after the promised date (Friday 18:00); before it, Friday afternoon is open.
    wobble = [
        CALENDAR.add_working_seconds(PROMISED, hours * 3600)
        if hours > 0
        else PROMISED + timedelta(hours=hours)
        for hours in (1, -1, 2, -2, 1, -3, 3)
    ]
    assert [e.type for e in replay([fresh(eta_p90=p90) for p90 in wobble])] == [EventType.AT_RISK]


def test_withdrawing_the_promise_clears_the_risk_silently() -> None:
    announced = AnnouncedState(eta_p50=ETA, at_risk=True)
    result = detect_changes(announced, fresh(promised_at=None), now=NOW, calendar=CALENDAR)
    assert result.events == ()
    assert not result.announced.at_risk


def test_stuck_is_announced_once_per_stage_visit() -> None:
    def stage(visit: str, elapsed_h: float) -> FreshEstimate:
        return fresh(stage_visit_id=visit, stage_elapsed_s=elapsed_h * 3600, stage_p90_s=20 * 3600)

    visits = [("paint-1", 19), ("paint-1", 21), ("paint-1", 30), ("paint-2", 5), ("paint-2", 25)]
    events = replay([stage(visit, elapsed) for visit, elapsed in visits])
    assert [(e.type, e.payload["stage_visit_id"]) for e in events] == [
        (EventType.STUCK, "paint-1"),
        (EventType.STUCK, "paint-2"),
    ]


def test_stuck_event_carries_elapsed_and_stage_p90() -> None:
    estimate = fresh(stage_visit_id="v1", stage_elapsed_s=50_000.0, stage_p90_s=40_000.0)
    (event,) = detect_changes(ANNOUNCED, estimate, now=NOW, calendar=CALENDAR).events
    assert (event.old, event.new) == (40_000.0, 50_000.0)


def test_thresholds_can_be_tuned() -> None:
    strict = ChangeThresholds(eta_min_days=0.25, cost_min_fraction=0.01)
    estimate = fresh(eta_p50=ETA + timedelta(hours=3), cost_p50=Decimal("1020.00"))
    result = detect_changes(ANNOUNCED, estimate, now=NOW, calendar=CALENDAR, thresholds=strict)
    assert [e.type for e in result.events] == [EventType.ETA_MOVED, EventType.COST_MOVED]


def test_payloads_and_announced_state_are_json_friendly() -> None:
    estimate = fresh(
        eta_p50=ETA + timedelta(days=2),
        eta_p90=PROMISED + timedelta(days=5),
        cost_p50=Decimal("2000.00"),
        stage_visit_id="v1",
        stage_elapsed_s=1e6,
        stage_p90_s=1.0,
    )
    result = detect_changes(ANNOUNCED, estimate, now=NOW, calendar=CALENDAR)
    assert len(result.events) == 4
    for event in result.events:
        assert json.loads(json.dumps(event.payload))["type"] == event.type.value
    stored = json.loads(json.dumps(result.announced.to_payload()))
    assert AnnouncedState.from_payload(stored) == result.announced


def _epoch(value: datetime | Decimal | float | None) -> float:
    if value is None:
        return float("nan")
    return value.timestamp() if isinstance(value, datetime) else float(value)


def _random_job(
    rng: np.random.Generator, limits: ChangeThresholds, now: datetime, *, ties: bool
) -> tuple[AnnouncedState | None, FreshEstimate]:
    """A job whose values sit near thresholds, and with ``ties`` often exactly on or 1 s beside."""
    day_s = CALENDAR.working_day_seconds

    def maybe(probability_none: float, value: object) -> Any:
        return None if rng.random() < probability_none else value

    def later(start: datetime, working_s: float) -> datetime:
        return CALENDAR.add_working_seconds(start, max(working_s, 0.0))

    def near(threshold_s: float) -> float:  # on, just beside, or anywhere around a threshold
        anywhere = float(rng.uniform(0, 3 * threshold_s + 1))
        return (
            float(rng.choice([threshold_s, threshold_s + 1, threshold_s - 1, anywhere])) if ties else anywhere
        )

    base = now + timedelta(days=float(rng.uniform(-5, 60)))
    step = near(limits.eta_min_days * day_s) if rng.random() < 0.8 else float(rng.uniform(0, 50 * day_s))
    earlier, moved = (base, later(base, step)) if rng.random() < 0.5 else (later(base, step), base)
    if rng.random() < 0.2:
        moved = base + timedelta(seconds=float(rng.normal(0, 3 * 86400)))  # real time, any hour
    announced_eta, fresh_eta = maybe(0.15, earlier), maybe(0.1, moved)

    promised = maybe(0.2, now + timedelta(days=float(rng.uniform(-3, 40))))
    eta_p90: datetime | None = None
    if promised is not None and rng.random() < 0.9:
        late = (
            near(limits.at_risk_enter_days * day_s)
            if rng.random() < 0.5
            else near(limits.at_risk_exit_days * day_s)
        )
        eta_p90 = later(promised, late) if rng.random() < 0.5 or not ties else promised
        if rng.random() < 0.5:  # before the promise: the promise is `late` working seconds after it
            eta_p90 = promised - timedelta(seconds=float(rng.uniform(0, 5 * 86400)))
            promised = later(eta_p90, late)

    cents = 0 if rng.random() < 0.1 else int(rng.integers(1, 10**6))
    old_cost = maybe(0.15, Decimal(cents) / 100)
    if old_cost is not None and ties and rng.random() < 0.6:
        bump = old_cost * Decimal(repr(limits.cost_min_fraction)) + Decimal(int(rng.integers(-1, 2))) / 100
        new_cost = old_cost + bump * int(rng.choice([-1, 1]))
    elif old_cost is not None and rng.random() < 0.8:
        change = rng.uniform(-2, 2) * limits.cost_min_fraction
        new_cost = (old_cost * Decimal(repr(1 + change))).quantize(Decimal("0.01"))
    else:
        new_cost = Decimal(int(rng.integers(0, 10**6))) / 100
    new_cost = maybe(0.1, max(new_cost, Decimal(0)))

    p90_s = maybe(0.1, float(rng.uniform(3600, 10 * day_s)))
    elapsed = 0.0 if p90_s is None else float(rng.uniform(0, 2 * p90_s))
    if p90_s is not None and ties and rng.random() < 0.3:
        elapsed = limits.stuck_factor * p90_s
    visit = maybe(0.2, str(rng.choice(["v1", "v2"])))
    announced = AnnouncedState(
        eta_p50=announced_eta,
        cost_p50=old_cost,
        at_risk=bool(rng.random() < 0.4),
        stuck_visit_id=maybe(0.3, str(rng.choice(["v1", "v2"]))),
    )
    fresh_estimate = FreshEstimate(
        eta_p50=fresh_eta,
        eta_p90=eta_p90,
        cost_p50=new_cost,
        promised_at=promised,
        stage_visit_id=visit,
        stage_elapsed_s=elapsed,
        stage_p90_s=p90_s,
    )
    return None if announced == AnnouncedState() else announced, fresh_estimate


@pytest.mark.parametrize(
    "limits",
    [
        ChangeThresholds(),
        ChangeThresholds(
            eta_min_days=0.25,
            eta_min_fraction_of_remaining=0.3,
            cost_min_fraction=0.01,
            at_risk_enter_days=0.5,
            at_risk_exit_days=1.0,
            stuck_factor=1.5,
        ),
    ],
)
@pytest.mark.parametrize(("ties", "max_false_positives"), [(True, 0.15), (False, 0.01)])
def test_the_vectorised_pre_filter_never_misses_a_change(
    limits: ChangeThresholds, ties: bool, max_false_positives: float
) -> None:
    rng = np.random.default_rng(1234)
    start = datetime(2024, 1, 1, tzinfo=PARIS)
    nows = [start + timedelta(seconds=float(s)) for s in rng.uniform(0, 366 * 86400, 8)]  # one per batch
    changed: list[bool] = []
    has_events: list[bool] = []
    mask: list[bool] = []
    for now in nows:
        jobs = [_random_job(rng, limits, now, ties=ties) for _ in range(250)]
        for announced, estimate in jobs:
            result = detect_changes(announced, estimate, now=now, calendar=CALENDAR, thresholds=limits)
            has_events.append(bool(result.events))
            changed.append(bool(result.events) or result.announced != (announced or AnnouncedState()))
        state = [announced or AnnouncedState() for announced, _ in jobs]
        estimates = [estimate for _, estimate in jobs]
        batch = may_have_changed(
            announced_eta_p50=[_epoch(a.eta_p50) for a in state],
            fresh_eta_p50=[_epoch(f.eta_p50) for f in estimates],
            fresh_eta_p90=[_epoch(f.eta_p90) for f in estimates],
            promised_at=[_epoch(f.promised_at) for f in estimates],
            announced_at_risk=[a.at_risk for a in state],
            announced_cost_p50=[_epoch(a.cost_p50) for a in state],
            fresh_cost_p50=[_epoch(f.cost_p50) for f in estimates],
            stage_elapsed_s=[f.stage_elapsed_s for f in estimates],
            stage_p90_s=[np.nan if f.stage_visit_id is None else _epoch(f.stage_p90_s) for f in estimates],
            stuck_announced=[
                a.stuck_visit_id == f.stage_visit_id for a, f in zip(state, estimates, strict=True)
            ],
            now=now.timestamp(),
            calendar=CALENDAR,
            thresholds=limits,
        )
        mask.extend(batch.tolist())
    must, may = np.array(changed), np.array(mask)
    assert not (must & ~may).any()  # never skips a job that detect_changes would change
    assert 0.2 < np.mean(has_events) < 0.9 and (~must).sum() > 100  # both outcomes are exercised
    # Exact ties with a threshold are kept (float rounding could decide them either way).
    assert (may & ~must).mean() <= max_false_positives


def test_the_pre_filter_in_one_batch_matches_the_examples_above() -> None:
    estimates = [
        fresh(),  # nothing moved
        fresh(eta_p50=datetime(2024, 6, 6, 13, tzinfo=PARIS)),  # ETA 11 working hours later
        fresh(cost_p50=Decimal("1050.00")),  # exactly 5 %: not announced, a tie the filter keeps
        fresh(eta_p90=PROMISED + timedelta(days=3)),  # at risk
        fresh(promised_at=None),
        fresh(stage_visit_id="v1", stage_elapsed_s=50_000.0, stage_p90_s=40_000.0),
    ]

    def column(values: list[datetime | Decimal | float | None]) -> list[float]:
        return [_epoch(v) for v in values]

    mask = may_have_changed(
        announced_eta_p50=_epoch(ETA),
        fresh_eta_p50=column([e.eta_p50 for e in estimates]),
        fresh_eta_p90=column([e.eta_p90 for e in estimates]),
        promised_at=column([e.promised_at for e in estimates]),
        announced_at_risk=False,
        announced_cost_p50=1000.0,
        fresh_cost_p50=column([e.cost_p50 for e in estimates]),
        stage_elapsed_s=[e.stage_elapsed_s for e in estimates],
        stage_p90_s=[np.nan if e.stage_p90_s is None else e.stage_p90_s for e in estimates],
        stuck_announced=False,
        now=NOW,
        calendar=CALENDAR,
    )
    assert mask.tolist() == [False, True, True, True, False, True]
    expected = [bool(types(ANNOUNCED, e)) for e in estimates]
    assert expected == [False, True, False, True, False, True]


@pytest.mark.parametrize("enter_days", [-1.0, 0.0, 0.5, 2.0])
@pytest.mark.parametrize("hours_after_promise", [-50.0, -20.0, -1.0, 0.0, 1.0, 6.0, 30.0, 80.0])
def test_the_flag_of_a_p90_against_its_promise_is_the_at_risk_rule(
    enter_days: float, hours_after_promise: float
) -> None:
    thresholds = ChangeThresholds(at_risk_enter_days=enter_days)
    eta_p90 = PROMISED + timedelta(hours=hours_after_promise)
    late_s = late_by_working_s(PROMISED, eta_p90, CALENDAR)

    flagged = p90_at_risk(PROMISED, eta_p90, calendar=CALENDAR, thresholds=thresholds)

    assert flagged == is_at_risk(late_s, calendar=CALENDAR, thresholds=thresholds)
    assert not p90_at_risk(None, eta_p90, calendar=CALENDAR, thresholds=thresholds)
