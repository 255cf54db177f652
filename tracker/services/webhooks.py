"""Integrators' webhook endpoints: registration, subscriptions, secrets, test messages, attempts, replays.

An integrator key sees and manages only the endpoints it registered (another's is "not found"); an admin
key sees them all. A URL is judged against the SSRF rules (`notifications.ssrf`) when it is registered or
changed, before any transaction opens: the name is resolved then, and again by the sender at every attempt.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum, StrEnum
from typing import TypedDict

from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from notifications.signing import generate_secret
from notifications.ssrf import Resolver, UnsafeURL, URLPolicy, validate_url
from tracker.db.models import Account, Delivery, DeliveryAttempt, WebhookEndpoint, WebhookSubscription
from tracker.domain.errors import Conflict, InvalidInput, NotFound
from tracker.domain.events import WEBHOOK_TYPES, EventType
from tracker.services.keys import Principal, Role
from tracker.services.pages import Page, Sort, paginate
from tracker.services.signals import DeliveriesQueued
from tracker.services.versions import UNNAMED, ExpectedVersion

SUBSCRIBABLE: tuple[str, ...] = tuple(sorted(set(WEBHOOK_TYPES.values())))
"""The webhook types an endpoint subscribes to; `webhook.test` needs no subscription."""
TEST_TYPE = "webhook.test"
TEST_KIND = "test"
"""`Delivery.kind` of a test message: the outbox sends it as a `webhook.test` request whose `data` is
`webhook_test_data(endpoint_id)`."""
TEST_MESSAGE = "This is a test message from tracker: your endpoint is reachable and verifies signatures."
MAX_ROTATION_WINDOW_S = 7 * 86_400
"""A rotation keeps the old secret signing for at most a week."""
RESOLVE_TIMEOUT_S = 5.0
WEBHOOK = "webhook"


class EndpointStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    """By its owner: nothing is sent until it is active again; deliveries wait."""
    DISABLED = "disabled"
    """By tracker: the receiver answered 410 Gone, or failed for days."""


class ReplayScope(StrEnum):
    DEAD = "dead"
    """Only deliveries that gave up."""
    ALL = "all"
    """Also those sent (or skipped): the receiver lost them. Each keeps its `webhook-id`."""


REPLAYABLE: dict[ReplayScope, tuple[str, ...]] = {
    ReplayScope.DEAD: ("dead",),
    ReplayScope.ALL: ("dead", "sent", "skipped"),
}
"""Delivery statuses each scope requeues. Whatever the scope, a delivery waiting for its next retry is
brought forward too (the receiver is back: no need to wait up to a day); one being sent is left alone."""


class WebhookTestData(TypedDict):
    """The `data` of a `webhook.test` request."""

    endpoint_id: int
    message: str


def webhook_test_data(endpoint_id: int) -> WebhookTestData:
    return {"endpoint_id": endpoint_id, "message": TEST_MESSAGE}


def webhook_type_of(kind: str) -> str:
    """The webhook type a webhook delivery of this `Delivery.kind` (an event type or `test`) goes out as."""
    if kind == TEST_KIND:
        return TEST_TYPE
    try:
        return WEBHOOK_TYPES.get(EventType(kind), kind)
    except ValueError:
        return kind


class Unchanged(Enum):
    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED
"""In `EndpointChanges`: leave this field as it is."""


@dataclass(frozen=True)
class EndpointFields:
    url: str
    event_types: Sequence[str]
    account_id: int | None = None
    """Only this account's jobs; None: every account."""
    description: str = ""
    rate_per_second: float | None = None
    """The dispatcher sends at most this many requests a second to the endpoint; None: no limit."""


@dataclass(frozen=True)
class EndpointChanges:
    url: str | Unchanged = UNCHANGED
    event_types: Sequence[str] | Unchanged = UNCHANGED
    account_id: int | Unchanged | None = UNCHANGED
    description: str | Unchanged = UNCHANGED
    rate_per_second: float | Unchanged | None = UNCHANGED
    status: EndpointStatus | Unchanged = UNCHANGED
    """ACTIVE resumes a paused endpoint or re-activates a disabled one (forgetting its failures)."""


