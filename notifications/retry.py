"""When to try a delivery again, when to give up, and when to stop sending to an endpoint.

Pure functions: the caller passes `now` and the source of jitter, so every rule is tested without a clock.
The schedule is Standard Webhooks' (first attempt at once, then 5 s ... 24 h), each wait jittered by +-20 %
so that a receiver coming back up is not hit by every retry in the same second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

from notifications.attempts import Attempt, Outcome

SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
"""The wait after the 1st, 2nd, ... failed attempt; a failure after the last wait is final."""
MAX_ATTEMPTS = len(SCHEDULE) + 1
JITTER = 0.2
THROTTLED_MINIMUM = timedelta(seconds=60)
RETRY_AFTER_LIMIT = timedelta(hours=24)
"""The longest wait a receiver's `Retry-After` can ask for; a longer one is cut to this."""
WARN_AFTER = timedelta(days=3)
DISABLE_AFTER = timedelta(days=5)

Uniform = Callable[[float, float], float]
"""A source of jitter with the signature of `random.uniform(a, b)`."""


class Verdict(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    DEAD = "dead"
    BOUNCED = "bounced"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    next_attempt_at: datetime | None = None


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Read `Retry-After` as delay-seconds or an HTTP date; None when absent, malformed or in the past."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delay = when - now
    return delay if delay > timedelta(0) else None


def decide(attempt: Attempt, attempts_made: int, now: datetime, uniform: Uniform) -> Decision:
    """What happens to a delivery after its `attempts_made`-th attempt (counting this one) ended so."""
    if attempts_made < 1:
        raise ValueError("attempts_made counts the attempt just made, so it is at least 1")
    match attempt.outcome:
        case Outcome.DELIVERED:
            return Decision(Verdict.SENT)
        case Outcome.BOUNCED:
            return Decision(Verdict.BOUNCED)
        case Outcome.GONE | Outcome.INVALID:
            return Decision(Verdict.DEAD)
    if attempts_made >= MAX_ATTEMPTS:
        return Decision(Verdict.DEAD)
    delay = SCHEDULE[attempts_made - 1] * uniform(1 - JITTER, 1 + JITTER)
    if attempt.outcome is Outcome.THROTTLED:
        delay = max(delay, THROTTLED_MINIMUM)
    asked = parse_retry_after(attempt.retry_after, now)
    if asked is not None:
        # Honoured when it asks for longer than we would wait anyway, up to a day; never sooner.
        delay = max(delay, min(asked, RETRY_AFTER_LIMIT))
    return Decision(Verdict.RETRY, now + delay)


class TargetAction(StrEnum):
    NONE = "none"
    WARN = "warn"
    """The endpoint has failed for 3 days: tell its owner once."""
    DISABLE = "disable"
    """The endpoint answered 410, or has failed for 5 days: stop sending and tell its owner."""


@dataclass(frozen=True, slots=True)
class TargetHealth:
    """A webhook endpoint's failure streak, as the store keeps it."""

    failing_since: datetime | None = None
    warned: bool = False


@dataclass(frozen=True, slots=True)
class TargetVerdict:
    health: TargetHealth
    action: TargetAction


def judge_target(health: TargetHealth, outcome: Outcome, now: datetime) -> TargetVerdict:
    """The endpoint's health after one more attempt; any success ends a failure streak."""
    if outcome is Outcome.DELIVERED:
        return TargetVerdict(TargetHealth(), TargetAction.NONE)
    if outcome in (Outcome.BOUNCED, Outcome.INVALID):  # about one message or address, not the endpoint
        return TargetVerdict(health, TargetAction.NONE)
    streak = TargetHealth(health.failing_since or now, health.warned)
    if outcome is Outcome.GONE:
        return TargetVerdict(streak, TargetAction.DISABLE)
    failing_for = now - (health.failing_since or now)
    if failing_for >= DISABLE_AFTER:
        return TargetVerdict(streak, TargetAction.DISABLE)
    if failing_for >= WARN_AFTER and not health.warned:
        return TargetVerdict(TargetHealth(streak.failing_since, warned=True), TargetAction.WARN)
    return TargetVerdict(streak, TargetAction.NONE)
