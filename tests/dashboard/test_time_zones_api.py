"""The dashboard shows every time in one staff time zone: the setting's, else the workflow calendars'."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx

from tests.conftest import CURRENT_TIME, FakeClock, Keys
from tests.dashboard.conftest import sign_in
from tests.dashboard.test_board_api import section
from tests.factories import create_account, create_job, create_workflow
from tracker.app import create_app
from tracker.db.models import Question
from tracker.settings import Settings

# CURRENT_TIME is 09:00 UTC on Mon 2 March 2026: 10:00 in Paris, 04:00 in New York.


async def signed_in_with_a_question(client: httpx.AsyncClient, auth: Keys) -> dict[str, Any]:
    """A job of the French garage's workflow whose customer asked a question; staff signed in."""
    account = await create_account(client, auth.staff)
    job = await create_job(client, auth.staff, account["id"])
    await Question.create(job_id=job["id"], body="Ready for Friday?", asked_at=CURRENT_TIME)
    await sign_in(client, auth.staff)
    return job


async def board_and_job_page(client: httpx.AsyncClient, job: dict[str, Any]) -> tuple[str, str]:
    board = (await client.get("/dashboard")).text
    page = (await client.get(f"/dashboard/jobs/{job['id']}")).text
    return section(board, "questions"), page[page.index('id="questions"') :]


async def test_board_and_job_page_show_times_in_the_workflow_calendars_zone(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    await create_workflow(client, auth.admin, calendar={"country": "FR"})
    job = await signed_in_with_a_question(client, auth)

    for html in await board_and_job_page(client, job):
        assert "10:00" in html and "9:00" not in html
    assert "Times in Europe/Paris." in (await client.get("/dashboard")).text
    assert "Times in Europe/Paris." in (await client.get(f"/dashboard/jobs/{job['id']}")).text


async def test_calendars_in_different_zones_leave_the_board_in_utc(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    await create_workflow(client, auth.admin, calendar={"country": "FR"})
    await create_workflow(client, auth.admin, key="bike-repair", calendar={"country": "GB"})
    job = await signed_in_with_a_question(client, auth)

    board = (await client.get("/dashboard")).text

    assert "Times in UTC." in board
    assert "9:00" in section(board, "questions")
    assert "Times in Europe/Paris." in (await client.get(f"/dashboard/jobs/{job['id']}")).text


async def test_the_staff_time_zone_setting_wins_everywhere(
    settings: Settings, clock: FakeClock, auth: Keys
) -> None:
    app = create_app(replace(settings, staff_time_zone="America/New_York"), clock=clock)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://tracker.test") as client:
        await create_workflow(client, auth.admin, calendar={"country": "FR"})
        job = await signed_in_with_a_question(client, auth)

        for html in await board_and_job_page(client, job):
            assert "4:00" in html and "10:00" not in html and "9:00" not in html
        assert "Times in America/New_York." in (await client.get(f"/dashboard/jobs/{job['id']}")).text
