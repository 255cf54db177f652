"""The strict edge through the public API: bounds, strictness, the error vocabulary and the OpenAPI facts."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import Keys
from tests.factories import create_job, job_body, workflow_body

INT32_MAX = 2**31 - 1


@pytest.mark.parametrize(
    "path",
    [
        f"/jobs/{INT32_MAX + 1}",
        "/jobs/99999999999999999999999",
        "/jobs/0",
        "/jobs/99999999999999999999999/history",
        "/accounts/4441046480068459760780836864",
        "/contacts/99999999999999999999",
        "/workflows/car-repair/versions/99999999999999999999",
        "/workflows/car%00repair",
    ],
)
async def test_an_id_beyond_the_columns_is_simply_not_found(
    client: httpx.AsyncClient, auth: Keys, path: str
) -> None:
    response = await client.get(path, headers=auth.admin)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not_found"
    assert response.headers["content-type"].startswith("application/problem+json")


TOO_LONG = "x" * 65
"""Longer than any token column (64): a value no record can hold."""


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/unsubscribe/{TOO_LONG}?c=progress"),
        ("POST", f"/unsubscribe/{TOO_LONG}?c=progress"),
        ("GET", f"/a/{TOO_LONG}"),
        ("GET", f"/status/{TOO_LONG}"),
        ("GET", f"/status/{TOO_LONG}.json"),
        ("GET", f"/status/{TOO_LONG}.ics"),
        ("DELETE", f"/suppressions/{'a' * 250}@example.com"),
        ("GET", f"/workflows/{'k' * 64}"),
        ("GET", f"/workflows/{'k' * 64}/versions"),
        ("GET", f"/workflows/{'k' * 64}/versions/1"),
        ("POST", f"/workflows/{'k' * 64}/restore"),
        ("DELETE", f"/workflows/{'k' * 64}"),
    ],
)
async def test_a_path_value_longer_than_its_column_is_simply_not_found(
    client: httpx.AsyncClient, auth: Keys, method: str, path: str
) -> None:
    response = await client.request(method, path, headers=auth.admin)
    assert response.status_code == 404, response.text


async def test_a_workflow_key_longer_than_its_column_is_not_found_when_publishing(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    body = workflow_body()
    del body["key"]
    response = await client.put(f"/workflows/{'k' * 64}", json=body, headers=auth.admin)
    assert response.status_code == 404, response.text


async def test_a_query_id_beyond_the_column_is_refused_naming_it(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    response = await client.get("/jobs", params={"account_id": str(2**70)}, headers=auth.staff)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["query.account_id"]


async def test_a_body_id_beyond_the_column_is_refused_naming_it(
    client: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]
) -> None:
    response = await client.post("/jobs", json=job_body(2**63), headers=auth.staff)
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"field": "account_id", "reason": response.json()["errors"][0]["reason"]}
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 5000 + b"]" * 5000, "deeper"),
        (b'{"a": ' * 33 + b"1" + b"}" * 33, "deeper"),
        (b'{"title": "x", "title": "y"}', "twice"),
        (b'{"title": "caf\xe9"}', "UTF-8"),
        (b'{"title": ', "not valid JSON"),
        (b'{"amount": NaN}', "not valid JSON"),
    ],
)
async def test_malformed_bodies_are_400_problems(
    client: httpx.AsyncClient, auth: Keys, shop: dict[str, Any], body: bytes, reason: str
) -> None:
    response = await client.post(
        "/jobs", content=body, headers={**auth.staff, "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "malformed_request"
    assert reason in response.json()["detail"]


async def test_nesting_up_to_the_limit_is_read(client: httpx.AsyncClient, auth: Keys) -> None:
    body = {
        "kind": "individual",
        "name": "Marie",
        "contacts": [],
        "x": json.loads('{"a": ' * 30 + "1" + "}" * 30),
    }
    response = await client.post("/accounts", json=body, headers=auth.staff)
    assert response.status_code == 422  # well-formed: refused for its unknown field, not its depth
    assert response.json()["errors"][0]["field"] == "x"


async def test_an_empty_body_is_a_clear_400(client: httpx.AsyncClient, auth: Keys) -> None:
    response = await client.post("/accounts", headers={**auth.staff, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["detail"] == "this request needs a JSON body"
    assert "data" not in response.text


async def test_a_body_that_is_not_json_is_415(client: httpx.AsyncClient, auth: Keys) -> None:
    response = await client.post(
        "/accounts",
        content=b'{"kind": "individual", "name": "Marie"}',
        headers={**auth.staff, "Content-Type": "text/plain"},
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"account_id": "1"}, "account_id"),
        ({"quote": {"amount": 640, "currency": "EUR"}}, "quote.amount"),
        ({"quote": {"amount": "640.00", "currency": "eur"}}, "quote.currency"),
        ({"title": "Brake\x00discs"}, "title"),
        ({"title": "Brake\x1bdiscs"}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 301}, "title"),
        ({"reference": "has space"}, "reference"),
        ({"colour": "red"}, "colour"),
        (
            {"quote": {"amount": "\u0663\u0660\u0660.50", "currency": "EUR"}},
            "quote.amount",
        ),  # Arabic-Indic digits
        ({"quote": {"amount": "\uff16\uff14\uff10", "currency": "EUR"}}, "quote.amount"),  # full-width digits
    ],
)
async def test_types_are_strict_as_the_schema_says(
    client: httpx.AsyncClient, auth: Keys, shop: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    response = await client.post(
        "/jobs", json={**job_body(shop["account"]["id"]), **change}, headers=auth.staff
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]


@pytest.mark.parametrize("digits", ["9" * 5000, "-" + "9" * 5000, "2147483648"])
async def test_an_integer_of_any_length_is_json_and_its_field_refuses_it(
    client: httpx.AsyncClient, auth: Keys, shop: dict[str, Any], digits: str
) -> None:
    body = json.dumps(job_body(shop["account"]["id"])).replace(
        f'"account_id": {shop["account"]["id"]}', f'"account_id": {digits}'
    )
    assert digits in body
    response = await client.post(
        "/jobs", content=body.encode(), headers={**auth.staff, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["account_id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"kind": "institutional", "name": "x", "\\ud800": 1}', "\\ud800"),
        (b'{"kind": "institutional", "name": "Acme \\udfff"}', "name"),
    ],
)
async def test_half_a_surrogate_pair_is_no_character_and_is_refused_naming_it(
    client: httpx.AsyncClient, auth: Keys, body: bytes, field: str
) -> None:
    response = await client.post(
        "/accounts", content=body, headers={**auth.staff, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert (await client.get("/accounts", headers=auth.staff)).json()["items"] == []


async def test_text_keeps_newlines_and_tabs(
    client: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]
) -> None:
    job = await create_job(client, auth.staff, shop["account"]["id"])
    note = await client.post(
        f"/jobs/{job['id']}/notes", json={"version": 1, "body": "Pads:\n\tfront\n\trear"}, headers=auth.staff
    )
    assert note.status_code == 201, note.text
    assert note.json()["note"]["body"] == "Pads:\n\tfront\n\trear"


async def test_a_nested_field_is_named_by_its_full_path(client: httpx.AsyncClient, auth: Keys) -> None:
    good = {"name": "Marie", "email": "marie@example.com"}
    body = {"kind": "institutional", "name": "Acme", "contacts": [good, {**good, "time_zone": "Mars/Base"}]}
    response = await client.post("/accounts", json=body, headers=auth.staff)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["contacts[1].time_zone"]


async def test_a_contact_name_has_the_servers_limit(client: httpx.AsyncClient, auth: Keys) -> None:
    contact = {"name": "x" * 201, "email": "marie@example.com"}
    response = await client.post(
        "/accounts", json={"kind": "individual", "name": "Marie", "contacts": [contact]}, headers=auth.staff
    )
    assert response.status_code == 422
    document = (await client.get("/schema/openapi.json")).json()
    assert document["components"]["schemas"]["ContactIn"]["properties"]["name"]["maxLength"] == 200


@pytest.mark.parametrize("action", ["hold", "cancel", "move"])
async def test_a_missing_reason_is_validation_on_every_action(
    client: httpx.AsyncClient, auth: Keys, shop: dict[str, Any], action: str
) -> None:
    job = await create_job(client, auth.staff, shop["account"]["id"])
    body: dict[str, Any] = {"version": 1, **({"stage": "check"} if action == "move" else {})}
    response = await client.post(f"/jobs/{job['id']}/{action}", json=body, headers=auth.staff)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["reason"]


async def test_the_error_vocabulary(client: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]) -> None:
    job = await create_job(client, auth.staff, shop["account"]["id"])
    url = f"/jobs/{job['id']}"

    unauthenticated = await client.get(url)
    assert (unauthenticated.status_code, unauthenticated.json()["code"]) == (401, "unauthenticated")
    forbidden = await client.post(f"{url}/advance", json={"version": 1}, headers=auth.integrator)
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, "forbidden")
    missing = await client.post(f"{url}/advance", headers=auth.staff)
    assert (missing.status_code, missing.json()["code"]) == (428, "version_required")
    stale_header = await client.post(f"{url}/advance", headers={**auth.staff, "If-Match": '"7"'})
    assert (stale_header.status_code, stale_header.json()["code"]) == (412, "stale_version")
    stale_body = await client.post(f"{url}/advance", json={"version": 7}, headers=auth.staff)
    assert (stale_body.status_code, stale_body.json()["code"]) == (409, "stale_version")
    disagree = await client.post(
        f"{url}/advance", json={"version": 2}, headers={**auth.staff, "If-Match": '"1"'}
    )
    assert (disagree.status_code, disagree.json()["code"]) == (400, "version_mismatch")
    not_a_tag = await client.post(f"{url}/advance", headers={**auth.staff, "If-Match": "0"})
    assert (not_a_tag.status_code, not_a_tag.json()["code"]) == (412, "stale_version")
    delete = await client.request("DELETE", url, json={"reason": "Entered twice"}, headers=auth.admin)
    assert (delete.status_code, delete.json()["code"]) == (428, "version_required")


async def test_null_is_no_value_for_a_typed_query_parameter(
    client: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]
) -> None:
    job = await create_job(client, auth.staff, shop["account"]["id"])
    history = await client.get(f"/jobs/{job['id']}/history", params={"after": "null"}, headers=auth.staff)
    assert history.status_code == 422
    assert [e["field"] for e in history.json()["errors"]] == ["query.after"]
    search = await client.get("/jobs", params={"q": "null"}, headers=auth.staff)
    assert search.status_code == 200
    for path, name in (("/accounts", "kind"), ("/jobs", "status")):
        enum = await client.get(path, params={name: "null"}, headers=auth.staff)
        assert enum.status_code == 422, enum.text
        assert [e["field"] for e in enum.json()["errors"]] == [f"query.{name}"]
    for name, value in (("workflow", "\x00car"), ("q", "brake\x00"), ("stage", "repair\x1b")):
        nul = await client.get("/jobs", params={name: value}, headers=auth.staff)
        assert nul.status_code == 422, nul.text
        assert [e["field"] for e in nul.json()["errors"]] == [f"query.{name}"]
    seconds = await client.get("/jobs", params={"updated_since": "0.5"}, headers=auth.staff)
    assert seconds.status_code == 422
    assert [e["field"] for e in seconds.json()["errors"]] == ["query.updated_since"]
    iso = await client.get("/jobs", params={"updated_since": "2026-03-01T00:00:00Z"}, headers=auth.staff)
    assert [j["id"] for j in iso.json()["items"]] == [job["id"]]
    for path, beyond in (("/jobs", "9999-12-31T23:00:00-05:00"), ("/accounts", "0001-01-01T00:00:00+05:00")):
        # No UTC instant: the databases could not compare with it.
        out_of_range = await client.get(path, params={"updated_since": beyond}, headers=auth.staff)
        assert out_of_range.status_code == 422, out_of_range.text
        assert [e["field"] for e in out_of_range.json()["errors"]] == ["query.updated_since"]
    key = {"name": "erp", "role": "integrator", "expires_at": "9999-12-31T23:00:00-05:00"}
    beyond_key = await client.post("/keys", json=key, headers=auth.admin)
    assert beyond_key.status_code == 422, beyond_key.text
    assert [e["field"] for e in beyond_key.json()["errors"]] == ["expires_at"]


async def test_options_lists_every_method_of_the_path(client: httpx.AsyncClient, auth: Keys) -> None:
    response = await client.options("/jobs", headers=auth.staff)
    assert response.status_code == 204
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST", "OPTIONS"}


async def test_the_openapi_document_tells_the_truth(client: httpx.AsyncClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    paths, schemas = document["paths"], document["components"]["schemas"]

    for path in ("/health/live", "/health/ready", "/metrics"):
        assert paths[path]["get"]["security"] == []
    advance = paths["/jobs/{job_id}/advance"]["post"]["responses"]
    assert {"200", "400", "401", "403", "404", "409", "412", "413", "415", "422", "428"} <= advance.keys()
    assert list(advance["422"]["content"]) == ["application/problem+json"]
    assert advance["422"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    deletion = paths["/jobs/{job_id}"]["delete"]
    assert {"204", "409", "412", "428"} <= deletion["responses"].keys()
    assert "409" not in paths["/workflows/{key}/restore"]["post"]["responses"]  # a restore cannot clash
    assert "409" in paths["/jobs/{job_id}/estimate"]["get"]["responses"]  # a closed job has no estimate
    assert set(schemas["RequiredReasonIn"]["required"]) == {"reason"}
    assert schemas["CostIn"]["properties"]["kind"]["$ref"].endswith("/CostKind")
    assert set(schemas["CostKind"]["enum"]) == {"labour", "material"}
    assert set(schemas["KeyIn"]["properties"]["role"]["$ref"].split("/")[-1:]) == {"Role"}
    assert set(schemas["NoteVisibility"]["enum"]) == {"public", "internal"}
    assert set(schemas["JobStatus"]["enum"]) == {"open", "on_hold", "completed", "cancelled"}
    assert "history/blend" in schemas["EstimateOut"]["properties"]["basis"]["enum"]
    assert schemas["MoneyIn"]["properties"]["amount"]["type"] == "string"
    assert schemas["JobOut"]["properties"]["created_at"] == {"type": "string", "format": "date-time"}
    assert {"type": "string", "format": "date-time"} in schemas["KeyIn"]["properties"]["expires_at"]["anyOf"]
    assert schemas["JobIn"]["properties"]["reference"]["anyOf"][0]["examples"] == ["J-2026-7KQ4MZ"]
    job_id = paths["/jobs/{job_id}"]["get"]["parameters"][0]["schema"]
    assert (job_id["minimum"], job_id["maximum"]) == (1, INT32_MAX)
    assert "wYTakSDBQNXqcJcDSuFi" not in json.dumps(document)


async def test_a_workflow_stage_key_and_amount_follow_the_documented_pattern(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    body = workflow_body()
    body["stages"][0]["planned_cost"] = 100
    response = await client.post("/workflows", json=body, headers=auth.admin)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["stages[0].planned_cost"]