@dataclass(frozen=True)
class EndpointItem:
    id: int
    url: str
    description: str
    account_id: int | None
    event_types: list[str]
    rate_per_second: float | None
    status: EndpointStatus
    disabled_reason: str | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None
    """While a rotation lasts, the old secret signs beside the new one until then."""
    created_at: datetime
    updated_at: datetime
    version: int


@dataclass(frozen=True)
class IssuedSecret:
    endpoint: EndpointItem
    secret: str
    """Shown this once; never read back."""


@dataclass(frozen=True)
class QueuedTest:
    delivery_id: int
    available_at: datetime


@dataclass(frozen=True)
class AttemptItem:
    id: int
    delivery_id: int
    event_type: str
    attempted_at: datetime
    outcome: str
    status_code: int | None
    latency_ms: float | None
    error: str | None
    response_excerpt: str | None


@dataclass(frozen=True)
class ReplayRequest:
    """One delivery (`delivery_id`) or every one since a time (`since`): exactly one of the two."""

    delivery_id: int | None = None
    since: datetime | None = None
    scope: ReplayScope = ReplayScope.DEAD


def _event_types(values: Sequence[str]) -> list[str]:
    chosen = sorted(set(values))
    if not chosen:
        raise InvalidInput("event_types", "must name at least one event type")
    unknown = [value for value in chosen if value not in SUBSCRIBABLE]
    if unknown:
        raise InvalidInput("event_types", f"{unknown[0]!r} is not a webhook type (see GET /event-types)")
    return chosen


def _description(value: str) -> str:
    text = value.strip()
    if len(text) > 500:
        raise InvalidInput("description", "must be at most 500 characters")
    return text


async def _check_account(account_id: int | None) -> None:
    """As for jobs: an account that does not exist (or no longer) is a clash with the state, not a
    malformed request."""
    if account_id is not None and not await Account.exists(id=account_id):
        raise Conflict(f"account {account_id} does not exist", code="unknown_account")


def _visible(principal: Principal) -> QuerySet[WebhookEndpoint]:
    query = WebhookEndpoint.all()
    return query if principal.role is Role.ADMIN else query.filter(owner_key_id=principal.key_id)


async def _item(endpoint: WebhookEndpoint) -> EndpointItem:
    types = await WebhookSubscription.filter(endpoint_id=endpoint.id).values_list("event_type", flat=True)
    return _item_with(endpoint, [str(t) for t in types])


def _item_with(endpoint: WebhookEndpoint, event_types: Sequence[str]) -> EndpointItem:
    return EndpointItem(
        id=endpoint.id,
        url=endpoint.url,
        description=endpoint.description,
        account_id=endpoint.account_id,
        event_types=sorted(event_types),
        rate_per_second=endpoint.rate_per_second,
        status=EndpointStatus(endpoint.status),
        disabled_reason=endpoint.disabled_reason,
        failing_since=endpoint.failing_since,
        previous_secret_expires_at=endpoint.previous_secret_until,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
        version=endpoint.version,
    )


async def _subscribe(endpoint: WebhookEndpoint, event_types: Sequence[str]) -> None:
    await WebhookSubscription.bulk_create(
        [WebhookSubscription(endpoint=endpoint, event_type=t) for t in event_types]
    )


