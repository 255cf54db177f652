"""The outbox fan-out: every recorded event queues one delivery per recipient and channel, in its
transaction, resolved in SQL."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from tortoise.transactions import in_transaction

from tests.conftest import CURRENT_TIME, FakeClock, Keys
from tests.factories import act, create_account, create_fleet_account, create_job, create_workflow
from tests.outbox.conftest import RegisterEndpoint
from tracker.db.models import Contact, Delivery, Job, JobEvent
from tracker.domain.events import EventType, NewEvent, RiskPayload
from tracker.services.estimates import EstimateService
from tracker.services.events import Listeners, queue_deliveries, record_events
from tracker.services.signals import DeliveriesQueued


async def deliveries(kind: str | None = None) -> list[tuple[str, str, int | None, int | None, str | None]]:
    rows = Delivery.all().order_by("dedupe_key")
    if kind is not None:
        rows = rows.filter(kind=kind)
    return [(d.channel, d.target, d.contact_id, d.endpoint_id, d.address) for d in await rows]


@pytest.fixture
async def fleet(client: httpx.AsyncClient, auth: Keys) -> dict[str, Any]:
    await create_workflow(client, auth.admin)
    account = await create_fleet_account(client, auth.staff)
    job = await create_job(client, auth.staff, account["id"])
    contacts = {c.name: c for c in await Contact.filter(account_id=account["id"])}
    return {"account": account, "job": job, "contacts": contacts}


async def add_note(client: httpx.AsyncClient, auth: Keys, job_id: int, visibility: str) -> None:
    version = (await Job.get(id=job_id)).version
    note = {"body": f"{visibility} words", "visibility": visibility, "version": version}
    response = await client.post(f"/jobs/{job_id}/notes", json=note, headers=auth.staff)
    assert response.status_code == 201, response.text


def risk_event(job: Job) -> NewEvent:
    payload: RiskPayload = {
        "type": "at_risk",
        "old": "2026-03-06T17:00:00+00:00",
        "new": "2026-03-09T12:00:00+00:00",
        "late_by_working_s": 3600.0,
    }
    return NewEvent(job.id, job.version, EventType.AT_RISK, payload, "tracker:estimator", CURRENT_TIME)


async def test_an_advance_queues_an_email_per_contact_and_a_webhook_per_subscribed_endpoint(
    client: httpx.AsyncClient, auth: Keys, fleet: dict[str, Any], endpoint: RegisterEndpoint
) -> None:
    account_id = fleet["account"]["id"]
    everyone = await endpoint()
    theirs = await endpoint(account_id=account_id)
    await endpoint(account_id=account_id + 1000)  # another account's jobs only
    paused = await endpoint(status="paused")  # held, not dropped: sent once it resumes
    await endpoint(status="disabled")
    await endpoint(types=("job.completed",))
    ann, bob = fleet["contacts"]["Ann"], fleet["contacts"]["Bob"]

    response = await act(client, auth.staff, fleet["job"], "advance")

    assert response.status_code == 200, response.text
    assert await deliveries("advance") == [
        ("email", "email:ann@fleet.example", ann.id, None, None),
        ("email", "email:bob@fleet.example", bob.id, None, None),
        ("webhook", f"webhook:{everyone.id}", None, everyone.id, None),
        ("webhook", f"webhook:{theirs.id}", None, theirs.id, None),
        ("webhook", f"webhook:{paused.id}", None, paused.id, None),
    ]
    event = await JobEvent.get(job_id=fleet["job"]["id"], type="advance")
    keys = {d.dedupe_key for d in await Delivery.filter(event_id=event.id)}
    assert keys == {
        f"e{event.id}:email:c{ann.id}",
        f"e{event.id}:email:c{bob.id}",
        f"e{event.id}:webhook:w{everyone.id}",
        f"e{event.id}:webhook:w{theirs.id}",
        f"e{event.id}:webhook:w{paused.id}",
    }
    assert {d.status for d in await Delivery.all()} == {"queued"}


async def test_each_contact_is_emailed_only_about_the_categories_they_take_one_by_one(
    client: httpx.AsyncClient, auth: Keys, fleet: dict[str, Any]
) -> None:
    ann, bob = fleet["contacts"]["Ann"], fleet["contacts"]["Bob"]
    await Contact.filter(id=ann.id).update(progress_emails="digest")
    await Contact.filter(id=bob.id).update(progress_emails="off", note_emails="each")

    await act(client, auth.staff, fleet["job"], "advance")
    job_id = fleet["job"]["id"]
    for visibility in ("public", "internal"):
        await add_note(client, auth, job_id, visibility)

    assert await deliveries("advance") == []
    assert await deliveries("note_added") == [
        ("email", "email:ann@fleet.example", ann.id, None, None),
        ("email", "email:bob@fleet.example", bob.id, None, None),
    ]
    notes = await JobEvent.filter(job_id=job_id, type="note_added")
    public = [n.id for n in notes if n.data["visibility"] == "public"]
    assert [d.event_id for d in await Delivery.filter(kind="note_added")] == public * 2


async def test_internal_notes_reach_no_webhook_and_public_notes_do(
    client: httpx.AsyncClient, auth: Keys, fleet: dict[str, Any], endpoint: RegisterEndpoint
) -> None:
    hook = await endpoint(types=("job.note_added",))
    job_id = fleet["job"]["id"]
    for visibility in ("internal", "public"):
        await add_note(client, auth, job_id, visibility)

    webhooks = await Delivery.filter(channel="webhook")
    assert [(d.kind, d.endpoint_id) for d in webhooks] == [("note_added", hook.id)]
    event = await JobEvent.get(id=webhooks[0].event_id)
    assert event.data["visibility"] == "public"


async def test_staff_addresses_hear_about_a_job_at_risk(fleet: dict[str, Any]) -> None:
    job = await Job.get(id=fleet["job"]["id"])
    staff = Listeners(staff_addresses=("Desk@Garage.example", "boss@garage.example"))
    async with in_transaction():
        await record_events([risk_event(job)], staff)

    rows = await Delivery.filter(address__not_isnull=True).order_by("address")
    assert [(d.kind, d.channel, d.address, d.target, d.contact_id) for d in rows] == [
        ("staff_alert", "email", "boss@garage.example", "email:boss@garage.example", None),
        ("staff_alert", "email", "desk@garage.example", "email:desk@garage.example", None),
    ]
    assert all(d.event_id == rows[0].event_id is not None for d in rows)
    assert len(await deliveries("at_risk")) == 2  # both contacts, who take alerts


async def test_staff_hear_nothing_of_ordinary_progress(
    client: httpx.AsyncClient, auth: Keys, fleet: dict[str, Any]
) -> None:
    job = await Job.get(id=fleet["job"]["id"])
    event = NewEvent(
        job.id, job.version, EventType.NOTE_ADDED, {"visibility": "public", "body": "x"}, "s", CURRENT_TIME
    )
    await record_events([event], Listeners(staff_addresses=("desk@garage.example",)))

    assert await Delivery.filter(address__not_isnull=True).count() == 0


async def test_fanning_out_the_same_events_twice_queues_nothing_new(
    fleet: dict[str, Any], endpoint: RegisterEndpoint
) -> None:
    await endpoint(types=("job.at_risk",))
    job = await Job.get(id=fleet["job"]["id"])
    staff = Listeners(staff_addresses=("desk@garage.example",))
    await record_events([risk_event(job)], staff)
    before = await deliveries()
    batch = (await JobEvent.get(job_id=job.id, type="at_risk")).batch
    assert batch is not None

    await queue_deliveries(batch, staff)

    assert await deliveries() == before
    assert len([d for d in before if d[0] == "webhook"]) == 1


async def test_a_rolled_back_change_queues_nothing(fleet: dict[str, Any], endpoint: RegisterEndpoint) -> None:
    await endpoint(types=("job.at_risk",))
    job = await Job.get(id=fleet["job"]["id"])
    before = await Delivery.all().count()

    with pytest.raises(RuntimeError):
        async with in_transaction():
            await record_events([risk_event(job)], Listeners(staff_addresses=("desk@garage.example",)))
            assert await Delivery.all().count() == before + 4
            raise RuntimeError("the change failed after its events were recorded")

    assert await Delivery.all().count() == before
    assert not await JobEvent.filter(type="at_risk").exists()


async def test_history_written_after_the_fact_is_told_to_nobody(fleet: dict[str, Any]) -> None:
    job = await Job.get(id=fleet["job"]["id"])
    before = await Delivery.all().count()

    await record_events([risk_event(job)], Listeners(staff_addresses=("a@b.example",), notify=False))

    assert await Delivery.all().count() == before


async def test_the_events_of_hundreds_of_jobs_fan_out_in_a_constant_number_of_statements(
    client: httpx.AsyncClient,
    auth: Keys,
    endpoint: RegisterEndpoint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)
    template = await Job.get(id=(await create_job(client, auth.staff, account["id"]))["id"])
    clones = []
    for n in range(300):
        clone = Job(**{f: getattr(template, f) for f in Job._meta.db_fields if f != "id"})
        clone.reference, clone.public_token = f"BULK-{n}", f"bulk-token-{n}"
        clones.append(clone)
    await Job.bulk_create(clones)
    jobs = await Job.filter(reference__startswith="BULK-")
    await endpoint(types=("job.at_risk",))
    staff = Listeners(staff_addresses=("desk@garage.example",))

    with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
        async with in_transaction():
            await record_events([risk_event(job) for job in jobs], staff)

    inserts = [r for r in caplog.records if "INSERT INTO delivery" in r.getMessage()]
    assert len(inserts) == 3  # email, webhook, staff
    assert await Delivery.filter(kind="at_risk").count() == 300 * 2  # contact, endpoint
    assert await Delivery.filter(kind="staff_alert").count() == 300


async def test_the_scheduled_recompute_fans_out_each_batch_in_constant_statements_and_wakes_after_each_commit(
    client: httpx.AsyncClient,
    auth: Keys,
    clock: FakeClock,
    endpoint: RegisterEndpoint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)
    jobs = [await create_job(client, auth.staff, account["id"]) for _ in range(24)]
    await Job.filter(id__in=[j["id"] for j in jobs]).update(promised_on=clock.now.date())  # now late
    await endpoint(types=("job.at_risk",))
    woken: list[int] = []
    queued = DeliveriesQueued()
    queued.subscribe(lambda: woken.append(len(woken)))
    estimates = EstimateService(
        listeners=Listeners(staff_addresses=("desk@garage.example",)), deliveries_queued=queued
    )
    clock.advance(minutes=10)

    with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
        done = await estimates.recompute_tick(now=clock.now, tick_start=clock.now, batch_size=10)

    assert done == 24
    assert len(woken) >= 3  # one hint per committed batch (PostgreSQL runs two sweeps side by side)
    inserts = [r for r in caplog.records if "INSERT INTO delivery" in r.getMessage()]
    assert len(inserts) == 3 * len(woken)  # email, webhook and staff statements per batch
    assert await Delivery.filter(kind="at_risk", channel="webhook").count() == 24
    assert await Delivery.filter(kind="at_risk", channel="email").count() == 24  # the account's contact
    assert await Delivery.filter(kind="staff_alert").count() == 24
