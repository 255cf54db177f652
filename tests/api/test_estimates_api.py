"""Estimates as staff and integrators see them: on every job, explained, kept as history, recomputed."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tests.conftest import FakeClock
from tests.factories import act, create_account, create_job, workflow_body
from tracker.estimates.eventlog import EventLog
from tracker.scheduler import recompute_open_jobs, tick_start
from tracker.services import keys
from tracker.services.estimates import EstimateService
from tracker.services.imports import import_history
from tracker.settings import Settings

WEEKDAYS_FR = {
    "country": "FR",
    "opening_hours": {d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
}


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
async def garage(client, auth) -> dict[str, Any]:
    body = workflow_body(calendar=WEEKDAYS_FR)
    response = await client.post("/workflows", json=body, headers=auth.admin)
    assert response.status_code == 201, response.text
    account = await create_account(client, auth.staff)
    return {"account": account}


async def test_a_new_job_carries_a_planned_estimate_in_the_future(client, auth, garage, clock: FakeClock):
    job = await create_job(client, auth.staff, garage["account"]["id"])
    estimate = job["estimate"]
    assert estimate is not None
    p50, p90 = when(estimate["completion"]["p50"]), when(estimate["completion"]["p90"])
    assert clock.now < p50 <= p90
    assert estimate["basis"].startswith("planned")
    assert estimate["computed_at"] == "2026-03-02T09:00:00Z"
    assert float(estimate["cost"]["p50"]["amount"]) <= float(estimate["cost"]["p90"]["amount"])
    assert estimate["overdue"] is False


async def test_the_completion_range_is_counted_in_working_time(client, auth, garage, clock: FakeClock):
    job = await create_job(client, auth.staff, garage["account"]["id"])
    for field in ("p50", "p90"):
        local = when(job["estimate"]["completion"][field]).astimezone(ZoneInfo("Europe/Paris"))
        assert local.weekday() < 5, local
        assert 8 <= local.hour < 18 or (local.hour == 18 and local.minute == 0), local


async def test_each_change_refreshes_the_estimate_in_the_same_response(
    client, auth, garage, clock: FakeClock
):
    job = await create_job(client, auth.staff, garage["account"]["id"])
    clock.advance(hours=3)
    advanced = (await act(client, auth.staff, job, "advance")).json()
    assert advanced["estimate"]["computed_at"] == "2026-03-02T12:00:00Z"
    history = (await client.get(f"/jobs/{job['id']}/estimates", headers=auth.integrator)).json()
    assert len(history) >= 1
    assert history[0]["computed_at"] == "2026-03-02T12:00:00Z"


async def test_a_closed_job_has_no_estimate(client, auth, garage):
    job = await create_job(client, auth.staff, garage["account"]["id"], start_stage="ready")
    done = (await act(client, auth.staff, job, "complete")).json()
    assert done["estimate"] is None
    response = await client.get(f"/jobs/{job['id']}/estimate", headers=auth.staff)
    assert response.status_code == 409


async def test_the_explanation_lists_stages_ahead_and_days_off(client, auth, garage):
    job = await create_job(client, auth.staff, garage["account"]["id"])
    response = await client.get(f"/jobs/{job['id']}/estimate", headers=auth.integrator)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["current_stage"] == "intake"
    ahead = [stage["stage"] for stage in body["stages_ahead"]]
    assert {"repair", "check", "ready"} <= set(ahead)
    assert body["calendar_time_zone"] == "Europe/Paris"
    assert body["remaining_working_hours"]["p50"] <= body["remaining_working_hours"]["p90"]
    assert body["basis"] in {"planned", "blend", "history"}
    assert body["estimator"]["chosen"] in {
        "direct",
        "simulation",
        "median",
        "direct_simulation_blend",
        "direct_median_blend",
    }
    assert body["estimator"]["reason"]
    assert (body["estimator"]["why"], body["estimator"]["outcomes"]) == ("few_outcomes", 0)  # no history yet
    # 2026-03-02 is a Monday; four stages of up to 8 working hours each run into the weekend or not,
    # but every listed day off must really be one.
    for day in body["non_working_days"]:
        assert datetime.fromisoformat(day).weekday() >= 5


async def test_a_job_past_its_announced_date_is_overdue_and_gets_a_future_range(
    client, auth, garage, clock, settings
):
    job = await create_job(client, auth.staff, garage["account"]["id"])
    first_p50 = when(job["estimate"]["completion"]["p50"])
    clock.advance(days=30)
    estimates: EstimateService = client._transport.app.state.services.estimates
    await recompute_open_jobs(estimates, settings, clock)
    later = (await client.get(f"/jobs/{job['id']}", headers=auth.staff)).json()
    assert when(later["estimate"]["completion"]["p50"]) > clock.now > first_p50
    assert later["estimate"]["overdue"] is True


async def test_cost_over_the_quote_is_flagged(client, auth, garage):
    job = await create_job(client, auth.staff, garage["account"]["id"])
    added = await client.post(
        f"/jobs/{job['id']}/costs",
        json={"version": 1, "kind": "material", "amount": "5000.00"},
        headers=auth.staff,
    )
    updated = added.json()["job"]
    assert updated["actual_cost"] == {"amount": "5000.00", "currency": "EUR"}
    assert float(updated["estimate"]["cost"]["p50"]["amount"]) >= 5000
    assert updated["estimate"]["over_budget"] is True


async def test_costs_within_the_stage_share_of_the_quote_leave_the_projection_alone(client, auth, garage):
    # Four stages priced alike: each has 160 of the 640 quote.
    job = await create_job(client, auth.staff, garage["account"]["id"])
    assert job["estimate"]["cost"]["p50"]["amount"] == "640.00"
    assert job["estimate"]["over_budget"] is False

    async def add(amount: str, version: int) -> dict[str, Any]:
        body = {"version": version, "kind": "labour", "amount": amount}
        response = await client.post(f"/jobs/{job['id']}/costs", json=body, headers=auth.staff)
        assert response.status_code == 201, response.text
        return dict(response.json()["job"])

    within = await add("150.00", 1)
    beyond = await add("50.00", within["version"])
    moved_on = (await act(client, auth.staff, beyond, "advance")).json()

    assert within["estimate"]["cost"]["p50"]["amount"] == "640.00"
    assert beyond["estimate"]["cost"]["p50"]["amount"] == "680.00"  # 40 over the stage's 160
    assert moved_on["estimate"]["cost"]["p50"]["amount"] == "680.00"  # 200 spent + 3 x 160 planned
    events = (await client.get(f"/jobs/{job['id']}/history", headers=auth.staff)).json()["items"]
    # Only the overrun moved the announced cost (by more than 5 %).
    assert [e["type"] for e in events] == ["created", "cost_added", "cost_added", "cost_moved", "advance"]


@pytest.mark.parametrize("gap_hours", [0, 1])  # 0: the cost and the stage changes share their instant
async def test_a_new_job_starts_above_its_quote_once_jobs_like_it_overran(
    client, auth, garage, clock: FakeClock, gap_hours: int
):
    for _ in range(3):  # each quoted 640, each cost 800
        job = await create_job(client, auth.staff, garage["account"]["id"])
        clock.advance(hours=gap_hours)
        body = {"version": job["version"], "kind": "labour", "amount": "800.00"}
        job = (await client.post(f"/jobs/{job['id']}/costs", json=body, headers=auth.staff)).json()["job"]
        for _ in range(3):
            clock.advance(hours=gap_hours)
            job = (await act(client, auth.staff, job, "advance")).json()
        assert (await act(client, auth.staff, job, "complete")).status_code == 200
    estimates: EstimateService = client._transport.app.state.services.estimates
    await estimates.refit("car-repair", now=clock.now)

    job = await create_job(client, auth.staff, garage["account"]["id"])

    # From intake on they spent 800 where 640 was planned (ratio 1.25, overrun 160): with 3 samples
    # that history weighs 3 / (3 + 10) against the quote.
    assert job["estimate"]["cost"]["p50"]["amount"] == "676.92"
    assert job["estimate"]["basis"].endswith("blend")


async def test_the_explanation_says_what_the_p90_factor_was_learned_on(
    client, auth, garage, clock: FakeClock
):
    job = await create_job(client, auth.staff, garage["account"]["id"])
    for action in ("advance", "advance", "advance", "complete"):
        clock.advance(hours=2)
        job = (await act(client, auth.staff, job, action)).json()
    running = await create_job(client, auth.staff, garage["account"]["id"])
    planned = (await client.get(f"/jobs/{running['id']}/estimate", headers=auth.staff)).json()
    estimates: EstimateService = client._transport.app.state.services.estimates

    await estimates.refit("car-repair", now=clock.now)

    learned = (await client.get(f"/jobs/{running['id']}/estimate", headers=auth.staff)).json()
    # The plan alone: no finished job to scale it on.
    unscaled = {"factor": 1.0, "coverage": None, "samples": 0, "source": "none"}
    assert planned["p90_calibration"] == unscaled
    calibration = learned["p90_calibration"]
    assert calibration["source"] == "in-sample"  # the newest finished jobs: the one so far
    assert calibration["samples"] > 0
    assert calibration["factor"] >= 1.0  # jobs the model has seen may only widen it


async def _import_same_day_jobs(clock: FakeClock, n: int = 60) -> None:
    """``n`` past jobs on weekday mornings, each through its four stages in six working hours."""
    days = [d for d in range(1, 3 * n) if (clock.now - timedelta(days=d)).weekday() < 5][:n]
    start = np.array([(clock.now - timedelta(days=d)).timestamp() for d in days])
    log = EventLog.from_arrays(
        np.repeat(np.arange(n), 4),
        np.tile([0, 1, 2, 3], n),
        (start[:, None] + np.array([0.0, 2.0, 4.0, 6.0]) * 3600.0).ravel(),
        None,
        tuple(f"c{c}" for c in range(n)),
        ("intake", "repair", "check", "ready"),
    )
    await import_history(log, "car-repair", mapping={}, now=clock.now)


async def _calibration(client, auth, garage) -> dict[str, Any]:
    running = await create_job(client, auth.staff, garage["account"]["id"])
    explained = await client.get(f"/jobs/{running['id']}/estimate", headers=auth.staff)
    return dict(explained.json()["p90_calibration"])


async def test_jobs_that_ran_past_their_p90_widen_the_next_refits_p90(client, auth, garage, clock: FakeClock):
    await _import_same_day_jobs(clock)
    estimates: EstimateService = client._transport.app.state.services.estimates
    await estimates.refit("car-repair", now=clock.now)
    in_sample = await _calibration(client, auth, garage)
    jobs = [await create_job(client, auth.staff, garage["account"]["id"]) for _ in range(20)]
    assert all(job["estimate"]["basis"].startswith("history") for job in jobs)

    for _ in range(13):  # the eight left open run late: each day's recompute moves and keeps their estimate
        clock.advance(days=1)
        await estimates.recompute_jobs([job["id"] for job in jobs[12:]], now=clock.now)
    clock.advance(days=1)  # twelve are done two weeks later, eight still open: all past their P90
    for job in jobs[:12]:
        for action in ("advance", "advance", "advance", "complete"):
            job = (await act(client, auth.staff, job, action)).json()
    await estimates.refit("car-repair", now=clock.now)

    learned = await _calibration(client, auth, garage)
    assert in_sample["source"] == "in-sample"
    assert learned["source"] == "evidence"
    # One estimate per job, however often a late one's was kept: the 20, and the one made to read it.
    assert learned["samples"] == 20 + 1
    assert learned["factor"] > 1.5 * in_sample["factor"]


async def test_jobs_done_well_within_their_p90_narrow_the_next_refits_p90(
    client, auth, garage, clock: FakeClock
):
    await _import_same_day_jobs(clock)
    estimates: EstimateService = client._transport.app.state.services.estimates
    await estimates.refit("car-repair", now=clock.now)
    in_sample = await _calibration(client, auth, garage)
    for _ in range(20):  # each done within ten minutes
        job = await create_job(client, auth.staff, garage["account"]["id"])
        for action in ("advance", "advance", "advance", "complete"):
            clock.advance(minutes=2)
            job = (await act(client, auth.staff, job, action)).json()

    clock.advance(days=3)
    await estimates.refit("car-repair", now=clock.now)

    learned = await _calibration(client, auth, garage)
    assert learned["source"] == "evidence"
    assert learned["factor"] < in_sample["factor"]  # out of sample, the evidence may narrow it too


async def test_a_job_moved_on_by_someone_whose_jobs_linger_is_expected_to_take_longer(
    client, auth, garage, clock: FakeClock
):
    # History: after Ann's intake a job is repaired and ready within hours; after Bob's, in days.
    n = 120
    bob = np.arange(n) % 2 == 1
    start = np.array([(clock.now - timedelta(days=200 - c)).timestamp() for c in range(n)])
    repaired = start + np.where(bob, 4 * 86_400.0, 2 * 3600.0) * np.linspace(0.8, 1.2, n)
    log = EventLog.from_arrays(
        np.repeat(np.arange(n), 3),
        np.tile([0, 1, 2], n),
        np.column_stack([start, repaired, repaired + 3600.0]).ravel(),
        None,
        tuple(f"c{c}" for c in range(n)),
        ("intake", "repair", "ready"),
        resource=np.column_stack([bob, bob, bob]).ravel().astype(np.int64),
        resource_names=("Ann", "Bob"),  # as a log names them; their keys act as staff:Ann, staff:Bob
    )
    await import_history(log, "car-repair", mapping={}, now=clock.now)
    estimates: EstimateService = client._transport.app.state.services.estimates
    await estimates.refit("car-repair", now=clock.now)

    explained, completion = {}, {}
    for name in ("Ann", "Bob"):
        issued = await keys.create_key(name, "staff", now=clock.now)
        job = await create_job(client, auth.staff, garage["account"]["id"])
        moved_on = await act(client, {"Authorization": f"Bearer {issued.secret}"}, job, "advance")
        assert moved_on.status_code == 200, moved_on.text
        completion[name] = datetime.fromisoformat(moved_on.json()["estimate"]["completion"]["p50"])
        response = await client.get(f"/jobs/{job['id']}/estimate", headers=auth.staff)
        explained[name] = response.json()

    assert {e["estimator"]["chosen"] for e in explained.values()} == {"direct_by_resource"}
    assert {e["estimator"]["why"] for e in explained.values()} == {"clearly_best"}
    assert all(e["estimator"]["outcomes"] > 0 for e in explained.values())
    ann, bob_hours = (explained[name]["remaining_working_hours"]["p50"] for name in ("Ann", "Bob"))
    assert bob_hours > 5 * ann
    # The job's own snapshot, recomputed when it moved on, says the same.
    assert completion["Bob"] - completion["Ann"] > timedelta(days=1)


async def test_a_promise_before_the_p90_puts_the_job_at_risk_once(client, auth, garage, clock: FakeClock):
    job = await create_job(client, auth.staff, garage["account"]["id"], promised_on="2026-03-02")
    assert job["estimate"]["at_risk"] is True
    again = (
        await client.post(
            f"/jobs/{job['id']}/notes", json={"version": 1, "body": "Checked"}, headers=auth.staff
        )
    ).json()["job"]
    assert again["estimate"]["at_risk"] is True
    events = (await client.get(f"/jobs/{job['id']}/history", headers=auth.staff)).json()["items"]
    assert [e["type"] for e in events].count("at_risk") == 1
    assert next(e for e in events if e["type"] == "at_risk")["actor"] == "tracker:estimator"


async def test_the_scheduled_tick_recomputes_every_open_job_once(client, auth, garage, clock, settings):
    jobs = [await create_job(client, auth.staff, garage["account"]["id"]) for _ in range(5)]
    await act(client, auth.staff, jobs[0], "hold", reason="Waiting for parts")
    clock.advance(minutes=10)
    estimates: EstimateService = client._transport.app.state.services.estimates
    assert await recompute_open_jobs(estimates, settings, clock) == 5
    assert await recompute_open_jobs(estimates, settings, clock) == 0  # same tick: nothing left to do
    clock.advance(seconds=settings.recompute_interval_s)
    assert await recompute_open_jobs(estimates, settings, clock) == 5


def test_ticks_are_aligned_so_processes_agree():
    moment = datetime.fromisoformat("2026-03-02T09:07:31+00:00")
    assert tick_start(moment, 300).isoformat() == "2026-03-02T09:05:00+00:00"
    assert tick_start(moment, 3600).isoformat() == "2026-03-02T09:00:00+00:00"


class RecordingEstimates(EstimateService):
    """Counts the jobs each instance recomputes (to prove two schedulers never share one)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    async def _estimate(self, connection, jobs, *, now, queues):
        self.seen.extend(jobs.id.tolist())
        await asyncio.sleep(0.01)  # hold the claimed batch a moment, as a slow process would
        return await super()._estimate(connection, jobs, now=now, queues=queues)


