"""Each job rule in one place, as the API shows it: the event catalogue, the flags, search, fits, wiring."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.conftest import FakeClock, Keys
from tests.factories import act, create_account, create_job, stage, workflow_body
from tracker.demo import CAR_REPAIR, GARAGE_CALENDAR, seed_history
from tracker.domain.events import EVENT_PAYLOADS, EventType
from tracker.domain.money import Money
from tracker.estimates.eventlog import read_log
from tracker.scheduler import recompute_open_jobs
from tracker.services import workflows
from tracker.services.bootstrap import Services, build_services
from tracker.services.calendars import check_calendar
from tracker.services.imports import import_history
from tracker.services.jobs import NewJob
from tracker.settings import Settings


def services_of(client: httpx.AsyncClient) -> Services:
    services: Services = client._transport.app.state.services  # type: ignore[attr-defined]
    return services


async def history(client: httpx.AsyncClient, keys: Keys, job: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.get(f"/jobs/{job['id']}/history", headers=keys.staff)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def assert_in_catalogue(events: list[dict[str, Any]]) -> None:
    for event in events:
        msgspec.convert(event["data"], EVENT_PAYLOADS[EventType(event["type"])], strict=True)


async def test_every_event_a_job_goes_through_is_shaped_as_the_catalogue_says(
    client, auth, shop, clock: FakeClock
):
    job = await create_job(client, auth.staff, shop["account"]["id"], promised_on="2026-03-02")
    job = (
        await client.patch(f"/jobs/{job['id']}", json={"version": 1, "title": "Discs"}, headers=auth.staff)
    ).json()
    for action, body in [
        ("advance", {}),
        ("move", {"stage": "intake", "reason": "Wrong diagnosis"}),
        ("hold", {"reason": "Waiting for the customer"}),
        ("resume", {}),
        ("move", {"stage": "ready", "reason": "Nothing else to do"}),
    ]:
        clock.advance(hours=1)
        response = await act(client, auth.staff, job, action, **body)
        assert response.status_code == 200, response.text
        job = response.json()
    cost = {"version": job["version"], "kind": "labour", "amount": "80.00"}
    job = (await client.post(f"/jobs/{job['id']}/costs", json=cost, headers=auth.staff)).json()["job"]
    note = {"version": job["version"], "body": "Ready tomorrow", "visibility": "public"}
    job = (await client.post(f"/jobs/{job['id']}/notes", json=note, headers=auth.staff)).json()["job"]
    for action, body in [("complete", {}), ("reopen", {"reason": "Squeak"}), ("cancel", {"reason": "Sold"})]:
        job = (await act(client, auth.staff, job, action, **body)).json()

    events = await history(client, auth, job)

    assert_in_catalogue(events)
    assert {"created", "updated", "advance", "move", "hold", "resume", "cost_added", "note_added"} <= {
        e["type"] for e in events
    }
    assert {"complete", "reopen", "cancel", "at_risk"} <= {e["type"] for e in events}


async def test_the_created_event_shows_the_quote_as_the_job_does(client, auth, shop):
    job = await create_job(client, auth.staff, shop["account"]["id"])

    created = next(e for e in await history(client, auth, job) if e["type"] == "created")

    assert created["data"]["quote"] == job["quote"]


async def test_the_at_risk_flag_and_the_at_risk_events_read_one_rule(client, auth, shop):
    job = await create_job(client, auth.staff, shop["account"]["id"], promised_on="2026-03-02")
    assert job["estimate"]["at_risk"] is True
    assert [e["type"] for e in await history(client, auth, job)].count("at_risk") == 1

    later = {"version": job["version"], "promised_on": "2026-06-30"}
    job = (await client.patch(f"/jobs/{job['id']}", json=later, headers=auth.staff)).json()

    assert job["estimate"]["at_risk"] is False
    types = [e["type"] for e in await history(client, auth, job)]
    assert types.count("at_risk") == 1 and types.count("back_on_track") == 1


LOG_HEADER = "case,task,done_at,cost\n"


def write_log(path: Path, cases: int) -> Path:
    """Finished cases of the factories' workflow: intake, repair, ready, each a few working hours."""
    rows = []
    for case in range(cases):
        day = 5 + case % 20
        rows += [
            f"c{case},Welcome,2025-01-{day:02d}T09:00:00,0",
            f"c{case},Fix,2025-01-{day:02d}T{12 + case % 5}:00:00,100",
            f"c{case},Hand over,2025-01-{day + 1:02d}T10:00:00,0",
        ]
    path.write_text(LOG_HEADER + "\n".join(rows) + "\n")
    return path


async def import_cases(tmp_path: Path, clock: FakeClock, cases: int) -> None:
    log = read_log(
        write_log(tmp_path / "log.csv", cases), case="case", activity="task", timestamp="done_at", cost="cost"
    )
    mapping = {"Welcome": "intake", "Fix": "repair", "Hand over": "ready"}
    await import_history(log, "car-repair", mapping=mapping, now=clock.now)


async def jobs_found(client: httpx.AsyncClient, keys: Keys, text: str) -> set[str]:
    response = await client.get("/jobs", params={"q": text, "limit": 200}, headers=keys.staff)
    assert response.status_code == 200, response.text
    return {job["reference"] for job in response.json()["items"]}


