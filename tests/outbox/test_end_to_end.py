"""End to end: a stage advance through the API reaches an integrator's receiver on loopback, signed, once
committed; the dispatcher runs as the app runs it, woken by the commit."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import httpx
import pytest

from notifications import DispatcherSettings
from tests.conftest import Keys
from tests.factories import act, create_account, create_job, create_workflow
from tests.notifications.receiver import Received, Receiver
from tests.notifications.test_signing import verify_with_both
from tests.outbox.conftest import register_endpoint
from tracker.app import create_app
from tracker.clock import utc_now
from tracker.db.models import Delivery, DeliveryAttempt, WebhookEndpoint
from tracker.dispatcher import HoldEmails, dispatching, telling_other_processes
from tracker.services.bootstrap import build_services
from tracker.services.email_composer import DatabaseEmailComposer
from tracker.settings import Settings

SIGNAL_ONLY = DispatcherSettings(sweep_interval=60.0)  # arrivals within seconds prove the wake-up


@dataclass
class Integration:
    client: httpx.AsyncClient
    receiver: Receiver


def loopback_settings(database_url: str) -> Settings:
    """Settings whose webhooks may go to the test's receiver on loopback."""
    return Settings(
        database_url=database_url,
        public_base_url="https://status.example.test",
        webhook_allow_http=True,
        webhook_allowed_networks="127.0.0.0/8",
    )


@pytest.fixture
async def integration(db: str) -> AsyncIterator[Integration]:
    receiver = Receiver()
    await receiver.start()
    settings = loopback_settings(db)
    app = create_app(settings, clock=utc_now)  # real time: receivers refuse stale signatures
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://tracker.test") as client,
        dispatching(
            settings,
            app.state.services,
            utc_now,
            DatabaseEmailComposer(settings, app.state.services.snapshots),
            dispatcher_settings=SIGNAL_ONLY,
        ),
    ):
        yield Integration(client, receiver)
    await receiver.stop()


async def arrivals(receiver: Receiver, kind: str, count: int = 1) -> list[Received]:
    async def enough() -> list[Received]:
        while True:
            found = [r for r in receiver.requests if json.loads(r.body)["type"] == kind]
            if len(found) >= count:
                return found
            receiver.arrived.clear()
            await receiver.arrived.wait()

    async with asyncio.timeout(10):
        return await enough()


async def test_an_advance_arrives_signed_at_the_integrators_receiver(
    integration: Integration, auth: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client, receiver = integration.client, integration.receiver
    await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)
    hook = await register_endpoint(receiver.url(), types=("job.created", "job.stage_changed"))
    job = await create_job(client, auth.staff, account["id"])

    advanced = (await act(client, auth.staff, job, "advance")).json()

    (request,) = await arrivals(receiver, "job.stage_changed")
    verify_with_both(hook.secret, request.body, request.headers)
    body: dict[str, Any] = json.loads(request.body)
    assert body["data"]["job"]["stage"]["key"] == advanced["stage"]["key"]
    assert body["data"]["change"]["to"]["stage"] == advanced["stage"]["key"]
    assert request.headers["webhook-id"].startswith("msg_e")
    await arrivals(receiver, "job.created")
    row = await Delivery.get(kind="advance", channel="webhook")
    await _until(lambda: Delivery.filter(id=row.id, status="sent").exists())
    attempt = await DeliveryAttempt.get(delivery_id=row.id)
    assert (attempt.outcome, attempt.status_code, attempt.endpoint_id) == ("delivered", 200, hook.id)
    metrics = (await client.get("/metrics")).text
    assert 'tracker_deliveries_total{channel="webhook",result="sent"}' in metrics
    assert 'tracker_event_to_delivery_seconds_count{channel="webhook"}' in metrics
    assert hook.secret not in metrics
    ours = [r for r in caplog.records if r.name.startswith(("tracker", "notifications"))]
    logged = "\n".join(record.getMessage() for record in ours)
    assert "delivery" in logged  # the dispatcher tells what it did...
    assert hook.secret not in logged and request.headers["webhook-signature"] not in logged
    assert request.body.decode() not in logged  # ...but never what it sent


async def test_during_a_rotation_the_old_and_the_new_secret_both_verify(
    integration: Integration, auth: Keys
) -> None:
    client, receiver = integration.client, integration.receiver
    await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)
    hook = await register_endpoint(receiver.url(), types=("job.created",))
    new_secret = "whsec_" + "B" * 40
    await WebhookEndpoint.filter(id=hook.id).update(
        secret=new_secret, previous_secret=hook.secret, previous_secret_until=utc_now() + timedelta(hours=1)
    )

    await create_job(client, auth.staff, account["id"])

    (request,) = await arrivals(receiver, "job.created")
    verify_with_both(new_secret, request.body, request.headers)
    verify_with_both(hook.secret, request.body, request.headers)


async def test_a_refused_change_sends_nothing(integration: Integration, auth: Keys) -> None:
    client, receiver = integration.client, integration.receiver
    await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)
    await register_endpoint(receiver.url(), types=("job.stage_changed", "job.created"))
    job = await create_job(client, auth.staff, account["id"])
    await arrivals(receiver, "job.created")

    stale = await act(client, auth.staff, {**job, "version": job["version"] + 7}, "advance")

    assert stale.status_code == 409
    await asyncio.sleep(0.3)
    assert [json.loads(r.body)["type"] for r in receiver.requests] == ["job.created"]


async def _until(check: Any) -> None:
    """Poll the database (which has no event to wait on) for up to 5 s."""
    for _ in range(250):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the database never showed the expected state")


@pytest.mark.postgres_only
async def test_a_commit_in_a_web_process_wakes_the_dispatcher_of_another_process(db: str, auth: Keys) -> None:
    if db.startswith("sqlite"):
        pytest.skip("LISTEN/NOTIFY: PostgreSQL only")
    receiver = Receiver()
    await receiver.start()
    settings = loopback_settings(db)
    web = create_app(replace(settings, dispatcher_enabled=False), clock=utc_now)
    sender_only = build_services(settings)  # the other process: its own signal never fires here
    try:
        transport = httpx.ASGITransport(app=web)  # type: ignore[arg-type]
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://tracker.test") as client,
            telling_other_processes(db, web.state.services.deliveries_queued),
            dispatching(settings, sender_only, utc_now, HoldEmails(), dispatcher_settings=SIGNAL_ONLY),
        ):
            await create_workflow(client, auth.admin)
            account = await create_account(client, auth.staff)
            hook = await register_endpoint(receiver.url(), types=("job.created",))
            await create_job(client, auth.staff, account["id"])

            (request,) = await arrivals(receiver, "job.created")  # long before the 60 s sweep
    finally:
        await receiver.stop()
    verify_with_both(hook.secret, request.body, request.headers)
