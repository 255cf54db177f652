"""Outbox fixtures: webhook endpoints as the webhooks API would register them, a plain email composer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import pytest

from notifications import Mailbox, OutgoingEmail, generate_secret
from tests.conftest import CURRENT_TIME
from tests.notifications.conftest import receiver, smtp_server
from tracker.db.models import Contact, WebhookEndpoint, WebhookSubscription
from tracker.services.outbox import ComposedEmail, EmailPlan, QueuedEmail

RegisterEndpoint = Callable[..., Awaitable[WebhookEndpoint]]
__all__ = ["receiver", "smtp_server"]  # the real loopback servers of the engine's tests, shared


class PlainComposer:
    """Composes a plain message per queued email, or follows the plan a test sets for a delivery id."""

    def __init__(self) -> None:
        self.plans: dict[int, EmailPlan] = {}
        self.seen: list[QueuedEmail] = []

    async def compose_batch(self, emails: Sequence[QueuedEmail], now: datetime) -> list[EmailPlan]:
        return [await self._compose(email) for email in emails]

    async def _compose(self, email: QueuedEmail) -> EmailPlan:
        self.seen.append(email)
        if email.id in self.plans:
            return self.plans[email.id]
        address = email.address
        if email.contact_id is not None:
            address = (await Contact.get(id=email.contact_id)).email
        assert address is not None
        return ComposedEmail(
            OutgoingEmail(
                sender=Mailbox("tracker@garage.example"),
                recipient=Mailbox(address),
                subject=f"{email.kind} about job {email.job_id}",
                text="text",
                html="<p>html</p>",
                message_id=f"<delivery-{email.id}@garage.example>",
            )
        )


async def register_endpoint(
    url: str = "https://hooks.example.test/in",
    *,
    types: tuple[str, ...] = ("job.stage_changed",),
    account_id: int | None = None,
    status: str = "active",
) -> WebhookEndpoint:
    endpoint = await WebhookEndpoint.create(
        url=url,
        secret=generate_secret(),
        account_id=account_id,
        status=status,
        created_at=CURRENT_TIME,
        updated_at=CURRENT_TIME,
    )
    await WebhookSubscription.bulk_create(
        [WebhookSubscription(endpoint_id=endpoint.id, event_type=kind) for kind in types]
    )
    return endpoint


@pytest.fixture
def endpoint() -> RegisterEndpoint:
    return register_endpoint
