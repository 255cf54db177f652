"""Daily digests, staff alerts and summaries, and endpoint owners' notices, composed from the database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.api.test_email_composer import queued
from tests.conftest import FakeClock, Keys
from tests.factories import create_account, create_job, create_workflow
from tests.outbox.conftest import register_endpoint
from tests.outbox.test_fanout import risk_event
from tracker.db.models import Contact, Delivery, Job
from tracker.services.bootstrap import build_services
from tracker.services.daily_emails import queue_daily_emails
from tracker.services.email_composer import DatabaseEmailComposer
from tracker.services.events import Listeners, record_events
from tracker.services.outbox import ComposedEmail, QueuedEmail, SkipEmail
from tracker.settings import Settings

STAFF = "desk@garage.example"


@pytest.fixture
def staff_settings(settings: Settings) -> Settings:
    return Settings(
        database_url=settings.database_url,
        public_base_url=settings.public_base_url,
        staff_alert_emails=f"{STAFF.upper()}",
    )


@pytest.fixture
def composer(staff_settings: Settings) -> DatabaseEmailComposer:
    return DatabaseEmailComposer(staff_settings, build_services(staff_settings).snapshots)


async def test_a_contact_on_the_digest_gets_one_email_a_day_listing_the_open_jobs(
    client: httpx.AsyncClient,
    auth: Keys,
    clock: FakeClock,
    staff_settings: Settings,
    composer: DatabaseEmailComposer,
) -> None:
    await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)  # Marie, fr_FR, Europe/Paris
    contact = await Contact.get(account_id=account["id"])
    body = {"progress": "digest", "estimates": "digest", "alerts": "each", "notes": "each"}
    response = await client.put(f"/contacts/{contact.id}/preferences", json=body, headers=auth.staff)
    assert response.status_code == 200
    await create_job(client, auth.staff, account["id"], title="Renault Clio")
    await create_job(client, auth.staff, account["id"], title="Peugeot 208")
    assert await queued("created") == []  # progress goes to the digest, not one email each

    early = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # 07:00 in Paris: before the quiet hours end
    assert await queue_daily_emails(staff_settings, early) == 0
    nine = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    await queue_daily_emails(staff_settings, nine)
    await queue_daily_emails(staff_settings, nine + timedelta(minutes=5))  # another tick, or process
    (digest,) = await queued("digest")

    plan = await composer.compose(digest, nine)
    assert isinstance(plan, ComposedEmail)
    message = plan.message
    assert message.subject.startswith("Vos dossiers aujourd’hui")  # noqa: RUF001
    assert message.recipient.address == "marie@example.com"
    assert "Renault Clio" in message.text
    assert "Peugeot 208" in message.text
    assert "Nous avons ouvert le dossier." in message.text  # what changed since the last digest
    assert message.unsubscribe_url is not None


async def test_a_contact_who_left_the_digest_gets_none(
    client: httpx.AsyncClient, auth: Keys, composer: DatabaseEmailComposer, clock: FakeClock
) -> None:
    account = await create_account(client, auth.staff)
    contact = await Contact.get(account_id=account["id"])
    row = await Delivery.create(
        dedupe_key=f"digest:c{contact.id}:2026-03-02",
        channel="email",
        kind="digest",
        target="email:marie@example.com",
        contact_id=contact.id,
        available_at=clock.now,
        created_at=clock.now,
    )
    email = QueuedEmail(row.id, "digest", None, None, contact.id, None, 0, clock.now)
    assert await composer.compose(email, clock.now) == SkipEmail("contact takes no digest any more")


async def staff_alert_of_a_job_at_risk(client: httpx.AsyncClient, auth: Keys) -> tuple[Job, QueuedEmail]:
    """A Renault Clio job at risk, and the staff alert queued about it."""
    await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)
    created = await create_job(client, auth.staff, account["id"], title="Renault Clio")
    job = await Job.get(id=created["id"])
    await record_events([risk_event(job)], Listeners(staff_addresses=(STAFF,)))
    (alert,) = await queued("staff_alert")
    return job, alert


async def test_staff_hear_at_once_of_a_job_at_risk_in_the_jobs_thread(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock, composer: DatabaseEmailComposer
) -> None:
    job, alert = await staff_alert_of_a_job_at_risk(client, auth)
    plan = await composer.compose(alert, clock.now)
    assert isinstance(plan, ComposedEmail)
    assert plan.message.recipient.address == STAFF
    assert plan.message.subject == f"At risk: {job.reference} Renault Clio"
    assert "It may not be ready by the promised day." in plan.message.text
    assert plan.message.thread_id == f"<job-{job.id}@tracker.localhost>"
    dashboard = f"https://status.example.test/dashboard/jobs/{job.id}"
    assert dashboard in plan.message.text
    assert f'href="{dashboard}"' in plan.message.html
    assert job.public_token not in plan.message.text + plan.message.html  # not the customer's page


async def test_the_morning_summary_lists_recent_delivery_failures(
    client: httpx.AsyncClient,
    auth: Keys,
    clock: FakeClock,
    staff_settings: Settings,
    composer: DatabaseEmailComposer,
) -> None:
    await Delivery.create(
        dedupe_key="e1:webhook:w1",
        channel="webhook",
        kind="advance",
        target="webhook:1",
        status="dead",
        last_error="connection refused",
        available_at=clock.now,
        created_at=clock.now - timedelta(hours=3),
    )
    await queue_daily_emails(staff_settings, clock.now)  # 09:00 UTC
    (summary,) = await queued("staff_summary")
    assert summary.address == STAFF
    plan = await composer.compose(summary, clock.now)
    assert isinstance(plan, ComposedEmail)
    assert plan.message.subject.startswith("Jobs needing attention")
    assert "Failed deliveries in the last day (1)" in plan.message.text
    assert "webhook:1: connection refused" in plan.message.text
    assert "At risk of missing the promised day (0)" in plan.message.text


async def test_the_morning_summary_links_each_job_to_its_dashboard_page(
    client: httpx.AsyncClient,
    auth: Keys,
    clock: FakeClock,
    staff_settings: Settings,
    composer: DatabaseEmailComposer,
) -> None:
    await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)
    job = await create_job(client, auth.staff, account["id"], title="Renault Clio", promised_on="2026-03-02")
    await queue_daily_emails(staff_settings, clock.now)
    (summary,) = await queued("staff_summary")

    plan = await composer.compose(summary, clock.now)

    assert isinstance(plan, ComposedEmail)
    assert "At risk of missing the promised day (1)" in plan.message.text
    assert f"https://status.example.test/dashboard/jobs/{job['id']}" in plan.message.text
    assert "/status/" not in plan.message.text  # the customer's link stays the customer's


async def test_the_morning_summary_comes_in_the_staffs_morning(staff_settings: Settings) -> None:
    paris = dataclasses.replace(staff_settings, staff_time_zone="Europe/Paris")
    eight_in_paris = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # quiet hours end at 08:00 by default

    assert await queue_daily_emails(paris, eight_in_paris - timedelta(minutes=1)) == 0
    assert await queued("staff_summary") == []
    await queue_daily_emails(paris, eight_in_paris)
    (summary,) = await queued("staff_summary")
    assert summary.address == STAFF


async def test_staff_emails_speak_the_staffs_language_and_time_zone(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock, staff_settings: Settings
) -> None:
    paris = dataclasses.replace(staff_settings, staff_language="fr", staff_time_zone="Europe/Paris")
    composer = DatabaseEmailComposer(paris, build_services(paris).snapshots)
    job, alert = await staff_alert_of_a_job_at_risk(client, auth)
    alert_plan = await composer.compose(alert, clock.now)
    assert isinstance(alert_plan, ComposedEmail)
    assert alert_plan.message.subject == f"À risque : {job.reference} Renault Clio"

    late_sunday = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # already Monday 2 March in Paris
    await queue_daily_emails(paris, late_sunday + timedelta(hours=8))
    (summary,) = await queued("staff_summary")
    summary_plan = await composer.compose(summary, late_sunday)
    assert isinstance(summary_plan, ComposedEmail)
    assert summary_plan.message.subject == "Dossiers à surveiller, lun. 2 mars"


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("endpoint_warning", "Every delivery to this endpoint has failed since"),
        ("endpoint_disabled", "We stopped sending to this endpoint: failing for 5 days."),
    ],
)
async def test_an_endpoint_owner_hears_of_a_failing_endpoint(
    db: str, composer: DatabaseEmailComposer, clock: FakeClock, kind: str, says: str
) -> None:
    endpoint = await register_endpoint("https://hooks.example.test/<in>")
    endpoint.failing_since = clock.now - timedelta(days=3)
    endpoint.disabled_reason = "failing for 5 days"
    await endpoint.save()
    row = await Delivery.create(
        dedupe_key=f"{kind}:w{endpoint.id}",
        channel="email",
        kind=kind,
        target="email:owner@integrator.example",
        endpoint_id=endpoint.id,
        address="owner@integrator.example",
        available_at=clock.now,
        created_at=clock.now,
    )
    email = QueuedEmail(row.id, kind, None, None, None, "owner@integrator.example", 0, clock.now)
    plan = await composer.compose(email, clock.now)
    assert isinstance(plan, ComposedEmail)
    assert says in plan.message.text
    assert "https://hooks.example.test/<in>" in plan.message.subject
    assert "&lt;in&gt;" in plan.message.html