@dataclass
class WebhookEndpoints:
    """The webhook API's use cases; one per app, from `build_services`."""

    policy: URLPolicy
    resolver: Resolver
    rotation_window_s: int
    """How long the old secret keeps signing after a rotation, unless the rotation says otherwise."""
    deliveries_queued: DeliveriesQueued

    async def _checked_url(self, url: str) -> str:
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                await validate_url(url, self.policy, self.resolver)
        except UnsafeURL as refused:
            raise InvalidInput("url", str(refused)) from None
        except TimeoutError:
            raise InvalidInput("url", f"its host did not resolve within {RESOLVE_TIMEOUT_S:g} s") from None
        return url

    async def _owned(self, principal: Principal, endpoint_id: int, *, lock: bool = False) -> WebhookEndpoint:
        query = _visible(principal).filter(id=endpoint_id)
        endpoint = await (query.select_for_update() if lock else query).first()
        if endpoint is None:
            raise NotFound("webhook", endpoint_id)
        return endpoint

    async def register(self, principal: Principal, fields: EndpointFields, *, now: datetime) -> IssuedSecret:
        event_types = _event_types(fields.event_types)
        description = _description(fields.description)
        url = await self._checked_url(fields.url)
        secret = generate_secret()
        async with in_transaction():
            await _check_account(fields.account_id)
            endpoint = await WebhookEndpoint.create(
                url=url,
                description=description,
                account_id=fields.account_id,
                rate_per_second=fields.rate_per_second,
                owner_key_id=principal.key_id,
                secret=secret,
                status=EndpointStatus.ACTIVE.value,
                created_at=now,
                updated_at=now,
            )
            await _subscribe(endpoint, event_types)
        return IssuedSecret(_item_with(endpoint, event_types), secret)

    async def list_endpoints(
        self, principal: Principal, *, sort: Sort, limit: int, cursor: str | None
    ) -> Page[EndpointItem]:
        page = await paginate(_visible(principal), sort, limit=limit, cursor=cursor)
        rows = await WebhookSubscription.filter(endpoint_id__in=[e.id for e in page.items]).values_list(
            "endpoint_id", "event_type"
        )
        types: dict[int, list[str]] = {}
        for endpoint_id, event_type in rows:
            types.setdefault(int(endpoint_id), []).append(str(event_type))
        return Page([_item_with(e, types.get(e.id, [])) for e in page.items], page.next_cursor)

    async def get(self, principal: Principal, endpoint_id: int) -> EndpointItem:
        return await _item(await self._owned(principal, endpoint_id))

    async def update(
        self,
        principal: Principal,
        endpoint_id: int,
        changes: EndpointChanges,
        *,
        now: datetime,
        expected: ExpectedVersion = UNNAMED,
    ) -> EndpointItem:
        await self._owned(principal, endpoint_id)  # a stranger learns nothing, not even that a URL is bad
        event_types = (
            None if isinstance(changes.event_types, Unchanged) else _event_types(changes.event_types)
        )
        url = None if isinstance(changes.url, Unchanged) else await self._checked_url(changes.url)
        async with in_transaction():
            endpoint = await self._owned(principal, endpoint_id, lock=True)
            expected.check_if_named(endpoint.version, "webhook endpoint")
            if url is not None:
                endpoint.url = url
            if not isinstance(changes.description, Unchanged):
                endpoint.description = _description(changes.description)
            if not isinstance(changes.account_id, Unchanged):
                await _check_account(changes.account_id)
                endpoint.account_id = changes.account_id
            if not isinstance(changes.rate_per_second, Unchanged):
                endpoint.rate_per_second = changes.rate_per_second
            if not isinstance(changes.status, Unchanged):
                if endpoint.status == EndpointStatus.DISABLED:  # re-activated (or paused) by its owner
                    endpoint.disabled_reason = endpoint.failing_since = endpoint.warned_at = None
                endpoint.status = changes.status.value
            endpoint.updated_at = now
            endpoint.version += 1
            await endpoint.save()
            if event_types is not None:
                await WebhookSubscription.filter(endpoint_id=endpoint.id).delete()
                await _subscribe(endpoint, event_types)
            return await _item(endpoint)

    async def delete(self, principal: Principal, endpoint_id: int) -> None:
        """Delete the endpoint; what was still queued for it is skipped, its attempts stay on record."""
        async with in_transaction():
            endpoint = await self._owned(principal, endpoint_id, lock=True)
            await Delivery.filter(endpoint_id=endpoint.id, channel=WEBHOOK, status="queued").update(
                status="skipped", last_error="the endpoint was deleted"
            )
            await endpoint.delete()

    async def rotate_secret(
        self, principal: Principal, endpoint_id: int, *, now: datetime, window_s: int | None = None
    ) -> IssuedSecret:
        """A new secret; the old one keeps signing beside it for `window_s` (the setting by default).

        A rotation during a rotation drops the oldest secret: only the last two ever sign.
        """
        window = self.rotation_window_s if window_s is None else window_s
        if not 0 <= window <= MAX_ROTATION_WINDOW_S:
            raise InvalidInput("previous_secret_valid_s", f"must be 0 to {MAX_ROTATION_WINDOW_S} seconds")
        secret = generate_secret()
        async with in_transaction():
            endpoint = await self._owned(principal, endpoint_id, lock=True)
            keep_old = window > 0
            endpoint.previous_secret = endpoint.secret if keep_old else None
            endpoint.previous_secret_until = now + timedelta(seconds=window) if keep_old else None
            endpoint.secret = secret
            endpoint.updated_at = now
            endpoint.version += 1
            await endpoint.save()
            return IssuedSecret(await _item(endpoint), secret)

    async def send_test(self, principal: Principal, endpoint_id: int, *, now: datetime) -> QueuedTest:
        """Queue a `webhook.test` message (`webhook_test_data`), due now; each request queues its own."""
        async with in_transaction():
            endpoint = await self._owned(principal, endpoint_id)
            _refuse_disabled(endpoint)
            delivery = await Delivery.create(
                dedupe_key=f"test:{endpoint.id}:{secrets.token_hex(16)}",
                channel=WEBHOOK,
                kind=TEST_KIND,
                target=f"{WEBHOOK}:{endpoint.id}",
                endpoint_id=endpoint.id,
                available_at=now,
                created_at=now,
            )
        self.deliveries_queued.fire()
        return QueuedTest(delivery.id, delivery.available_at)

    async def attempts(
        self, principal: Principal, endpoint_id: int, *, limit: int, cursor: str | None
    ) -> Page[AttemptItem]:
        """The endpoint's delivery attempts, newest first."""
        await self._owned(principal, endpoint_id)
        page = await paginate(
            DeliveryAttempt.filter(endpoint_id=endpoint_id), Sort.NEWEST, limit=limit, cursor=cursor
        )
        kinds = dict(
            await Delivery.filter(id__in={a.delivery_id for a in page.items}).values_list("id", "kind")
        )
        return Page(
            [
                AttemptItem(
                    id=attempt.id,
                    delivery_id=attempt.delivery_id,
                    event_type=webhook_type_of(str(kinds.get(attempt.delivery_id, ""))),
                    attempted_at=attempt.attempted_at,
                    outcome=attempt.outcome,
                    status_code=attempt.status_code,
                    latency_ms=attempt.latency_ms,
                    error=attempt.error,
                    response_excerpt=attempt.response_excerpt,
                )
                for attempt in page.items
            ],
            page.next_cursor,
        )

    async def replay(
        self, principal: Principal, endpoint_id: int, request: ReplayRequest, *, now: datetime
    ) -> int:
        """Requeue deliveries, due now, with their attempts reset to 0: a replay starts a fresh retry
        schedule (the old attempts stay listed). Answers how many were requeued."""
        if (request.delivery_id is None) == (request.since is None):
            raise InvalidInput("delivery_id", "give either delivery_id or since, not both and not neither")
        if request.since is not None and request.since.tzinfo is None:
            raise InvalidInput("since", "needs a time zone offset, such as Z or +01:00")
        statuses = REPLAYABLE[request.scope]
        async with in_transaction():
            endpoint = await self._owned(principal, endpoint_id)
            _refuse_disabled(endpoint)
            query = Delivery.filter(endpoint_id=endpoint.id, channel=WEBHOOK)
            delivery = None
            if request.delivery_id is not None:
                delivery = await query.filter(id=request.delivery_id).first()
                if delivery is None:
                    raise NotFound("delivery", request.delivery_id)
                query = query.filter(id=delivery.id)
            else:
                query = query.filter(created_at__gte=request.since)
            waiting_for_retry = Q(status="queued", claim__isnull=True, attempts__gt=0)
            requeued = await query.filter(Q(status__in=statuses) | waiting_for_retry).update(
                status="queued", attempts=0, available_at=now, claim=None, sent_at=None
            )
            if delivery is not None and not requeued:
                raise Conflict(
                    f"delivery {delivery.id} is {delivery.status}; "
                    + (
                        "only a dead one is replayed"
                        if request.scope is ReplayScope.DEAD
                        else "it is on its way already"
                    ),
                    code="delivery_not_replayable",
                )
        if requeued:
            self.deliveries_queued.fire()
        return requeued


def _refuse_disabled(endpoint: WebhookEndpoint) -> None:
    if endpoint.status == EndpointStatus.DISABLED:
        raise Conflict(
            "the endpoint is disabled: re-activate it first (PATCH with status active)",
            code="endpoint_disabled",
        )