@pytest.mark.postgres_only
async def test_two_schedulers_on_one_postgres_split_the_work(
    client, auth, garage, clock, settings: Settings, database_url
):
    if database_url.startswith("sqlite"):
        pytest.skip("row locks need PostgreSQL; SQLite has one writer")
    for _ in range(40):
        await create_job(client, auth.staff, garage["account"]["id"])
    clock.advance(seconds=settings.recompute_interval_s)
    first, second = RecordingEstimates(), RecordingEstimates()
    start = tick_start(clock.now, settings.recompute_interval_s)
    done = await asyncio.gather(
        first.recompute_tick(now=clock.now, tick_start=start, batch_size=4),
        second.recompute_tick(now=clock.now, tick_start=start, batch_size=4),
    )
    assert sum(done) == 40
    assert not set(first.seen) & set(second.seen)
    assert len(set(first.seen)) == len(first.seen) and len(set(second.seen)) == len(second.seen)
    assert len(first.seen) + len(second.seen) == 40
    assert first.seen and second.seen


class LosesItsFirstBatch(EstimateService):
    """A process that fails while estimating its first batch (a crash, a lost connection)."""

    async def _estimate(self, connection, jobs, *, now, queues):
        if not getattr(self, "failed", False):
            self.failed = True
            raise ConnectionResetError("lost the database in the middle of a batch")
        return await super()._estimate(connection, jobs, now=now, queues=queues)


