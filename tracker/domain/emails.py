"""When a queued customer email goes out, and which other queued emails it speaks for: pure rules.

Nobody is spammed: the stage changes of one job within a short window (`fold`) go out as one email when the
window closes; estimate changes of one job go out at most once per interval, later ones folding into the
next; non-urgent email waits for the end of the contact's quiet hours. A completion or a cancellation is
never folded away: it closes its window at once, and the email that carries it says it.

Urgency, decided here once: at night a customer is told only what may change their plans for the morning,
a cancellation (do not come) and a job at risk of missing its promised day (arrange to do without). A
completion waits for the morning like the rest: the shop is closed at night, and the email arrives before
it opens. Staff and endpoint owners' emails have no quiet hours (they are work addresses, without a zone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from tracker.domain.events import EMAIL_CATEGORIES, EmailCategory, EventType


class Preference(StrEnum):
    """What a contact chose for one category of email."""

    EACH = "each"
    DIGEST = "digest"
    OFF = "off"


URGENT: frozenset[EventType] = frozenset({EventType.CANCEL, EventType.AT_RISK})
"""Customer emails sent even in the contact's quiet hours (see the module's docstring)."""

RECHECK = timedelta(seconds=2)
"""How soon a row waiting on an earlier email of its job looks again (that one is due or going out)."""

TERMINAL: frozenset[EventType] = frozenset({EventType.COMPLETE, EventType.CANCEL})
"""Progress that closes its fold window at once."""

CATCH_UP = timedelta(hours=1)
"""Stage changes still queued this long after they happened (the dispatcher was down, or a backlog was
seeded) go in one email with the earliest, whatever their fold windows: each would only repeat where the
job is now."""


@dataclass(frozen=True)
class QuietHours:
    """A span of the local day, such as 21:00-08:00 (over midnight) or 12:00-14:00."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours | None:
        """`21:00-08:00`, or None for an empty text (no quiet hours)."""
        if not text:
            return None
        start, end = text.split("-")
        return cls(time.fromisoformat(start), time.fromisoformat(end))

    def end_after(self, now: datetime, zone: ZoneInfo) -> datetime | None:
        """The instant the quiet hours around `now` end, in the zone; None when `now` is not in them."""
        local = now.astimezone(zone)
        clock = local.time().replace(tzinfo=None)
        if self.start == self.end:
            return None
        if self.start < self.end:
            inside = self.start <= clock < self.end
            end_day = local.date()
        else:
            inside = clock >= self.start or clock < self.end
            end_day = local.date() + timedelta(days=1) if clock >= self.start else local.date()
        if not inside:
            return None
        # Wall-clock arithmetic in the zone: across a DST change the end is still 08:00 local.
        return datetime.combine(end_day, self.end, tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class EmailRules:
    fold: timedelta
    """Stage changes of one job within this span from the first go out as one email."""
    estimate_interval: timedelta
    """At most one estimate-change email per job and contact in this span."""
    quiet_hours: QuietHours | None


@dataclass(frozen=True)
class QueuedRow:
    """A customer email still queued for the same job and contact (the one being composed included)."""

    id: int
    kind: str
    """An event type's value."""
    created_at: datetime


@dataclass(frozen=True)
class SendNow:
    covers: tuple[int, ...]
    """The queued rows this email speaks for, its own first; the others are folded into it."""


@dataclass(frozen=True)
class WaitUntil:
    until: datetime


@dataclass(frozen=True)
class Moot:
    """The email would tell nothing true any more: it is not sent."""

    reason: str


Timing = SendNow | WaitUntil | Moot

OPPOSITE_ALERTS: Mapping[EventType, EventType] = {
    EventType.AT_RISK: EventType.BACK_ON_TRACK,
    EventType.BACK_ON_TRACK: EventType.AT_RISK,
}
"""Alerts that take each other back: while both are queued, the customer was told neither."""


def category_of(kind: str) -> EmailCategory | None:
    """The category of a customer email about an event of `kind`; None for other kinds of email."""
    try:
        return EMAIL_CATEGORIES.get(EventType(kind))
    except ValueError:
        return None


def _progress(
    row: QueuedRow,
    group: Sequence[QueuedRow],
    carried_estimates: Sequence[QueuedRow],
    rules: EmailRules,
    now: datetime,
) -> Timing:
    """Fold the stage changes of one window; the earliest queued row carries them, and the estimate
    changes queued meanwhile."""
    ordered = sorted(group, key=lambda queued: (queued.created_at, queued.id))
    first = ordered[0]
    window_end = max(first.created_at + rules.fold, now - CATCH_UP)
    in_window = [queued for queued in ordered if queued.created_at <= window_end]
    terminal = next((queued for queued in in_window if EventType(queued.kind) in TERMINAL), None)
    if terminal is not None:
        in_window = [queued for queued in in_window if queued.created_at <= terminal.created_at]
        closes = terminal.created_at
    else:
        closes = window_end
    if row not in in_window:
        # A later window's row: it waits for its own window (the earlier one is sent first).
        return WaitUntil(max(row.created_at + rules.fold, now + RECHECK))
    if now < closes:
        return WaitUntil(closes)
    if row != first:
        # Due together with the earliest, which carries the window and folds this one.
        return WaitUntil(now + RECHECK)
    estimates = sorted(carried_estimates, key=lambda queued: (queued.created_at, queued.id))
    return SendNow(tuple(queued.id for queued in [*in_window, *estimates] if queued.created_at <= now))


def _estimates(
    row: QueuedRow,
    group: Sequence[QueuedRow],
    queued_progress: Sequence[QueuedRow],
    last_sent: datetime | None,
    rules: EmailRules,
    now: datetime,
) -> Timing:
    """One estimate email per interval; what was queued meanwhile goes with it. While a progress email
    of the job is queued, it waits for that one, which carries it."""
    if queued_progress:
        first = min(queued_progress, key=lambda queued: (queued.created_at, queued.id))
        progress = _progress(first, queued_progress, (), rules, now)
        return WaitUntil(progress.until if isinstance(progress, WaitUntil) else now + RECHECK)
    if last_sent is not None and now < last_sent + rules.estimate_interval:
        return WaitUntil(last_sent + rules.estimate_interval)
    first = min(group, key=lambda queued: (queued.created_at, queued.id))
    if row != first:
        return WaitUntil(now + RECHECK)
    return SendNow(tuple(queued.id for queued in sorted(group, key=lambda q: (q.created_at, q.id))))


def _taken_back(row: QueuedRow, group: Sequence[QueuedRow], last_risk_told: EventType | None) -> Moot | None:
    """An at-risk alert followed by a back-on-track one (or the reverse) while both wait: the first is
    taken back by the second. A back-on-track is only news to a customer last told the job was at risk.
    So a job that flips and flips back within minutes (an advance, then a cost) tells nobody."""
    kind = EventType(row.kind)
    opposite = OPPOSITE_ALERTS.get(kind)
    if opposite is None:
        return None
    later = [q for q in group if (q.created_at, q.id) > (row.created_at, row.id)]
    if any(EventType(q.kind) is opposite for q in later):
        return Moot("taken back by a later alert still queued")
    if kind is EventType.BACK_ON_TRACK and last_risk_told is not EventType.AT_RISK:
        return Moot("the customer was not told the job was at risk")
    return None


def _alert(row: QueuedRow, related: Sequence[QueuedRow], now: datetime) -> Timing:
    """An alert goes at once, carrying the job's progress queued before it: its first email about a
    new job must not be the risk alone, with "we opened the job" minutes later."""
    progress = sorted(related, key=lambda queued: (queued.created_at, queued.id))
    return SendNow((row.id, *(queued.id for queued in progress if queued.created_at <= now)))


def plan_timing(
    row: QueuedRow,
    *,
    same_category: Sequence[QueuedRow],
    last_sent_in_category: datetime | None,
    rules: EmailRules,
    zone: ZoneInfo,
    now: datetime,
    related: Sequence[QueuedRow] = (),
    last_risk_told: EventType | None = None,
) -> Timing:
    """When the customer email `row` (about an event) goes out, and which queued rows it covers.

    `same_category`: the queued emails of the same job, contact and category, `row` among them.
    `last_sent_in_category`: when the last such email went out (the estimate interval counts from it).
    `related`: for a progress email, the job's queued estimate emails for the contact; for an estimate
    email or an alert, its queued progress emails (each only when the contact takes that category email
    by email).
    A progress email shows the job's current estimate, so it carries the estimate changes queued before
    it: a second email an interval later would only repeat it.
    `last_risk_told`: the last at-risk or back-on-track alert sent to the contact about the job, if any.
    """
    category = category_of(row.kind)
    group = same_category if row in same_category else [*same_category, row]
    if category is EmailCategory.ALERTS and (moot := _taken_back(row, group, last_risk_told)) is not None:
        return moot
    quiet_end = None if rules.quiet_hours is None else rules.quiet_hours.end_after(now, zone)
    if quiet_end is not None:
        return _at_night(row, group, quiet_end, now)
    if category is EmailCategory.PROGRESS:
        return _progress(row, group, related, rules, now)
    if category is EmailCategory.ESTIMATES:
        return _estimates(row, group, related, last_sent_in_category, rules, now)
    if category is EmailCategory.ALERTS:
        return _alert(row, related, now)
    return SendNow((row.id,))


def _at_night(row: QueuedRow, group: Sequence[QueuedRow], quiet_end: datetime, now: datetime) -> Timing:
    """In quiet hours only urgent news goes, at once, with whatever of the job was queued before it."""
    urgent = [queued for queued in group if EventType(queued.kind) in URGENT]
    if not urgent:
        return WaitUntil(quiet_end)
    ordered = sorted(group, key=lambda queued: (queued.created_at, queued.id))
    if row != ordered[0]:
        return WaitUntil(now + RECHECK)
    last = max(urgent, key=lambda queued: (queued.created_at, queued.id))
    return SendNow(tuple(q.id for q in ordered if (q.created_at, q.id) <= (last.created_at, last.id)))


OUTDATED_ONCE_CLOSED = frozenset({EmailCategory.ESTIMATES, EmailCategory.ALERTS})
"""Categories whose news no longer holds once the job is completed or cancelled."""


def skip_reason(
    preference: Preference, *, suppressed: bool, category: EmailCategory, job_closed: bool
) -> str | None:
    """Why an email about an event must not go, checked just before sending; None when it may.

    `job_closed`: the job is completed or cancelled by then; its estimate changes and alerts still queued
    (a backlog after an outage) would tell of a finish date or a risk that no longer exist."""
    if suppressed:
        return "address suppressed"
    if preference is Preference.OFF:
        return "contact turned this category off"
    if preference is Preference.DIGEST:
        return "contact takes this category in the daily digest"
    if job_closed and category in OUTDATED_ONCE_CLOSED:
        return "the job is closed: the estimate or alert no longer holds"
    return None


DAILY_AT = time(8)
"""When daily emails (digest, staff summary) go, local time, without quiet hours to wait for."""


def daily_send_time(quiet_hours: QuietHours | None) -> time:
    """Daily emails go when the quiet hours end (so they are the first thing of the day), else at 08:00."""
    return DAILY_AT if quiet_hours is None else quiet_hours.end


def daily_email_day(now: datetime, zone: ZoneInfo, at: time) -> date | None:
    """The local day whose daily email is due at `now` (from `at` on), or None before `at`."""
    local = now.astimezone(zone)
    return local.date() if local.time().replace(tzinfo=None) >= at else None
