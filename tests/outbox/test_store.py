"""The database delivery store: claims with a lease on SQLite and PostgreSQL, compare-and-set results,
webhook messages built from the job snapshot, email plans, bounces and endpoint health."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from notifications import (
    Attempt,
    Delivery,
    Mailbox,
    Outcome,
    OutgoingEmail,
    Rate,
    TargetAction,
    TargetHealth,
    TargetVerdict,
)
from notifications.webhook import WebhookMessage
from tests.conftest import CURRENT_TIME, Keys
from tests.factories import act, create_account, create_job, create_workflow
from tests.outbox.conftest import PlainComposer, RegisterEndpoint
from tracker.db.models import (
    Delivery as DeliveryRow,
    DeliveryAttempt,
    Job,
    JobEvent,
    Suppression,
    WebhookEndpoint,
)
from tracker.services.bootstrap import build_services
from tracker.services.outbox import (
    ComposedEmail,
    DatabaseDeliveryStore,
    DeferEmail,
    SkipEmail,
)
from tracker.settings import Settings

LEASE = timedelta(minutes=5)
DELIVERED = Attempt(Outcome.DELIVERED, 12.5, status_code=200, response_excerpt="ok")
FAILED = Attempt(Outcome.FAILED, 30.0, status_code=503, error="HTTP 503", response_excerpt="x" * 3000)


@pytest.fixture
def composer() -> PlainComposer:
    return PlainComposer()


@pytest.fixture
def store(settings: Settings, composer: PlainComposer) -> DatabaseDeliveryStore:
    services = build_services(settings)
    return DatabaseDeliveryStore(composer, services.snapshots, staff_addresses=("desk@garage.example",))


Queue = Callable[..., Any]


async def queue(
    target: str,
    *,
    key: str | None = None,
    at: datetime = CURRENT_TIME,
    kind: str = "advance",
    address: str | None = None,
) -> DeliveryRow:
    channel = target.split(":", 1)[0]
    endpoint_id = int(target.split(":", 1)[1]) if channel == "webhook" else None
    count = await DeliveryRow.all().count()
    return await DeliveryRow.create(
        dedupe_key=key or f"{target}:{count}",
        channel=channel,
        kind=kind,
        target=target,
        endpoint_id=endpoint_id,
        address=address,
        available_at=at,
        created_at=at,
    )


async def claim(
    store: DatabaseDeliveryStore,
    now: datetime = CURRENT_TIME,
    *,
    limit: int = 50,
    per_target: int = 10,
    skip: frozenset[str] = frozenset(),
) -> list[str]:
    claimed = await store.claim_due(limit, now + LEASE, now, per_target, skip)
    return sorted(d.id for d in claimed)


async def claim_webhooks(store: DatabaseDeliveryStore, now: datetime = CURRENT_TIME) -> list[Delivery]:
    """The webhook deliveries of a claim (the job's contacts are emailed too)."""
    claimed = await store.claim_due(50, now + LEASE, now, 10, ())
    return [d for d in claimed if d.target.startswith("webhook:")]


async def test_a_claimed_delivery_is_not_claimed_again_until_its_lease_ends(
    store: DatabaseDeliveryStore,
) -> None:
    row = await queue("email:a@example.com", address="a@example.com")
    later = await queue("email:b@example.com", address="b@example.com", at=CURRENT_TIME + timedelta(hours=1))

    first = await store.claim_due(10, CURRENT_TIME + LEASE, CURRENT_TIME, 4, ())

    assert [d.id for d in first] == [str(row.id)]
    assert await claim(store, CURRENT_TIME + timedelta(minutes=4)) == []
    taken_over = await store.claim_due(10, CURRENT_TIME + 2 * LEASE, CURRENT_TIME + LEASE, 4, ())
    assert [d.id for d in taken_over] == [str(row.id)]
    assert taken_over[0].claim != first[0].claim
    assert str(later.id) not in await claim(store, CURRENT_TIME + LEASE)


async def test_a_result_from_a_lost_claim_changes_nothing(store: DatabaseDeliveryStore) -> None:
    await queue("email:a@example.com", address="a@example.com")
    (lost,) = await store.claim_due(10, CURRENT_TIME + LEASE, CURRENT_TIME, 4, ())
    (held,) = await store.claim_due(10, CURRENT_TIME + 2 * LEASE, CURRENT_TIME + LEASE, 4, ())

    await store.mark_sent(lost, DELIVERED, CURRENT_TIME + LEASE)
    await store.release(lost, CURRENT_TIME)

    row = await DeliveryRow.get(id=int(held.id))
    assert (row.status, row.claim, row.attempts) == ("queued", held.claim, 0)
    assert await DeliveryAttempt.all().count() == 0
    await store.mark_sent(held, DELIVERED, CURRENT_TIME + LEASE)
    assert (await DeliveryRow.get(id=row.id)).status == "sent"


async def test_a_claim_takes_at_most_per_target_of_each_target_and_none_of_the_busy_ones(
    store: DatabaseDeliveryStore,
) -> None:
    for _ in range(5):
        await queue("email:busy@example.com", address="busy@example.com")
    calm = await queue("email:calm@example.com", address="calm@example.com")
    skipped = await queue("email:full@example.com", address="full@example.com")

    claimed = await store.claim_due(10, CURRENT_TIME + LEASE, CURRENT_TIME, 2, {"email:full@example.com"})

    targets = sorted(d.target for d in claimed)
    assert targets == ["email:busy@example.com"] * 2 + ["email:calm@example.com"]
    assert str(calm.id) in {d.id for d in claimed}
    assert str(skipped.id) not in {d.id for d in claimed}


async def test_results_move_the_row_and_keep_each_attempt(store: DatabaseDeliveryStore) -> None:
    await queue("email:a@example.com", address="a@example.com")
    (delivery,) = await store.claim_due(10, CURRENT_TIME + LEASE, CURRENT_TIME, 4, ())
    retry_at = CURRENT_TIME + timedelta(minutes=5)

    await store.mark_retry(delivery, FAILED, retry_at, CURRENT_TIME)

    row = await DeliveryRow.get(id=int(delivery.id))
    assert (row.status, row.attempts, row.claim, row.available_at) == ("queued", 1, None, retry_at)
    assert row.last_error == "HTTP 503"
    assert await claim(store, retry_at - timedelta(seconds=1)) == []
    (again,) = await store.claim_due(10, retry_at + LEASE, retry_at, 4, ())
    assert again.attempts_made == 1
    await store.mark_dead(again, FAILED, retry_at)
    attempts = await DeliveryAttempt.filter(delivery_id=row.id).order_by("id")
    assert [(a.outcome, a.status_code, len(a.response_excerpt or "")) for a in attempts] == [
        ("failed", 503, 2048),
        ("failed", 503, 2048),
    ]
    assert (await DeliveryRow.get(id=row.id)).status == "dead"


async def test_results_finishing_together_each_move_only_their_own_claimed_row(
    store: DatabaseDeliveryStore,
) -> None:
    for name in ("lost", "sent", "retried", "dead"):
        await queue(f"email:{name}@example.com", address=f"{name}@example.com")
    lost, sent, retried, dead = await store.claim_due(10, CURRENT_TIME + LEASE, CURRENT_TIME, 4, ())
    (taken_over,) = await store.claim_due(1, CURRENT_TIME + 2 * LEASE, CURRENT_TIME + LEASE, 4, ())
    assert taken_over.id == lost.id
    retry_at = CURRENT_TIME + timedelta(minutes=5)

    await asyncio.gather(
        store.mark_sent(lost, DELIVERED, CURRENT_TIME),
        store.mark_sent(sent, DELIVERED, CURRENT_TIME),
        store.mark_retry(retried, FAILED, retry_at, CURRENT_TIME),
        store.mark_dead(dead, FAILED, CURRENT_TIME),
    )

    rows = {row.id: row for row in await DeliveryRow.all()}
    moved = [rows[int(d.id)] for d in (lost, sent, retried, dead)]
    assert [(row.status, row.attempts, row.claim) for row in moved] == [
        ("queued", 0, taken_over.claim),
        ("sent", 1, None),
        ("queued", 1, None),
        ("dead", 1, None),
    ]
    assert (moved[1].sent_at, moved[2].available_at, moved[3].last_error) == (
        CURRENT_TIME,
        retry_at,
        "HTTP 503",
    )
    kept = await DeliveryAttempt.all().order_by("delivery_id")
    assert [(a.delivery_id, a.outcome) for a in kept] == [
        (int(sent.id), "delivered"),
        (int(retried.id), "failed"),
        (int(dead.id), "failed"),
    ]


async def test_a_bounce_suppresses_the_address_and_skips_what_is_queued_for_it(
    store: DatabaseDeliveryStore,
) -> None:
    await queue("email:gone@example.com", address="gone@example.com")
    other = await queue("email:gone@example.com", address="gone@example.com")
    (delivery,) = await store.claim_due(10, CURRENT_TIME + LEASE, CURRENT_TIME, 1, ())
    bounced = Attempt(Outcome.BOUNCED, 5.0, 550, "recipient refused: 550 no such user")

    await store.mark_bounced(delivery, bounced, CURRENT_TIME)

    assert (await DeliveryRow.get(id=int(delivery.id))).status == "bounced"
    assert (await DeliveryRow.get(id=other.id)).status == "skipped"
    suppression = await Suppression.get(address="gone@example.com")
    assert "550" in suppression.reason


async def test_the_composer_defers_skips_and_folds_queued_emails(
    store: DatabaseDeliveryStore, composer: PlainComposer
) -> None:
    deferred = await queue("email:a@example.com", address="a@example.com")
    skipped = await queue("email:b@example.com", address="b@example.com")
    sent = await queue("email:c@example.com", address="c@example.com")
    folded = await queue("email:c@example.com", address="c@example.com", at=CURRENT_TIME + timedelta(hours=1))
    until = CURRENT_TIME + timedelta(minutes=2)
    composer.plans[deferred.id] = DeferEmail(until)
    composer.plans[skipped.id] = SkipEmail("the contact turned progress emails off")
    message = OutgoingEmail(
        Mailbox("t@garage.example"), Mailbox("c@example.com"), "Two changes", "t", "h", "<m@garage.example>"
    )
    composer.plans[sent.id] = ComposedEmail(message, folded=(folded.id,))

    claimed = await store.claim_due(10, CURRENT_TIME + LEASE, CURRENT_TIME, 4, ())

    assert [(d.id, d.message) for d in claimed] == [(str(sent.id), message)]
    assert {e.id: e.address for e in composer.seen} == {
        deferred.id: "a@example.com",
        skipped.id: "b@example.com",
        sent.id: "c@example.com",
    }
    rows = {r.id: r for r in await DeliveryRow.all()}
    assert (rows[deferred.id].status, rows[deferred.id].claim, rows[deferred.id].available_at) == (
        "queued",
        None,
        until,
    )
    assert (rows[skipped.id].status, rows[skipped.id].last_error) == (
        "skipped",
        "the contact turned progress emails off",
    )
    assert rows[folded.id].status == "folded"


async def test_a_failing_endpoint_warns_staff_then_is_disabled(
    store: DatabaseDeliveryStore, endpoint: RegisterEndpoint
) -> None:
    hook = await endpoint()
    since = CURRENT_TIME - timedelta(days=3)
    target = f"webhook:{hook.id}"

    await store.update_target(
        target, TargetVerdict(TargetHealth(since, True), TargetAction.WARN), CURRENT_TIME
    )
    warned = await WebhookEndpoint.get(id=hook.id)
    assert (warned.status, warned.failing_since, warned.warned_at) == ("active", since, CURRENT_TIME)
    assert warned.version == hook.version + 1  # what the API shows changed: a change read before is stale

    later = CURRENT_TIME + timedelta(days=2)
    await store.update_target(target, TargetVerdict(TargetHealth(since, True), TargetAction.DISABLE), later)
    disabled = await WebhookEndpoint.get(id=hook.id)
    assert (disabled.status, disabled.version) == ("disabled", hook.version + 2)
    assert disabled.warned_at == CURRENT_TIME
    assert disabled.disabled_reason is not None and "failing since" in disabled.disabled_reason
    told = await DeliveryRow.filter(endpoint_id=hook.id, channel="email").order_by("kind")
    assert [(d.kind, d.address, d.target) for d in told] == [
        ("endpoint_disabled", "desk@garage.example", "email:desk@garage.example"),
        ("endpoint_warning", "desk@garage.example", "email:desk@garage.example"),
    ]

    claimed = await store.claim_due(10, later + LEASE, later, 4, ())
    assert sorted(d.id for d in claimed) == sorted(str(d.id) for d in told)  # though it is disabled

    await store.update_target(target, TargetVerdict(TargetHealth(), TargetAction.NONE), later)
    healed = await WebhookEndpoint.get(id=hook.id)
    assert (healed.failing_since, healed.warned_at) == (None, None)


async def test_an_endpoint_that_answers_gone_is_disabled_at_once(
    store: DatabaseDeliveryStore, endpoint: RegisterEndpoint
) -> None:
    hook = await endpoint()
    verdict = TargetVerdict(TargetHealth(CURRENT_TIME), TargetAction.DISABLE)

    await store.update_target(f"webhook:{hook.id}", verdict, CURRENT_TIME)

    disabled = await WebhookEndpoint.get(id=hook.id)
    assert (disabled.status, disabled.disabled_reason) == ("disabled", "the endpoint answered 410 Gone")


async def test_a_webhook_carries_the_job_as_the_api_shows_it_and_the_change(
    client: httpx.AsyncClient, auth: Keys, store: DatabaseDeliveryStore, endpoint: RegisterEndpoint
) -> None:
    await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)
    hook = await endpoint()
    job = await create_job(client, auth.staff, account["id"])
    advanced = (await act(client, auth.staff, job, "advance")).json()

    (delivery,) = await claim_webhooks(store)

    message = delivery.message
    assert isinstance(message, WebhookMessage)
    assert message.url == hook.url
    assert message.signing_secrets == (hook.secret,)
    body = json.loads(message.body)
    event = await JobEvent.get(job_id=job["id"], type="advance")
    assert body["type"] == "job.stage_changed"
    assert body["data"]["change"] == event.data
    assert body["data"]["job"] == (await client.get(f"/jobs/{job['id']}", headers=auth.staff)).json()
    assert body["data"]["job"]["version"] == advanced["version"]
    assert message.message_id == f"msg_e{event.id}_webhook_w{hook.id}"
    assert delivery.target_health == TargetHealth()

    await store.mark_retry(
        delivery, Attempt(Outcome.FAILED, 3.0, error="refused"), CURRENT_TIME, CURRENT_TIME
    )
    moved_on = await act(client, auth.staff, advanced, "advance")  # the job changes before the retry
    assert moved_on.status_code == 200, moved_on.text
    retried, later = await claim_webhooks(store)
    assert isinstance(retried.message, WebhookMessage) and isinstance(later.message, WebhookMessage)
    assert retried.message.message_id == message.message_id
    assert retried.message.body == message.body  # the same bytes on every attempt: the job as it was
    assert json.loads(later.message.body)["data"]["job"]["version"] == moved_on.json()["version"]