async def test_a_batch_lost_mid_tick_is_rolled_back_and_done_by_the_next_sweep(
    client, auth, garage, clock, settings: Settings
):
    jobs = [await create_job(client, auth.staff, garage["account"]["id"]) for _ in range(10)]
    clock.advance(seconds=settings.recompute_interval_s)
    start = tick_start(clock.now, settings.recompute_interval_s)
    with pytest.raises(ConnectionResetError):
        await LosesItsFirstBatch().recompute_tick(now=clock.now, tick_start=start, batch_size=4)
    rest = await EstimateService().recompute_tick(now=clock.now, tick_start=start, batch_size=4)
    assert rest >= 4  # at least the lost batch: nothing of it was written
    for job in jobs:
        fresh = (await client.get(f"/jobs/{job['id']}", headers=auth.staff)).json()
        assert when(fresh["estimate"]["computed_at"]) == clock.now
    assert await EstimateService().recompute_tick(now=clock.now, tick_start=start, batch_size=4) == 0


async def test_time_on_hold_stops_the_stage_clock(client, auth, garage, clock: FakeClock):
    job = await create_job(client, auth.staff, garage["account"]["id"])  # Monday 09:00 UTC, 10:00 in Paris
    clock.advance(hours=2)
    job = (await act(client, auth.staff, job, "hold", reason="Customer unreachable")).json()
    clock.advance(hours=3)
    job = (await act(client, auth.staff, job, "resume")).json()
    clock.advance(hours=1)
    explained = (await client.get(f"/jobs/{job['id']}/estimate", headers=auth.staff)).json()
    assert explained["working_hours_in_stage"] == 3.0  # 2 h before the hold and 1 h after it
