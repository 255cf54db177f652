"""The daily emails: a digest per contact who chose one, a morning summary per staff address.

A scheduler tick in every process queues them; the delivery's unique key (contact or address, and local
day) makes a second process, or a second tick the same day, queue nothing more. The composer writes them
when they are sent, from the state of that moment.
"""

from __future__ import annotations

from datetime import datetime
from functools import reduce
from operator import or_
from zoneinfo import ZoneInfo

from tortoise.expressions import Q

from tracker.db.models import Contact, Delivery
from tracker.domain.emails import Preference, QuietHours, daily_email_day, daily_send_time
from tracker.services.events import PREFERENCE_COLUMNS, queued_email
from tracker.settings import Settings


async def queue_daily_emails(settings: Settings, now: datetime) -> int:
    """Queue today's digests and staff summaries that are due and not queued yet; how many were due."""
    at = daily_send_time(QuietHours.parse(settings.quiet_hours))
    takes_digest = reduce(
        or_, (Q(**{column: Preference.DIGEST.value}) for column in PREFERENCE_COLUMNS.values())
    )
    rows = []
    for contact in await Contact.filter(takes_digest).only("id", "email", "time_zone"):
        day = daily_email_day(now, ZoneInfo(contact.time_zone), at)
        if day is not None:
            rows.append(
                queued_email(
                    f"digest:c{contact.id}:{day}", "digest", contact.email, now, contact_id=contact.id
                )
            )
    staff_day = daily_email_day(now, settings.staff_zone, at)
    if staff_day is not None:
        rows.extend(
            queued_email(f"summary:{address.lower()}:{staff_day}", "staff_summary", address, now)
            for address in settings.staff_alert_addresses
        )
    if rows:
        await Delivery.bulk_create(rows, ignore_conflicts=True)
    return len(rows)
