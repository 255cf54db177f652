"""The one place job events are written.

Every writer (job creation and actions, the estimator, imports, the demo) hands its events here, all the
events of one transaction in one call, inside that transaction. The notifications outbox adds its rows
here too, in the same transaction, so no committed change can miss its notifications.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from tortoise.backends.base.client import BaseDBAsyncClient

from tracker.db.models import JobEvent
from tracker.domain.events import EVENT_PAYLOADS, NewEvent


def check_payload(event: NewEvent) -> None:
    """Refuse a payload that is not shaped as the catalogue declares for its type (a bug, not bad input)."""
    try:
        msgspec.convert(event.payload, EVENT_PAYLOADS[event.type], strict=True)
    except msgspec.ValidationError as error:
        raise ValueError(f"{event.type.value} event payload does not match the catalogue: {error}") from None


async def record_events(events: Sequence[NewEvent], *, connection: BaseDBAsyncClient | None = None) -> None:
    """Write the events of one transaction (call it inside that transaction), in the order given."""
    if not events:
        return
    for event in events:
        check_payload(event)
    await JobEvent.bulk_create(
        [
            JobEvent(
                job_id=event.job_id,
                job_version=event.job_version,
                type=event.type.value,
                data=dict(event.payload),
                actor=event.actor,
                occurred_at=event.occurred_at,
            )
            for event in events
        ],
        using_db=connection,
    )
