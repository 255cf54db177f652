"""Every role on every route: the status each kind of caller gets for each operation, through HTTP.

Each operation has its own target (a job in the right state, a spare contact, key, account or workflow), so
an allowed caller succeeds and a refused one changes nothing. A route missing from ROUTES fails the
coverage test: a new route must say who may call it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import CURRENT_TIME, Keys
from tests.factories import (
    create_account,
    create_fleet_account,
    create_job,
    create_workflow,
    job_body,
    workflow_body,
)
from tracker.app import create_app
from tracker.db.models import Contact, DevMail, Suppression
from tracker.services import keys
from tracker.settings import Settings
from tracker.web.customer_pages import Assets

CALLERS = ("admin", "staff", "integrator", "no key", "expired key")
PUBLIC = frozenset(CALLERS)
READERS = frozenset({"admin", "staff", "integrator"})
STAFF = frozenset({"admin", "staff"})
ADMIN = frozenset({"admin"})
HOOKS = frozenset({"admin", "integrator"})
"""Webhook endpoints: the targets are the integrator's own (another integrator's answer 404)."""
DOCS_UI = re.compile(r"^/schema(/scalar|/\{path:str\})?$")
"""The rendered API docs: pages around the OpenAPI document, which ROUTES covers."""


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    """As the app declares it; `{name:type}` is filled from the world, or from `target`."""
    success: int
    allowed: frozenset[str]
    target: dict[str, str] = field(default_factory=dict)
    """Which world entry fills each path parameter, when not the one of the same name."""
    body: str | None = None
    """The world entry holding the request body."""


def version_body(**extra: Any) -> dict[str, Any]:
    body = workflow_body(stages=("intake", "repair", "ready"))
    del body["key"]
    return {**body, **extra}


ROUTES = [
    Route("GET", "/health/live", 200, PUBLIC),
    Route("GET", "/health/ready", 200, PUBLIC),
    Route("GET", "/metrics", 200, PUBLIC),
    Route("GET", "/schema/openapi.json", 200, PUBLIC),
    Route("GET", "/workflows", 200, READERS),
    Route("POST", "/workflows", 201, ADMIN, body="new_workflow"),
    Route("GET", "/workflows/{key:str}", 200, READERS),
    Route("GET", "/workflows/{key:str}/versions", 200, READERS),
    Route("GET", "/workflows/{key:str}/versions/{version:int}", 200, READERS),
    Route("PUT", "/workflows/{key:str}", 200, ADMIN, body="workflow_version"),
    Route("DELETE", "/workflows/{key:str}", 204, ADMIN, target={"key": "workflow_to_archive"}),
    Route("POST", "/workflows/{key:str}/restore", 200, ADMIN, target={"key": "archived_workflow"}),
    Route("GET", "/accounts", 200, STAFF),
    Route("POST", "/accounts", 201, STAFF, body="new_account"),
    Route("GET", "/accounts/{account_id:int}", 200, STAFF),
    Route("PATCH", "/accounts/{account_id:int}", 200, STAFF, body="rename"),
    Route("DELETE", "/accounts/{account_id:int}", 204, STAFF, target={"account_id": "spare_account"}),
    Route("GET", "/accounts/{account_id:int}/contacts", 200, STAFF),
    Route("POST", "/accounts/{account_id:int}/contacts", 201, STAFF, body="new_contact"),
    Route("GET", "/contacts/{contact_id:int}", 200, STAFF),
    Route("PATCH", "/contacts/{contact_id:int}", 200, STAFF, body="rename"),
    Route("DELETE", "/contacts/{contact_id:int}", 204, STAFF, target={"contact_id": "spare_contact"}),
    Route("GET", "/jobs", 200, READERS),
    Route("POST", "/jobs", 201, STAFF, body="new_job"),
    Route("GET", "/jobs/{job_id:int}", 200, READERS),
    Route("PATCH", "/jobs/{job_id:int}", 200, STAFF, target={"job_id": "job_to_patch"}, body="retitle"),
    Route("DELETE", "/jobs/{job_id:int}", 204, ADMIN, target={"job_id": "closed_job"}, body="deletion"),
    Route("POST", "/jobs/{job_id:int}/advance", 200, STAFF, target={"job_id": "job_to_advance"}, body="v1"),
    Route("POST", "/jobs/{job_id:int}/move", 200, STAFF, target={"job_id": "job_to_move"}, body="move"),
    Route("POST", "/jobs/{job_id:int}/hold", 200, STAFF, target={"job_id": "job_to_hold"}, body="hold"),
    Route("POST", "/jobs/{job_id:int}/resume", 200, STAFF, target={"job_id": "held_job"}, body="v2"),
    Route("POST", "/jobs/{job_id:int}/complete", 200, STAFF, target={"job_id": "job_at_end"}, body="v1"),
    Route("POST", "/jobs/{job_id:int}/cancel", 200, STAFF, target={"job_id": "job_to_cancel"}, body="cancel"),
    Route("POST", "/jobs/{job_id:int}/reopen", 200, STAFF, target={"job_id": "cancelled_job"}, body="reopen"),
    Route("GET", "/jobs/{job_id:int}/costs", 200, STAFF),
    Route("POST", "/jobs/{job_id:int}/costs", 201, STAFF, target={"job_id": "job_to_cost"}, body="cost"),
    Route("GET", "/jobs/{job_id:int}/notes", 200, READERS),
    Route("POST", "/jobs/{job_id:int}/notes", 201, STAFF, target={"job_id": "job_to_note"}, body="note"),
    Route("GET", "/jobs/{job_id:int}/history", 200, READERS),
    Route("GET", "/jobs/{job_id:int}/visits", 200, READERS),
    Route("GET", "/jobs/{job_id:int}/estimates", 200, READERS),
    Route("GET", "/jobs/{job_id:int}/estimate", 200, READERS),
    Route("GET", "/jobs/{job_id:int}/notifications", 200, STAFF),
    Route("GET", "/keys", 200, ADMIN),
    Route("POST", "/keys", 201, ADMIN, body="new_key"),
    Route("DELETE", "/keys/{key_id:int}", 200, ADMIN, target={"key_id": "spare_key"}),
    Route("GET", "/audit", 200, ADMIN),
    Route("GET", "/contacts/{contact_id:int}/preferences", 200, STAFF),
    Route("PUT", "/contacts/{contact_id:int}/preferences", 200, STAFF, body="preferences"),
    Route("GET", "/suppressions", 200, STAFF),
    Route("DELETE", "/suppressions/{address:str}", 204, STAFF),
    Route("GET", "/unsubscribe/{token:str}", 200, PUBLIC),
    Route("HEAD", "/unsubscribe/{token:str}", 200, PUBLIC),
    Route("POST", "/unsubscribe/{token:str}", 200, PUBLIC),
    # The customer pages: their secret link is the key; an API key neither grants nor refuses anything there.
    Route("GET", "/status/{token:str}", 200, PUBLIC, target={"token": "status_token"}),
    Route("HEAD", "/status/{token:str}", 200, PUBLIC, target={"token": "status_token"}),
    Route("GET", "/status/{token:str}/json", 404, PUBLIC, target={"token": "status_token"}),  # at .json
    Route("GET", "/status/{token:str}/ics", 404, PUBLIC, target={"token": "status_token"}),  # at .ics
    Route("HEAD", "/status/{token:str}/ics", 404, PUBLIC, target={"token": "status_token"}),
    Route("GET", "/a/{token:str}", 200, PUBLIC),
    Route("HEAD", "/a/{token:str}", 200, PUBLIC),
    Route("GET", "/static/{name:str}", 200, PUBLIC, target={"name": "asset"}),
    Route("HEAD", "/static/{name:str}", 200, PUBLIC, target={"name": "asset"}),
    # A form post without the form token of its page is refused, whoever sends it.
    Route("POST", "/status/{token:str}/question", 400, PUBLIC, target={"token": "status_token"}),
    Route("POST", "/status/{token:str}/survey", 400, PUBLIC, target={"token": "status_token"}),
    Route("POST", "/a/{token:str}/preferences", 400, PUBLIC),
    Route("POST", "/jobs/{job_id:int}/status-token", 200, STAFF, target={"job_id": "job_to_relink"}),
    Route("GET", "/dev/mailbox", 200, ADMIN),
    Route("GET", "/dev/mailbox/{mail_id:int}", 200, ADMIN),
    Route("GET", "/event-types", 200, READERS),
    Route("GET", "/webhooks", 200, HOOKS),
    Route("POST", "/webhooks", 201, HOOKS, body="new_webhook"),
    Route("GET", "/webhooks/{webhook_id:int}", 200, HOOKS),
    Route("PATCH", "/webhooks/{webhook_id:int}", 200, HOOKS, body="pause"),
    Route("DELETE", "/webhooks/{webhook_id:int}", 204, HOOKS, target={"webhook_id": "spare_webhook"}),
    Route("POST", "/webhooks/{webhook_id:int}/rotate-secret", 200, HOOKS),
    Route("POST", "/webhooks/{webhook_id:int}/test", 202, HOOKS),
    Route("GET", "/webhooks/{webhook_id:int}/attempts", 200, HOOKS),
    Route("POST", "/webhooks/{webhook_id:int}/replay", 202, HOOKS, body="replay"),
    # The staff dashboard takes no bearer key: a key signs in through its form, then a session cookie
    # stands for it. Without one, the sign-in page, 401 for the forms and a redirect for the other pages.
    Route("GET", "/dashboard", 200, PUBLIC),
    Route("POST", "/dashboard/sign-in", 401, PUBLIC),
    Route("POST", "/dashboard/sign-out", 401, PUBLIC),
    Route("GET", "/dashboard/jobs", 303, PUBLIC),
    Route("GET", "/dashboard/jobs/{job_id:int}", 303, PUBLIC),
    Route(
        "POST",
        "/dashboard/jobs/{job_id:int}/{action:str}",
        401,
        PUBLIC,
        target={"action": "dashboard_action"},
    ),
]
PARAMETER = re.compile(r"\{(\w+):\w+\}")


def test_every_route_of_the_app_is_in_the_table() -> None:
    app = create_app(Settings(database_url="sqlite://:memory:"))
    served = {
        (method, route.path)
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        for method in handler.http_methods
        if method != "OPTIONS" and not DOCS_UI.match(route.path)
    }

    table = {(r.method, r.path) for r in ROUTES}

    assert served - table == set(), "add these routes to ROUTES, saying who may call them"
    assert table - served == set()


async def _job(client: httpx.AsyncClient, staff: dict[str, str], account_id: int, **extra: Any) -> int:
    return int((await create_job(client, staff, account_id, **extra))["id"])


async def _world(client: httpx.AsyncClient, auth: Keys) -> dict[str, Any]:
    """One target per operation, made by admin and staff before the caller under test acts."""
    await create_workflow(client, auth.admin)
    await create_workflow(client, auth.admin, key="old-process")
    await create_workflow(client, auth.admin, key="retired")
    assert (await client.delete("/workflows/retired", headers=auth.admin)).status_code == 204
    account = await create_fleet_account(client, auth.staff)
    spare_account = await create_account(client, auth.staff, name="No jobs yet", contacts=[])
    account_id = account["id"]
    world: dict[str, Any] = {
        "key": "car-repair",
        "version": 1,
        "workflow_to_archive": "old-process",
        "archived_workflow": "retired",
        "account_id": account_id,
        "spare_account": spare_account["id"],
        "contact_id": account["contacts"][0]["id"],
        "spare_contact": account["contacts"][1]["id"],
        "dashboard_action": "advance",
    }
    for name in ("job_id", "job_to_patch", "job_to_advance", "job_to_move", "job_to_hold", "job_to_cancel"):
        world[name] = await _job(client, auth.staff, account_id)
    for name in ("job_to_cost", "job_to_note"):
        world[name] = await _job(client, auth.staff, account_id)
    world["job_at_end"] = await _job(client, auth.staff, account_id, start_stage="ready")
    for name, action in (("held_job", "hold"), ("cancelled_job", "cancel"), ("closed_job", "cancel")):
        world[name] = await _job(client, auth.staff, account_id)
        done = await client.post(
            f"/jobs/{world[name]}/{action}", json={"version": 1, "reason": "set-up"}, headers=auth.staff
        )
        assert done.status_code == 200, done.text
    world["token"] = (await Contact.get(id=world["contact_id"])).page_token
    status_page = (await client.get(f"/jobs/{world['job_id']}", headers=auth.staff)).json()["status_page_url"]
    world["status_token"] = status_page.rsplit("/", 1)[-1]
    world["job_to_relink"] = await _job(client, auth.staff, account_id)
    world["asset"] = Assets(Settings().templates_dir / "static").url("site.css").rsplit("/", 1)[-1]
    world["address"] = "gone@fleet.example"
    await Suppression.create(address=world["address"], reason="550 no such user", created_at=CURRENT_TIME)
    kept = await DevMail.create(
        recipient="ann@fleet.example", subject="Hi", message="", created_at=CURRENT_TIME
    )
    world["mail_id"] = kept.id
    spare_key = await client.post("/keys", json={"name": "old tablet", "role": "staff"}, headers=auth.admin)
    world["spare_key"] = spare_key.json()["id"]
    for name in ("webhook_id", "spare_webhook"):
        webhook = await client.post(
            "/webhooks",
            json={"url": f"https://hooks.example.com/{name}", "event_types": ["job.completed"]},
            headers=auth.integrator,
        )
        assert webhook.status_code == 201, webhook.text
        world[name] = webhook.json()["id"]
    world["bodies"] = {
        "new_workflow": workflow_body(key="bike-repair"),
        "workflow_version": version_body(),
        "new_account": {"kind": "individual", "name": "Marie"},
        "rename": {"name": "Renamed"},
        "new_contact": {"name": "Cleo", "email": "cleo@fleet.example"},
        "new_job": job_body(account_id),
        "retitle": {"version": 1, "title": "Brake discs and pads"},
        "deletion": {"version": 2, "reason": "Entered twice"},
        "v1": {"version": 1},
        "v2": {"version": 2},
        "move": {"version": 1, "stage": "check", "reason": "Intake done by phone"},
        "hold": {"version": 1, "reason": "Waiting for approval"},
        "cancel": {"version": 1, "reason": "Customer went elsewhere"},
        "reopen": {"version": 2, "reason": "Customer came back"},
        "cost": {"version": 1, "kind": "material", "amount": "12.50"},
        "note": {"version": 1, "visibility": "public", "body": "Car received"},
        "new_key": {"name": "erp", "role": "integrator"},
        "preferences": {"progress": "each", "estimates": "digest", "alerts": "each", "notes": "off"},
        "new_webhook": {"url": "https://hooks.example.com/new", "event_types": ["job.created"]},
        "pause": {"status": "paused"},
        "replay": {"since": "2026-01-01T00:00:00Z", "status": "all"},
    }
    return world


async def _headers(caller: str, auth: Keys) -> dict[str, str]:
    if caller == "no key":
        return {}
    if caller == "expired key":
        expired = await keys.create_key(
            "last year's admin",
            "admin",
            now=CURRENT_TIME - timedelta(days=400),
            expires_at=CURRENT_TIME - timedelta(days=35),
        )
        return {"Authorization": f"Bearer {expired.secret}"}
    headers: dict[str, str] = getattr(auth, caller)
    return headers


def _url(route: Route, world: dict[str, Any]) -> str:
    return PARAMETER.sub(lambda m: str(world[route.target.get(m.group(1), m.group(1))]), route.path)


async def _snapshot(client: httpx.AsyncClient, auth: Keys) -> list[Any]:
    """What any successful write among ROUTES but the webhook endpoints' would change (a key's last use
    aside)."""
    reads = ["/jobs?limit=200", "/accounts?limit=200", "/workflows?archived=true", "/audit"]
    responses = [await client.get(path, headers=auth.admin) for path in reads]
    api_keys = (await client.get("/keys", headers=auth.admin)).json()
    return [r.json() for r in responses] + [{**k, "last_used_at": None} for k in api_keys]


@pytest.mark.parametrize("caller", CALLERS)
async def test_each_caller_gets_the_status_its_role_allows_on_every_route(
    client: httpx.AsyncClient, auth: Keys, caller: str
) -> None:
    world = await _world(client, auth)
    headers = await _headers(caller, auth)
    before = await _snapshot(client, auth)

    answered = {}
    for route in ROUTES:
        body = world["bodies"][route.body] if route.body else None
        response = await client.request(route.method, _url(route, world), json=body, headers=headers)
        answered[f"{route.method} {route.path}"] = response.status_code

    expected = {
        f"{r.method} {r.path}": (r.success if caller in r.allowed else 403 if caller in READERS else 401)
        for r in ROUTES
    }
    assert answered == expected
    # An integrator's own webhook endpoints are all it may change: everything else stays as it was.
    if not any(caller in r.allowed and r.method != "GET" for r in ROUTES if r.allowed != HOOKS):
        assert await _snapshot(client, auth) == before
