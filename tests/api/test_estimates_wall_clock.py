"""Completion dates through the whole stack: weekends, public holidays in FR, NL and BE, a DST change, hold
and resume, overrun, and a workflow with no history yet.

The app reads time from its clock; these tests drive that clock (freezegun's datetime subclass is refused by
msgspec, which encodes and validates exact types, so freezegun is kept for `utc_now` itself).

A one-stage workflow planned at exactly 8 working hours (optimistic = likely = pessimistic) and no history
makes the P50 completion a pure calendar computation, so each date below can be checked by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from freezegun import freeze_time

from tests.conftest import FakeClock, Keys
from tests.factories import act, create_account, create_job, stage
from tracker.clock import utc_now

WEEKDAYS = {d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


async def _eight_hour_job(
    client: httpx.AsyncClient, auth: Keys, calendar: dict[str, object]
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
        # Friday 16:00 in Paris; Whit Monday 25 May 2026 is a French public holiday: Tuesday 14:00 Paris.
        ("2026-05-22T14:00:00Z", {"country": "FR", "opening_hours": WEEKDAYS}, "2026-05-26T12:00"),
        # Friday 16:00 in Amsterdam; King's Day, Monday 27 April 2026: Tuesday 14:00 Amsterdam.
        ("2026-04-24T14:00:00Z", {"country": "NL", "opening_hours": WEEKDAYS}, "2026-04-28T12:00"),
        # Monday 16:00 in Brussels; the Belgian national day, Tuesday 21 July 2026: Wednesday 14:00.
        ("2026-07-20T14:00:00Z", {"country": "BE", "opening_hours": WEEKDAYS}, "2026-07-22T12:00"),
        # Friday 16:00 in Paris (UTC+1); clocks go forward on Sunday 29 March: Monday 14:00 is 12:00 UTC.
        ("2026-03-27T15:00:00Z", {"country": "FR", "opening_hours": WEEKDAYS}, "2026-03-30T12:00"),
        # Around the clock: eight hours are eight hours.
        ("2026-03-27T15:00:00Z", None, "2026-03-27T23:00"),
    ],
    ids=["fr-whit-monday", "nl-kings-day", "be-national-day", "fr-dst-spring-forward", "24x7"],
)
async def test_the_completion_date_skips_closed_days_and_follows_dst(
    client, auth, clock: FakeClock, frozen_at: str, calendar: dict[str, object] | None, expected_p50: str
):
    clock.now = datetime.fromisoformat(frozen_at)
    job = await _eight_hour_job(client, auth, calendar)  # type: ignore[arg-type]
    assert job["estimate"]["basis"] == "planned"  # no history yet: the plan alone
    assert_p50(job, expected_p50)


async def test_hold_stops_the_clock_until_resume(client, auth, clock: FakeClock):
    clock.now = datetime.fromisoformat("2026-06-01T07:00:00Z")  # Monday 09:00 in Paris
    job = await _eight_hour_job(client, auth, {"country": "FR", "opening_hours": WEEKDAYS})
    assert_p50(job, "2026-06-01T15:00")
    clock.advance(hours=2)
    job = (await act(client, auth.staff, job, "hold", reason="Waiting for the customer")).json()
    clock.advance(hours=3)
    job = (await act(client, auth.staff, job, "resume")).json()
    # Two hours worked and six left, from 14:00 Paris: four to 18:00, two on Tuesday: 10:00 Paris.
    assert_p50(job, "2026-06-02T08:00")


async def test_a_job_past_its_range_is_overdue_with_a_future_range(client, auth, clock: FakeClock):
    clock.now = datetime.fromisoformat("2026-06-01T07:00:00Z")
    job = await _eight_hour_job(client, auth, {"country": "FR", "opening_hours": WEEKDAYS})
    clock.advance(days=3)
    noted = await client.post(
        f"/jobs/{job['id']}/notes", json={"version": 1, "body": "Still on it"}, headers=auth.staff
    )
    estimate = noted.json()["job"]["estimate"]
    assert estimate["overdue"] is True
    assert datetime.fromisoformat(estimate["completion"]["p50"]) > clock.now


def test_the_app_clock_reads_the_wall_clock_as_aware_utc():
    with freeze_time("2026-03-29T01:30:00+01:00"):
        moment = utc_now()
    assert moment.tzinfo is UTC
    assert moment.isoformat() == "2026-03-29T00:30:00+00:00"
