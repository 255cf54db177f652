"""The retry policy, as a table: no clock, jitter from an injected source."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from notifications.attempts import Attempt, Outcome
from notifications.retry import (
    MAX_ATTEMPTS,
    SCHEDULE,
    Decision,
    TargetAction,
    TargetHealth,
    Verdict,
    decide,
    judge_target,
    parse_retry_after,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def no_jitter(low: float, high: float) -> float:
    return 1.0


def least(low: float, high: float) -> float:
    return low


def most(low: float, high: float) -> float:
    return high


def attempt(outcome: Outcome, retry_after: str | None = None) -> Attempt:
    return Attempt(outcome=outcome, latency_ms=12.0, retry_after=retry_after)


def wait_after(attempts_made: int, outcome: Outcome, uniform=no_jitter, retry_after: str | None = None):
    decision = decide(attempt(outcome, retry_after), attempts_made, NOW, uniform)
    assert decision.verdict is Verdict.RETRY
    assert decision.next_attempt_at is not None
    return decision.next_attempt_at - NOW


S, M, H = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1)


@pytest.mark.parametrize(
    ("attempts_made", "expected"),
    [
        (1, 5 * S),
        (2, 5 * M),
        (3, 30 * M),
        (4, 2 * H),
        (5, 5 * H),
        (6, 10 * H),
        (7, 14 * H),
        (8, 20 * H),
        (9, 24 * H),
    ],
)
def test_failures_follow_the_standard_webhooks_schedule(attempts_made, expected):
    assert wait_after(attempts_made, Outcome.FAILED) == expected


@pytest.mark.parametrize("attempts_made", range(1, MAX_ATTEMPTS))
def test_jitter_stays_within_twenty_percent(attempts_made):
    base = SCHEDULE[attempts_made - 1]
    assert wait_after(attempts_made, Outcome.FAILED, least) == base * 0.8
    assert wait_after(attempts_made, Outcome.FAILED, most) == base * 1.2
    seeded = random.Random(attempts_made)
    for _ in range(50):
        assert base * 0.8 <= wait_after(attempts_made, Outcome.FAILED, seeded.uniform) <= base * 1.2


def test_jitter_is_asked_for_in_the_twenty_percent_band():
    asked: list[tuple[float, float]] = []

    def recording(low: float, high: float) -> float:
        asked.append((low, high))
        return low

    wait_after(3, Outcome.FAILED, recording)
    assert asked == [(0.8, 1.2)]


@pytest.mark.parametrize("outcome", [Outcome.FAILED, Outcome.THROTTLED])
def test_the_tenth_failed_attempt_is_final(outcome):
    assert MAX_ATTEMPTS == 10
    assert decide(attempt(outcome), MAX_ATTEMPTS, NOW, no_jitter) == Decision(Verdict.DEAD)
    assert decide(attempt(outcome, "30"), MAX_ATTEMPTS + 3, NOW, no_jitter) == Decision(Verdict.DEAD)


@pytest.mark.parametrize(
    ("outcome", "verdict"),
    [
        (Outcome.DELIVERED, Verdict.SENT),
        (Outcome.GONE, Verdict.DEAD),
        (Outcome.INVALID, Verdict.DEAD),
        (Outcome.BOUNCED, Verdict.BOUNCED),
    ],
)
@pytest.mark.parametrize("attempts_made", [1, 5, MAX_ATTEMPTS])
def test_final_outcomes_need_no_next_attempt(outcome, verdict, attempts_made):
    assert decide(attempt(outcome, "120"), attempts_made, NOW, no_jitter) == Decision(verdict)


@pytest.mark.parametrize(
    ("attempts_made", "uniform", "expected"),
    [
        (1, no_jitter, 60 * S),  # 5 s raised to the floor
        (1, most, 60 * S),
        (2, least, 4 * M),  # 5 min jittered down is already above the floor
        (2, no_jitter, 5 * M),
        (9, most, 24 * H * 1.2),
    ],
)
def test_timeouts_and_429_wait_at_least_a_minute(attempts_made, uniform, expected):
    assert wait_after(attempts_made, Outcome.THROTTLED, uniform) == expected


@pytest.mark.parametrize(
    ("attempts_made", "outcome", "retry_after", "expected"),
    [
        (1, Outcome.FAILED, "120", 120 * S),  # longer than the schedule: honoured
        (1, Outcome.THROTTLED, "120", 120 * S),
        (1, Outcome.THROTTLED, "10", 60 * S),  # shorter than the floor: the floor wins
        (1, Outcome.FAILED, "2", 5 * S),  # never sooner than the schedule
        (3, Outcome.FAILED, "0", 30 * M),
        (2, Outcome.FAILED, "86400", 24 * H),
        (2, Outcome.FAILED, "999999", 24 * H),  # capped at a day
        (9, Outcome.FAILED, "999999", 24 * H),
        (1, Outcome.THROTTLED, "Mon, 02 Mar 2026 09:10:00 GMT", 10 * M),  # an HTTP date
        (1, Outcome.THROTTLED, "Mon, 02 Mar 2026 08:00:00 GMT", 60 * S),  # a date in the past
        (1, Outcome.FAILED, "soon", 5 * S),  # malformed: ignored
        (1, Outcome.FAILED, "-5", 5 * S),
        (1, Outcome.FAILED, "", 5 * S),
    ],
)
def test_retry_after_is_honoured_within_bounds(attempts_made, outcome, retry_after, expected):
    assert wait_after(attempts_made, outcome, retry_after=retry_after) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", timedelta(0)),
        (" 30 ", timedelta(seconds=30)),
        ("Mon, 02 Mar 2026 10:00:00 GMT", timedelta(hours=1)),
        ("Mon, 02 Mar 2026 10:00:00", timedelta(hours=1)),  # no zone: read as UTC
        ("Mon, 02 Mar 2026 11:00:00 +0100", timedelta(hours=1)),
        ("Mon, 02 Mar 2026 09:00:00 GMT", None),
        ("1.5", None),
        ("tomorrow", None),
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, NOW) == expected


def test_attempts_are_counted_from_one():
    with pytest.raises(ValueError, match="at least 1"):
        decide(attempt(Outcome.FAILED), 0, NOW, no_jitter)


def test_the_whole_schedule_spans_about_four_days_then_dies():
    waited = timedelta(0)
    for attempts_made in range(1, MAX_ATTEMPTS + 1):
        decision = decide(attempt(Outcome.FAILED), attempts_made, NOW + waited, no_jitter)
        if decision.verdict is Verdict.DEAD:
            break
        assert decision.next_attempt_at is not None
        waited = decision.next_attempt_at - NOW
    assert attempts_made == MAX_ATTEMPTS
    assert waited == sum(SCHEDULE, timedelta(0)) == timedelta(hours=75, minutes=35, seconds=5)


DAY = timedelta(days=1)
STREAK = TargetHealth(failing_since=NOW - 2 * DAY)


@pytest.mark.parametrize(
    ("health", "outcome", "now", "expected_health", "action"),
    [
        (TargetHealth(), Outcome.DELIVERED, NOW, TargetHealth(), TargetAction.NONE),
        (STREAK, Outcome.DELIVERED, NOW, TargetHealth(), TargetAction.NONE),  # a success ends the streak
        (TargetHealth(NOW - 4 * DAY, True), Outcome.DELIVERED, NOW, TargetHealth(), TargetAction.NONE),
        (TargetHealth(), Outcome.FAILED, NOW, TargetHealth(NOW), TargetAction.NONE),  # a streak starts
        (TargetHealth(), Outcome.THROTTLED, NOW, TargetHealth(NOW), TargetAction.NONE),
        (STREAK, Outcome.FAILED, NOW, STREAK, TargetAction.NONE),
        (STREAK, Outcome.FAILED, NOW + DAY - S, STREAK, TargetAction.NONE),
        (STREAK, Outcome.FAILED, NOW + DAY, TargetHealth(STREAK.failing_since, True), TargetAction.WARN),
        (
            TargetHealth(STREAK.failing_since, True),
            Outcome.FAILED,
            NOW + 2 * DAY,
            TargetHealth(STREAK.failing_since, True),
            TargetAction.NONE,
        ),
        (
            STREAK,
            Outcome.THROTTLED,
            NOW + 3 * DAY - S,
            TargetHealth(STREAK.failing_since, True),
            TargetAction.WARN,
        ),
        (STREAK, Outcome.FAILED, NOW + 3 * DAY, STREAK, TargetAction.DISABLE),  # 5 days, never warned
        (
            TargetHealth(STREAK.failing_since, True),
            Outcome.FAILED,
            NOW + 3 * DAY,
            TargetHealth(STREAK.failing_since, True),
            TargetAction.DISABLE,
        ),
        (TargetHealth(), Outcome.GONE, NOW, TargetHealth(NOW), TargetAction.DISABLE),  # 410 at once
        (STREAK, Outcome.GONE, NOW, STREAK, TargetAction.DISABLE),
        (STREAK, Outcome.BOUNCED, NOW + 5 * DAY, STREAK, TargetAction.NONE),  # an address, not an endpoint
        (STREAK, Outcome.INVALID, NOW + 5 * DAY, STREAK, TargetAction.NONE),
        (TargetHealth(), Outcome.INVALID, NOW, TargetHealth(), TargetAction.NONE),
    ],
)
def test_endpoint_health(health, outcome, now, expected_health, action):
    verdict = judge_target(health, outcome, now)
    assert (verdict.health, verdict.action) == (expected_health, action)
