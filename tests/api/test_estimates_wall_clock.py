"""Completion dates through the whole stack with the wall clock frozen by freezegun: weekends, public
holidays in FR, NL and BE, both DST changes, hold and resume, overrun, the capacity queue and a workflow
with no history yet.

The app here runs on its real clock (`tracker.clock.utc_now`), which freezegun stops and moves.

A one-stage workflow planned at exactly 8 working hours (optimistic = likely = pessimistic) and no history
makes the P50 completion a pure calendar computation, so each date below can be checked by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory

from tests.conftest import CURRENT_TIME, Keys
from tests.factories import act, create_account, create_job, stage, workflow_body
from tracker.app import create_app
from tracker.clock import utc_now
from tracker.scheduler import recompute_open_jobs
from tracker.services.estimates import EstimateService
from tracker.settings import Settings

WEEKDAYS = {d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


@pytest.fixture
async def frozen() -> AsyncIterator[FrozenDateTimeFactory]:
    """The wall clock, stopped; `real_asyncio` keeps the event loop's own timers running."""
    with freeze_time(CURRENT_TIME, real_asyncio=True) as factory:
        assert isinstance(factory, FrozenDateTimeFactory)  # neither ticking nor auto-stepping
        yield factory


@pytest.fixture
async def app_client(settings: Settings, frozen: FrozenDateTimeFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app as deployed: no test clock is handed in, so it reads `utc_now`."""
    transport = httpx.ASGITransport(app=create_app(settings))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://tracker.test") as http:
        yield http


async def _eight_hour_job(
    client: httpx.AsyncClient, auth: Keys, calendar: dict[str, object] | None
) -> dict[str, Any]:
    body = {
        "key": "fitting",
        "name": "Fitting",
        "currency": "EUR",
        "calendar": calendar,
        "stages": [stage("work", hours=(8, 8, 8))],
    }
    assert (await client.post("/workflows", json=body, headers=auth.admin)).status_code == 201
    account = await create_account(client, auth.staff)
    return await create_job(client, auth.staff, account["id"], workflow="fitting")


def assert_p50(job: dict[str, Any], expected: str) -> None:
    """The P50 completion, to within two minutes (the plan's samples leave a little noise)."""
    actual = datetime.fromisoformat(job["estimate"]["completion"]["p50"])
    assert abs(actual - datetime.fromisoformat(expected + ":00+00:00")) <= timedelta(minutes=2), actual


@pytest.mark.parametrize(
    ("frozen_at", "calendar", "expected_p50"),
    [
        # Friday 16:00 in Paris, an ordinary weekend: two hours on Friday, six on Monday, so 14:00 Paris.
        ("2026-06-05T14:00:00Z", {"country": "FR", "opening_hours": WEEKDAYS}, "2026-06-08T12:00"),
        # Friday 16:00 in Paris; Whit Monday 25 May 2026 is a French public holiday: Tuesday 14:00 Paris.
        ("2026-05-22T14:00:00Z", {"country": "FR", "opening_hours": WEEKDAYS}, "2026-05-26T12:00"),
        # Friday 16:00 in Amsterdam; King's Day, Monday 27 April 2026: Tuesday 14:00 Amsterdam.
        ("2026-04-24T14:00:00Z", {"country": "NL", "opening_hours": WEEKDAYS}, "2026-04-28T12:00"),
        # Monday 16:00 in Brussels; the Belgian national day, Tuesday 21 July 2026: Wednesday 14:00.
        ("2026-07-20T14:00:00Z", {"country": "BE", "opening_hours": WEEKDAYS}, "2026-07-22T12:00"),
        # Friday 16:00 in Paris (UTC+1); clocks go forward on Sunday 29 March: Monday 14:00 is 12:00 UTC.
        ("2026-03-27T15:00:00Z", {"country": "FR", "opening_hours": WEEKDAYS}, "2026-03-30T12:00"),
        # Friday 16:00 in Paris (UTC+2); clocks go back on Sunday 25 October: Monday 14:00 is 13:00 UTC.
        ("2026-10-23T14:00:00Z", {"country": "FR", "opening_hours": WEEKDAYS}, "2026-10-26T13:00"),
        # Around the clock: eight hours are eight hours.
        ("2026-03-27T15:00:00Z", None, "2026-03-27T23:00"),
    ],
    ids=[
        "fr-weekend",
        "fr-whit-monday",
        "nl-kings-day",
        "be-national-day",
        "fr-dst-spring-forward",
        "fr-dst-fall-back",
        "24x7",
    ],
)
async def test_the_completion_date_skips_closed_days_and_follows_dst(
    app_client,
    auth,
    frozen: FrozenDateTimeFactory,
    frozen_at: str,
    calendar: dict[str, object] | None,
    expected_p50: str,
):
    frozen.move_to(frozen_at)
    job = await _eight_hour_job(app_client, auth, calendar)
    assert job["estimate"]["basis"] == "planned"  # no history yet: the plan alone
    assert datetime.fromisoformat(job["estimate"]["computed_at"]) == datetime.fromisoformat(frozen_at)
    assert_p50(job, expected_p50)


async def test_hold_stops_the_clock_until_resume(app_client, auth, frozen: FrozenDateTimeFactory):
    frozen.move_to("2026-06-01T07:00:00Z")  # Monday 09:00 in Paris
    job = await _eight_hour_job(app_client, auth, {"country": "FR", "opening_hours": WEEKDAYS})
    assert_p50(job, "2026-06-01T15:00")
    frozen.tick(timedelta(hours=2))
    job = (await act(app_client, auth.staff, job, "hold", reason="Waiting for the customer")).json()
    frozen.tick(timedelta(hours=3))
    job = (await act(app_client, auth.staff, job, "resume")).json()
    # Two hours worked and six left, from 14:00 Paris: four to 18:00, two on Tuesday: 10:00 Paris.
    assert_p50(job, "2026-06-02T08:00")


async def test_the_schedule_marks_a_job_past_its_range_overdue_with_a_future_range(
    app_client, auth, frozen: FrozenDateTimeFactory, settings: Settings
):
    frozen.move_to("2026-06-01T07:00:00Z")
    job = await _eight_hour_job(app_client, auth, {"country": "FR", "opening_hours": WEEKDAYS})
    assert job["estimate"]["overdue"] is False
    frozen.tick(timedelta(days=3))
    assert await recompute_open_jobs(EstimateService(), settings, utc_now) == 1
    estimate = (await app_client.get(f"/jobs/{job['id']}", headers=auth.staff)).json()["estimate"]
    assert estimate["overdue"] is True
    assert datetime.fromisoformat(estimate["computed_at"]) == datetime(2026, 6, 4, 7, tzinfo=UTC)
    assert datetime.fromisoformat(estimate["completion"]["p50"]) > datetime(2026, 6, 4, 7, tzinfo=UTC)


async def test_jobs_waiting_for_a_busy_stage_wait_their_turn(app_client, auth, frozen: FrozenDateTimeFactory):
    body = workflow_body(
        stages=("intake", "paint", "ready"), calendar={"country": "FR", "opening_hours": WEEKDAYS}
    )
    body["stages"][1]["capacity"] = 1
    assert (await app_client.post("/workflows", json=body, headers=auth.admin)).status_code == 201
    account = await create_account(app_client, auth.staff)
    frozen.move_to("2026-06-01T07:00:00Z")  # Monday 09:00 in Paris
    jobs = []
    for _ in range(3):
        frozen.tick(timedelta(minutes=5))
        jobs.append(await create_job(app_client, auth.staff, account["id"], start_stage="paint"))
    explained = [
        (await app_client.get(f"/jobs/{job['id']}/estimate", headers=auth.staff)).json() for job in jobs
    ]
    waits = [e["queue_wait_working_hours"] for e in explained]
    assert waits[0] == 0.0  # in the booth
    assert 0.0 < waits[1] < waits[2]  # first and second in line
    p50s = [datetime.fromisoformat(e["estimate"]["completion"]["p50"]) for e in explained]
    assert p50s[0] < p50s[1] < p50s[2]


def test_the_app_clock_reads_the_wall_clock_as_aware_utc():
    with freeze_time("2026-03-29T01:30:00+01:00"):
        moment = utc_now()
    assert moment.tzinfo is UTC
    assert moment.isoformat() == "2026-03-29T00:30:00+00:00"
