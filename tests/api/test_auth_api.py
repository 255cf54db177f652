"""Authentication, roles, API keys, public operational endpoints and the shape of every error."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import CURRENT_TIME, FakeClock, Keys
from tests.factories import create_job, job_body, workflow_body
from tracker.app import create_app
from tracker.db.models import ApiKey
from tracker.settings import Settings

PROBLEM_JSON = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status
    for member in ("type", "title", "detail"):
        assert isinstance(body[member], str), body
        assert body[member], body
    return body


async def _issue(client: httpx.AsyncClient, admin: dict[str, str], role: str, name: str) -> dict[str, Any]:
    response = await client.post("/keys", json={"name": name, "role": role}, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": ""}, id="empty"),
        pytest.param({"Authorization": "Bearer"}, id="bearer-without-key"),
        pytest.param({"Authorization": "Bearer    "}, id="bearer-blank-key"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic"),
        pytest.param({"Authorization": "trk_abc_def"}, id="no-scheme"),
        pytest.param({"Authorization": "Bearer not-a-tracker-key"}, id="malformed-key"),
        pytest.param({"Authorization": "Bearer trk_000000000000_unknownsecret"}, id="unknown-key"),
        pytest.param({"Authorization": f"Bearer trk_{'0' * 17}_unknownsecret"}, id="prefix-too-long"),
    ],
)
async def test_a_request_without_a_valid_key_is_unauthorized(
    client: httpx.AsyncClient, auth: Keys, headers: dict[str, str]
) -> None:
    response = await client.get("/jobs", headers=headers)

    body = assert_problem(response, 401)
    assert body["title"] == "Authentication required"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_known_prefix_with_the_wrong_secret_is_unauthorized(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    issued = await _issue(client, auth.admin, "staff", "till 1")
    forged = f"trk_{issued['prefix']}_{'A' * 43}"
    assert forged != issued["secret"]

    response = await client.get("/jobs", headers=_bearer(forged))

    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_the_bearer_scheme_is_case_insensitive(client: httpx.AsyncClient, auth: Keys) -> None:
    secret = auth.staff["Authorization"].removeprefix("Bearer ")

    response = await client.get("/jobs", headers={"Authorization": f"bearer {secret}"})

    assert response.status_code == 200, response.text


async def test_an_admin_creates_a_key_whose_secret_is_shown_only_once(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    response = await client.post(
        "/keys", json={"name": " shop floor tablet ", "role": "staff"}, headers=auth.admin
    )

    assert response.status_code == 201, response.text
    issued = response.json()
    assert re.fullmatch(r"trk_[0-9a-f]{12}_[A-Za-z0-9_-]{40,}", issued["secret"]), issued["secret"]
    assert issued["secret"].startswith(f"trk_{issued['prefix']}_")
    assert {k: v for k, v in issued.items() if k not in {"id", "prefix", "secret"}} == {
        "name": "shop floor tablet",
        "role": "staff",
        "created_at": CURRENT_TIME.isoformat().replace("+00:00", "Z"),
        "revoked_at": None,
        "expires_at": None,
        "last_used_at": None,
    }

    works = await client.get("/jobs", headers=_bearer(issued["secret"]))
    assert works.status_code == 200, works.text

    listed = await client.get("/keys", headers=auth.admin)
    assert listed.status_code == 200, listed.text
    assert issued["secret"] not in listed.text
    assert all("secret" not in key and "secret_hash" not in key for key in listed.json())
    summary = {k: v for k, v in issued.items() if k != "secret"}
    summary["last_used_at"] = CURRENT_TIME.isoformat().replace("+00:00", "Z")
    assert summary in listed.json()
    assert [k["role"] for k in listed.json()] == ["admin", "staff", "integrator", "staff"]

    stored = await ApiKey.get(id=issued["id"])
    assert stored.secret_hash != issued["secret"]
    assert issued["secret"] not in stored.secret_hash
    assert len(stored.secret_hash) == 64


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "role": "superuser"}, "role"),
        ({"name": "   ", "role": "staff"}, "name"),
        ({"name": "x" * 90, "role": "staff"}, "name"),  # "integrator:" and it must fit who-did-what columns
        ({"role": "staff"}, "name"),
        ({"name": "x", "role": "staff", "secret": "trk_mine"}, "secret"),
        ({"name": "x", "role": "staff", "expires_at": "2030-01-01T00:00:00"}, "expires_at"),  # no offset
    ],
)
async def test_a_bad_key_request_is_refused_naming_the_field(
    client: httpx.AsyncClient, auth: Keys, body: dict[str, str], field: str
) -> None:
    response = await client.post("/keys", json=body, headers=auth.admin)

    problem = assert_problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == [field]
    assert len((await client.get("/keys", headers=auth.admin)).json()) == 3


@pytest.mark.parametrize("role", ["staff", "admin"])
async def test_a_key_with_the_longest_name_records_what_it_does(
    client: httpx.AsyncClient, auth: Keys, shop: dict[str, Any], role: str
) -> None:
    issued = await _issue(client, auth.admin, role, "n" * 89)

    job = await create_job(client, _bearer(issued["secret"]), shop["account"]["id"])
    advanced = await client.post(
        f"/jobs/{job['id']}/advance", json={"version": 1}, headers=_bearer(issued["secret"])
    )

    assert advanced.status_code == 200, advanced.text
    history = (await client.get(f"/jobs/{job['id']}/history", headers=auth.staff)).json()["items"]
    assert {event["actor"] for event in history} == {f"{role}:{'n' * 89}"}


async def test_a_revoked_key_is_refused(client: httpx.AsyncClient, auth: Keys, clock: FakeClock) -> None:
    issued = await _issue(client, auth.admin, "integrator", "erp sync")
    assert (await client.get("/jobs", headers=_bearer(issued["secret"]))).status_code == 200
    later = clock.advance(hours=1)

    revoked = await client.delete(f"/keys/{issued['id']}", headers=auth.admin)

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["id"] == issued["id"]
    assert revoked.json()["revoked_at"] == later.isoformat().replace("+00:00", "Z")
    assert "secret" not in revoked.json()
    refused = await client.get("/jobs", headers=_bearer(issued["secret"]))
    body = assert_problem(refused, 401)
    assert "revoked" in body["detail"]
    assert refused.headers["www-authenticate"].startswith("Bearer")
    listed = {k["id"]: k for k in (await client.get("/keys", headers=auth.admin)).json()}
    assert listed[issued["id"]]["revoked_at"] == revoked.json()["revoked_at"]


async def test_revoking_twice_keeps_the_first_revocation_time(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock
) -> None:
    issued = await _issue(client, auth.admin, "staff", "old tablet")
    first = await client.delete(f"/keys/{issued['id']}", headers=auth.admin)
    clock.advance(days=1)

    second = await client.delete(f"/keys/{issued['id']}", headers=auth.admin)

    assert second.status_code == 200, second.text
    assert second.json()["revoked_at"] == first.json()["revoked_at"]


async def test_revoking_an_unknown_key_is_not_found(client: httpx.AsyncClient, auth: Keys) -> None:
    response = await client.delete("/keys/999", headers=auth.admin)

    body = assert_problem(response, 404)
    assert body["code"] == "not_found"


async def test_an_admin_cannot_revoke_the_key_it_is_using(client: httpx.AsyncClient, auth: Keys) -> None:
    issued = await _issue(client, auth.admin, "admin", "second admin")
    own = _bearer(issued["secret"])

    response = await client.delete(f"/keys/{issued['id']}", headers=own)

    body = assert_problem(response, 409)
    assert body["code"] == "own_key"
    assert (await client.get("/keys", headers=own)).status_code == 200
    by_the_other = await client.delete(f"/keys/{issued['id']}", headers=auth.admin)
    assert by_the_other.status_code == 200, by_the_other.text
    assert_problem(await client.get("/keys", headers=own), 401)


async def test_an_integrator_may_read_jobs_but_not_write_them(client: httpx.AsyncClient, auth: Keys) -> None:
    assert (await client.get("/jobs", headers=auth.integrator)).status_code == 200
    await client.post("/workflows", json=workflow_body(), headers=auth.admin)
    account = await client.post("/accounts", json={"kind": "individual", "name": "Marie"}, headers=auth.staff)

    response = await client.post("/jobs", json=job_body(account.json()["id"]), headers=auth.integrator)

    body = assert_problem(response, 403)
    assert body["title"] == "Not allowed"
    assert "staff" in body["detail"]
    assert (await client.get("/jobs", headers=auth.staff)).json()["items"] == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/keys", None),
        ("POST", "/keys", {"name": "mine", "role": "admin"}),
        ("DELETE", "/keys/1", None),
    ],
)
@pytest.mark.parametrize("role", ["staff", "integrator"])
async def test_only_an_admin_manages_keys(
    client: httpx.AsyncClient, auth: Keys, role: str, method: str, path: str, body: dict[str, str] | None
) -> None:
    response = await client.request(method, path, json=body, headers=getattr(auth, role))

    problem = assert_problem(response, 403)
    assert "admin" in problem["detail"]
    keys = (await client.get("/keys", headers=auth.admin)).json()
    assert [(k["role"], k["revoked_at"]) for k in keys] == [
        ("admin", None),
        ("staff", None),
        ("integrator", None),
    ]


async def test_health_probes_need_no_key(client: httpx.AsyncClient, auth: Keys) -> None:
    live = await client.get("/health/live")
    ready = await client.get("/health/ready")

    assert live.status_code == 200, live.text
    assert live.json() == {"status": "ok"}
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok"}


async def test_metrics_are_public_by_default(client: httpx.AsyncClient, auth: Keys) -> None:
    await client.get("/health/live")

    response = await client.get("/metrics")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=1.0.0; charset=utf-8"  # Prometheus's own
    assert re.search(r'^\w+_requests_total\{app_name="tracker",.*path="/health/live"', response.text, re.M)


@pytest.fixture
async def private_metrics_client(settings: Settings, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    private = Settings(
        database_url=settings.database_url,
        public_base_url=settings.public_base_url,
        max_body_bytes=settings.max_body_bytes,
        metrics_public=False,
    )
    app = create_app(private, clock=clock)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://tracker.test") as http:
        yield http


async def test_private_metrics_need_an_admin_key(
    private_metrics_client: httpx.AsyncClient, auth: Keys
) -> None:
    anonymous = await private_metrics_client.get("/metrics")
    assert_problem(anonymous, 401)
    assert anonymous.headers["www-authenticate"].startswith("Bearer")

    for role in ("staff", "integrator"):
        assert_problem(await private_metrics_client.get("/metrics", headers=getattr(auth, role)), 403)

    admin = await private_metrics_client.get("/metrics", headers=auth.admin)
    assert admin.status_code == 200, admin.text
    assert re.search(r'^\w+_requests_total\{app_name="tracker",', admin.text, re.M)

    live = await private_metrics_client.get("/health/live")
    assert live.status_code == 200, live.text


async def test_the_openapi_document_is_served_without_a_key(client: httpx.AsyncClient, auth: Keys) -> None:
    response = await client.get("/schema/openapi.json")

    assert response.status_code == 200, response.text
    document = response.json()
    assert document["info"]["title"] == "tracker"
    assert "/jobs" in document["paths"]
    assert "post" in document["paths"]["/jobs"]
    assert document["paths"]["/metrics"]["get"]["security"] == []
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"


async def test_the_api_reference_page_pins_its_script_and_links_the_document(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    response = await client.get("/schema")

    assert response.status_code == 200, response.text
    page = response.text
    assert '<a href="/schema/openapi.json">' in page  # all there is where the CDN cannot be reached
    script = re.search(r'<script src="([^"]+)" integrity="(sha384-[A-Za-z0-9+/=]{64})"', page)
    assert script is not None, page
    assert re.search(r"@\d+\.\d+\.\d+/", script.group(1)), script.group(1)  # one version, never "latest"


async def test_a_body_over_the_size_limit_is_refused(client: httpx.AsyncClient, auth: Keys) -> None:
    body = workflow_body()
    body["name"] = "x" * (65 * 1024)

    response = await client.post("/workflows", json=body, headers=auth.admin)

    problem = assert_problem(response, 413)
    assert problem["title"] == "Request body too large"
    assert problem["code"] == "body_too_large"
    assert (await client.get("/workflows", headers=auth.admin)).json() == []


async def test_a_body_just_under_the_size_limit_reaches_validation(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    body = workflow_body()
    body["name"] = "x" * (60 * 1024)

    response = await client.post("/workflows", json=body, headers=auth.admin)

    problem = assert_problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == ["name"]


async def test_every_kind_of_error_is_a_problem_document(client: httpx.AsyncClient, auth: Keys) -> None:
    individual = await client.post(
        "/accounts",
        json={"kind": "individual", "name": "M", "contacts": [{"name": "M", "email": "m@example.com"}]},
        headers=auth.staff,
    )
    assert individual.status_code == 201, individual.text
    responses = {
        400: await client.post(
            "/workflows",
            content=b"{not json",
            headers={**auth.admin, "Content-Type": "application/json"},
        ),
        401: await client.get("/accounts"),
        403: await client.get("/accounts", headers=auth.integrator),
        404: await client.get("/accounts/12345", headers=auth.staff),
        405: await client.put("/health/live"),
        409: await client.post(
            f"/accounts/{individual.json()['id']}/contacts",
            json={"name": "N", "email": "n@example.com"},
            headers=auth.staff,
        ),
        413: await client.post(
            "/accounts",
            content=b"x" * (70 * 1024),
            headers={**auth.staff, "Content-Type": "application/json"},
        ),
        422: await client.post("/accounts", json={"kind": "company", "name": "A"}, headers=auth.staff),
    }

    for status, response in responses.items():
        body = assert_problem(response, status)
        assert body["instance"] == response.request.url.path


async def test_an_unknown_path_is_a_problem_document(client: httpx.AsyncClient, auth: Keys) -> None:
    response = await client.get("/no-such-thing", headers=auth.staff)

    assert_problem(response, 404)


async def test_the_request_id_sent_by_the_caller_is_echoed(client: httpx.AsyncClient, auth: Keys) -> None:
    ok = await client.get("/jobs", headers={**auth.staff, "X-Request-ID": "abc-123.retry:2"})
    failed = await client.get("/jobs", headers={"X-Request-ID": "req_unauthorized"})

    assert ok.status_code == 200, ok.text
    assert ok.headers["x-request-id"] == "abc-123.retry:2"
    assert failed.status_code == 401, failed.text
    assert failed.headers["x-request-id"] == "req_unauthorized"


async def test_a_request_id_is_generated_when_none_or_an_unusable_one_is_sent(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    first = await client.get("/health/live")
    second = await client.get("/health/live")
    spoofed = await client.get("/health/live", headers={"X-Request-ID": "bad id\twith spaces"})
    too_long = await client.get("/health/live", headers={"X-Request-ID": "a" * 129})

    generated = [r.headers["x-request-id"] for r in (first, second, spoofed, too_long)]
    assert all(re.fullmatch(r"[0-9a-f]{16}", rid) for rid in generated), generated
    assert len(set(generated)) == 4
