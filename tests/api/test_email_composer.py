"""Customer and staff emails composed from the outbox rows a real change queued, sent to a real aiosmtpd."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from markupsafe import escape

from notifications import OutgoingEmail, SmtpSecurity, SmtpSender, SmtpSettings
from tests.conftest import FakeClock, Keys
from tests.factories import act, create_account, create_job, create_workflow
from tests.notifications.conftest import smtp_server
from tests.notifications.smtp_server import SmtpServer
from tracker.db.models import Contact, Delivery, Job, Suppression
from tracker.domain.events import EventType, NewEvent, RiskPayload
from tracker.services.bootstrap import build_services
from tracker.services.email_composer import DatabaseEmailComposer
from tracker.services.events import Listeners, record_events
from tracker.services.outbox import ComposedEmail, DeferEmail, QueuedEmail, SkipEmail
from tracker.settings import Settings

FOLD = timedelta(seconds=120)
__all__ = ["smtp_server"]  # the engine tests' real SMTP server, shared


@pytest.fixture
def composer(settings: Settings) -> DatabaseEmailComposer:
    return DatabaseEmailComposer(settings, build_services(settings).snapshots)


async def queued(kind: str | None = None) -> list[QueuedEmail]:
    rows = Delivery.filter(channel="email", status="queued").order_by("id")
    if kind is not None:
        rows = rows.filter(kind=kind)
    return [
        QueuedEmail(d.id, d.kind, d.event_id, d.job_id, d.contact_id, d.address, d.attempts, d.created_at)
        for d in await rows
    ]


async def deliver(message: OutgoingEmail, server: SmtpServer, clock: FakeClock) -> EmailMessage:
    settings = SmtpSettings("127.0.0.1", server.port, SmtpSecurity.NONE, local_hostname="tracker.test")
    async with SmtpSender(settings, clock) as sender:
        attempt = await sender.send(message)
    assert attempt.outcome == "delivered", attempt
    return server.inbox.messages[-1]


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


async def open_job(
    client: httpx.AsyncClient,
    auth: Keys,
    *,
    locale: str = "fr_FR",
    name: str = "Marie Dubois",
    **job_fields: Any,
) -> dict[str, Any]:
    await create_workflow(client, auth.admin)
    contact = {"name": name, "email": "marie@example.com", "locale": locale, "time_zone": "Europe/Paris"}
    account = await create_account(client, auth.staff, contacts=[contact])
    return await create_job(client, auth.staff, account["id"], title="Renault Clio", **job_fields)


async def test_stage_changes_fold_into_one_threaded_email_in_the_contacts_language(
    client: httpx.AsyncClient,
    auth: Keys,
    clock: FakeClock,
    composer: DatabaseEmailComposer,
    smtp_server: SmtpServer,
) -> None:
    job = await open_job(client, auth)
    advanced = await act(client, auth.staff, job, "advance")
    assert advanced.status_code == 200, advanced.text
    created, advance = await queued()
    assert (created.kind, advance.kind) == ("created", "advance")

    assert await composer.compose(created, clock.now) == DeferEmail(clock.now + FOLD)
    plan = await composer.compose(created, clock.advance(seconds=120))
    assert isinstance(plan, ComposedEmail)
    assert plan.folded == (advance.id,)

    received = await deliver(plan.message, smtp_server, clock)
    assert received["Subject"] == "Votre Renault Clio : maintenant à l’étape repair (fr)"  # noqa: RUF001
    assert received["Message-ID"] == f"<delivery-{created.id}@tracker.localhost>"
    assert received["In-Reply-To"] == received["References"] == f"<job-{job['id']}@tracker.localhost>"
    token = (await Contact.get(email="marie@example.com")).page_token
    assert token
    assert received["List-Unsubscribe"] == (f"<https://status.example.test/unsubscribe/{token}?c=progress>")
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = parts(received)
    assert "Bonjour Marie Dubois," in text
    assert "Nous avons ouvert le dossier." in text
    assert "Passé à l’étape repair (fr)." in text  # noqa: RUF001
    public_token = (await Job.get(id=job["id"])).public_token
    assert f"https://status.example.test/status/{public_token}?lang=fr" in text
    assert f"https://status.example.test/a/{token}" in html


@pytest.mark.parametrize(
    ("locale", "greeting", "subject"),
    [
        ("en_GB", "Hello Ann,", "Your Renault Clio: a message from us"),
        ("fr_BE", "Bonjour Ann,", "Votre Renault Clio : un message de notre part"),
        ("nl_BE", "Beste Ann,", "Uw Renault Clio: een bericht van ons"),
        ("de_DE", "Hallo Ann,", "Ihr Renault Clio: eine Nachricht von uns"),
    ],
)
async def test_a_note_with_markup_arrives_as_text_in_every_language(
    client: httpx.AsyncClient,
    auth: Keys,
    clock: FakeClock,
    composer: DatabaseEmailComposer,
    smtp_server: SmtpServer,
    locale: str,
    greeting: str,
    subject: str,
) -> None:
    job = await open_job(client, auth, locale=locale, name="Ann")
    note = {"body": "<script>alert('x')</script> & done", "visibility": "public", "version": job["version"]}
    response = await client.post(f"/jobs/{job['id']}/notes", json=note, headers=auth.staff)
    assert response.status_code == 201, response.text
    (email,) = await queued("note_added")
    plan = await composer.compose(email, clock.now)
    assert isinstance(plan, ComposedEmail)

    received = await deliver(plan.message, smtp_server, clock)
    assert received["Subject"] == subject
    text, html = parts(received)
    assert greeting in text
    assert "<script>alert('x')</script> & done" in text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; done" in html


async def test_a_line_break_in_a_name_or_a_title_adds_no_header(
    client: httpx.AsyncClient,
    auth: Keys,
    clock: FakeClock,
    composer: DatabaseEmailComposer,
    smtp_server: SmtpServer,
) -> None:
    job = await open_job(client, auth)
    await Contact.filter(email="marie@example.com").update(name="Marie\r\nBcc: thief@evil.example")
    await Job.filter(id=job["id"]).update(title="Clio\r\nBcc: thief@evil.example\r\n\r\n<b>")
    await act(client, auth.staff, job, "advance")
    first, *_ = await queued()
    plan = await composer.compose(first, clock.advance(seconds=120))
    assert isinstance(plan, ComposedEmail)
    received = await deliver(plan.message, smtp_server, clock)
    assert received["Bcc"] is None
    assert smtp_server.inbox.envelopes[-1][1] == ["marie@example.com"]
    assert "Bcc: thief@evil.example" in str(received["To"])  # folded onto the one To line
    assert str(received["Subject"]).startswith("Votre Clio Bcc: thief@evil.example <b> :")


async def test_turning_a_category_off_stops_what_is_already_queued(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock, composer: DatabaseEmailComposer
) -> None:
    job = await open_job(client, auth)
    (created,) = await queued()
    contact = await Contact.get(email="marie@example.com")
    response = await client.put(
        f"/contacts/{contact.id}/preferences",
        json={"progress": "off", "estimates": "each", "alerts": "each", "notes": "digest"},
        headers=auth.staff,
    )
    assert response.status_code == 200, response.text
    plan = await composer.compose(created, clock.advance(seconds=120))
    assert isinstance(plan, SkipEmail)
    assert job["id"] == created.job_id


@pytest.mark.parametrize("address_as_given", ["marie@example.com", "Marie@Example.COM"])
async def test_a_suppressed_address_gets_nothing_whatever_its_case(
    client: httpx.AsyncClient,
    auth: Keys,
    clock: FakeClock,
    composer: DatabaseEmailComposer,
    address_as_given: str,
) -> None:
    await open_job(client, auth)
    await Contact.filter(email="marie@example.com").update(email=address_as_given)
    await Suppression.create(address="marie@example.com", reason="550 no such user", created_at=clock.now)
    (created,) = await queued()
    assert await composer.compose(created, clock.advance(seconds=120)) == SkipEmail("address suppressed")


async def test_a_contact_from_before_page_tokens_gets_one_with_its_first_email(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock, composer: DatabaseEmailComposer
) -> None:
    await open_job(client, auth)
    await Contact.filter(email="marie@example.com").update(page_token=None)
    (created,) = await queued()
    plan = await composer.compose(created, clock.advance(seconds=120))
    assert isinstance(plan, ComposedEmail)
    token = (await Contact.get(email="marie@example.com")).page_token
    assert token is not None and len(token) >= 40
    assert plan.message.unsubscribe_url == f"https://status.example.test/unsubscribe/{token}?c=progress"
    assert f"https://status.example.test/a/{token}" in plan.message.text


async def test_at_night_a_stage_change_waits_for_the_morning(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock, composer: DatabaseEmailComposer
) -> None:
    clock.now = clock.now.replace(hour=22)  # 23:00 in Paris
    await open_job(client, auth)
    (created,) = await queued()
    plan = await composer.compose(created, clock.advance(seconds=120))
    assert isinstance(plan, DeferEmail)
    assert plan.until.isoformat() == "2026-03-03T07:00:00+00:00"  # 08:00 in Paris


async def test_an_estimate_change_still_queued_when_the_job_closes_is_not_sent(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock, composer: DatabaseEmailComposer
) -> None:
    job = await open_job(client, auth)
    added = await client.post(
        f"/jobs/{job['id']}/costs",
        json={"version": 1, "kind": "material", "amount": "5000.00"},
        headers=auth.staff,
    )
    assert added.status_code == 201, added.text
    completed = await act(
        client, auth.staff, added.json()["job"], "complete", force=True, reason="collected early"
    )
    assert completed.status_code == 200, completed.text
    (cost_moved,) = await queued("cost_moved")

    plan = await composer.compose(cost_moved, clock.advance(seconds=120))

    assert plan == SkipEmail("the job is closed: the estimate or alert no longer holds")
    (created,) = await queued("created")
    (done,) = await queued("complete")
    closing = await composer.compose(created, clock.now)  # the completion itself still goes
    assert isinstance(closing, ComposedEmail) and done.id in closing.folded


async def test_a_stage_change_email_carries_the_estimate_change_queued_with_it(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock, composer: DatabaseEmailComposer
) -> None:
    job = await open_job(client, auth, locale="en_GB", name="Ann")
    added = await client.post(
        f"/jobs/{job['id']}/costs",
        json={"version": 1, "kind": "material", "amount": "5000.00"},
        headers=auth.staff,
    )
    assert added.status_code == 201, added.text
    advanced = await act(client, auth.staff, added.json()["job"], "advance")
    assert advanced.status_code == 200, advanced.text
    (cost_moved,) = await queued("cost_moved")
    (created,) = await queued("created")
    (advance,) = await queued("advance")

    assert await composer.compose(cost_moved, clock.now) == DeferEmail(clock.now + FOLD)
    plan = await composer.compose(created, clock.advance(seconds=120))

    assert isinstance(plan, ComposedEmail)
    assert set(plan.folded) == {advance.id, cost_moved.id}
    assert plan.message.subject == "Your Renault Clio: now at Repair"
    assert "- Expected cost moved from €640.00 to €5,480.00\n- Moved on to Repair." in plan.message.text


async def test_a_job_at_risk_from_the_start_tells_it_in_its_first_email_with_the_opening(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock, composer: DatabaseEmailComposer
) -> None:
    await open_job(client, auth, locale="en_GB", name="Ann", promised_on="2026-03-02")  # due today: at risk
    (created,) = await queued("created")
    (risk,) = await queued("at_risk")

    plan = await composer.compose(risk, clock.now)

    assert isinstance(plan, ComposedEmail)
    assert plan.folded == (created.id,)
    assert plan.message.subject == "Your Renault Clio: may be later than promised"
    assert "We opened the job." in plan.message.text


@pytest.mark.parametrize(("risk_status", "told"), [("sent", True), ("skipped", False)])
async def test_back_on_track_is_told_only_to_a_customer_who_was_told_of_the_risk(
    client: httpx.AsyncClient,
    auth: Keys,
    clock: FakeClock,
    composer: DatabaseEmailComposer,
    risk_status: str,
    told: bool,
) -> None:
    await open_job(client, auth, locale="en_GB", name="Ann", promised_on="2026-03-02")  # due today: at risk
    await Delivery.filter(kind="at_risk").update(status=risk_status, sent_at=clock.now)
    job = await Job.get(title="Renault Clio")
    payload: RiskPayload = {"type": "back_on_track", "old": "", "new": "", "late_by_working_s": 0.0}
    event = NewEvent(job.id, job.version, EventType.BACK_ON_TRACK, payload, "tracker:estimator", clock.now)
    await record_events([event], Listeners())
    (back,) = await queued("back_on_track")

    plan = await composer.compose(back, clock.now)

    if told:
        assert isinstance(plan, ComposedEmail)
        assert plan.message.subject == "Your Renault Clio: back on track"
    else:
        assert plan == SkipEmail("the customer was not told the job was at risk")


async def test_a_hold_says_why(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock, composer: DatabaseEmailComposer
) -> None:
    job = await open_job(client, auth, locale="nl_BE", name="Piet")
    held = await act(client, auth.staff, job, "hold", reason="Wachten op onderdelen")
    assert held.status_code == 200, held.text
    (created,) = await queued("created")

    plan = await composer.compose(created, clock.advance(seconds=120))

    assert isinstance(plan, ComposedEmail)
    assert "- In de wacht gezet: Wachten op onderdelen\n" in plan.message.text


async def test_a_batch_composes_each_email_as_it_would_be_alone(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock, composer: DatabaseEmailComposer
) -> None:
    await create_workflow(client, auth.admin)
    contacts = [
        {"name": name, "email": f"{name.lower()}@example.com", "locale": locale, "time_zone": "Europe/Paris"}
        for name, locale in (("Ann", "en_GB"), ("Marie", "fr_FR"), ("Piet", "nl_BE"), ("Greta", "de_DE"))
    ]
    account = await create_account(client, auth.staff, kind="institutional", contacts=contacts)
    job = await create_job(client, auth.staff, account["id"], title="Renault Clio")
    await Suppression.create(address="piet@example.com", reason="550 no such user", created_at=clock.now)
    note = {"body": "Ready for a test drive", "visibility": "public", "version": job["version"]}
    response = await client.post(f"/jobs/{job['id']}/notes", json=note, headers=auth.staff)
    assert response.status_code == 201, response.text
    await Contact.filter(email="greta@example.com").delete()  # gone since its email was queued
    notes = await queued("note_added")
    assert len(notes) == 4

    together = await composer.compose_batch(notes, clock.now)
    alone = [await composer.compose(email, clock.now) for email in notes]

    assert [_comparable(plan) for plan in together] == [_comparable(plan) for plan in alone]
    ann, marie, piet, greta = together
    assert isinstance(ann, ComposedEmail) and isinstance(marie, ComposedEmail)
    assert "Ready for a test drive" in ann.message.text
    assert (ann.message.recipient.address, marie.message.recipient.address) == (
        "ann@example.com",
        "marie@example.com",
    )
    assert marie.message.subject == "Votre Renault Clio : un message de notre part"
    assert piet == SkipEmail("address suppressed")
    assert greta == SkipEmail("the contact or the job no longer exists")


async def test_readers_of_one_update_each_read_their_own_name_and_links(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock, composer: DatabaseEmailComposer
) -> None:
    await create_workflow(client, auth.admin)
    names = ["Ann", 'Zoë <b>&amp; "Bo"</b> {{ name }} %(name)s']
    contacts = [
        {"name": name, "email": f"reader{n}@example.com", "locale": "en_GB", "time_zone": "Europe/Paris"}
        for n, name in enumerate(names)
    ]
    account = await create_account(client, auth.staff, kind="institutional", contacts=contacts)
    job = await create_job(client, auth.staff, account["id"], title="Renault Clio")
    note = {"body": "Ready for a test drive", "visibility": "public", "version": job["version"]}
    response = await client.post(f"/jobs/{job['id']}/notes", json=note, headers=auth.staff)
    assert response.status_code == 201, response.text

    plans = await composer.compose_batch(await queued("note_added"), clock.now)

    tokens = [(await Contact.get(email=f"reader{n}@example.com")).page_token for n in range(2)]
    for plan, name, token, other in zip(plans, names, tokens, reversed(tokens), strict=True):
        assert isinstance(plan, ComposedEmail)
        assert f"Hello {name}," in plan.message.text
        assert f"Hello {escape(name)}," in plan.message.html
        for part in (plan.message.text, plan.message.html):
            assert f"/a/{token}" in part and f"/unsubscribe/{token}?c=notes" in part
            assert str(other) not in part


def _comparable(plan: object) -> object:
    """A plan as the reader sees it (a composed email's text; the rest as they are)."""
    if isinstance(plan, ComposedEmail):
        message = plan.message
        return (message.recipient, message.subject, message.text, message.html, message.message_id)
    return plan
