"""The jobs API: creation, changes under optimistic locking, actions, costs, notes and history."""

from __future__ import annotations

import asyncio
import base64
import json
from decimal import Decimal
from typing import Any

import httpx

from tests.conftest import FakeClock, Keys
from tests.factories import act, create_job, job_body


async def test_creating_a_job_starts_it_at_the_first_stage(client, auth, shop):
    response = await client.post(
        "/jobs", json=job_body(shop["account"]["id"], promised_on="2026-03-20"), headers=auth.staff
    )
    assert response.status_code == 201
    job = response.json()
    assert job["status"] == "open"
    assert job["stage"] == {"key": "intake", "label": "Intake", "entered_at": "2026-03-02T09:00:00Z"}
    assert job["quote"] == {"amount": "640.00", "currency": "EUR"}
    assert job["workflow"] == {"key": "car-repair", "version": 1}
    assert job["version"] == 1
    assert job["promised_on"] == "2026-03-20"
    assert job["reference"].startswith("J-2026-")
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == f"/jobs/{job['id']}"
    token = job["status_page_url"].removeprefix("https://status.example.test/status/")
    assert len(token) >= 32  # at least 128 random bits, url-safe


async def test_each_job_gets_its_own_unguessable_status_token(client, auth, shop):
    first = await create_job(client, auth.staff, shop["account"]["id"])
    second = await create_job(client, auth.staff, shop["account"]["id"])
    assert first["status_page_url"] != second["status_page_url"]


async def test_a_chosen_reference_must_be_unique(client, auth, shop):
    await create_job(client, auth.staff, shop["account"]["id"], reference="RO-2026-001")
    response = await client.post(
        "/jobs", json=job_body(shop["account"]["id"], reference="RO-2026-001"), headers=auth.staff
    )
    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_reference"


async def test_a_job_can_start_at_a_named_stage(client, auth, shop):
    job = await create_job(client, auth.staff, shop["account"]["id"], start_stage="check")
    assert job["stage"]["key"] == "check"


async def test_creation_refuses_bad_input_naming_the_field(client, auth, shop):
    account_id = shop["account"]["id"]
    cases: list[tuple[dict[str, Any], str]] = [
        (job_body(account_id, quote={"amount": "10.001", "currency": "EUR"}), "quote.amount"),
        (job_body(account_id, quote={"amount": "-1", "currency": "EUR"}), "quote.amount"),
        (job_body(account_id, quote={"amount": "10", "currency": "ZZZ"}), "quote.currency"),
        (job_body(account_id, workflow="Not a key"), "workflow"),
        (job_body(0), "account_id"),
        (job_body(2**31), "account_id"),
        ({**job_body(account_id), "account_id": "1"}, "account_id"),
        (job_body(account_id, quote={"amount": 10, "currency": "EUR"}), "quote.amount"),
        (job_body(account_id, title="Brake\x00discs"), "title"),
        (job_body(account_id, title="   "), "title"),
        (job_body(account_id, reference="has space"), "reference"),
        (job_body(account_id, colour="red"), "colour"),
        (job_body(account_id, promised_on="next week"), "promised_on"),
        (job_body(account_id, promised_on="9990-01-01"), "promised_on"),  # today is 2026-03-02
        (job_body(account_id, promised_on="2016-02-01"), "promised_on"),
        ({"workflow": "car-repair"}, "account_id"),
    ]
    for body, field in cases:
        response = await client.post("/jobs", json=body, headers=auth.staff)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["errors"][0]["field"] == field, (body, problem)
        assert problem["errors"][0]["reason"]
    listing = await client.get("/jobs", headers=auth.staff)
    assert listing.json()["items"] == []


