"""End to end: an advance through the API reaches a real SMTP server through the app's dispatcher, an
address the server refuses for good is suppressed, and a customer's question reaches every staff address."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage

import httpx
import pytest

from notifications import DispatcherSettings
from tests.api.test_status_pages import form_token, token_of
from tests.conftest import Keys
from tests.factories import act, create_account, create_job, create_workflow
from tests.notifications.smtp_server import SmtpServer
from tracker.app import create_app
from tracker.clock import utc_now
from tracker.db.models import Delivery, Question, Suppression
from tracker.dispatcher import dispatching
from tracker.services.email_composer import DatabaseEmailComposer
from tracker.settings import Settings

FAST = DispatcherSettings(sweep_interval=0.2)


@dataclass
class Shop:
    client: httpx.AsyncClient
    smtp: SmtpServer


@pytest.fixture
async def shop(db: str, auth: Keys) -> AsyncIterator[Shop]:
    smtp = SmtpServer()
    await smtp.start()
    settings = Settings(
        database_url=db,
        public_base_url="https://status.example.test",
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_security="none",
        mail_from="Garage Dupont <garage@dupont.example>",
        staff_alert_emails="desk@dupont.example, Boss@Dupont.example",
        email_fold_s=0,
        quiet_hours="",  # real time: the test must not depend on the hour it runs
    )
    app = create_app(settings, clock=utc_now)
    services = app.state.services
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://tracker.test") as client,
        dispatching(
            settings,
            services,
            utc_now,
            DatabaseEmailComposer(settings, services.snapshots),
            dispatcher_settings=FAST,
        ),
    ):
        yield Shop(client, smtp)
    await smtp.stop()


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(10):
        while not await check():  # noqa: ASYNC110 - the database has no event to wait on
            await asyncio.sleep(0.05)


async def test_an_advance_arrives_by_email_through_the_dispatcher(shop: Shop, auth: Keys) -> None:
    await create_workflow(shop.client, auth.admin)
    contact = {"name": "Ann", "email": "ann@example.com", "locale": "en_GB", "time_zone": "Europe/London"}
    account = await create_account(shop.client, auth.staff, contacts=[contact])
    job = await create_job(shop.client, auth.staff, account["id"], title="Renault Clio")
    response = await act(shop.client, auth.staff, job, "advance")
    assert response.status_code == 200, response.text

    async def two_arrived() -> bool:
        return len(shop.smtp.inbox.messages) >= 2

    await eventually(two_arrived)
    subjects = sorted(str(message["Subject"]) for message in shop.smtp.inbox.messages)
    assert "Your Renault Clio: now at Repair" in subjects
    assert {str(m["From"]) for m in shop.smtp.inbox.messages} == {"Garage Dupont <garage@dupont.example>"}
    assert {str(m["In-Reply-To"]) for m in shop.smtp.inbox.messages} == {f"<job-{job['id']}@dupont.example>"}

    async def both_recorded_as_sent() -> bool:  # the server answers before the store records it
        return await Delivery.filter(channel="email", status="sent").count() == 2

    await eventually(both_recorded_as_sent)


async def test_a_refused_recipient_bounces_and_is_suppressed(shop: Shop, auth: Keys) -> None:
    shop.smtp.inbox.refuse_rcpt["gone@example.com"] = "550 5.1.1 No such user"
    await create_workflow(shop.client, auth.admin)
    contact = {"name": "Gone", "email": "gone@example.com", "locale": "en", "time_zone": "UTC"}
    account = await create_account(shop.client, auth.staff, contacts=[contact])
    await create_job(shop.client, auth.staff, account["id"])

    async def bounced() -> bool:
        return await Delivery.filter(channel="email", status="bounced").exists()

    await eventually(bounced)
    suppression = await Suppression.get(address="gone@example.com")
    assert "550" in suppression.reason
    listed = await shop.client.get("/suppressions", headers=auth.staff)
    assert [item["address"] for item in listed.json()["items"]] == ["gone@example.com"]
    assert shop.smtp.inbox.messages == []


async def test_a_customers_question_alerts_every_staff_address_once(shop: Shop, auth: Keys) -> None:
    await create_workflow(shop.client, auth.admin)
    account = await create_account(shop.client, auth.staff, name="Fleet & Co")
    job = await create_job(shop.client, auth.staff, account["id"], title="Renault Clio")
    token = token_of(job)
    page = (await shop.client.get(f"/status/{token}")).text
    question = 'Saturday?\n<script>alert("x")</script>'

    asked = await shop.client.post(
        f"/status/{token}/question",
        data={"form_token": form_token(page, f"/status/{token}/question"), "question": question},
    )
    assert asked.status_code == 303, asked.text

    def staff_messages() -> dict[str, EmailMessage]:
        return {
            str(m["To"]): m
            for m in shop.smtp.inbox.messages
            if str(m["Subject"]).startswith("Customer question:")
        }

    async def both_arrived() -> bool:
        return len(staff_messages()) == 2

    await eventually(both_arrived)
    asked_about = await Question.get(job_id=job["id"])
    deliveries = await Delivery.filter(kind="question").order_by("address")
    assert [(d.address, d.question_id, d.job_id) for d in deliveries] == [
        ("boss@dupont.example", asked_about.id, job["id"]),
        ("desk@dupont.example", asked_about.id, job["id"]),
    ]
    message = staff_messages()["desk@dupont.example"]
    assert str(message["Subject"]) == f"Customer question: {job['reference']} Renault Clio"
    assert str(message["In-Reply-To"]) == f"<job-{job['id']}@dupont.example>"
    text, html = (
        part.get_content().replace("\r\n", "\n") for part in message.walk() if not part.is_multipart()
    )
    dashboard_link = f"https://status.example.test/dashboard/jobs/{job['id']}#question-{asked_about.id}"
    assert question in text and "Fleet & Co" in text and dashboard_link in text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html and "<script>" not in html
    assert f'href="{dashboard_link}"' in html


async def test_a_refused_question_alerts_nobody(shop: Shop, auth: Keys) -> None:
    await create_workflow(shop.client, auth.admin)
    account = await create_account(shop.client, auth.staff)
    job = await create_job(shop.client, auth.staff, account["id"])
    token = token_of(job)
    page = (await shop.client.get(f"/status/{token}")).text

    too_long = await shop.client.post(
        f"/status/{token}/question",
        data={"form_token": form_token(page, f"/status/{token}/question"), "question": "x" * 2001},
    )

    assert too_long.status_code == 422
    assert not await Delivery.filter(kind="question").exists()
