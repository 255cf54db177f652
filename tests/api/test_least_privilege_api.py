"""Least privilege and nothing destroyed by accident: what integrators read, the audit log of deletions,
workflow restore, the rules on keys, contacts and costs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import FakeClock, Keys
from tests.factories import act, create_fleet_account, create_job, job_body
from tracker.domain.errors import Conflict
from tracker.services import keys

PROBLEM_JSON = "application/problem+json"
NOTES = (("public", "Car received"), ("internal", "Customer is difficult"), ("public", "Ok"))


def _z(moment: Any) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    return body


def fields(response: httpx.Response) -> list[str]:
    return [error["field"] for error in problem(response, 422)["errors"]]


# --- what an integrator reads --------------------------------------------------------------------------


async def _job_with_notes_and_costs(client: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]) -> Any:
    job = await create_job(client, auth.staff, shop["account"]["id"])
    for visibility, body in (
        ("public", "Car received"),
        ("internal", "Customer is difficult"),
        ("public", "Ok"),
    ):
        added = await client.post(
            f"/jobs/{job['id']}/notes",
            json={"version": job["version"], "visibility": visibility, "body": body},
            headers=auth.staff,
        )
        assert added.status_code == 201, added.text
        job = added.json()["job"]
    cost = await client.post(
        f"/jobs/{job['id']}/costs",
        json={"version": job["version"], "kind": "material", "amount": "86.40", "note": "Pads, 30 % margin"},
        headers=auth.staff,
    )
    assert cost.status_code == 201, cost.text
    return cost.json()["job"]


async def test_an_integrator_reads_public_notes_only(client: httpx.AsyncClient, auth: Keys, shop) -> None:
    job = await _job_with_notes_and_costs(client, auth, shop)

    staff = await client.get(f"/jobs/{job['id']}/notes", headers=auth.staff)
    integrator = await client.get(f"/jobs/{job['id']}/notes", headers=auth.integrator)

    assert [n["body"] for n in staff.json()] == ["Car received", "Customer is difficult", "Ok"]
    assert integrator.status_code == 200, integrator.text
    assert [(n["visibility"], n["body"]) for n in integrator.json()] == [
        ("public", "Car received"),
        ("public", "Ok"),
    ]


async def test_an_integrator_reads_no_cost_entries(client: httpx.AsyncClient, auth: Keys, shop) -> None:
    job = await _job_with_notes_and_costs(client, auth, shop)

    response = await client.get(f"/jobs/{job['id']}/costs", headers=auth.integrator)

    assert problem(response, 403)["detail"] == "this key's role may not read cost entries"
    assert len((await client.get(f"/jobs/{job['id']}/costs", headers=auth.staff)).json()) == 1


async def test_an_integrator_history_leaves_out_internal_notes_and_costs_on_every_page(
    client: httpx.AsyncClient, auth: Keys, shop
) -> None:
    job = await _job_with_notes_and_costs(client, auth, shop)

    async def read_all(headers: dict[str, str]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        after = None
        while True:
            params = {"limit": 2, **({"after": after} if after is not None else {})}
            page = await client.get(f"/jobs/{job['id']}/history", params=params, headers=headers)
            assert page.status_code == 200, page.text
            events += page.json()["items"]
            after = page.json()["next_after"]
            if after is None:
                return events

    staff = await read_all(auth.staff)
    integrator = await read_all(auth.integrator)

    assert [e["type"] for e in staff][:5] == [
        "created",
        "note_added",
        "note_added",
        "note_added",
        "cost_added",
    ]
    hidden = [e for e in staff if e["type"] == "cost_added" or e["data"].get("visibility") == "internal"]
    assert len(hidden) == 2
    assert integrator == [e for e in staff if e not in hidden]
    assert [e["data"]["body"] for e in integrator if e["type"] == "note_added"] == ["Car received", "Ok"]
    assert "difficult" not in str(integrator)
    assert "margin" not in str(integrator)


# --- deletion and the audit log ------------------------------------------------------------------------


async def test_staff_cannot_delete_a_job_they_cancel_it_instead(
    client: httpx.AsyncClient, auth: Keys, shop
) -> None:
    job = await create_job(client, auth.staff, shop["account"]["id"])

    response = await client.request(
        "DELETE", f"/jobs/{job['id']}", json={"version": 1, "reason": "Oops"}, headers=auth.staff
    )

    assert "admin" in problem(response, 403)["detail"]
    assert (await client.get(f"/jobs/{job['id']}", headers=auth.staff)).status_code == 200


@pytest.mark.parametrize("ending", ["open", "on_hold"])
async def test_an_admin_cannot_delete_a_job_that_is_not_closed(
    client: httpx.AsyncClient, auth: Keys, shop, ending: str
) -> None:
    job = await create_job(client, auth.staff, shop["account"]["id"])
    if ending == "on_hold":
        job = (await act(client, auth.staff, job, "hold", reason="Waiting")).json()

    response = await client.request(
        "DELETE", f"/jobs/{job['id']}", json={"version": job["version"], "reason": "Oops"}, headers=auth.admin
    )

    assert problem(response, 409)["code"] == "job_not_closed"
    assert (await client.get(f"/jobs/{job['id']}", headers=auth.staff)).json()["status"] == ending
    assert (await client.get("/audit", headers=auth.admin)).json()["items"] == []


@pytest.mark.parametrize(
    "body", [{"version": 2}, {"version": 2, "reason": "   "}, {"version": 2, "reason": "x" * 1001}]
)
async def test_deleting_a_job_needs_a_reason(client: httpx.AsyncClient, auth: Keys, shop, body) -> None:
    job = await create_job(client, auth.staff, shop["account"]["id"])
    await act(client, auth.staff, job, "cancel", reason="Duplicate")

    response = await client.request("DELETE", f"/jobs/{job['id']}", json=body, headers=auth.admin)

    assert fields(response) == ["reason"]
    assert (await client.get(f"/jobs/{job['id']}", headers=auth.staff)).status_code == 200


async def test_deleting_a_closed_job_leaves_an_audit_entry_that_outlives_it(
    client: httpx.AsyncClient, auth: Keys, shop, clock: FakeClock
) -> None:
    job = await create_job(client, auth.staff, shop["account"]["id"], reference="R-2026-0042")
    completed = await client.post(
        f"/jobs/{job['id']}/complete",
        json={"version": 1, "force": True, "reason": "Customer took the car as is"},
        headers=auth.staff,
    )
    assert completed.status_code == 200, completed.text
    later = clock.advance(days=3)

    deleted = await client.request(
        "DELETE",
        f"/jobs/{job['id']}",
        json={"version": 2, "reason": "  Test job entered on the live system  "},
        headers=auth.admin,
    )

    assert deleted.status_code == 204, deleted.text
    assert (await client.get(f"/jobs/{job['id']}", headers=auth.admin)).status_code == 404
    assert (await client.get(f"/jobs/{job['id']}/history", headers=auth.admin)).status_code == 404
    audit = await client.get("/audit", headers=auth.admin)
    assert audit.status_code == 200, audit.text
    [entry] = audit.json()["items"]
    assert audit.json()["next_cursor"] is None
    assert {k: v for k, v in entry.items() if k not in {"id", "detail"}} == {
        "occurred_at": _z(later),
        "actor": "admin:test admin",
        "action": "job_deleted",
        "subject": "R-2026-0042",
        "reason": "Test job entered on the live system",
    }
    assert entry["detail"]["job_id"] == job["id"]
    assert entry["detail"]["status"] == "completed"
    assert entry["detail"]["title"] == "Brake discs"


async def test_the_audit_log_pages_newest_first(client: httpx.AsyncClient, auth: Keys, shop) -> None:
    references = []
    for number in range(5):
        job = await create_job(client, auth.staff, shop["account"]["id"], reference=f"GONE-{number}")
        await act(client, auth.staff, job, "cancel", reason="Duplicate")
        deleted = await client.request(
            "DELETE", f"/jobs/{job['id']}", json={"version": 2, "reason": f"Dup {number}"}, headers=auth.admin
        )
        assert deleted.status_code == 204, deleted.text
        references.append(f"GONE-{number}")

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/audit", params=params, headers=auth.admin)).json()
        assert len(page["items"]) <= 2
        seen += [e["subject"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == references[::-1]
    assert problem(await client.get("/audit", headers=auth.staff), 403)


# --- workflows: archive and restore --------------------------------------------------------------------


async def test_an_archived_workflow_stays_readable_and_a_restore_undoes_the_archive(
    client: httpx.AsyncClient, auth: Keys, shop
) -> None:
    archived = await client.delete("/workflows/car-repair", headers=auth.admin)
    assert archived.status_code == 204, archived.text
    refused = await client.post("/jobs", json=job_body(shop["account"]["id"]), headers=auth.staff)
    assert problem(refused, 409)["code"] == "archived"

    read = await client.get("/workflows/car-repair", headers=auth.integrator)
    assert read.status_code == 200, read.text
    assert read.json()["archived"] is True
    assert (await client.get("/workflows", headers=auth.staff)).json() == []
    listed = await client.get("/workflows", params={"archived": "true"}, headers=auth.staff)
    assert [(w["key"], w["archived"]) for w in listed.json()] == [("car-repair", True)]

    restored = await client.post("/workflows/car-repair/restore", headers=auth.admin)

    assert restored.status_code == 200, restored.text
    assert restored.json() == {**read.json(), "archived": False}
    assert [w["key"] for w in (await client.get("/workflows", headers=auth.staff)).json()] == ["car-repair"]
    await create_job(client, auth.staff, shop["account"]["id"])
    again = await client.post("/workflows/car-repair/restore", headers=auth.admin)
    assert again.status_code == 200, again.text
    assert again.json() == restored.json()


async def test_restoring_an_unknown_workflow_is_not_found(client: httpx.AsyncClient, auth: Keys) -> None:
    assert (
        problem(await client.post("/workflows/nope/restore", headers=auth.admin), 404)["code"] == "not_found"
    )


# --- keys ----------------------------------------------------------------------------------------------


async def test_a_key_with_an_expiry_works_until_then_and_is_refused_after(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock
) -> None:
    created = await client.post(
        "/keys",
        json={"name": "contractor", "role": "staff", "expires_at": "2026-04-01T11:00:00+02:00"},
        headers=auth.admin,
    )
    assert created.status_code == 201, created.text
    assert created.json()["expires_at"] == "2026-04-01T09:00:00Z"
    bearer = {"Authorization": f"Bearer {created.json()['secret']}"}
    clock.advance(days=29, hours=23, minutes=59)
    assert (await client.get("/jobs", headers=bearer)).status_code == 200

    clock.advance(minutes=1)
    refused = await client.get("/jobs", headers=bearer)

    body = problem(refused, 401)
    assert body["code"] == "key_expired"
    assert refused.headers["www-authenticate"].startswith("Bearer")
    listed = {k["id"]: k for k in (await client.get("/keys", headers=auth.admin)).json()}
    assert listed[created.json()["id"]]["expires_at"] == "2026-04-01T09:00:00Z"


async def test_a_refused_key_says_why(client: httpx.AsyncClient, auth: Keys) -> None:
    created = await client.post("/keys", json={"name": "old", "role": "staff"}, headers=auth.admin)
    secret, prefix = created.json()["secret"], created.json()["prefix"]
    await client.delete(f"/keys/{created.json()['id']}", headers=auth.admin)

    async def code(token: str) -> str:
        response = await client.get("/jobs", headers={"Authorization": f"Bearer {token}"})
        return str(problem(response, 401)["code"])

    assert await code(secret) == "key_revoked"
    assert await code(f"trk_{prefix}_{'A' * 43}") == "key_unknown"
    assert await code("trk_000000000000_nothing") == "key_unknown"


@pytest.mark.parametrize(
    "expires_at", ["2026-03-02T08:59:59Z", "2026-03-02T09:00:00Z", "2026-06-01T00:00:00"]
)
async def test_a_key_expiry_must_be_a_future_time_with_an_offset(
    client: httpx.AsyncClient, auth: Keys, expires_at: str
) -> None:
    response = await client.post(
        "/keys", json={"name": "x", "role": "staff", "expires_at": expires_at}, headers=auth.admin
    )

    assert fields(response) == ["expires_at"]
    assert len((await client.get("/keys", headers=auth.admin)).json()) == 3


async def test_the_last_use_of_a_key_is_written_at_most_once_a_minute(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock
) -> None:
    created = await client.post("/keys", json={"name": "erp", "role": "integrator"}, headers=auth.admin)
    key_id, bearer = created.json()["id"], {"Authorization": f"Bearer {created.json()['secret']}"}

    async def last_used() -> str | None:
        listed = {k["id"]: k for k in (await client.get("/keys", headers=auth.admin)).json()}
        value: str | None = listed[key_id]["last_used_at"]
        return value

    assert await last_used() is None
    first = clock.now
    await client.get("/jobs", headers=bearer)
    assert await last_used() == _z(first)
    clock.advance(seconds=59)
    await client.get("/jobs", headers=bearer)
    assert await last_used() == _z(first)
    later = clock.advance(seconds=1)
    await client.get("/jobs", headers=bearer)
    assert await last_used() == _z(later)
    clock.advance(hours=1)
    await client.get("/jobs", headers={"Authorization": "Bearer trk_000000000000_wrong"})
    assert await last_used() == _z(later)


async def test_two_admins_revoking_each_other_at_once_leave_one_admin_key(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    second = await client.post("/keys", json={"name": "deputy", "role": "admin"}, headers=auth.admin)
    deputy = {"Authorization": f"Bearer {second.json()['secret']}"}
    first_id = (await client.get("/keys", headers=auth.admin)).json()[0]["id"]

    responses = await asyncio.gather(
        client.delete(f"/keys/{second.json()['id']}", headers=auth.admin),
        client.delete(f"/keys/{first_id}", headers=deputy),
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses[0] == 200, [r.text for r in responses]
    assert statuses[1] in {401, 409}, [r.text for r in responses]
    if statuses[1] == 409:
        assert [r.json()["code"] for r in responses if r.status_code == 409] == ["last_admin_key"]
    survivors = [h for h in (auth.admin, deputy) if (await client.get("/keys", headers=h)).status_code == 200]
    assert len(survivors) == 1


async def test_the_last_active_admin_key_cannot_be_revoked_an_expired_one_does_not_count(
    db: str, clock: FakeClock
) -> None:
    only = await keys.create_key("owner", "admin", now=clock.now)
    await keys.create_key("temp", "admin", now=clock.now, expires_at=clock.now + timedelta(hours=1))
    staff = await keys.create_key("till", "staff", now=clock.now)
    clock.advance(hours=1)

    with pytest.raises(Conflict) as refused:
        await keys.revoke_key(only.record.id, now=clock.now)

    assert refused.value.code == "last_admin_key"
    assert (await keys.revoke_key(staff.record.id, now=clock.now)).revoked_at == clock.now
    assert all(k.revoked_at is None for k in await keys.list_keys() if k.role == "admin")


# --- contacts ------------------------------------------------------------------------------------------


async def test_an_account_with_open_jobs_keeps_its_last_contact(
    client: httpx.AsyncClient, auth: Keys, shop
) -> None:
    account = await create_fleet_account(client, auth.staff)
    ann, bob = (c["id"] for c in account["contacts"])
    job = await create_job(client, auth.staff, account["id"])
    job = (await act(client, auth.staff, job, "hold", reason="Waiting for the insurer")).json()
    assert (await client.delete(f"/contacts/{ann}", headers=auth.staff)).status_code == 204

    refused = await client.delete(f"/contacts/{bob}", headers=auth.staff)

    assert problem(refused, 409)["code"] == "last_contact"
    assert (await client.get(f"/contacts/{bob}", headers=auth.staff)).status_code == 200
    await act(client, auth.staff, job, "cancel", reason="Car sold")
    assert (await client.delete(f"/contacts/{bob}", headers=auth.staff)).status_code == 204


async def test_deleting_both_contacts_at_once_leaves_one_when_jobs_are_open(
    client: httpx.AsyncClient, auth: Keys, shop
) -> None:
    account = await create_fleet_account(client, auth.staff)
    await create_job(client, auth.staff, account["id"])

    responses = await asyncio.gather(
        *(client.delete(f"/contacts/{c['id']}", headers=auth.staff) for c in account["contacts"])
    )

    assert sorted(r.status_code for r in responses) == [204, 409], [r.text for r in responses]
    left = await client.get(f"/accounts/{account['id']}", headers=auth.staff)
    assert len(left.json()["contacts"]) == 1


async def test_the_only_contact_of_an_account_without_open_jobs_may_go(
    client: httpx.AsyncClient, auth: Keys, shop
) -> None:
    contact_id = shop["account"]["contacts"][0]["id"]

    assert (await client.delete(f"/contacts/{contact_id}", headers=auth.staff)).status_code == 204


# --- costs ---------------------------------------------------------------------------------------------


def _cost(version: int, **extra: Any) -> dict[str, Any]:
    return {"version": version, "kind": "labour", "amount": "40.00", **extra}


@pytest.mark.parametrize("ending", ["cancel", "complete"])
async def test_a_closed_job_takes_no_cost(client: httpx.AsyncClient, auth: Keys, shop, ending: str) -> None:
    job = await create_job(client, auth.staff, shop["account"]["id"])
    extra = {"force": True} if ending == "complete" else {}
    closed = await act(client, auth.staff, job, ending, reason="Done with it", **extra)
    assert closed.status_code == 200, closed.text

    response = await client.post(f"/jobs/{job['id']}/costs", json=_cost(2), headers=auth.staff)

    assert problem(response, 409)["code"] == "job_closed"
    assert (await client.get(f"/jobs/{job['id']}/costs", headers=auth.staff)).json() == []
    assert (await client.get(f"/jobs/{job['id']}", headers=auth.staff)).json()["version"] == 2


async def test_a_job_on_hold_still_takes_costs(client: httpx.AsyncClient, auth: Keys, shop) -> None:
    job = await create_job(client, auth.staff, shop["account"]["id"])
    await act(client, auth.staff, job, "hold", reason="Parts on order")

    response = await client.post(f"/jobs/{job['id']}/costs", json=_cost(2), headers=auth.staff)

    assert response.status_code == 201, response.text


async def test_costs_go_on_the_current_stage_or_one_the_job_went_through(
    client: httpx.AsyncClient, auth: Keys, shop
) -> None:
    job = await create_job(client, auth.staff, shop["account"]["id"])
    job = (await act(client, auth.staff, job, "advance")).json()
    assert job["stage"]["key"] == "repair"

    ahead = await client.post(
        f"/jobs/{job['id']}/costs", json=_cost(job["version"], stage="check"), headers=auth.staff
    )
    unknown = await client.post(
        f"/jobs/{job['id']}/costs", json=_cost(job["version"], stage="paint"), headers=auth.staff
    )
    assert fields(ahead) == ["stage"]
    assert "check" in ahead.json()["detail"]
    assert problem(unknown, 409)["code"] == "unknown_stage"

    behind = await client.post(
        f"/jobs/{job['id']}/costs", json=_cost(job["version"], stage="intake"), headers=auth.staff
    )
    assert behind.status_code == 201, behind.text
    current = await client.post(
        f"/jobs/{job['id']}/costs", json=_cost(behind.json()["job"]["version"]), headers=auth.staff
    )
    assert current.status_code == 201, current.text
    costs = (await client.get(f"/jobs/{job['id']}/costs", headers=auth.staff)).json()
    assert [c["stage"] for c in costs] == ["intake", "repair"]
