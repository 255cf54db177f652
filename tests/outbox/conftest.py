"""Outbox fixtures: webhook endpoints as the webhooks API would register them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from notifications import generate_secret
from tests.conftest import CURRENT_TIME
from tracker.db.models import WebhookEndpoint, WebhookSubscription

RegisterEndpoint = Callable[..., Awaitable[WebhookEndpoint]]


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