async def test_during_a_rotation_both_secrets_sign(
    client: httpx.AsyncClient, auth: Keys, store: DatabaseDeliveryStore, endpoint: RegisterEndpoint
) -> None:
    await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)
    hook = await endpoint(types=("job.created",))
    old = hook.secret
    await WebhookEndpoint.filter(id=hook.id).update(
        secret="whsec_" + "A" * 40,
        previous_secret=old,
        previous_secret_until=CURRENT_TIME + timedelta(hours=1),
    )
    await create_job(client, auth.staff, account["id"])

    (during,) = await claim_webhooks(store)
    assert isinstance(during.message, WebhookMessage)
    assert during.message.signing_secrets == ("whsec_" + "A" * 40, old)
    await store.release(during, CURRENT_TIME + timedelta(hours=2))
    (after,) = await claim_webhooks(store, CURRENT_TIME + timedelta(hours=2))
    assert isinstance(after.message, WebhookMessage)
    assert after.message.signing_secrets == ("whsec_" + "A" * 40,)


async def test_a_paused_endpoint_keeps_its_deliveries_queued_until_it_resumes(
    store: DatabaseDeliveryStore, endpoint: RegisterEndpoint
) -> None:
    hook = await endpoint(status="paused")
    row = await queue(f"webhook:{hook.id}", kind="test")

    assert await claim(store) == []

    await WebhookEndpoint.filter(id=hook.id).update(status="active")
    assert await claim(store) == [str(row.id)]


