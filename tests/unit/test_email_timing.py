"""When customer emails go out: folding, the estimate interval, quiet hours and preferences (no clock)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from tracker.domain.emails import (
    RECHECK,
    EmailRules,
    Moot,
    Preference,
    QueuedRow,
    QuietHours,
    SendNow,
    WaitUntil,
    daily_email_day,
    daily_send_time,
    plan_timing,
    skip_reason,
)
from tracker.domain.events import EmailCategory, EventType

BRUSSELS = ZoneInfo("Europe/Brussels")
NOON = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)  # 12:00 in Brussels
RULES = EmailRules(
    fold=timedelta(seconds=120),
    estimate_interval=timedelta(hours=24),
    quiet_hours=QuietHours(time(21), time(8)),
)


def row(id: int, kind: str, at: datetime) -> QueuedRow:
    return QueuedRow(id=id, kind=kind, created_at=at)


def plan(
    this: QueuedRow,
    group: list[QueuedRow],
    now: datetime,
    *,
    last_sent: datetime | None = None,
    rules: EmailRules = RULES,
    zone: ZoneInfo = BRUSSELS,
    related: tuple[QueuedRow, ...] = (),
    last_risk_told: EventType | None = None,
) -> SendNow | WaitUntil | Moot:
    return plan_timing(
        this,
        same_category=group,
        last_sent_in_category=last_sent,
        rules=rules,
        zone=zone,
        now=now,
        related=related,
        last_risk_told=last_risk_told,
    )


def test_a_stage_change_waits_for_its_fold_window_to_close() -> None:
    first = row(1, "advance", NOON)
    assert plan(first, [first], NOON) == WaitUntil(NOON + timedelta(seconds=120))


def test_stage_changes_within_the_window_go_out_as_one_email_from_the_first() -> None:
    first = row(1, "advance", NOON)
    second = row(2, "advance", NOON + timedelta(seconds=30))
    third = row(3, "hold", NOON + timedelta(seconds=120))
    closed = NOON + timedelta(seconds=120)
    assert plan(first, [first, second, third], closed) == SendNow((1, 2, 3))


def test_a_later_row_of_the_window_leaves_the_email_to_the_first() -> None:
    first = row(1, "advance", NOON)
    second = row(2, "advance", NOON + timedelta(seconds=30))
    closed = NOON + timedelta(seconds=120)
    assert plan(second, [first, second], NOON + timedelta(seconds=30)) == WaitUntil(closed)
    waited = plan(second, [first, second], closed)
    assert isinstance(waited, WaitUntil)
    assert waited.until > closed


def test_a_change_after_the_window_starts_a_window_of_its_own() -> None:
    first = row(1, "advance", NOON)
    late = row(2, "advance", NOON + timedelta(seconds=200))
    assert plan(first, [first, late], NOON + timedelta(seconds=200)) == SendNow((1,))
    assert plan(late, [first, late], NOON + timedelta(seconds=200)) == WaitUntil(
        NOON + timedelta(seconds=320)
    )
    assert plan(late, [late], NOON + timedelta(seconds=320)) == SendNow((2,))


def test_a_backlog_of_stage_changes_goes_as_one_email_and_a_fresh_change_keeps_its_window() -> None:
    # The dispatcher was down for a day: three changes hours apart are due at once.
    backlog = [
        row(1, "created", NOON),
        row(2, "advance", NOON + timedelta(hours=5)),
        row(3, "hold", NOON + timedelta(hours=9)),
    ]
    fresh = row(4, "resume", NOON + timedelta(hours=24))
    now = NOON + timedelta(hours=24, seconds=10)
    group = [*backlog, fresh]
    assert plan(backlog[0], group, now) == SendNow((1, 2, 3))
    assert plan(backlog[1], group, now) == WaitUntil(now + RECHECK)
    assert plan(fresh, [fresh], now) == WaitUntil(fresh.created_at + timedelta(seconds=120))


@pytest.mark.parametrize("terminal", ["complete", "cancel"])
def test_completion_and_cancellation_close_the_window_at_once_and_are_carried(terminal: str) -> None:
    first = row(1, "advance", NOON)
    end = row(2, terminal, NOON + timedelta(seconds=10))
    now = NOON + timedelta(seconds=10)
    assert plan(first, [first, end], now) == SendNow((1, 2))


def test_a_reopening_after_a_completion_goes_in_the_next_email() -> None:
    done = row(1, "complete", NOON)
    reopened = row(2, "reopen", NOON + timedelta(seconds=5))
    assert plan(done, [done, reopened], NOON + timedelta(seconds=5)) == SendNow((1,))
    assert isinstance(plan(reopened, [done, reopened], NOON + timedelta(seconds=5)), WaitUntil)


def test_no_fold_window_sends_each_change_at_once() -> None:
    rules = EmailRules(fold=timedelta(0), estimate_interval=timedelta(hours=24), quiet_hours=None)
    first = row(1, "advance", NOON)
    assert plan(first, [first], NOON, rules=rules) == SendNow((1,))


def test_the_first_estimate_change_goes_at_once() -> None:
    moved = row(1, "eta_moved", NOON)
    assert plan(moved, [moved], NOON) == SendNow((1,))


def test_an_estimate_change_within_the_interval_waits_for_its_end() -> None:
    moved = row(1, "eta_moved", NOON)
    last = NOON - timedelta(hours=3)
    assert plan(moved, [moved], NOON, last_sent=last) == WaitUntil(last + timedelta(hours=24))


def test_estimate_changes_queued_meanwhile_fold_into_the_next_email() -> None:
    eta = row(1, "eta_moved", NOON)
    cost = row(2, "cost_moved", NOON + timedelta(hours=1))
    eta_again = row(3, "eta_moved", NOON + timedelta(hours=2))
    group = [eta, cost, eta_again]
    last = NOON - timedelta(hours=3)
    due = last + timedelta(hours=24)
    assert plan(eta, group, due, last_sent=last) == SendNow((1, 2, 3))
    assert isinstance(plan(cost, group, due, last_sent=last), WaitUntil)


def test_a_stage_change_email_carries_the_estimate_changes_queued_before_it_closes() -> None:
    advance = row(1, "advance", NOON)
    moved = row(2, "eta_moved", NOON)
    cost = row(3, "cost_moved", NOON + timedelta(seconds=60))
    closes = NOON + timedelta(seconds=120)
    after = row(4, "eta_moved", closes + timedelta(seconds=1))

    assert plan(advance, [advance], closes, related=(cost, moved, after)) == SendNow((1, 2, 3))


def test_an_estimate_change_waits_for_the_stage_change_email_that_carries_it() -> None:
    advance = row(1, "advance", NOON)
    moved = row(2, "eta_moved", NOON)
    closes = NOON + timedelta(seconds=120)

    assert plan(moved, [moved], NOON, related=(advance,)) == WaitUntil(closes)
    assert plan(moved, [moved], closes, related=(advance,)) == WaitUntil(closes + RECHECK)
    assert plan(moved, [moved], closes) == SendNow((2,))  # nothing to carry it (progress off, or sent)


def test_an_alert_goes_at_once_carrying_the_progress_queued_before_it() -> None:
    created = row(1, "created", NOON)
    risk = row(2, "at_risk", NOON)
    later = row(3, "advance", NOON + timedelta(seconds=5))

    assert plan(risk, [risk], NOON, related=(later, created)) == SendNow((2, 1))


@pytest.mark.parametrize(
    ("told", "kinds", "moot"),
    [
        (None, ["at_risk", "back_on_track"], [True, True]),  # flipped and flipped back: nobody hears
        (None, ["back_on_track", "at_risk"], [True, False]),  # the at-risk news stands
        (None, ["at_risk", "back_on_track", "at_risk"], [True, True, False]),
        ("at_risk", ["back_on_track"], [False]),  # takes back the at-risk the customer was sent
        ("back_on_track", ["back_on_track"], [True]),  # nothing to take back
        (None, ["back_on_track"], [True]),
        ("at_risk", ["back_on_track", "at_risk"], [True, False]),
        (None, ["at_risk", "stuck"], [False, False]),  # stuck takes nothing back
    ],
)
def test_alerts_that_take_each_other_back_while_queued_are_not_sent(
    told: str | None, kinds: list[str], moot: list[bool]
) -> None:
    group = [row(n, kind, NOON + timedelta(seconds=n)) for n, kind in enumerate(kinds, start=1)]
    now = NOON + timedelta(minutes=5)
    last_told = None if told is None else EventType(told)

    planned = [plan(queued, group, now, last_risk_told=last_told) for queued in group]

    assert [isinstance(timing, Moot) for timing in planned] == moot


@pytest.mark.parametrize("kind", ["at_risk", "back_on_track", "stuck", "note_added"])
def test_alerts_and_notes_are_never_folded(kind: str) -> None:
    one = row(1, kind, NOON)
    two = row(2, kind, NOON)
    told = EventType.AT_RISK  # a back-on-track is news only after an at-risk
    assert plan(two, [one, two], NOON, last_risk_told=told) == SendNow((2,))


@pytest.mark.parametrize(
    ("local", "waits_until"),
    [
        (datetime(2026, 3, 2, 21, 0), datetime(2026, 3, 3, 8, 0)),
        (datetime(2026, 3, 2, 23, 59), datetime(2026, 3, 3, 8, 0)),
        (datetime(2026, 3, 3, 0, 0), datetime(2026, 3, 3, 8, 0)),
        (datetime(2026, 3, 3, 7, 59), datetime(2026, 3, 3, 8, 0)),
        (datetime(2026, 3, 3, 8, 0), None),
        (datetime(2026, 3, 2, 20, 59), None),
        (datetime(2026, 3, 2, 12, 0), None),
    ],
)
def test_quiet_hours_over_midnight_in_the_contacts_zone(
    local: datetime, waits_until: datetime | None
) -> None:
    now = local.replace(tzinfo=BRUSSELS).astimezone(UTC)
    note = row(1, "note_added", now)
    expected = SendNow((1,)) if waits_until is None else WaitUntil(waits_until.replace(tzinfo=BRUSSELS))
    assert plan(note, [note], now) == expected


def test_quiet_hours_within_a_day() -> None:
    lunch = QuietHours(time(12), time(14))
    assert lunch.end_after(datetime(2026, 3, 2, 12, 30, tzinfo=BRUSSELS), BRUSSELS) == datetime(
        2026, 3, 2, 14, tzinfo=BRUSSELS
    )
    assert lunch.end_after(datetime(2026, 3, 2, 14, 0, tzinfo=BRUSSELS), BRUSSELS) is None
    assert lunch.end_after(datetime(2026, 3, 2, 11, 59, tzinfo=BRUSSELS), BRUSSELS) is None


def test_quiet_hours_end_at_eight_local_across_a_clock_change() -> None:
    night = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 01:30 CET, the night clocks go forward
    end = RULES.quiet_hours.end_after(night, BRUSSELS) if RULES.quiet_hours else None
    assert end is not None
    assert end.astimezone(BRUSSELS).hour == 8
    assert end.astimezone(UTC) == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)


def test_quiet_hours_are_read_in_the_contacts_own_zone() -> None:
    now = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)  # 23:00 Brussels, 17:00 New York
    note = row(1, "note_added", now)
    assert isinstance(plan(note, [note], now), WaitUntil)
    assert plan(note, [note], now, zone=ZoneInfo("America/New_York")) == SendNow((1,))


@pytest.mark.parametrize("kind", ["cancel", "at_risk"])
def test_urgent_news_is_sent_in_quiet_hours(kind: str) -> None:
    night = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    urgent = row(1, kind, night)
    assert plan(urgent, [urgent], night) == SendNow((1,))


def test_a_folded_email_carrying_a_cancellation_is_urgent() -> None:
    night = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    moved = row(1, "advance", night)
    cancelled = row(2, "cancel", night + timedelta(seconds=5))
    assert plan(moved, [moved, cancelled], night + timedelta(seconds=5)) == SendNow((1, 2))


@pytest.mark.parametrize("kind", ["complete", "advance", "eta_moved", "stuck", "back_on_track"])
def test_other_news_waits_for_the_morning(kind: str) -> None:
    night = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    news = row(1, kind, night - timedelta(hours=1))
    told = EventType.AT_RISK  # a back-on-track is news only after an at-risk
    assert plan(news, [news], night, last_risk_told=told) == WaitUntil(
        datetime(2026, 3, 3, 8, 0, tzinfo=BRUSSELS)
    )


def test_no_quiet_hours_when_none_are_set() -> None:
    rules = EmailRules(fold=timedelta(seconds=120), estimate_interval=timedelta(hours=24), quiet_hours=None)
    night = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    note = row(1, "note_added", night)
    assert plan(note, [note], night, rules=rules) == SendNow((1,))


def test_quiet_hours_parse() -> None:
    assert QuietHours.parse("21:00-08:00") == QuietHours(time(21), time(8))
    assert QuietHours.parse("") is None
    assert QuietHours(time(8), time(8)).end_after(NOON, BRUSSELS) is None


@pytest.mark.parametrize(
    ("preference", "suppressed", "goes"),
    [
        (Preference.EACH, False, True),
        (Preference.EACH, True, False),
        (Preference.DIGEST, False, False),
        (Preference.OFF, False, False),
        (Preference.OFF, True, False),
    ],
)
def test_preferences_and_suppression_decide_at_send_time(
    preference: Preference, suppressed: bool, goes: bool
) -> None:
    reason = skip_reason(preference, suppressed=suppressed, category=EmailCategory.PROGRESS, job_closed=False)
    assert (reason is None) is goes


@pytest.mark.parametrize(
    ("category", "goes"),
    [
        (EmailCategory.PROGRESS, True),  # the completion itself, and what folds into it
        (EmailCategory.NOTES, True),
        (EmailCategory.ESTIMATES, False),
        (EmailCategory.ALERTS, False),
    ],
)
def test_once_the_job_is_closed_its_queued_estimates_and_alerts_no_longer_go(
    category: EmailCategory, goes: bool
) -> None:
    reason = skip_reason(Preference.EACH, suppressed=False, category=category, job_closed=True)
    assert (reason is None) is goes
    assert skip_reason(Preference.EACH, suppressed=False, category=category, job_closed=False) is None


def test_daily_emails_go_when_the_quiet_hours_end_or_at_eight() -> None:
    assert daily_send_time(QuietHours(time(22), time(7, 30))) == time(7, 30)
    assert daily_send_time(None) == time(8)
    morning = datetime(2026, 3, 2, 6, 59, tzinfo=UTC)  # 07:59 in Paris
    assert daily_email_day(morning, BRUSSELS, time(8)) is None
    assert daily_email_day(morning + timedelta(minutes=1), BRUSSELS, time(8)) == morning.date()
    after_midnight = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)  # 00:30 on the 3rd in Paris
    assert daily_email_day(after_midnight, BRUSSELS, time(8)) is None
    assert daily_email_day(datetime(2026, 3, 3, 7, tzinfo=UTC), BRUSSELS, time(8)) == date(2026, 3, 3)


def test_at_night_urgent_news_carries_what_was_queued_before_it() -> None:
    night = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    moved = row(1, "advance", night - timedelta(hours=1))
    cancelled = row(2, "cancel", night)
    reopened = row(3, "reopen", night + timedelta(seconds=1))
    group = [moved, cancelled, reopened]
    now = night + timedelta(seconds=1)
    assert plan(moved, group, now) == SendNow((1, 2))
    assert plan(reopened, group, now) == WaitUntil(now + timedelta(seconds=2))
    assert plan(reopened, [reopened], now) == WaitUntil(datetime(2026, 3, 3, 8, 0, tzinfo=BRUSSELS))
