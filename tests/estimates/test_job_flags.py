"""At risk, over budget, overdue and stuck: each rule once, and the events read the same rules."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tracker.domain.events import EventType
from tracker.estimates.calendar import BusinessCalendar
from tracker.estimates.changes import (
    FIRST_ETA_P90,
    AnnouncedState,
    ChangeThresholds,
    FreshEstimate,
    detect_changes,
    is_at_risk,
    is_overdue,
    is_stuck,
    late_by_working_s,
    overdue_many,
    promise_deadline,
)
from tracker.estimates.cost import is_over_budget

PARIS = ZoneInfo("Europe/Paris")
CALENDAR = BusinessCalendar.for_country("FR")  # Mon-Fri 08:00-18:00
NOW = datetime(2024, 6, 3, 9, tzinfo=PARIS)  # Monday
FRIDAY = date(2024, 6, 7)


def test_a_promised_day_lasts_until_midnight_where_the_business_is():
    assert promise_deadline(FRIDAY, CALENDAR) == datetime(2024, 6, 8, 0, tzinfo=PARIS)


def test_lateness_is_counted_in_working_time_from_the_promise():
    deadline = promise_deadline(FRIDAY, CALENDAR)
    monday_ten = datetime(2024, 6, 10, 10, tzinfo=PARIS)
    assert late_by_working_s(deadline, monday_ten, CALENDAR) == 2 * 3600  # the weekend does not count
    assert late_by_working_s(deadline, datetime(2024, 6, 7, 17, tzinfo=PARIS), CALENDAR) == -3600
    assert late_by_working_s(None, monday_ten, CALENDAR) is None


@pytest.mark.parametrize("enter_days", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("late_hours", [-8.0, -1.0, 0.0, 1.0, 4.0, 5.0, 6.0, 11.0, 30.0])
def test_the_at_risk_event_fires_exactly_when_the_flag_turns_on(enter_days: float, late_hours: float):
    thresholds = ChangeThresholds(at_risk_enter_days=enter_days)
    deadline = promise_deadline(FRIDAY, CALENDAR)
    friday_opening = datetime(2024, 6, 7, 8, tzinfo=PARIS)  # 10 working hours before the deadline
    eta_p90 = CALENDAR.add_working_seconds(friday_opening, (10 + late_hours) * 3600)
    assert late_by_working_s(deadline, eta_p90, CALENDAR) == pytest.approx(late_hours * 3600)
    flag = is_at_risk(
        late_by_working_s(deadline, eta_p90, CALENDAR), calendar=CALENDAR, thresholds=thresholds
    )
    fresh = FreshEstimate(eta_p50=eta_p90, eta_p90=eta_p90, cost_p50=None, promised_at=deadline)
    changes = detect_changes(AnnouncedState(), fresh, now=NOW, calendar=CALENDAR, thresholds=thresholds)
    assert (EventType.AT_RISK in {e.type for e in changes.events}) is flag
    assert changes.announced.at_risk is flag


def test_the_event_keeps_a_job_at_risk_within_the_exit_band_while_the_flag_reads_the_rule_as_it_is():
    deadline = promise_deadline(FRIDAY, CALENDAR)
    just_in_time = datetime(2024, 6, 7, 16, tzinfo=PARIS)  # 2 working hours early: inside the 0.5-day band
    late_s = late_by_working_s(deadline, just_in_time, CALENDAR)
    assert not is_at_risk(late_s, calendar=CALENDAR)
    fresh = FreshEstimate(eta_p50=just_in_time, eta_p90=just_in_time, cost_p50=None, promised_at=deadline)
    changes = detect_changes(AnnouncedState(at_risk=True), fresh, now=NOW, calendar=CALENDAR)
    assert changes.events == ()  # no back_on_track yet: hysteresis on top of the same rule


@pytest.mark.parametrize(
    ("p50", "quote", "tolerance", "over"),
    [
        ("1000.00", "1000.00", "0", False),
        ("1000.01", "1000.00", "0", True),
        ("1050.00", "1000.00", "0.05", False),
        ("1050.01", "1000.00", "0.05", True),
        ("0.01", "0.00", "0.05", True),
    ],
)
def test_over_budget_means_the_p50_cost_above_the_quote_beyond_the_tolerance(
    p50: str, quote: str, tolerance: str, over: bool
):
    assert is_over_budget(Decimal(p50), Decimal(quote), Decimal(tolerance)) is over


def test_overdue_means_past_the_first_p90_ever_given():
    first = datetime(2024, 6, 7, 18, tzinfo=PARIS)
    announced = {FIRST_ETA_P90: first.isoformat()}
    assert not is_overdue(announced, first)
    assert is_overdue(announced, first + timedelta(seconds=1))
    assert not is_overdue(None, first + timedelta(days=30))  # never estimated: never overdue
    many = overdue_many(np.array([first.timestamp(), np.nan]), first.timestamp() + 1)
    assert many.tolist() == [True, False]


def test_the_stuck_event_fires_exactly_when_the_rule_says_stuck():
    for elapsed in (3599.0, 3600.0, 3601.0):
        fresh = FreshEstimate(
            eta_p50=None,
            eta_p90=None,
            cost_p50=None,
            stage_visit_id="7:2",
            stage_elapsed_s=elapsed,
            stage_p90_s=3600.0,
        )
        changes = detect_changes(AnnouncedState(), fresh, now=NOW, calendar=CALENDAR)
        assert (EventType.STUCK in {e.type for e in changes.events}) is is_stuck(elapsed, 3600.0)
    assert is_stuck(3601.0, 3600.0) and not is_stuck(3600.0, 3600.0) and not is_stuck(1e9, None)