async def test_an_endpoint_with_a_rate_hands_it_to_the_dispatcher(
    store: DatabaseDeliveryStore, endpoint: RegisterEndpoint
) -> None:
    limited = await endpoint()
    unlimited = await endpoint("https://other.example.test/in")
    await WebhookEndpoint.filter(id=limited.id).update(rate_per_second=2.5)
    await queue(f"webhook:{limited.id}", kind="test")
    await queue(f"webhook:{unlimited.id}", kind="test")

    rates = {d.target: d.rate for d in await claim_webhooks(store)}

    assert rates == {f"webhook:{limited.id}": Rate(2.5), f"webhook:{unlimited.id}": None}


async def test_every_process_sending_to_an_endpoint_takes_from_one_rate(
    store: DatabaseDeliveryStore, settings: Settings, composer: PlainComposer, endpoint: RegisterEndpoint
) -> None:
    hook = await endpoint()
    await WebhookEndpoint.filter(id=hook.id).update(rate_per_second=2.0)
    for _ in range(3):
        await queue(f"webhook:{hook.id}", kind="test")
    other_process = DatabaseDeliveryStore(composer, build_services(settings).snapshots, staff_addresses=())
    first, second = (
        await store.claim_due(1, CURRENT_TIME + LEASE, CURRENT_TIME, 1, ()),
        await other_process.claim_due(2, CURRENT_TIME + LEASE, CURRENT_TIME, 2, ()),
    )
    rate = Rate(2.0)

    reservations = [
        await claimed.reserve_rate(delivery, rate, CURRENT_TIME, max_wait=0.8)
        for claimed, delivery in [(store, first[0]), (other_process, second[0]), (other_process, second[1])]
    ]
    later = await store.reserve_rate(first[0], rate, CURRENT_TIME + timedelta(seconds=2), max_wait=0.8)

    assert [(r.granted, r.wait) for r in reservations] == [
        (True, 0.0),
        (True, 0.5),  # the second process lines up behind the first's send
        (False, pytest.approx(1.0)),  # refused: more than it may wait
    ]
    assert (later.granted, later.wait) == (True, 0.0)  # the bucket refilled meanwhile


