"""The workflow API: versioned stage definitions, written by admins and read by staff and integrators."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import CURRENT_TIME, FakeClock, Keys
from tests.factories import create_account, create_job, create_workflow, job_body, stage, workflow_body

PROBLEM_JSON = "application/problem+json"


def _fields(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.text
    return [error["field"] for error in response.json().get("errors", [])]


async def test_creating_a_workflow_returns_version_1_with_its_stages_and_money_as_strings(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    body = workflow_body(stages=("intake", "repair"))
    body["stages"][1] = stage("repair", hours=(1, 3, 5), cost="250.50", capacity=2, customer_visible=False)

    response = await client.post("/workflows", json=body, headers=auth.admin)

    assert response.status_code == 201, response.text
    created = response.json()
    assert created == {
        "key": "car-repair",
        "version": 1,
        "name": "Car Repair",
        "currency": "EUR",
        "current": True,
        "archived": False,
        "created_at": CURRENT_TIME.isoformat().replace("+00:00", "Z"),
        "calendar": None,
        "stages": [
            {
                "key": "intake",
                "labels": {"en": "Intake", "fr": "intake (fr)", "nl": "intake (nl)"},
                "duration_hours": {"optimistic": "2.00", "most_likely": "4.00", "pessimistic": "8.00"},
                "planned_cost": {"amount": "100.00", "currency": "EUR"},
                "capacity": None,
                "customer_visible": True,
            },
            {
                "key": "repair",
                "labels": {"en": "Repair", "fr": "repair (fr)", "nl": "repair (nl)"},
                "duration_hours": {"optimistic": "1.00", "most_likely": "3.00", "pessimistic": "5.00"},
                "planned_cost": {"amount": "250.50", "currency": "EUR"},
                "capacity": 2,
                "customer_visible": False,
            },
        ],
    }


async def test_planned_costs_are_shown_with_the_minor_units_of_the_workflow_currency(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    body = workflow_body("sushi", stages=("prep",), currency="JPY")
    body["stages"][0]["planned_cost"] = "1500"
    created = await client.post("/workflows", json=body, headers=auth.admin)
    assert created.status_code == 201, created.text
    assert created.json()["stages"][0]["planned_cost"] == {"amount": "1500", "currency": "JPY"}

    body = workflow_body("whole-euros", stages=("prep",))
    body["stages"][0]["planned_cost"] = "12"
    created = await client.post("/workflows", json=body, headers=auth.admin)
    assert created.status_code == 201, created.text
    assert created.json()["stages"][0]["planned_cost"] == {"amount": "12.00", "currency": "EUR"}


async def test_the_list_leaves_out_archived_workflows_unless_asked(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    await create_workflow(client, auth.admin, key="car-repair")
    await create_workflow(client, auth.admin, key="bike-repair")
    archived = await client.delete("/workflows/bike-repair", headers=auth.admin)
    assert archived.status_code == 204, archived.text

    default = await client.get("/workflows", headers=auth.staff)
    assert default.status_code == 200, default.text
    assert [(w["key"], w["archived"]) for w in default.json()] == [("car-repair", False)]

    everything = await client.get("/workflows", params={"archived": "true"}, headers=auth.staff)
    assert everything.status_code == 200, everything.text
    assert [(w["key"], w["archived"]) for w in everything.json()] == [
        ("bike-repair", True),
        ("car-repair", False),
    ]


async def test_the_list_shows_only_the_current_version_of_each_workflow(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    await create_workflow(client, auth.admin)
    update = workflow_body(stages=("intake", "ready"))
    del update["key"]
    published = await client.put("/workflows/car-repair", json=update, headers=auth.admin)
    assert published.status_code == 200, published.text

    listed = await client.get("/workflows", headers=auth.staff)

    assert listed.status_code == 200, listed.text
    assert [(w["key"], w["version"], w["current"]) for w in listed.json()] == [("car-repair", 2, True)]


async def test_a_workflow_is_read_by_its_key(client: httpx.AsyncClient, auth: Keys) -> None:
    created = await create_workflow(client, auth.admin)

    response = await client.get("/workflows/car-repair", headers=auth.staff)

    assert response.status_code == 200, response.text
    assert response.json() == created


async def test_publishing_a_new_version_leaves_running_jobs_on_the_version_they_started_on(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock
) -> None:
    await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)
    old_job = await create_job(client, auth.staff, account["id"])
    assert old_job["workflow"] == {"key": "car-repair", "version": 1}
    clock.advance(days=1)

    update = workflow_body(name="Car repair 2026", stages=("triage", "fix", "ready"))
    del update["key"]
    published = await client.put("/workflows/car-repair", json=update, headers=auth.admin)

    assert published.status_code == 200, published.text
    body = published.json()
    assert (body["key"], body["version"], body["name"], body["current"]) == (
        "car-repair",
        2,
        "Car repair 2026",
        True,
    )
    assert [s["key"] for s in body["stages"]] == ["triage", "fix", "ready"]
    current = await client.get("/workflows/car-repair", headers=auth.staff)
    assert current.json()["version"] == 2

    old = await client.get(f"/jobs/{old_job['id']}", headers=auth.staff)
    assert old.status_code == 200, old.text
    assert old.json()["workflow"] == {"key": "car-repair", "version": 1}
    assert old.json()["stage"]["key"] == "intake"

    new_job = await create_job(client, auth.staff, account["id"])
    assert new_job["workflow"] == {"key": "car-repair", "version": 2}
    assert new_job["stage"]["key"] == "triage"


async def test_all_versions_are_listed_oldest_first_and_each_can_be_read(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    await create_workflow(client, auth.admin)
    update = workflow_body(stages=("intake", "ready"))
    del update["key"]
    assert (await client.put("/workflows/car-repair", json=update, headers=auth.admin)).status_code == 200

    versions = await client.get("/workflows/car-repair/versions", headers=auth.staff)
    assert versions.status_code == 200, versions.text
    assert [(v["version"], v["current"], len(v["stages"])) for v in versions.json()] == [
        (1, False, 4),
        (2, True, 2),
    ]

    first = await client.get("/workflows/car-repair/versions/1", headers=auth.integrator)
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 1
    assert first.json()["current"] is False
    assert [s["key"] for s in first.json()["stages"]] == ["intake", "repair", "check", "ready"]


async def test_an_archived_workflow_takes_no_new_jobs_and_no_new_versions(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)
    running = await create_job(client, auth.staff, account["id"])

    archived = await client.delete("/workflows/car-repair", headers=auth.admin)
    assert archived.status_code == 204, archived.text
    assert archived.content == b""

    refused = await client.post("/jobs", json=job_body(account["id"]), headers=auth.staff)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "archived"

    update = workflow_body()
    del update["key"]
    republish = await client.put("/workflows/car-repair", json=update, headers=auth.admin)
    assert republish.status_code == 409, republish.text
    assert republish.json()["code"] == "archived"

    still_there = await client.get("/workflows/car-repair", headers=auth.staff)
    assert still_there.status_code == 200, still_there.text
    assert still_there.json()["archived"] is True
    job = await client.get(f"/jobs/{running['id']}", headers=auth.staff)
    assert job.status_code == 200, job.text
    assert job.json()["workflow"] == {"key": "car-repair", "version": 1}


async def test_a_second_workflow_with_the_same_key_is_a_conflict(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    await create_workflow(client, auth.admin)

    response = await client.post("/workflows", json=workflow_body(), headers=auth.admin)

    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["code"] == "duplicate_key"
    assert "car-repair" in response.json()["detail"]
    versions = await client.get("/workflows/car-repair/versions", headers=auth.staff)
    assert [v["version"] for v in versions.json()] == [1]


def _with_stage_change(index: int, **changes: Any) -> dict[str, Any]:
    body = workflow_body()
    body["stages"][index].update(changes)
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(workflow_body(stages=("intake", "intake")), "stages[1].key", id="duplicate-stage-key"),
        pytest.param(
            _with_stage_change(2, duration_hours={"optimistic": "9", "most_likely": "9", "pessimistic": "8"}),
            "stages[2].duration_hours",
            id="optimistic-over-pessimistic",
        ),
        pytest.param(
            _with_stage_change(
                0, duration_hours={"optimistic": "-1", "most_likely": "2", "pessimistic": "3"}
            ),
            "stages[0].duration_hours.optimistic",
            id="negative-hours",
        ),
        pytest.param(
            _with_stage_change(0, duration_hours={"optimistic": "0", "most_likely": "0", "pessimistic": "0"}),
            "stages[0].duration_hours.pessimistic",
            id="zero-hours",
        ),
        pytest.param(workflow_body(colour="red"), "colour", id="unknown-field"),
        pytest.param(
            _with_stage_change(1, colour="red"),
            "stages[1].colour",
            id="unknown-stage-field",
        ),
        pytest.param(
            _with_stage_change(
                1, duration_hours={"optimistic": "NaN", "most_likely": "2", "pessimistic": "3"}
            ),
            "stages[1].duration_hours.optimistic",
            id="nan-hours",
        ),
        pytest.param(
            _with_stage_change(
                1, duration_hours={"optimistic": "1", "most_likely": "2", "pessimistic": "Infinity"}
            ),
            "stages[1].duration_hours.pessimistic",
            id="infinite-hours",
        ),
        pytest.param(
            _with_stage_change(
                1, duration_hours={"optimistic": "1", "most_likely": "2", "pessimistic": "1e12"}
            ),
            "stages[1].duration_hours.pessimistic",
            id="too-many-hours",
        ),
        pytest.param(
            _with_stage_change(
                1, duration_hours={"optimistic": "1", "most_likely": "2", "pessimistic": "100000"}
            ),
            "stages[1].duration_hours.pessimistic",
            id="over-99999-hours",
        ),
        pytest.param(
            _with_stage_change(
                1, duration_hours={"optimistic": "1", "most_likely": "2.125", "pessimistic": "3"}
            ),
            "stages[1].duration_hours.most_likely",
            id="hours-with-three-decimals",
        ),
        pytest.param(_with_stage_change(2, capacity=2**40), "stages[2].capacity", id="huge-capacity"),
        pytest.param(workflow_body(name="n" * 201), "name", id="name-too-long-to-store"),
        pytest.param(workflow_body(currency="ZZZ"), "currency", id="unknown-currency"),
        pytest.param(workflow_body(currency="eur"), "currency", id="lower-case-currency"),
        pytest.param(workflow_body(currency="EURO"), "currency", id="long-currency"),
        pytest.param(
            _with_stage_change(3, planned_cost="10.001"),
            "stages[3].planned_cost",
            id="too-many-decimals",
        ),
        pytest.param(
            _with_stage_change(0, planned_cost="-5.00"), "stages[0].planned_cost", id="negative-cost"
        ),
        pytest.param(_with_stage_change(0, planned_cost="ten"), "stages[0].planned_cost", id="not-a-number"),
        pytest.param(_with_stage_change(0, capacity=0), "stages[0].capacity", id="zero-capacity"),
        pytest.param(_with_stage_change(1, key="Repair"), "stages[1].key", id="upper-case-stage-key"),
        pytest.param(
            _with_stage_change(0, labels={"fr": "Réception"}), "stages[0].labels", id="no-english-label"
        ),
        pytest.param(workflow_body(key="Car Repair"), "key", id="bad-workflow-key"),
        pytest.param(workflow_body(stages=()), "stages", id="no-stages"),
        pytest.param(workflow_body(name="   "), "name", id="blank-name"),
    ],
)
async def test_a_bad_workflow_body_is_refused_naming_the_field(
    client: httpx.AsyncClient, auth: Keys, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/workflows", json=body, headers=auth.admin)

    assert response.status_code == 422, response.text
    assert _fields(response) == [field]
    assert response.json()["code"] == "validation"
    assert response.json()["detail"].startswith(field)
    listed = await client.get("/workflows", headers=auth.admin)
    assert listed.json() == []


async def test_the_longest_stages_a_workflow_may_plan_still_give_jobs_an_estimate(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    longest = {"optimistic": "99999.99", "most_likely": "99999.99", "pessimistic": "99999.99"}
    body = workflow_body(calendar={"country": "FR"})
    for planned in body["stages"]:
        planned["duration_hours"] = longest
    assert (await client.post("/workflows", json=body, headers=auth.admin)).status_code == 201
    account = await create_account(client, auth.staff)

    job = await create_job(client, auth.staff, account["id"])  # four stages of 48 working years each

    assert job["estimate"]["completion"]["p90"] > "2100"


async def test_a_new_version_is_validated_like_a_new_workflow(client: httpx.AsyncClient, auth: Keys) -> None:
    await create_workflow(client, auth.admin)
    update = workflow_body(stages=("intake", "intake"))
    del update["key"]

    response = await client.put("/workflows/car-repair", json=update, headers=auth.admin)

    assert response.status_code == 422, response.text
    assert _fields(response) == ["stages[1].key"]
    current = await client.get("/workflows/car-repair", headers=auth.staff)
    assert current.json()["version"] == 1


async def test_a_new_version_cannot_rename_the_key(client: httpx.AsyncClient, auth: Keys) -> None:
    await create_workflow(client, auth.admin)

    response = await client.put("/workflows/car-repair", json=workflow_body(key="other"), headers=auth.admin)

    assert response.status_code == 422, response.text
    assert _fields(response) == ["key"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/workflows/nope"),
        ("GET", "/workflows/nope/versions"),
        ("GET", "/workflows/nope/versions/1"),
        ("GET", "/workflows/car-repair/versions/2"),
        ("DELETE", "/workflows/nope"),
    ],
)
async def test_an_unknown_workflow_or_version_is_not_found(
    client: httpx.AsyncClient, auth: Keys, method: str, path: str
) -> None:
    await create_workflow(client, auth.admin)

    response = await client.request(method, path, headers=auth.admin)

    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["code"] == "not_found"
    assert response.json()["status"] == 404


async def test_publishing_a_version_of_an_unknown_workflow_is_not_found(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    update = workflow_body()
    del update["key"]

    response = await client.put("/workflows/nope", json=update, headers=auth.admin)

    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("role", ["staff", "integrator"])
async def test_only_an_admin_may_change_workflows(client: httpx.AsyncClient, auth: Keys, role: str) -> None:
    headers = getattr(auth, role)
    await create_workflow(client, auth.admin)
    update = workflow_body()
    del update["key"]

    created = await client.post("/workflows", json=workflow_body("other"), headers=headers)
    published = await client.put("/workflows/car-repair", json=update, headers=headers)
    archived = await client.delete("/workflows/car-repair", headers=headers)

    for response in (created, published, archived):
        assert response.status_code == 403, response.text
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        assert "admin" in response.json()["detail"]
    listed = await client.get("/workflows", headers=auth.admin)
    assert [(w["key"], w["version"], w["archived"]) for w in listed.json()] == [("car-repair", 1, False)]


async def test_an_integrator_may_read_workflows(client: httpx.AsyncClient, auth: Keys) -> None:
    created = await create_workflow(client, auth.admin)

    listed = await client.get("/workflows", headers=auth.integrator)
    one = await client.get("/workflows/car-repair", headers=auth.integrator)
    versions = await client.get("/workflows/car-repair/versions", headers=auth.integrator)

    assert listed.status_code == 200, listed.text
    assert listed.json() == [created]
    assert one.status_code == 200, one.text
    assert one.json() == created
    assert versions.status_code == 200, versions.text
    assert versions.json() == [created]


async def test_concurrent_creates_with_one_key_make_one_workflow_and_conflicts(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    responses = await asyncio.gather(
        *(client.post("/workflows", json=workflow_body(), headers=auth.admin) for _ in range(4))
    )

    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409], [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"duplicate_key"}
    versions = await client.get("/workflows/car-repair/versions", headers=auth.staff)
    assert [v["version"] for v in versions.json()] == [1]


async def test_concurrent_new_versions_each_get_their_own_number(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    await create_workflow(client, auth.admin)
    update = workflow_body()
    del update["key"]

    responses = await asyncio.gather(
        *(client.put("/workflows/car-repair", json=update, headers=auth.admin) for _ in range(4))
    )

    assert [r.status_code for r in responses] == [200, 200, 200, 200], [r.text for r in responses]
    assert sorted(r.json()["version"] for r in responses) == [2, 3, 4, 5]
    versions = await client.get("/workflows/car-repair/versions", headers=auth.staff)
    assert [(v["version"], v["current"]) for v in versions.json()] == [
        (1, False),
        (2, False),
        (3, False),
        (4, False),
        (5, True),
    ]
