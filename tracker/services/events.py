"""The one place job events are written, and where the notifications outbox is filled.

Every writer (job creation and actions, the estimator, imports, the demo) hands its events here, all the
events of one transaction in one call, inside that transaction. The outbox rows (one per recipient and
channel) are written here too, in the same transaction, so no committed change can miss its
notifications and a rolled-back one sends nothing. Recipients are resolved in SQL, one statement per
channel whatever the number of jobs (the scheduled recompute records thousands of jobs' events at once);
each row's `dedupe_key` (event, channel, recipient) makes the fan-out idempotent.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection

from tracker.db.bulk import is_postgres
from tracker.db.models import Delivery, JobEvent
from tracker.domain.events import (
    EMAIL_CATEGORIES,
    EVENT_PAYLOADS,
    STAFF_ALERTS,
    WEBHOOK_TYPES,
    EmailCategory,
    EventType,
    NewEvent,
)


@dataclass(frozen=True)
class Listeners:
    """Who hears about recorded events besides the job's contacts and the subscribed webhook endpoints."""

    staff_addresses: tuple[str, ...] = ()
    """`TRACKER_STAFF_ALERT_EMAILS`: told about the `STAFF_ALERTS` events as they happen."""
    notify: bool = True
    """False for history written after the fact (a past job of the demo, an import): nobody is told."""


HISTORY_ONLY = Listeners(notify=False)


def queued_email(
    dedupe_key: str,
    kind: str,
    address: str,
    now: datetime,
    *,
    contact_id: int | None = None,
    job_id: int | None = None,
    endpoint_id: int | None = None,
    question_id: int | None = None,
) -> Delivery:
    """An email due now that no event fans out (digest, staff summary, question, endpoint notice): to a
    contact, whose address is read again at send time, or to a staff address, kept on the row."""
    address = address.lower()
    return Delivery(
        dedupe_key=dedupe_key[:200],
        channel="email",
        kind=kind,
        target=f"email:{address}",
        contact_id=contact_id,
        job_id=job_id,
        endpoint_id=endpoint_id,
        question_id=question_id,
        address=None if contact_id is not None else address,
        available_at=now,
        created_at=now,
    )


PREFERENCE_COLUMNS: dict[EmailCategory, str] = {
    EmailCategory.PROGRESS: "progress_emails",
    EmailCategory.ESTIMATES: "estimate_emails",
    EmailCategory.ALERTS: "alert_emails",
    EmailCategory.NOTES: "note_emails",
}
PUBLISHED = frozenset(EMAIL_CATEGORIES) | frozenset(WEBHOOK_TYPES) | STAFF_ALERTS

# The SQL below interpolates only names and values of our own catalogue; every other value is a bound
# parameter. `ON CONFLICT ... DO NOTHING` after `INSERT ... SELECT ... WHERE` reads the same on both engines.
_COLUMNS = (
    "dedupe_key, channel, kind, target, event_id, job_id, contact_id, endpoint_id, address, status, "
    "attempts, available_at, created_at"
)
_DUE = "'queued', 0, e.occurred_at, e.occurred_at"


def _listed(types: object) -> str:
    return ", ".join(f"'{EventType(kind).value}'" for kind in sorted(types))  # type: ignore[call-overload]


def _public_note(postgres: bool) -> str:
    visibility = "e.data->>'visibility'" if postgres else "json_extract(e.data, '$.visibility')"
    return f"(e.type <> '{EventType.NOTE_ADDED.value}' OR {visibility} = 'public')"


def _email_sql(postgres: bool, mark: str) -> str:
    wanted = " OR ".join(
        f"(e.type IN ({_listed([t for t, c in EMAIL_CATEGORIES.items() if c is category])})"
        f" AND c.{column} = 'each')"
        for category, column in PREFERENCE_COLUMNS.items()
    )
    return (
        f"INSERT INTO delivery ({_COLUMNS}) "  # noqa: S608 (our catalogue's names; values are bound)
        "SELECT 'e' || e.id || ':email:c' || c.id, 'email', e.type, 'email:' || lower(c.email), e.id, "
        f"e.job_id, c.id, NULL, NULL, {_DUE} "
        "FROM job_event AS e JOIN job AS j ON j.id = e.job_id "
        "JOIN contact AS c ON c.account_id = j.account_id "
        f"WHERE e.batch = {mark} AND ({wanted}) AND {_public_note(postgres)} "
        "ON CONFLICT (dedupe_key) DO NOTHING"
    )


