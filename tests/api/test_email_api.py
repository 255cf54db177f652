"""Email controls over HTTP: preferences, one-click unsubscribe, suppressions and the dev mailbox."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest

from notifications import Mailbox, OutgoingEmail
from tests.conftest import FakeClock, Keys
from tests.factories import create_account
from tracker.app import create_app
from tracker.db.models import Contact, DevMail, Suppression
from tracker.services.mail import DevMailbox, dev_mailbox_is_open, email_sender
from tracker.settings import Settings

EVERY_EACH = {"progress": "each", "estimates": "each", "alerts": "each", "notes": "each"}


@pytest.fixture
async def contact(client: httpx.AsyncClient, auth: Keys) -> Contact:
    account: dict[str, Any] = await create_account(client, auth.staff)
    return await Contact.get(account_id=account["id"])


async def test_a_new_contact_takes_every_email_and_has_a_page_token(
    client: httpx.AsyncClient, auth: Keys, contact: Contact
) -> None:
    response = await client.get(f"/contacts/{contact.id}/preferences", headers=auth.staff)
    assert response.status_code == 200
    assert response.json() == EVERY_EACH
    assert contact.page_token is not None
    assert len(contact.page_token) >= 43


async def test_staff_set_preferences_per_category(
    client: httpx.AsyncClient, auth: Keys, contact: Contact
) -> None:
    chosen = {"progress": "digest", "estimates": "off", "alerts": "each", "notes": "off"}
    response = await client.put(f"/contacts/{contact.id}/preferences", json=chosen, headers=auth.staff)
    assert response.status_code == 200, response.text
    assert response.json() == chosen
    again = await client.get(f"/contacts/{contact.id}/preferences", headers=auth.staff)
    assert again.json() == chosen


async def test_an_unknown_choice_is_refused_naming_the_field(
    client: httpx.AsyncClient, auth: Keys, contact: Contact
) -> None:
    body = {**EVERY_EACH, "alerts": "sometimes"}
    response = await client.put(f"/contacts/{contact.id}/preferences", json=body, headers=auth.staff)
    assert response.status_code == 422
    assert "alerts" in response.json()["detail"]
    missing = await client.put(
        f"/contacts/{contact.id}/preferences", json={"progress": "off"}, headers=auth.staff
    )
    assert missing.status_code == 422
    unknown = await client.get("/contacts/999999/preferences", headers=auth.staff)
    assert unknown.status_code == 404


async def test_an_integrator_may_not_touch_preferences(
    client: httpx.AsyncClient, auth: Keys, contact: Contact
) -> None:
    response = await client.get(f"/contacts/{contact.id}/preferences", headers=auth.integrator)
    assert response.status_code == 403


async def test_opening_the_unsubscribe_link_changes_nothing(
    client: httpx.AsyncClient, auth: Keys, contact: Contact
) -> None:
    response = await client.get(f"/unsubscribe/{contact.page_token}?c=progress")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<form method="post"' in response.text
    assert "marie@example.com" in response.text
    assert "avancement" in response.text  # the contact reads French
    preferences = await client.get(f"/contacts/{contact.id}/preferences", headers=auth.staff)
    assert preferences.json() == EVERY_EACH


async def test_a_head_request_on_the_unsubscribe_link_answers_like_opening_it_without_a_body(
    client: httpx.AsyncClient, auth: Keys, contact: Contact
) -> None:
    opened = await client.get(f"/unsubscribe/{contact.page_token}?c=progress")
    checked = await client.head(f"/unsubscribe/{contact.page_token}?c=progress")
    assert checked.status_code == 200
    assert checked.content == b""
    for header in ("content-type", "content-length", "cache-control", "referrer-policy"):
        assert checked.headers[header] == opened.headers[header]
    assert (await client.head("/unsubscribe/not-a-token")).status_code == 404
    assert (await client.head(f"/unsubscribe/{contact.page_token}?c=spam")).status_code == 422
    preferences = await client.get(f"/contacts/{contact.id}/preferences", headers=auth.staff)
    assert preferences.json() == EVERY_EACH


async def test_one_click_unsubscribe_turns_the_category_off_without_key_or_redirect(
    client: httpx.AsyncClient, auth: Keys, contact: Contact
) -> None:
    response = await client.post(
        f"/unsubscribe/{contact.page_token}?c=progress",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert "location" not in response.headers
    preferences = await client.get(f"/contacts/{contact.id}/preferences", headers=auth.staff)
    assert preferences.json() == {**EVERY_EACH, "progress": "off"}


async def test_unsubscribing_without_a_category_turns_every_category_off(
    client: httpx.AsyncClient, auth: Keys, contact: Contact
) -> None:
    response = await client.post(
        f"/unsubscribe/{contact.page_token}",
        files={"List-Unsubscribe": (None, "One-Click")},  # multipart/form-data, as RFC 8058 allows
    )
    assert response.status_code == 200
    preferences = await client.get(f"/contacts/{contact.id}/preferences", headers=auth.staff)
    assert set(preferences.json().values()) == {"off"}


async def test_an_unknown_unsubscribe_token_or_category_is_refused(
    client: httpx.AsyncClient, contact: Contact
) -> None:
    assert (await client.post("/unsubscribe/not-a-token")).status_code == 404
    assert (await client.get("/unsubscribe/not-a-token")).status_code == 404
    wrong = await client.post(f"/unsubscribe/{contact.page_token}?c=spam")
    assert wrong.status_code == 422
    assert "c" in wrong.json()["detail"]


async def test_staff_list_and_clear_suppressions(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock
) -> None:
    await Suppression.create(
        address="gone@example.com", reason="550 5.1.1 no such user", created_at=clock.now
    )
    listed = await client.get("/suppressions", headers=auth.staff)
    assert listed.status_code == 200
    assert [item["address"] for item in listed.json()["items"]] == ["gone@example.com"]
    cleared = await client.delete("/suppressions/Gone@example.com", headers=auth.staff)
    assert cleared.status_code == 204
    assert (await client.get("/suppressions", headers=auth.staff)).json()["items"] == []
    again = await client.delete("/suppressions/gone@example.com", headers=auth.staff)
    assert again.status_code == 404
    assert (await client.get("/suppressions")).status_code == 401


async def test_the_dev_mailbox_keeps_emails_and_shows_them_safely(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock
) -> None:
    message = OutgoingEmail(
        sender=Mailbox("tracker@tracker.localhost", "tracker"),
        recipient=Mailbox("ana@example.com", "Ana"),
        subject="Your Renault Clio: now at Paint",
        text="Hello Ana,\n<b>plain</b>",
        html="<p>Hello Ana,</p><script>alert(1)</script>",
        message_id="<delivery-7@tracker.localhost>",
        thread_id="<job-3@tracker.localhost>",
    )
    attempt = await DevMailbox(clock).send(message)
    assert attempt.outcome == "delivered"
    kept = await DevMail.get(delivery_id=7)
    assert kept.recipient == "ana@example.com"

    assert (await client.get("/dev/mailbox")).status_code == 401  # not dev mode: an admin key
    listing = await client.get("/dev/mailbox", headers=auth.admin)
    assert listing.status_code == 200
    assert f'href="/dev/mailbox/{kept.id}"' in listing.text
    assert "Your Renault Clio: now at Paint" in listing.text

    shown = await client.get(f"/dev/mailbox/{kept.id}", headers=auth.admin)
    assert shown.status_code == 200
    assert "<iframe sandbox" in shown.text
    assert "<script>" not in shown.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown.text
    assert "&lt;job-3@tracker.localhost&gt;" in shown.text
    assert "script-src 'none'" in shown.headers["content-security-policy"]
    assert (await client.get("/dev/mailbox/99999", headers=auth.admin)).status_code == 404


@pytest.mark.parametrize(
    ("smtp_host", "says"),
    [
        ("", "No SMTP server is configured"),
        ("smtp.example.com", "new emails go to it and are no longer kept here"),
    ],
)
async def test_the_dev_mailbox_says_whether_emails_still_land_in_it(
    settings: Settings, clock: FakeClock, auth: Keys, smtp_host: str, says: str
) -> None:
    app = create_app(replace(settings, smtp_host=smtp_host), clock=clock)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://tracker.test") as client:
        page = await client.get("/dev/mailbox", headers=auth.admin)

    assert page.status_code == 200
    assert says in page.text


def test_the_dev_mailbox_is_open_only_for_make_run_on_loopback() -> None:
    assert dev_mailbox_is_open(Settings())
    assert not dev_mailbox_is_open(Settings(smtp_host="smtp.example.com"))
    assert not dev_mailbox_is_open(Settings(host="0.0.0.0"))  # noqa: S104
    assert not dev_mailbox_is_open(Settings(database_url="postgres://tracker@db/tracker"))


def test_without_an_smtp_host_email_goes_to_the_dev_mailbox() -> None:
    assert isinstance(email_sender(Settings()), DevMailbox)
    assert not isinstance(email_sender(Settings(smtp_host="smtp.example.com")), DevMailbox)
