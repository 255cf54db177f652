"""What tracker told people about a job: each email and webhook, to whom, and how it went (staff only)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import FromPath, QueryParameter

from tracker.services import jobs as job_queries
from tracker.services.keys import Role
from tracker.services.outbox import NotificationItem, job_notifications
from tracker.web import schemas as s
from tracker.web.auth import requires


def notification_out(item: NotificationItem) -> s.NotificationOut:
    return s.NotificationOut(
        id=item.id,
        channel=item.channel,
        kind=item.kind,
        contact_id=item.contact_id,
        endpoint_id=item.endpoint_id,
        address=item.address,
        status=item.status,
        attempts=item.attempts,
        last_error=item.last_error,
        created_at=item.created_at,
        due_at=item.due_at,
        sent_at=item.sent_at,
    )


class JobNotificationController(Controller):
    path = "/jobs"
    tags = ["Jobs"]
    guards = [requires(Role.STAFF)]

    @get("/{job_id:int}/notifications", operation_id="JobNotifications")
    async def list_notifications(
        self,
        job_id: FromPath[int],
        after: Annotated[
            int | None, QueryParameter(gt=-1, le=s.BIGINT_MAX, description="Last notification id seen")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> s.NotificationList:
        """Every email and webhook about the job, oldest first: channel, what it told, recipient (contact,
        endpoint or address), status, attempts, last error and when it was sent."""
        await job_queries.get_job(job_id)
        items = await job_notifications(job_id, after=after, limit=limit)
        return s.NotificationList(
            items=[notification_out(item) for item in items],
            next_after=items[-1].id if len(items) == limit else None,
        )