def _webhook_sql(postgres: bool, mark: str) -> str:
    webhook_type = (
        "CASE e.type "
        + " ".join(f"WHEN '{kind.value}' THEN '{name}'" for kind, name in WEBHOOK_TYPES.items())
        + " END"
    )
    return (
        f"INSERT INTO delivery ({_COLUMNS}) "  # noqa: S608 (our catalogue's names; values are bound)
        "SELECT 'e' || e.id || ':webhook:w' || w.id, 'webhook', e.type, 'webhook:' || w.id, e.id, "
        f"e.job_id, NULL, w.id, NULL, {_DUE} "
        "FROM job_event AS e JOIN job AS j ON j.id = e.job_id "
        f"JOIN webhook_subscription AS s ON s.event_type = {webhook_type} "
        "JOIN webhook_endpoint AS w ON w.id = s.endpoint_id AND w.status IN ('active', 'paused') "
        "AND (w.account_id IS NULL OR w.account_id = j.account_id) "
        f"WHERE e.batch = {mark} AND {_public_note(postgres)} "
        "ON CONFLICT (dedupe_key) DO NOTHING"
    )


def _staff_sql(postgres: bool, marks: list[str]) -> str:
    """`marks`: one placeholder per address, then the batch's (in the order they appear)."""
    text = "::text" if postgres else ""
    addresses = " UNION ALL ".join(f"SELECT lower({mark}{text}) AS address" for mark in marks[:-1])
    return (
        f"INSERT INTO delivery ({_COLUMNS}) "  # noqa: S608 (our catalogue's names; values are bound)
        "SELECT 'e' || e.id || ':staff:' || s.address, 'email', 'staff_alert', 'email:' || s.address, e.id, "
        f"e.job_id, NULL, NULL, s.address, {_DUE} "
        f"FROM job_event AS e CROSS JOIN ({addresses}) AS s "
        f"WHERE e.batch = {marks[-1]} AND e.type IN ({_listed(STAFF_ALERTS)}) "
        "ON CONFLICT (dedupe_key) DO NOTHING"
    )


def check_payload(event: NewEvent) -> None:
    """Refuse a payload that is not shaped as the catalogue declares for its type (a bug, not bad input)."""
    try:
        msgspec.convert(event.payload, EVENT_PAYLOADS[event.type], strict=True)
    except msgspec.ValidationError as error:
        raise ValueError(f"{event.type.value} event payload does not match the catalogue: {error}") from None


async def record_events(
    events: Sequence[NewEvent], listeners: Listeners, *, connection: BaseDBAsyncClient | None = None
) -> None:
    """Write the events of one transaction (call it inside that transaction), in the order given, and
    queue their deliveries; the caller fires `DeliveriesQueued` once the transaction has committed."""
    if not events:
        return
    for event in events:
        check_payload(event)
    batch = uuid.uuid4().hex
    await JobEvent.bulk_create(
        [
            JobEvent(
                job_id=event.job_id,
                job_version=event.job_version,
                type=event.type.value,
                data=dict(event.payload),
                actor=event.actor,
                occurred_at=event.occurred_at,
                batch=batch,
            )
            for event in events
        ],
        using_db=connection,
    )
    if listeners.notify and any(event.type in PUBLISHED for event in events):
        staff = listeners if any(event.type in STAFF_ALERTS for event in events) else Listeners()
        await queue_deliveries(batch, staff, connection=connection)


async def queue_deliveries(
    batch: str, listeners: Listeners, *, connection: BaseDBAsyncClient | None = None
) -> None:
    """Queue a delivery for every recipient of the events of `batch` who has none yet: one statement per
    channel, whatever the number of events and jobs."""
    connection = connection or get_connection("default")
    postgres = is_postgres(connection)
    first = "$1" if postgres else "?"
    await connection.execute_query(_email_sql(postgres, first), [batch])
    await connection.execute_query(_webhook_sql(postgres, first), [batch])
    staff = sorted({address.lower() for address in listeners.staff_addresses})
    if staff:
        marks = [f"${n}" if postgres else "?" for n in range(1, len(staff) + 2)]
        await connection.execute_query(_staff_sql(postgres, marks), [*staff, batch])
