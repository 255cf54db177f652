"""A contact's account page: the account's open and recently closed jobs, filterable, by secret link."""

from __future__ import annotations

import re
import secrets
from typing import Any

import httpx
import pytest

from tests.conftest import FakeClock, Keys
from tests.factories import act, create_account, create_fleet_account, create_job
from tracker.db.models import Contact


async def page_token(contact_id: int) -> str:
    token = secrets.token_urlsafe(24)
    await Contact.filter(id=contact_id).update(page_token=token)
    return token


@pytest.fixture
async def fleet(client: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]) -> dict[str, Any]:
    account = await create_fleet_account(client, auth.staff)
    van = await create_job(client, auth.staff, account["id"], title="Van 12 brakes")
    car = await create_job(client, auth.staff, account["id"], title="Car 7 tyres")
    done = await create_job(client, auth.staff, account["id"], title="Truck 3 service")
    await act(client, auth.staff, done, "complete", force=True, reason="collected early")
    return {"account": account, "van": van, "car": car, "done": done}


async def test_the_page_lists_the_accounts_jobs_with_stage_eta_and_cost(
    client: httpx.AsyncClient, auth: Keys, fleet: dict[str, Any], shop: dict[str, Any]
) -> None:
    other = await create_job(client, auth.staff, shop["account"]["id"], title="Someone else's car")
    token = await page_token(fleet["account"]["contacts"][0]["id"])

    response = await client.get(f"/a/{token}?lang=en")

    html = response.text
    assert response.status_code == 200
    assert response.headers["x-robots-tag"].startswith("noindex")
    assert "Van 12 brakes" in html and "Car 7 tyres" in html and "Truck 3 service" in html
    assert "Someone else" not in html and other["reference"] not in html
    assert "Intake" in html and "€640.00" in html
    assert html.count('href="/status/') == 3
    assert '<p class="reference">Fleet BV · Ann</p>' in html


async def test_a_persons_own_account_is_named_once(
    client: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]
) -> None:
    token = await page_token(shop["account"]["contacts"][0]["id"])  # Marie Dubois, for herself

    html = (await client.get(f"/a/{token}?lang=en")).text

    assert '<p class="reference">Marie Dubois</p>' in html


async def test_the_jobs_filter_by_state_and_text_without_javascript(
    client: httpx.AsyncClient, fleet: dict[str, Any]
) -> None:
    token = await page_token(fleet["account"]["contacts"][0]["id"])

    open_only = (await client.get(f"/a/{token}?lang=en&show=open")).text
    closed_only = (await client.get(f"/a/{token}?lang=en&show=closed")).text
    searched = (await client.get(f"/a/{token}?lang=en&q=VAN")).text

    assert "Truck 3 service" not in open_only and "Van 12 brakes" in open_only
    assert "Truck 3 service" in closed_only and "Van 12 brakes" not in closed_only
    assert "Van 12 brakes" in searched and "Car 7 tyres" not in searched


async def test_long_closed_jobs_drop_off(
    client: httpx.AsyncClient, fleet: dict[str, Any], clock: FakeClock
) -> None:
    token = await page_token(fleet["account"]["contacts"][0]["id"])
    clock.advance(days=91)

    html = (await client.get(f"/a/{token}?lang=en")).text

    assert "Truck 3 service" not in html and "Van 12 brakes" in html


async def test_an_unknown_link_gets_a_plain_404(client: httpx.AsyncClient, auth: Keys) -> None:
    await create_account(client, auth.staff)  # its contact has no page link yet

    response = await client.get("/a/not-a-token")

    assert response.status_code == 404
    assert response.text == "Not found\n"


async def test_the_page_answers_head_as_get_without_the_body(
    client: httpx.AsyncClient, fleet: dict[str, Any]
) -> None:
    token = await page_token(fleet["account"]["contacts"][0]["id"])

    head = await client.head(f"/a/{token}?lang=en")

    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-type"].startswith("text/html")
    assert (await client.head("/a/not-a-token")).status_code == 404


def preferences_form(html: str, **choices: str) -> dict[str, str]:
    found = re.search(
        r'action="/a/[^"]+/preferences">\s*<input type="hidden" name="form_token" value="([^"]+)"', html
    )
    assert found is not None
    return {"form_token": found.group(1), "lang": "en", **choices}


EVERY_EACH = {"progress": "each", "estimates": "each", "alerts": "each", "notes": "each"}


async def test_the_contact_chooses_which_emails_to_get_including_the_daily_digest(
    client: httpx.AsyncClient, fleet: dict[str, Any]
) -> None:
    contact_id = fleet["account"]["contacts"][0]["id"]
    token = await page_token(contact_id)
    html = (await client.get(f"/a/{token}?lang=en")).text
    form = preferences_form(html, **{**EVERY_EACH, "progress": "digest", "estimates": "off"})

    saved = await client.post(f"/a/{token}/preferences", data=form, headers={"Sec-Fetch-Site": "same-origin"})

    assert saved.status_code == 303
    assert saved.headers["location"] == f"/a/{token}?lang=en&saved=1#preferences"
    contact = await Contact.get(id=contact_id)
    assert (contact.progress_emails, contact.estimate_emails, contact.alert_emails) == (
        "digest",
        "off",
        "each",
    )
    page = (await client.get(saved.headers["location"])).text
    assert "Your choices are saved." in page
    assert re.search(r'name="progress" value="digest" checked', page)


async def test_preferences_refuse_a_foreign_form_and_an_unknown_choice(
    client: httpx.AsyncClient, fleet: dict[str, Any]
) -> None:
    contact_id = fleet["account"]["contacts"][0]["id"]
    token = await page_token(contact_id)
    html = (await client.get(f"/a/{token}?lang=en")).text
    form = preferences_form(html, **{**EVERY_EACH, "notes": "off"})

    cross_site = await client.post(
        f"/a/{token}/preferences", data=form, headers={"Sec-Fetch-Site": "cross-site"}
    )
    unknown = await client.post(f"/a/{token}/preferences", data={**form, "notes": "hourly"})
    missing = await client.post(f"/a/{token}/preferences", data={"form_token": form["form_token"]})
    elsewhere = await client.post("/a/not-a-token/preferences", data=form)

    assert cross_site.status_code == 400
    assert unknown.status_code == 422 and missing.status_code == 422
    assert elsewhere.status_code == 400  # the form token names another page
    assert (await Contact.get(id=contact_id)).note_emails == "each"
