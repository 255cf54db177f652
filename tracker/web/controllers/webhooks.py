"""Integrator API for webhook endpoints, and the catalogue of webhook types."""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from litestar import Controller, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from tracker.services.keys import Principal, Role
from tracker.services.pages import Sort
from tracker.services.webhooks import (
    UNCHANGED,
    EndpointChanges,
    EndpointFields,
    EndpointStatus,
    ReplayRequest,
    Unchanged,
)
from tracker.web import schemas as s, views
from tracker.web.auth import requires
from tracker.web.deps import IfMatchOptional, Now, PageCursor, PageLimit, Webhooks, expected_version, tagged
from tracker.web.event_types import catalogue
from tracker.web.openapi import MAY_CONFLICT, VERSION_OPTIONAL

T = TypeVar("T")
Caller = NamedDependency[Principal]
NO_CONFLICT = {MAY_CONFLICT: False}


def _given(value: T | msgspec.UnsetType) -> T | Unchanged:
    return UNCHANGED if isinstance(value, msgspec.UnsetType) else value


def _changes(data: s.WebhookUpdate) -> EndpointChanges:
    status = _given(data.status)
    return EndpointChanges(
        url=_given(data.url),
        event_types=_given(data.event_types),
        account_id=_given(data.account_id),
        description=_given(data.description),
        rate_per_second=_given(data.rate_per_second),
        status=status if isinstance(status, Unchanged) else EndpointStatus(status),
    )