async def test_search_finds_imported_jobs_by_reference_and_by_title(client, auth, shop, clock, tmp_path):
    await import_cases(tmp_path, clock, cases=3)

    assert await jobs_found(client, auth, "imported case c1") == {"IMP-c1"}
    assert await jobs_found(client, auth, "IMP-c2") == {"IMP-c2"}
    assert await jobs_found(client, auth, "imported case") == {"IMP-c0", "IMP-c1", "IMP-c2"}


async def test_search_finds_the_demo_jobs_by_reference_and_by_title(client, auth, clock):
    await workflows.create_workflow(
        "car-repair",
        CAR_REPAIR,
        "EUR",
        now=clock.now - timedelta(days=500),
        calendar=check_calendar(GARAGE_CALENDAR),
    )
    account = await create_account(client, auth.staff, kind="institutional", name="Fleet")
    await seed_history("car-repair", account["id"], count=4, rng=random.Random(3), now=clock.now)

    past = await jobs_found(client, auth, "past car repair")
    assert past and all(reference.startswith("H-CAR-") for reference in past)
    first = sorted(past)[0]
    assert await jobs_found(client, auth, first.lower()) == {first}
    events = []
    for reference in past:
        [job] = (await client.get("/jobs", params={"q": reference}, headers=auth.staff)).json()["items"]
        events += await history(client, auth, job)
    assert {e["type"] for e in events} == {"created", "complete"}
    assert_in_catalogue(events)


async def test_a_request_never_fits_history_a_refit_does(client, auth, shop, clock, tmp_path):
    await import_cases(tmp_path, clock, cases=60)

    before = await create_job(client, auth.staff, shop["account"]["id"])
    assert before["estimate"]["basis"] == "planned"  # history exists, but no fit is stored yet

    await services_of(client).estimates.refit("car-repair", now=clock.now)
    after = await create_job(client, auth.staff, shop["account"]["id"])

    assert after["estimate"]["basis"] != "planned"


async def test_services_built_for_the_cli_and_the_demo_estimate_each_change_like_the_app(
    client, auth, shop, settings: Settings, clock
):
    services = build_services(settings)

    created = await services.jobs.create(
        NewJob(shop["account"]["id"], "car-repair", "Brakes", Money(Decimal("640.00"), "EUR")),
        actor="staff:cli",
        now=clock.now,
    )

    assert created.estimate is not None
    assert created.estimate.computed_at == clock.now
    assert created.public_url.startswith("https://status.example.test/status/")
    read = (await client.get(f"/jobs/{created.id}", headers=auth.staff)).json()
    assert read["estimate"]["completion"]["p50"] == created.estimate.completion_p50.isoformat().replace(
        "+00:00", "Z"
    )


@pytest.fixture
async def queue_shop(client, auth) -> dict[str, Any]:
    """A workflow whose repair stage takes one job at a time."""
    body = workflow_body()
    body["stages"] = [stage("intake"), stage("repair", capacity=1), stage("check"), stage("ready")]
    response = await client.post("/workflows", json=body, headers=auth.admin)
    assert response.status_code == 201, response.text
    return {"account": await create_account(client, auth.staff)}


async def test_the_explanation_lists_the_stages_in_the_order_the_job_meets_them(client, auth, queue_shop):
    job = await create_job(client, auth.staff, queue_shop["account"]["id"])
    job = (await act(client, auth.staff, job, "advance")).json()

    body = (await client.get(f"/jobs/{job['id']}/estimate", headers=auth.staff)).json()

    ahead = body["stages_ahead"]
    assert [s["stage"] for s in ahead] == ["repair", "check", "ready"]
    assert [s["current"] for s in ahead] == [True, False, False]
    assert all(isinstance(s["samples"], int) for s in ahead)
    assert isinstance(body["samples"], int)
    assert isinstance(body["p90_calibration"]["samples"], int)


async def test_the_remaining_hours_include_the_wait_for_a_busy_stage(client, auth, queue_shop):
    jobs = [await create_job(client, auth.staff, queue_shop["account"]["id"]) for _ in range(3)]
    jobs = [(await act(client, auth.staff, job, "advance")).json() for job in jobs]

    served, _, waiting = [
        (await client.get(f"/jobs/{job['id']}/estimate", headers=auth.staff)).json() for job in jobs
    ]

    assert served["queue_wait_working_hours"] == 0
    wait = waiting["queue_wait_working_hours"]
    assert wait > 0
    expected = served["remaining_working_hours"]["p50"] + wait
    assert waiting["remaining_working_hours"]["p50"] == pytest.approx(expected, abs=0.02)
    assert waiting["remaining_working_hours"]["p90"] >= waiting["remaining_working_hours"]["p50"]


async def test_a_job_is_flagged_stuck_once_its_stuck_event_is_recorded_and_no_longer_after_it_moves_on(
    client, auth, shop, clock: FakeClock, settings: Settings
):
    job = await create_job(client, auth.staff, shop["account"]["id"])
    assert job["estimate"]["stuck"] is False

    clock.advance(days=10)  # far past the intake stage's P90 of a few hours
    await recompute_open_jobs(services_of(client).estimates, settings, clock)
    job = (await client.get(f"/jobs/{job['id']}", headers=auth.staff)).json()

    assert job["estimate"]["stuck"] is True
    assert [e["type"] for e in await history(client, auth, job)].count("stuck") == 1
    moved_on = (await act(client, auth.staff, job, "advance")).json()
    assert moved_on["estimate"]["stuck"] is False