@pytest.mark.postgres_only
async def test_concurrent_claimers_on_postgres_never_share_a_delivery(
    store: DatabaseDeliveryStore, db: str
) -> None:
    if db.startswith("sqlite"):
        pytest.skip("row locks: PostgreSQL only")
    rows = [await queue(f"email:n{n}@example.com", address=f"n{n}@example.com") for n in range(200)]

    batches = await asyncio.gather(*(claim(store, limit=30) for _ in range(10)))

    claimed = [delivery_id for batch in batches for delivery_id in batch]
    assert len(claimed) == len(set(claimed))
    assert set(claimed) <= {str(r.id) for r in rows}
    rest = await claim(store, limit=500)
    assert sorted(claimed + rest, key=int) == [str(r.id) for r in rows]


async def test_a_webhook_about_a_job_deleted_since_is_dead_not_sent(
    client: httpx.AsyncClient, auth: Keys, store: DatabaseDeliveryStore, endpoint: RegisterEndpoint
) -> None:
    await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)
    await endpoint(types=("job.created",))
    job = await create_job(client, auth.staff, account["id"])
    await Job.filter(id=job["id"]).delete()  # its events go with it

    assert await claim_webhooks(store) == []

    row = await DeliveryRow.get(channel="webhook")
    assert (row.status, row.claim, row.last_error) == ("dead", None, "the job was deleted")
