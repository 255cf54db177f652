"""The customer's status page, its JSON, calendar file and forms, through the real app (no browser)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from babel.dates import format_date

from tests.conftest import FakeClock, Keys
from tests.factories import act, create_account, create_job, stage
from tracker.app import create_app
from tracker.db.models import JobEstimate, Question
from tracker.scheduler import recompute_open_jobs
from tracker.services.estimates import EstimateService
from tracker.settings import Settings

Shop = dict[str, Any]


def token_of(job: dict[str, Any]) -> str:
    return urlsplit(job["status_page_url"]).path.rsplit("/", 1)[-1]


def form_token(html: str, action: str) -> str:
    form = html[html.index(f'action="{action}"') :]
    found = re.search(r'name="form_token" value="([^"]+)"', form)
    assert found is not None
    return found.group(1)


@pytest.fixture
async def job(client: httpx.AsyncClient, auth: Keys, shop: Shop) -> dict[str, Any]:
    return await create_job(client, auth.staff, shop["account"]["id"], promised_on="2026-03-20")


async def test_the_page_shows_stage_estimate_and_cost_in_the_customers_language(
    client: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    response = await client.get(f"/status/{token_of(job)}")

    assert response.status_code == 200
    html = response.text
    assert '<html lang="fr">' in html  # the account's first contact is French
    assert "Brake discs" in html
    assert "intake (fr)" in html
    assert re.search(r"640,00\s€", html)
    assert 'aria-current="step"' in html


async def test_lang_beats_accept_language_which_beats_the_contacts_locale(
    client: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    token = token_of(job)
    by_header = await client.get(f"/status/{token}", headers={"Accept-Language": "nl-BE,nl;q=0.9"})
    by_query = await client.get(f"/status/{token}?lang=de", headers={"Accept-Language": "nl"})
    unknown = await client.get(f"/status/{token}", headers={"Accept-Language": "ja"})

    assert '<html lang="nl">' in by_header.text
    assert "intake (nl)" in by_header.text
    assert '<html lang="de">' in by_query.text
    assert '<html lang="fr">' in unknown.text


async def test_hidden_stages_are_never_shown(client: httpx.AsyncClient, auth: Keys) -> None:
    body = {
        "key": "secret-flow",
        "name": "Secret flow",
        "currency": "EUR",
        "stages": [stage("intake"), stage("vendor-audit", customer_visible=False), stage("ready")],
    }
    assert (await client.post("/workflows", json=body, headers=auth.admin)).status_code == 201
    account = await create_account(client, auth.staff)
    job = await create_job(client, auth.staff, account["id"], workflow="secret-flow")
    advanced = (await act(client, auth.staff, job, "advance")).json()

    html = (await client.get(f"/status/{token_of(advanced)}?lang=en")).text
    data = (await client.get(f"/status/{token_of(advanced)}.json?lang=en")).json()

    assert "Vendor-Audit" not in html and "vendor-audit" not in html
    assert [step["key"] for step in data["steps"]] == ["intake", "ready"]
    assert data["stage"] == "Intake"  # still the last stage the customer saw begin


async def test_an_unknown_token_gets_a_plain_404_that_says_nothing(
    client: httpx.AsyncClient, shop: Shop
) -> None:
    for path in ("/status/nope", "/status/nope.ics"):
        response = await client.get(path)
        assert response.status_code == 404
        assert response.text == "Not found\n"
    assert (await client.get("/status/nope.json")).status_code == 404


async def test_pages_carry_the_security_headers(client: httpx.AsyncClient, job: dict[str, Any]) -> None:
    headers = (await client.get(f"/status/{token_of(job)}")).headers

    csp = headers["content-security-policy"]
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-robots-tag"].startswith("noindex")
    assert headers["x-content-type-options"] == "nosniff"


async def test_the_pages_answer_head_as_get_without_the_body(
    client: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    token = token_of(job)
    html = (await client.get(f"/status/{token}")).text
    stylesheet = re.search(r'href="(/static/site\.[0-9a-f]{16}\.css)"', html)
    assert stylesheet is not None

    for path in (f"/status/{token}", f"/status/{token}.ics", stylesheet.group(1)):
        got, head = await client.get(path), await client.head(path)
        assert (head.status_code, head.content) == (200, b""), path
        for name in ("content-type", "cache-control", "content-security-policy"):
            assert head.headers.get(name) == got.headers.get(name), (path, name)
    for path in ("/status/nope", "/status/nope.ics", "/static/site.0000000000000000.css"):
        assert (await client.head(path)).status_code == 404


async def test_static_assets_are_fingerprinted_and_cached_for_a_year(
    client: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    html = (await client.get(f"/status/{token_of(job)}")).text
    stylesheet = re.search(r'href="(/static/site\.[0-9a-f]{16}\.css)"', html)
    script = re.search(r'src="(/static/status\.[0-9a-f]{16}\.js)"', html)
    assert stylesheet is not None and script is not None

    css = await client.get(stylesheet.group(1))
    assert css.status_code == 200
    assert css.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert css.headers["content-type"].startswith("text/css")
    assert (await client.get("/static/site.0000000000000000.css")).status_code == 404
    assert "<style" not in html and "style=" not in html and "<script>" not in html
    assert len(html.encode()) + len(css.content) < 100_000


async def test_a_note_with_markup_shows_as_text(
    client: httpx.AsyncClient, auth: Keys, job: dict[str, Any]
) -> None:
    body = "<script>alert(1)</script> parts arrive Monday"
    assert (await act(client, auth.staff, job, "notes", visibility="public", body=body)).status_code == 201

    html = (await client.get(f"/status/{token_of(job)}")).text

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; parts arrive Monday" in html


async def test_internal_notes_stay_internal(
    client: httpx.AsyncClient, auth: Keys, job: dict[str, Any]
) -> None:
    added = await act(client, auth.staff, job, "notes", visibility="internal", body="customer is difficult")
    assert added.status_code == 201

    assert "difficult" not in (await client.get(f"/status/{token_of(job)}")).text
    assert (await client.get(f"/status/{token_of(job)}.json")).json()["notes"] == []


async def test_on_hold_shows_its_reason(client: httpx.AsyncClient, auth: Keys, job: dict[str, Any]) -> None:
    await act(client, auth.staff, job, "hold", reason="waiting for parts from the supplier")

    html = (await client.get(f"/status/{token_of(job)}?lang=en")).text
    data = (await client.get(f"/status/{token_of(job)}.json")).json()

    assert "On hold" in html and "waiting for parts from the supplier" in html
    assert data["status"] == "on_hold"
    assert data["on_hold_reason"] == "waiting for parts from the supplier"


async def test_json_is_open_to_other_sites_and_answers_304_while_unchanged(
    client: httpx.AsyncClient, auth: Keys, job: dict[str, Any]
) -> None:
    url = f"/status/{token_of(job)}.json?lang=en"
    first = await client.get(url)
    assert first.status_code == 200
    assert first.headers["access-control-allow-origin"] == "*"
    data = first.json()
    assert data["reference"] == job["reference"]
    assert data["stage"] == "Intake"
    assert data["quote"] == {"amount": "640.00", "currency": "EUR"}
    assert data["estimate"]["confidence"] in {"high", "medium", "low"}

    unchanged = await client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert unchanged.status_code == 304

    await act(client, auth.staff, job, "advance")
    changed = await client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200
    assert changed.json()["stage"] == "Repair"


async def test_the_calendar_file_keeps_its_uid_and_moves_with_the_estimate(
    client: httpx.AsyncClient, auth: Keys, job: dict[str, Any], clock: FakeClock
) -> None:
    url = f"/status/{token_of(job)}.ics"
    first = await client.get(url)
    await act(client, auth.staff, job, "advance")
    second = await client.get(url)

    assert first.headers["content-type"].startswith("text/calendar")
    uid = re.search(r"^UID:(.+)\r$", first.text, re.MULTILINE)
    assert uid is not None
    assert f"UID:{uid.group(1)}\r\n" in second.text
    assert "SEQUENCE:1\r\n" in first.text and "SEQUENCE:2\r\n" in second.text
    assert "DTSTART;VALUE=DATE:2026" in first.text
    assert all(len(line.encode()) <= 75 for line in first.text.split("\r\n"))


async def test_staff_regenerate_the_link_and_the_old_one_dies(
    client: httpx.AsyncClient, auth: Keys, job: dict[str, Any]
) -> None:
    old = token_of(job)
    refused = await client.post(f"/jobs/{job['id']}/status-token", headers=auth.integrator)
    response = await client.post(f"/jobs/{job['id']}/status-token", headers=auth.staff)

    assert refused.status_code == 403
    assert response.status_code == 200
    new = urlsplit(response.json()["status_page_url"]).path.rsplit("/", 1)[-1]
    assert new != old
    assert (await client.get(f"/status/{old}")).status_code == 404
    assert (await client.get(f"/status/{new}")).status_code == 200
    assert (
        (await client.get(f"/jobs/{job['id']}", headers=auth.staff)).json()["status_page_url"].endswith(new)
    )


async def test_a_question_is_stored_for_staff(client: httpx.AsyncClient, job: dict[str, Any]) -> None:
    token = token_of(job)
    html = (await client.get(f"/status/{token}")).text
    form = {
        "form_token": form_token(html, f"/status/{token}/question"),
        "lang": "fr",
        "question": "Can I pick it up on Saturday?",
    }

    response = await client.post(
        f"/status/{token}/question", data=form, headers={"Origin": "http://tracker.test"}
    )

    assert response.status_code == 303
    assert response.headers["location"].endswith("asked=1#question")
    stored = [question.body for question in await Question.filter(job_id=job["id"])]
    assert stored == ["Can I pick it up on Saturday?"]


async def test_a_question_needs_the_pages_form_token_and_its_own_origin(
    client: httpx.AsyncClient, job: dict[str, Any]
) -> None:
    token = token_of(job)
    html = (await client.get(f"/status/{token}")).text
    good = form_token(html, f"/status/{token}/question")
    other_job_token = good.split(".")[0] + "." + "0" * 64

    foreign = await client.post(
        f"/status/{token}/question",
        data={"form_token": good, "question": "hi"},
        headers={"Origin": "https://evil.example"},
    )
    cross_site = await client.post(
        f"/status/{token}/question",
        data={"form_token": good, "question": "hi"},
        headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    )
    forged = await client.post(
        f"/status/{token}/question", data={"form_token": other_job_token, "question": "hi"}
    )
    too_long = await client.post(
        f"/status/{token}/question", data={"form_token": good, "question": "x" * 2001}
    )

    assert foreign.status_code == 400
    assert cross_site.status_code == 400
    assert forged.status_code == 400
    assert too_long.status_code == 422
    assert await Question.filter(job_id=job["id"]).count() == 0


async def test_the_survey_opens_on_completion_and_is_answered_once(
    client: httpx.AsyncClient, auth: Keys, job: dict[str, Any]
) -> None:
    token = token_of(job)
    assert 'action="/status/' + token + '/survey"' not in (await client.get(f"/status/{token}")).text
    completed = await act(client, auth.staff, job, "complete", force=True, reason="collected early")
    assert completed.status_code == 200, completed.text
    html = (await client.get(f"/status/{token}?lang=en")).text
    form = {"form_token": form_token(html, f"/status/{token}/survey"), "score": "4", "comment": "Quick"}

    first = await client.post(f"/status/{token}/survey", data=form)
    again = await client.post(f"/status/{token}/survey", data={**form, "score": "1"})

    assert first.status_code == 303
    assert again.status_code == 409
    assert "Already answered" in again.text
    assert "4 out of 5" in (await client.get(f"/status/{token}?lang=en")).text


async def test_public_pages_are_rate_limited_per_client(
    settings: Settings, clock: FakeClock, job: dict[str, Any]
) -> None:
    app = create_app(replace(settings, page_requests_per_minute=2), clock=clock)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://tracker.test") as fresh:
        url = f"/status/{token_of(job)}.json"
        statuses = [(await fresh.get(url)).status_code for _ in range(2)]
        limited = await fresh.get(url)
        page = await fresh.get(f"/status/{token_of(job)}")

    assert statuses == [200, 200]
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 30
    assert page.status_code == 429


async def test_a_moved_estimate_shows_what_it_was_before(
    client: httpx.AsyncClient, job: dict[str, Any], clock: FakeClock
) -> None:
    earlier = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
    await JobEstimate.create(
        job_id=job["id"],
        computed_at=clock.now - timedelta(days=1),
        eta_p50=earlier,
        eta_p90=earlier + timedelta(hours=1),
        cost_p50=Decimal("600"),
        cost_p90=Decimal("700"),
        basis="planned",
        overdue=False,
        detail={},
    )

    html = (await client.get(f"/status/{token_of(job)}?lang=en")).text

    assert "Before, we expected Mon 9 March." in html


async def test_an_overdue_job_says_so_and_shows_its_new_range(
    client: httpx.AsyncClient, auth: Keys, job: dict[str, Any], clock: FakeClock, settings: Settings
) -> None:
    first = job["estimate"]["completion"]
    clock.advance(days=30)  # well past the first range and the promised Fri 20 March
    estimates: EstimateService = client._transport.app.state.services.estimates  # type: ignore[attr-defined]
    await recompute_open_jobs(estimates, settings, clock)
    now_shown = (await client.get(f"/jobs/{job['id']}", headers=auth.staff)).json()["estimate"]

    html = (await client.get(f"/status/{token_of(job)}?lang=en")).text

    assert now_shown["overdue"] is True
    paris = ZoneInfo("Europe/Paris")  # the account's contact's zone
    start, end = (
        datetime.fromisoformat(now_shown["completion"][p]).astimezone(paris) for p in ("p50", "p90")
    )
    assert start > clock.now
    new_range = (
        f"On {format_date(start, 'EEE d MMMM', locale='en')}"
        if start.date() == end.date()
        else f"Between {format_date(start, 'EEE d', locale='en')} "
        f"and {format_date(end, 'EEE d MMMM', locale='en')}"
    )
    eta = re.search(r'<p class="eta" id="eta">(.*?)</p>', html, re.DOTALL)
    assert eta is not None and eta.group(1).strip() == new_range
    assert "We are late: we promised Fri 20 March, and the job will take longer." in html
    assert "Promised for" not in html  # the promise is not repeated as if it still held
    earlier = datetime.fromisoformat(first["p90"]).astimezone(paris)
    assert f"Before, we expected {format_date(earlier, 'EEE d MMMM', locale='en')}." in html
    # The estimate moved today, though the job itself last changed 30 days ago.
    assert "New estimate of the completion date." in html
    assert f"Last updated: {format_date(clock.now.astimezone(paris), 'medium', locale='en')}," in html
