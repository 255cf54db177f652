"""What tracker's logs may hold: no token of a customer's link, no webhook URL (it can carry a credential)."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from tests.conftest import Keys
from tests.factories import create_job
from tracker.logs import JsonFormatter, configure_logging

Shop = dict[str, Any]


@pytest.fixture
def tracker_logging() -> None:
    """Logging as `tracker serve` sets it up (INFO, JSON lines); `logging_restored` undoes it after."""
    configure_logging("info", as_json=True)


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "tracker.access"]


async def test_the_access_log_never_holds_a_customers_link_token(
    client: httpx.AsyncClient, auth: Keys, shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    job = await create_job(client, auth.staff, shop["account"]["id"])
    token = httpx.URL(job["status_page_url"]).path.rsplit("/", 1)[-1]
    paths = [
        f"/status/{token}?lang=fr",
        f"/status/{token}.json",
        f"/status/{token}.ics",
        f"/status/{token}/question",
        f"/a/{token}/preferences",
        f"/unsubscribe/{token}?c=progress",
    ]
    caplog.clear()  # only the requests below, not the job's creation
    with caplog.at_level(logging.INFO, logger="tracker.access"):
        for path in paths:
            await client.request("POST" if path.endswith(("question", "preferences")) else "GET", path)

    lines = access_lines(caplog)
    assert [line["path"] for line in lines] == [
        "/status/…",
        "/status/….json",
        "/status/….ics",
        "/status/…/question",
        "/a/…/preferences",
        "/unsubscribe/…",
    ]
    assert not [line for line in lines if token in json.dumps(line, ensure_ascii=False)]


async def test_the_access_log_never_holds_a_suppressed_address(
    client: httpx.AsyncClient, auth: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tracker.access"):
        await client.delete("/suppressions/marie.dubois@example.com", headers=auth.admin)

    assert [(line["path"], line["status"]) for line in access_lines(caplog)] == [("/suppressions/…", 404)]
    assert "marie.dubois" not in caplog.text


async def test_other_paths_are_logged_in_full(
    client: httpx.AsyncClient, auth: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tracker.access"):
        await client.get("/jobs/7", headers=auth.staff)
        await client.get("/workflows/car-repair", headers=auth.staff)

    assert [line["path"] for line in access_lines(caplog)] == ["/jobs/7", "/workflows/car-repair"]


async def test_a_webhook_request_is_not_logged_with_its_url(
    tracker_logging: None, caplog: pytest.LogCaptureFixture
) -> None:
    url = "https://hooks.slack.com/services/T0000/B0000/credential-in-the-path"
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    async with httpx.AsyncClient(transport=transport) as http:
        await http.post(url, content=b"{}")

    assert "credential-in-the-path" not in caplog.text
