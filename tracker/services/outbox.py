"""The outbox as the dispatcher sees it: the database store of deliveries, and the email composer port.

Rows are written by the fan-out in `tracker.services.events.record_events`, in the transaction of their
event. `DatabaseDeliveryStore` implements `notifications.DeliveryStore` over them; email rows are turned
into messages at claim time by an `EmailComposer`, which may also fold, defer or skip them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from notifications import OutgoingEmail


@dataclass(frozen=True, slots=True)
class QueuedEmail:
    """One claimed email delivery row, as the composer sees it."""

    id: int
    kind: str
    """An event type (`advance`, `at_risk`...), or `digest`, `staff_summary`, `endpoint_warning`,
    `endpoint_disabled`."""
    event_id: int | None
    job_id: int | None
    contact_id: int | None
    address: str | None
    """The recipient when it is no contact (staff alerts, endpoint owners)."""
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ComposedEmail:
    """Send `message`; the queued emails `folded` (other delivery ids) are covered by it."""

    message: OutgoingEmail
    folded: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class DeferEmail:
    """Not yet: a fold window, quiet hours or the estimate-email interval ends at `until`."""

    until: datetime


@dataclass(frozen=True, slots=True)
class SkipEmail:
    """Never: the preference is off or the address suppressed at send time."""

    reason: str


EmailPlan = ComposedEmail | DeferEmail | SkipEmail


class EmailComposer(Protocol):
    async def compose(self, email: QueuedEmail, now: datetime) -> EmailPlan:
        """What to do with one claimed email delivery at `now` (reads the database, sends nothing)."""
        ...