async def test_creation_that_clashes_with_other_records_is_a_conflict_naming_the_rule(client, auth, shop):
    account_id = shop["account"]["id"]
    cases: list[tuple[dict[str, Any], str]] = [
        (job_body(account_id, quote={"amount": "10.00", "currency": "USD"}), "currency_mismatch"),
        (job_body(account_id, workflow="nope"), "unknown_workflow"),
        (job_body(9999), "unknown_account"),
        (job_body(account_id, start_stage="nowhere"), "unknown_stage"),
    ]
    for body, code in cases:
        response = await client.post("/jobs", json=body, headers=auth.staff)
        assert response.status_code == 409, (body, response.text)
        assert response.json()["code"] == code
    listing = await client.get("/jobs", headers=auth.staff)
    assert listing.json()["items"] == []


async def test_a_body_that_is_not_json_gets_400(client, auth, shop):
    response = await client.post(
        "/jobs", content=b"{not json", headers={**auth.staff, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["status"] == 400


async def test_getting_a_job_returns_its_etag(client, auth, shop):
    job = await create_job(client, auth.staff, shop["account"]["id"])
    response = await client.get(f"/jobs/{job['id']}", headers=auth.integrator)
    assert response.status_code == 200
    assert response.json() == job
    assert response.headers["etag"] == '"1"'
    missing = await client.get("/jobs/424242", headers=auth.staff)
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


async def test_updating_a_job_needs_the_version_it_read(client, auth, shop):
    job = await create_job(client, auth.staff, shop["account"]["id"], promised_on="2026-03-20")
    url = f"/jobs/{job['id']}"
    no_version = await client.patch(url, json={"title": "New"}, headers=auth.staff)
    assert no_version.status_code == 428
    updated = await client.patch(
        url, json={"title": "New title", "promised_on": None}, headers={**auth.staff, "If-Match": '"1"'}
    )
    assert updated.status_code == 200
    assert updated.json()["title"] == "New title"
    assert updated.json()["promised_on"] is None
    assert updated.json()["version"] == 2
    stale_header = await client.patch(url, json={"title": "Lost"}, headers={**auth.staff, "If-Match": '"1"'})
    assert stale_header.status_code == 412
    assert stale_header.json()["current_version"] == 2
    stale_field = await client.patch(url, json={"title": "Lost", "version": 1}, headers=auth.staff)
    assert stale_field.status_code == 409
    assert stale_field.json()["code"] == "stale_version"
    current = await client.get(url, headers=auth.staff)
    assert current.json()["title"] == "New title"


async def test_if_match_may_list_etags_but_a_job_change_may_not_use_the_wildcard(client, auth, shop):
    job = await create_job(client, auth.staff, shop["account"]["id"])
    url = f"/jobs/{job['id']}"

    def patch(if_match: str, title: str) -> Any:
        return client.patch(url, json={"title": title}, headers={**auth.staff, "If-Match": if_match})

    wildcard = await patch("*", "Any version")
    assert wildcard.status_code == 428, wildcard.text
    assert "If-Match: *" in wildcard.json()["detail"]
    assert (await patch('"5", W/"1"', "Listed")).json()["version"] == 2
    assert (await patch('"1", "3"', "Stale")).status_code == 412
    assert (await patch('"' + "9" * 5000 + '"', "Huge")).status_code == 412
    assert (await client.get(url, headers=auth.staff)).json()["title"] == "Listed"


async def test_an_update_that_changes_nothing_leaves_the_job_as_it_was(client, auth, shop):
    job = await create_job(client, auth.staff, shop["account"]["id"], promised_on="2036-03-01")
    response = await client.patch(f"/jobs/{job['id']}", json={"version": 1}, headers=auth.staff)
    assert response.status_code == 200
    assert response.json() == job
    same = {"version": 1, "title": job["title"], "quote": job["quote"], "promised_on": job["promised_on"]}
    response = await client.patch(f"/jobs/{job['id']}", json=same, headers=auth.staff)
    assert response.status_code == 200
    assert response.json() == job
    history = await client.get(f"/jobs/{job['id']}/history", headers=auth.staff)
    assert [event["type"] for event in history.json()["items"]] == ["created"]


async def test_a_promise_moved_beyond_ten_years_is_refused_naming_it(client, auth, shop):
    job = await create_job(client, auth.staff, shop["account"]["id"])
    response = await client.patch(
        f"/jobs/{job['id']}", json={"version": 1, "promised_on": "2036-03-04"}, headers=auth.staff
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "promised_on"
    assert (await client.get(f"/jobs/{job['id']}", headers=auth.staff)).json() == job


async def test_the_quote_changes_in_the_jobs_currency_only(client, auth, shop):
    job = await create_job(client, auth.staff, shop["account"]["id"])
    ok = await client.patch(
        f"/jobs/{job['id']}",
        json={"version": 1, "quote": {"amount": "700", "currency": "EUR"}},
        headers=auth.staff,
    )
    assert ok.json()["quote"] == {"amount": "700.00", "currency": "EUR"}
    other = await client.patch(
        f"/jobs/{job['id']}",
        json={"version": 2, "quote": {"amount": "700", "currency": "USD"}},
        headers=auth.staff,
    )
    assert other.status_code == 409
    assert other.json()["code"] == "currency_mismatch"


async def test_deleting_a_job_needs_its_etag(client, auth, shop):
    job = await create_job(client, auth.staff, shop["account"]["id"])
    assert (await act(client, auth.staff, job, "cancel", reason="Duplicate")).status_code == 200
    url = f"/jobs/{job['id']}"
    why = {"reason": "Entered twice by mistake"}

    def delete(**headers: str) -> Any:
        return client.request("DELETE", url, json=why, headers={**auth.admin, **headers})

    assert (await delete()).status_code == 428
    assert (await delete(**{"If-Match": '"7"'})).status_code == 412
    assert (await delete(**{"If-Match": '"2"'})).status_code == 204
    assert (await client.get(url, headers=auth.staff)).status_code == 404


async def test_a_job_goes_from_intake_to_completed(client, auth, shop, clock: FakeClock):
    job = await create_job(client, auth.staff, shop["account"]["id"])
    for expected_stage in ("repair", "check", "ready"):
        clock.advance(hours=5)
        response = await act(client, auth.staff, job, "advance")
        assert response.status_code == 200, response.text
        job = response.json()
        assert job["stage"]["key"] == expected_stage
    refused = await act(client, auth.staff, job, "advance")
    assert refused.status_code == 409
    assert refused.json()["code"] == "already_at_last_stage"
    clock.advance(hours=1)
    done = await act(client, auth.staff, job, "complete")
    assert done.json()["status"] == "completed"
    assert done.json()["closed_at"] == "2026-03-03T01:00:00Z"

    visits = (await client.get(f"/jobs/{job['id']}/visits", headers=auth.staff)).json()
    assert [v["stage"] for v in visits] == ["intake", "repair", "check", "ready"]
    assert all(v["left_at"] is not None for v in visits)
    assert visits[0]["left_at"] == visits[1]["entered_at"]


async def test_rework_hold_resume_cancel_and_reopen(client, auth, shop):
    job = await create_job(client, auth.staff, shop["account"]["id"], start_stage="check")
    no_reason = await act(client, auth.staff, job, "move", stage="repair", reason=" ")
    assert no_reason.status_code == 422
    assert [e["field"] for e in no_reason.json()["errors"]] == ["reason"]
    job = (await act(client, auth.staff, job, "move", stage="repair", reason="Noise still there")).json()
    assert job["stage"]["key"] == "repair"
    job = (await act(client, auth.staff, job, "hold", reason="Waiting for approval")).json()
    assert job["status"] == "on_hold"
    blocked = await act(client, auth.staff, job, "advance")
    assert blocked.status_code == 409
    assert "resume it first" in blocked.json()["detail"]
    job = (await act(client, auth.staff, job, "resume")).json()
    assert job["status"] == "open"
    early = await act(client, auth.staff, job, "complete")
    assert early.json()["code"] == "not_at_last_stage"
    job = (await act(client, auth.staff, job, "cancel", reason="Customer sold the car")).json()
    assert job["status"] == "cancelled"
    assert (await act(client, auth.staff, job, "cancel", reason="again")).json()["code"] == "job_closed"
    job = (await act(client, auth.staff, job, "reopen", reason="Customer changed their mind")).json()
    assert job["status"] == "open"
    assert job["closed_at"] is None
    forced = await act(client, auth.staff, job, "complete", force=True, reason="Finished off-site")
    assert forced.json()["status"] == "completed"


async def test_history_records_every_change_in_order(client, auth, shop, clock: FakeClock):
    job = await create_job(client, auth.staff, shop["account"]["id"])
    job = (await act(client, auth.staff, job, "advance")).json()
    job = (await act(client, auth.staff, job, "hold", reason="Parts on back-order")).json()
    await act(client, auth.staff, job, "advance")  # refused: on hold, leaves no trace
    response = await client.get(f"/jobs/{job['id']}/history", headers=auth.integrator)
    events = response.json()["items"]
    assert [e["type"] for e in events] == ["created", "advance", "hold"]
    assert [e["job_version"] for e in events] == [1, 2, 3]
    assert events[1]["data"]["from"] == {"status": "open", "stage": "intake"}
    assert events[1]["data"]["to"] == {"status": "open", "stage": "repair"}
    assert events[2]["data"]["reason"] == "Parts on back-order"
    assert events[2]["actor"] == "staff:test staff"
    page = await client.get(f"/jobs/{job['id']}/history?limit=2", headers=auth.staff)
    assert [e["type"] for e in page.json()["items"]] == ["created", "advance"]
    rest = await client.get(
        f"/jobs/{job['id']}/history?after={page.json()['next_after']}", headers=auth.staff
    )
    assert [e["type"] for e in rest.json()["items"]] == ["hold"]


async def test_costs_add_up_to_the_largest_amount_kept_and_no_further(client, auth, shop):
    largest = "9999999999999.99"  # the largest amount one cost may carry
    quote = {"amount": largest, "currency": "EUR"}
    job = await create_job(client, auth.staff, shop["account"]["id"], quote=quote)
    for version in range(1, 11):
        added = await client.post(
            f"/jobs/{job['id']}/costs",
            json={"version": version, "kind": "material", "amount": largest},
            headers=auth.staff,
        )
        if version < 10:
            assert added.status_code == 201, (version, added.text)
            estimate = added.json()["job"]["estimate"]["cost"]  # projected past the quote, within bounds
            assert Decimal(estimate["p90"]["amount"]) <= Decimal("99999999999999")
    assert added.status_code == 422, added.text
    assert added.json()["errors"][0]["field"] == "amount"
    kept = (await client.get(f"/jobs/{job['id']}", headers=auth.staff)).json()
    assert (kept["version"], kept["actual_cost"]["amount"]) == (10, "89999999999999.91")


async def test_costs_and_notes_are_recorded_against_the_job(client, auth, shop):
    job = await create_job(client, auth.staff, shop["account"]["id"])
    added = await client.post(
        f"/jobs/{job['id']}/costs",
        json={"version": 1, "kind": "material", "amount": "86.40", "note": "Brake pads"},
        headers=auth.staff,
    )
    assert added.status_code == 201
    assert added.json()["cost"]["amount"] == {"amount": "86.40", "currency": "EUR"}
    assert added.json()["cost"]["stage"] == "intake"
    assert added.json()["job"]["version"] == 2
    bad_kind = await client.post(
        f"/jobs/{job['id']}/costs", json={"version": 2, "kind": "magic", "amount": "1"}, headers=auth.staff
    )
    assert bad_kind.json()["errors"][0]["field"] == "kind"
    bad_stage = await client.post(
        f"/jobs/{job['id']}/costs",
        json={"version": 2, "kind": "labour", "amount": "1", "stage": "paint"},
        headers=auth.staff,
    )
    assert bad_stage.status_code == 409
    assert bad_stage.json()["code"] == "unknown_stage"
    note = await client.post(
        f"/jobs/{job['id']}/notes",
        json={"version": 2, "visibility": "public", "body": "Pads ordered"},
        headers=auth.staff,
    )
    assert note.status_code == 201
    assert note.json()["note"]["visibility"] == "public"
    costs = (await client.get(f"/jobs/{job['id']}/costs", headers=auth.staff)).json()
    notes = (await client.get(f"/jobs/{job['id']}/notes", headers=auth.staff)).json()
    assert [c["note"] for c in costs] == ["Brake pads"]
    assert [n["body"] for n in notes] == ["Pads ordered"]


async def test_integrators_read_jobs_but_cannot_change_them(client, auth, shop):
    job = await create_job(client, auth.staff, shop["account"]["id"])
    assert (await client.get("/jobs", headers=auth.integrator)).status_code == 200
    refused = await act(client, auth.integrator, job, "advance")
    assert refused.status_code == 403
    assert (
        await client.post("/jobs", json=job_body(shop["account"]["id"]), headers=auth.integrator)
    ).status_code == 403


async def test_two_staff_advancing_at_the_same_moment_exactly_one_wins(client, auth, shop):
    job = await create_job(client, auth.staff, shop["account"]["id"])
    responses = await asyncio.gather(*(act(client, auth.staff, job, "advance") for _ in range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1, [r.text for r in responses]
    assert set(statuses) <= {200, 409}
    events = (await client.get(f"/jobs/{job['id']}/history", headers=auth.staff)).json()["items"]
    assert [e["type"] for e in events] == ["created", "advance"]
    visits = (await client.get(f"/jobs/{job['id']}/visits", headers=auth.staff)).json()
    assert [v["stage"] for v in visits] == ["intake", "repair"]
    assert (await client.get(f"/jobs/{job['id']}", headers=auth.staff)).json()["version"] == 2


async def test_a_retried_post_with_the_same_idempotency_key_applies_once(client, auth, shop):
    headers = {**auth.staff, "Idempotency-Key": "create-1"}
    body = job_body(shop["account"]["id"])
    first = await client.post("/jobs", json=body, headers=headers)
    again = await client.post("/jobs", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert first.headers["location"] == f"/jobs/{first.json()['id']}"
    assert (again.headers["location"], again.headers["etag"]) == (first.headers["location"], '"1"')
    assert len((await client.get("/jobs", headers=auth.staff)).json()["items"]) == 1
    reused = await client.post("/jobs", json={**body, "title": "Other"}, headers=headers)
    assert reused.status_code == 409
    assert reused.json()["code"] == "idempotency_key_reused"


async def test_concurrent_retries_of_one_action_apply_it_once(client, auth, shop):
    job = await create_job(client, auth.staff, shop["account"]["id"])
    headers = {**auth.staff, "Idempotency-Key": "advance-once"}
    responses = await asyncio.gather(
        *(client.post(f"/jobs/{job['id']}/advance", json={"version": 1}, headers=headers) for _ in range(5))
    )
    assert {r.status_code for r in responses} == {200}
    assert {r.json()["version"] for r in responses} == {2}
    events = (await client.get(f"/jobs/{job['id']}/history", headers=auth.staff)).json()["items"]
    assert [e["type"] for e in events] == ["created", "advance"]


async def test_a_failed_request_is_not_remembered_under_its_key(client, auth, shop):
    headers = {**auth.staff, "Idempotency-Key": "fix-and-retry"}
    bad = await client.post("/jobs", json=job_body(shop["account"]["id"], title=" "), headers=headers)
    assert bad.status_code == 422
    good = await client.post("/jobs", json=job_body(shop["account"]["id"]), headers=headers)
    assert good.status_code == 201


async def _seed_jobs(
    client: httpx.AsyncClient, auth: Keys, account_id: int, clock: FakeClock, count: int
) -> list[dict[str, Any]]:
    jobs = []
    for index in range(count):
        clock.advance(minutes=1)
        jobs.append(
            await create_job(
                client,
                auth.staff,
                account_id,
                title=f"Job number {index}",
                promised_on=f"2026-04-{index + 1:02d}",
            )
        )
    return jobs


async def test_listing_pages_through_every_job_once(client, auth, shop, clock: FakeClock):
    jobs = await _seed_jobs(client, auth, shop["account"]["id"], clock, 7)
    for sort, expected in (("created", [j["id"] for j in jobs]), ("-created", [j["id"] for j in jobs][::-1])):
        seen: list[int] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 3, "sort": sort}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/jobs", params=params, headers=auth.staff)).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == expected


async def test_listing_by_update_time_is_stable_when_times_tie(client, auth, shop, clock: FakeClock):
    jobs = [await create_job(client, auth.staff, shop["account"]["id"]) for _ in range(5)]  # one instant
    first = (await client.get("/jobs", params={"limit": 2, "sort": "updated"}, headers=auth.staff)).json()
    second = (
        await client.get(
            "/jobs",
            params={"limit": 10, "sort": "updated", "cursor": first["next_cursor"]},
            headers=auth.staff,
        )
    ).json()
    assert [j["id"] for j in first["items"] + second["items"]] == [j["id"] for j in jobs]


async def test_listing_filters(client, auth, shop, clock: FakeClock):
    jobs = await _seed_jobs(client, auth, shop["account"]["id"], clock, 4)
    other_account = (
        await client.post("/accounts", json={"kind": "institutional", "name": "Fleet BV"}, headers=auth.staff)
    ).json()
    clock.advance(hours=1)
    fleet_job = await create_job(
        client, auth.staff, other_account["id"], title="Fleet van service", reference="FLEET-9"
    )
    clock.advance(minutes=5)
    await act(client, auth.staff, jobs[0], "advance")
    held = (await act(client, auth.staff, jobs[1], "hold", reason="Waiting")).json()

    async def ids(**params: Any) -> list[int]:
        response = await client.get("/jobs", params={"sort": "created", **params}, headers=auth.staff)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids(status="on_hold") == [held["id"]]
    assert await ids(status=["open", "on_hold"]) == [j["id"] for j in jobs] + [fleet_job["id"]]
    assert await ids(stage="repair") == [jobs[0]["id"]]
    assert await ids(account_id=other_account["id"]) == [fleet_job["id"]]
    assert await ids(promised_before="2026-04-03") == [jobs[0]["id"], jobs[1]["id"]]
    assert await ids(q="fleet") == [fleet_job["id"]]
    assert await ids(q="FLEET-9") == [fleet_job["id"]]
    assert await ids(q="number 3") == [jobs[3]["id"]]
    assert await ids(updated_since=clock.now.isoformat()) == [jobs[0]["id"], jobs[1]["id"]]
    assert await ids(workflow="car-repair") == [j["id"] for j in jobs] + [fleet_job["id"]]


def forged(**fields: Any) -> str:
    """A cursor as the API encodes one, holding what the API never gives out."""
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")


async def test_listing_refuses_bad_parameters(client, auth, shop):
    for params, field in (
        ({"status": "lost"}, "query.status"),
        ({"limit": 0}, "query.limit"),
        ({"cursor": "garbage"}, "query.cursor"),
        ({"cursor": forged(s="-created", v=1, i=2**63)}, "query.cursor"),  # beyond any id column
        ({"cursor": forged(s="-created", v=1, i=True)}, "query.cursor"),
        (
            {"sort": "updated", "cursor": forged(s="updated", v="9999-12-31T23:59:59-05:00", i=1)},
            "query.cursor",
        ),
        ({"sort": "updated", "cursor": forged(s="updated", v="2026-03-01T10:00:00", i=1)}, "query.cursor"),
        ({"sort": "colour"}, "query.sort"),
        ({"updated_since": "2026-03-01T10:00:00"}, "query.updated_since"),
    ):
        response = await client.get("/jobs", params=params, headers=auth.staff)
        assert response.status_code in {400, 422}, (params, response.text)
        assert response.json()["errors"][0]["field"] == field, (params, response.json())


async def test_a_cursor_from_another_sort_order_is_refused(client, auth, shop, clock: FakeClock):
    await _seed_jobs(client, auth, shop["account"]["id"], clock, 3)
    page = (await client.get("/jobs", params={"limit": 1, "sort": "created"}, headers=auth.staff)).json()
    response = await client.get(
        "/jobs", params={"sort": "-updated", "cursor": page["next_cursor"]}, headers=auth.staff
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.cursor"