class WebhookController(Controller):
    """An integrator key sees and manages the endpoints it registered (another's answer 404); admin, all."""

    path = "/webhooks"
    tags = ["Webhooks"]
    guards = [requires(Role.INTEGRATOR)]

    @post(operation_id="CreateWebhook", status_code=HTTP_201_CREATED)
    async def create_webhook(
        self, data: JSONBody[s.WebhookIn], webhooks: Webhooks, principal: Caller, now: Now
    ) -> s.WebhookWithSecret:
        """Register an endpoint. The response holds its signing secret, shown this once. The URL must
        resolve to public addresses only (422 naming `url` and why otherwise); an `account_id` names an
        account that exists (409 `unknown_account` otherwise)."""
        fields = EndpointFields(
            data.url, data.event_types, data.account_id, data.description, data.rate_per_second
        )
        return views.webhook_with_secret(await webhooks.register(principal, fields, now=now))

    @get(operation_id="ListWebhooks")
    async def list_webhooks(
        self,
        webhooks: Webhooks,
        principal: Caller,
        sort: Annotated[Sort, QueryParameter()] = Sort.CREATED,
        limit: PageLimit = 50,
        cursor: PageCursor = None,
    ) -> s.WebhookList:
        """Your endpoints, oldest first unless `sort` says otherwise; follow `next_cursor`."""
        page = await webhooks.list_endpoints(principal, sort=sort, limit=limit, cursor=cursor)
        return s.WebhookList(items=[views.webhook_out(e) for e in page.items], next_cursor=page.next_cursor)

    @get("/{webhook_id:int}", operation_id="GetWebhook")
    async def get_webhook(
        self, webhook_id: FromPath[int], webhooks: Webhooks, principal: Caller
    ) -> Response[s.WebhookOut]:
        return tagged(views.webhook_out(await webhooks.get(principal, webhook_id)))

    @patch("/{webhook_id:int}", operation_id="UpdateWebhook", opt={VERSION_OPTIONAL: True})
    async def update_webhook(
        self,
        webhook_id: FromPath[int],
        data: JSONBody[s.WebhookUpdate],
        webhooks: Webhooks,
        principal: Caller,
        now: Now,
        if_match: IfMatchOptional = None,
    ) -> Response[s.WebhookOut]:
        """Change what you send: a new URL is judged again. `status` pauses or resumes; `active` also
        re-activates a disabled endpoint and forgets its failures. 409 `unknown_account` as on creation."""
        expected = expected_version(if_match, None)
        updated = await webhooks.update(principal, webhook_id, _changes(data), now=now, expected=expected)
        return tagged(views.webhook_out(updated))

    @delete(
        "/{webhook_id:int}", operation_id="DeleteWebhook", status_code=HTTP_204_NO_CONTENT, opt=NO_CONFLICT
    )
    async def delete_webhook(self, webhook_id: FromPath[int], webhooks: Webhooks, principal: Caller) -> None:
        """Delete the endpoint: what was still queued for it is not sent."""
        await webhooks.delete(principal, webhook_id)

    @post(
        "/{webhook_id:int}/rotate-secret",
        operation_id="RotateWebhookSecret",
        status_code=200,
        opt=NO_CONFLICT,
    )
    async def rotate_secret(
        self,
        webhook_id: FromPath[int],
        webhooks: Webhooks,
        principal: Caller,
        now: Now,
        data: JSONBody[s.RotateSecretIn | None] = None,
    ) -> s.WebhookWithSecret:
        """A new secret, shown this once. The old one keeps signing beside it until
        `previous_secret_expires_at`, so receivers can switch without losing a message."""
        window = None if data is None else data.previous_secret_valid_s
        return views.webhook_with_secret(
            await webhooks.rotate_secret(principal, webhook_id, now=now, window_s=window)
        )

    @post("/{webhook_id:int}/test", operation_id="TestWebhook", status_code=HTTP_202_ACCEPTED)
    async def test_webhook(
        self, webhook_id: FromPath[int], webhooks: Webhooks, principal: Caller, now: Now
    ) -> s.QueuedTestOut:
        """Queue a `webhook.test` request to the endpoint, due now (409 `endpoint_disabled` when it is
        disabled). Its attempts show in `GET /webhooks/{id}/attempts`."""
        queued = await webhooks.send_test(principal, webhook_id, now=now)
        return s.QueuedTestOut(delivery_id=queued.delivery_id, available_at=queued.available_at)

    @get("/{webhook_id:int}/attempts", operation_id="ListWebhookAttempts")
    async def list_attempts(
        self,
        webhook_id: FromPath[int],
        webhooks: Webhooks,
        principal: Caller,
        limit: PageLimit = 50,
        cursor: PageCursor = None,
    ) -> s.AttemptList:
        """Every try to deliver to this endpoint, newest first; follow `next_cursor`."""
        page = await webhooks.attempts(principal, webhook_id, limit=limit, cursor=cursor)
        return s.AttemptList(items=[views.attempt_out(a) for a in page.items], next_cursor=page.next_cursor)

    @post("/{webhook_id:int}/replay", operation_id="ReplayWebhookDeliveries", status_code=HTTP_202_ACCEPTED)
    async def replay(
        self,
        webhook_id: FromPath[int],
        data: JSONBody[s.ReplayIn],
        webhooks: Webhooks,
        principal: Caller,
        now: Now,
    ) -> s.ReplayOut:
        """Send deliveries again, due now, with a fresh retry schedule; each keeps its `webhook-id`.
        One dead delivery (`delivery_id`; with `status: all` a sent one too), or every dead (or, with
        `status: all`, every sent or dead) delivery created since `since`; deliveries waiting for their
        next retry are brought forward either way. 409 `delivery_not_replayable` for a delivery being
        sent (or not dead), `endpoint_disabled` for a disabled endpoint."""
        request = ReplayRequest(
            delivery_id=None if isinstance(data.delivery_id, msgspec.UnsetType) else data.delivery_id,
            since=None if isinstance(data.since, msgspec.UnsetType) else data.since,
            scope=data.status,
        )
        return s.ReplayOut(requeued=await webhooks.replay(principal, webhook_id, request, now=now))


class EventTypeController(Controller):
    path = "/event-types"
    tags = ["Webhooks"]
    guards = [requires(Role.STAFF, Role.INTEGRATOR)]

    @get(operation_id="ListEventTypes")
    async def list_event_types(self) -> list[s.EventTypeOut]:
        """Every webhook type: what it means, a JSON Schema of its `data` and an example request body.
        `data` is `{"job": <the job as GET /jobs/{id} shows it>, "change": <what changed>}`."""
        return catalogue()
