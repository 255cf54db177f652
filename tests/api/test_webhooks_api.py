"""The integrators' webhook API through HTTP: registration and its SSRF guard, one integrator's endpoints
hidden from another, the secret shown once and rotated with a window, test messages, attempts, replays and
the catalogue of webhook types."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import jsonschema_rs
import pytest
from litestar import Litestar

from tests.conftest import CURRENT_TIME, FakeClock, Keys, offline_resolver
from tests.factories import create_account, create_job
from tracker.app import create_app
from tracker.db.models import Delivery, DeliveryAttempt, WebhookEndpoint
from tracker.services import keys
from tracker.services.bootstrap import Services
from tracker.settings import Settings

PROBLEM_JSON = "application/problem+json"
URL = "https://hooks.example.com/tracker"


def _z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    return body


def _error(response: httpx.Response) -> tuple[str, str]:
    """The one field a 422 names, and why."""
    errors = _problem(response, 422)["errors"]
    assert len(errors) == 1, errors
    return errors[0]["field"], errors[0]["reason"]


@pytest.fixture
def app(settings: Settings, clock: FakeClock) -> Litestar:
    return create_app(settings, clock=clock, resolver=offline_resolver)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://tracker.test") as http:
        yield http


@pytest.fixture
def fired(app: Litestar) -> list[int]:
    """One entry per `deliveries_queued.fire()` of the app."""
    calls: list[int] = []
    services: Services = app.state.services
    services.deliveries_queued.subscribe(lambda: calls.append(1))
    return calls


async def register(
    client: httpx.AsyncClient, headers: dict[str, str], url: str = URL, **extra: Any
) -> dict[str, Any]:
    body = {"url": url, "event_types": ["job.stage_changed", "job.completed"], **extra}
    response = await client.post("/webhooks", json=body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def another_integrator() -> dict[str, str]:
    issued = await keys.create_key("other erp", "integrator", now=CURRENT_TIME)
    return {"Authorization": f"Bearer {issued.secret}"}


async def queue(
    endpoint_id: int,
    status: str,
    *,
    kind: str = "advance",
    at: datetime = CURRENT_TIME,
    claim: str | None = None,
) -> int:
    """A webhook delivery as the outbox writes it (and the dispatcher leaves it): a queued one has been
    tried once and waits for its retry, unless `claim` says a dispatcher is sending it."""
    delivery = await Delivery.create(
        dedupe_key=f"{kind}:{endpoint_id}:{status}:{at.isoformat()}:{await Delivery.all().count()}",
        channel="webhook",
        kind=kind,
        target=f"webhook:{endpoint_id}",
        endpoint_id=endpoint_id,
        status=status,
        attempts=9 if status == "dead" else 1,
        available_at=at,
        created_at=at,
        sent_at=at if status == "sent" else None,
        last_error="HTTP 500" if status == "dead" else None,
        claim=claim,
    )
    return delivery.id


# --- registration --------------------------------------------------------------------------------------


async def test_a_registered_endpoint_shows_its_secret_once(client: httpx.AsyncClient, auth: Keys) -> None:
    created = await register(
        client,
        auth.integrator,
        event_types=["job.completed", "job.stage_changed", "job.completed"],
        description="ERP order sync",
    )

    secret = created.pop("secret")
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) >= 24
    assert created == {
        "id": created["id"],
        "url": URL,
        "description": "ERP order sync",
        "account_id": None,
        "event_types": ["job.completed", "job.stage_changed"],
        "rate_per_second": None,
        "status": "active",
        "disabled_reason": None,
        "failing_since": None,
        "previous_secret_expires_at": None,
        "created_at": _z(CURRENT_TIME),
        "updated_at": _z(CURRENT_TIME),
        "version": 1,
    }
    read = await client.get(f"/webhooks/{created['id']}", headers=auth.integrator)
    listed = await client.get("/webhooks", headers=auth.integrator)
    assert read.json() == created
    assert listed.json() == {"items": [created], "next_cursor": None}
    assert secret not in read.text + listed.text


async def test_an_endpoint_may_hear_about_one_account(client: httpx.AsyncClient, auth: Keys) -> None:
    account = await create_account(client, auth.staff)

    created = await register(client, auth.integrator, account_id=account["id"])
    unknown = await client.post(
        "/webhooks", json={"url": URL, "event_types": ["job.created"], "account_id": 999}, headers=auth.admin
    )
    moved = await client.patch(f"/webhooks/{created['id']}", json={"account_id": 999}, headers=auth.admin)

    assert created["account_id"] == account["id"]
    assert _problem(unknown, 409)["code"] == "unknown_account"
    assert _problem(moved, 409)["detail"] == "account 999 does not exist"
    assert len((await client.get("/webhooks", headers=auth.admin)).json()["items"]) == 1


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"event_types": ["job.exploded"]}, "event_types[0]", "Invalid enum value 'job.exploded'"),
        ({"event_types": []}, "event_types", "Expected `array` of length >= 1"),
        ({"event_types": ["webhook.test"]}, "event_types[0]", "Invalid enum value 'webhook.test'"),
        ({"url": "ftp://hooks.example.com/x"}, "url", "has a form or a character"),
    ],
)
async def test_a_bad_registration_is_refused_naming_the_field(
    client: httpx.AsyncClient, auth: Keys, body: dict[str, Any], field: str, reason: str
) -> None:
    response = await client.post(
        "/webhooks", json={"url": URL, "event_types": ["job.created"], **body}, headers=auth.integrator
    )

    assert _error(response)[0] == field
    assert reason in _error(response)[1]
    assert (await client.get("/webhooks", headers=auth.admin)).json()["items"] == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/hook", "127.0.0.1 (loopback)"),
        ("https://localhost:8443/hook", "(loopback)"),
        ("https://[::1]/hook", "::1 (loopback)"),
        ("https://10.0.0.1/hook", "10.0.0.1 (private)"),
        ("https://192.168.1.1/hook", "(private)"),
        ("https://intranet.example.com/hook", "intranet.example.com resolves to 10.0.0.1 (private)"),
        ("https://split.example.com/hook", "resolves to 192.168.1.20 (private)"),
        ("https://169.254.169.254/latest/meta-data", "(cloud metadata)"),
        ("https://169.254.10.1/hook", "(link-local)"),
        ("https://[fe80::1]/hook", "(link-local)"),
        ("https://100.64.0.1/hook", "(carrier-grade NAT)"),
        ("https://[::ffff:10.0.0.1]/hook", "::ffff:a00:1 (private)"),
        ("https://[::ffff:127.0.0.1]/hook", "(loopback)"),
        ("https://[64:ff9b::a00:1]/hook", "64:ff9b::a00:1 (private)"),
        ("https://[64:ff9b::a9fe:a9fe]/hook", "(cloud metadata)"),
        ("https://192.0.2.10/hook", "(documentation)"),
        ("https://224.0.0.1/hook", "(multicast)"),
        ("https://0.0.0.0/hook", "(unspecified)"),
        ("http://hooks.example.com/hook", "must use https"),
        ("https://nowhere.example.com/hook", "nowhere.example.com does not resolve"),
        ("https://user:pw@hooks.example.com/hook", "user name or password"),
    ],
)
async def test_an_unsafe_url_is_refused_at_registration(
    client: httpx.AsyncClient, auth: Keys, url: str, reason: str
) -> None:
    response = await client.post(
        "/webhooks", json={"url": url, "event_types": ["job.created"]}, headers=auth.integrator
    )

    field, why = _error(response)
    assert field == "url"
    assert reason in why
    assert await WebhookEndpoint.all().count() == 0


async def test_a_changed_url_is_judged_again(client: httpx.AsyncClient, auth: Keys) -> None:
    created = await register(client, auth.integrator)

    response = await client.patch(
        f"/webhooks/{created['id']}", json={"url": "https://169.254.169.254/x"}, headers=auth.integrator
    )

    assert _error(response) == ("url", "169.254.169.254 resolves to 169.254.169.254 (cloud metadata)")
    assert (await client.get(f"/webhooks/{created['id']}", headers=auth.integrator)).json()["url"] == URL


async def test_the_operator_may_allow_http_and_a_trusted_network(
    db: str, clock: FakeClock, auth: Keys
) -> None:
    settings = Settings(
        database_url=db, webhook_allow_http=True, webhook_allowed_networks="127.0.0.0/8, ::1/128"
    )
    app = create_app(settings, clock=clock, resolver=offline_resolver)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:  # type: ignore[arg-type]
        created = await register(client, auth.integrator, url="http://localhost:8080/hook")
        private = await client.post(
            "/webhooks", json={"url": "http://10.0.0.1/", "event_types": ["job.created"]}, headers=auth.admin
        )

    assert created["url"] == "http://localhost:8080/hook"
    assert _error(private) == ("url", "10.0.0.1 resolves to 10.0.0.1 (private)")


# --- who sees what -------------------------------------------------------------------------------------


async def test_an_integrator_sees_and_manages_only_its_own_endpoints(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    mine = await register(client, auth.integrator)
    admins = await register(client, auth.admin, url="https://hooks.example.com/admin")
    other = await another_integrator()
    path = f"/webhooks/{mine['id']}"

    answers = [
        await client.get(path, headers=other),
        await client.patch(path, json={"status": "paused"}, headers=other),
        await client.post(f"{path}/rotate-secret", headers=other),
        await client.post(f"{path}/test", headers=other),
        await client.get(f"{path}/attempts", headers=other),
        await client.post(f"{path}/replay", json={"since": "2026-01-01T00:00:00Z"}, headers=other),
        await client.delete(path, headers=other),
        await client.get(f"/webhooks/{admins['id']}", headers=auth.integrator),
    ]

    assert [_problem(a, 404)["code"] for a in answers] == ["not_found"] * len(answers)
    assert (await client.get("/webhooks", headers=other)).json()["items"] == []
    own = (await client.get("/webhooks", headers=auth.integrator)).json()["items"]
    assert [e["id"] for e in own] == [mine["id"]]
    every = (await client.get("/webhooks", headers=auth.admin)).json()["items"]
    assert [e["id"] for e in every] == [mine["id"], admins["id"]]
    assert (await client.get(path, headers=auth.integrator)).json()["status"] == "active"
    assert await Delivery.all().count() == 0


async def test_staff_keys_do_not_manage_webhooks(client: httpx.AsyncClient, auth: Keys) -> None:
    response = await client.post(
        "/webhooks", json={"url": URL, "event_types": ["job.created"]}, headers=auth.staff
    )

    assert _problem(response, 403)["code"] == "forbidden"


async def test_endpoints_are_listed_a_page_at_a_time(client: httpx.AsyncClient, auth: Keys) -> None:
    ids = [(await register(client, auth.integrator, url=f"{URL}/{n}"))["id"] for n in range(5)]

    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/webhooks", params=params, headers=auth.integrator)).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == ids
    newest = await client.get("/webhooks", params={"sort": "-created"}, headers=auth.integrator)
    assert [e["id"] for e in newest.json()["items"]] == ids[::-1]


# --- changes -------------------------------------------------------------------------------------------


async def test_patching_changes_only_the_given_fields(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock
) -> None:
    account = await create_account(client, auth.staff)
    created = await register(client, auth.integrator, account_id=account["id"], description="ERP")
    clock.advance(minutes=5)

    changed = await client.patch(
        f"/webhooks/{created['id']}",
        json={"event_types": ["job.at_risk", "job.stuck"], "account_id": None},
        headers=auth.integrator,
    )

    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["event_types"] == ["job.at_risk", "job.stuck"]
    assert body["account_id"] is None
    assert (body["url"], body["description"]) == (URL, "ERP")
    assert body["updated_at"] == _z(clock.now)
    assert (await client.get(f"/webhooks/{created['id']}", headers=auth.integrator)).json() == body


async def test_a_change_naming_a_version_read_before_another_change_is_refused(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    created = await register(client, auth.integrator)
    read = await client.get(f"/webhooks/{created['id']}", headers=auth.integrator)
    assert (read.headers["etag"], read.json()["version"]) == ('"1"', 1)

    paused = await client.patch(
        f"/webhooks/{created['id']}",
        json={"status": "paused"},
        headers={**auth.integrator, "If-Match": '"1"'},
    )
    assert paused.status_code == 200, paused.text
    assert (paused.headers["etag"], paused.json()["version"]) == ('"2"', 2)

    stale = await client.patch(
        f"/webhooks/{created['id']}",
        json={"description": "from a form opened before the pause"},
        headers={**auth.integrator, "If-Match": '"1"'},
    )
    assert stale.status_code == 412, stale.text
    problem = stale.json()
    assert (problem["code"], problem["current_version"], stale.headers["etag"]) == ("stale_version", 2, '"2"')
    after = (await client.get(f"/webhooks/{created['id']}", headers=auth.integrator)).json()
    assert after == paused.json()  # nothing of the refused change was written

    rotated = await client.post(f"/webhooks/{created['id']}/rotate-secret", headers=auth.integrator)
    assert rotated.json()["version"] == 3
    unconditional = await client.patch(
        f"/webhooks/{created['id']}", json={"description": "no If-Match"}, headers=auth.integrator
    )
    assert (unconditional.status_code, unconditional.json()["version"]) == (200, 4)


async def test_an_endpoint_may_limit_its_request_rate(client: httpx.AsyncClient, auth: Keys) -> None:
    created = await register(client, auth.integrator, rate_per_second=2.5)
    path = f"/webhooks/{created['id']}"

    lifted = await client.patch(path, json={"rate_per_second": None}, headers=auth.integrator)
    refused = await client.patch(path, json={"rate_per_second": 0}, headers=auth.integrator)
    too_slow = await client.patch(path, json={"rate_per_second": 1e-300}, headers=auth.integrator)

    assert created["rate_per_second"] == 2.5
    assert lifted.json()["rate_per_second"] is None
    assert _error(refused)[0] == "rate_per_second"
    assert (
        _error(too_slow)[0] == "rate_per_second"
    )  # slower than one an hour: a send would outwait its delivery
    assert (await client.get(path, headers=auth.integrator)).json()["rate_per_second"] is None
    hourly = await client.patch(path, json={"rate_per_second": 1 / 3600}, headers=auth.integrator)
    assert hourly.json()["rate_per_second"] == 1 / 3600


async def test_an_endpoint_is_paused_and_resumed(client: httpx.AsyncClient, auth: Keys) -> None:
    created = await register(client, auth.integrator)
    path = f"/webhooks/{created['id']}"

    paused = await client.patch(path, json={"status": "paused"}, headers=auth.integrator)
    resumed = await client.patch(path, json={"status": "active"}, headers=auth.integrator)

    assert paused.json()["status"] == "paused"
    assert resumed.json()["status"] == "active"


async def test_a_disabled_endpoint_is_reactivated_and_its_failures_forgotten(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    created = await register(client, auth.integrator)
    await WebhookEndpoint.filter(id=created["id"]).update(
        status="disabled",
        disabled_reason="failing for 5 days",
        failing_since=CURRENT_TIME - timedelta(days=5),
        warned_at=CURRENT_TIME - timedelta(days=2),
    )
    path = f"/webhooks/{created['id']}"
    disabled = (await client.get(path, headers=auth.integrator)).json()

    refused = await client.post(f"{path}/test", headers=auth.integrator)
    active = await client.patch(path, json={"status": "active"}, headers=auth.integrator)

    assert (disabled["status"], disabled["disabled_reason"]) == ("disabled", "failing for 5 days")
    assert _problem(refused, 409)["code"] == "endpoint_disabled"
    assert active.status_code == 200, active.text
    assert (active.json()["status"], active.json()["failing_since"], active.json()["disabled_reason"]) == (
        "active",
        None,
        None,
    )
    row = await WebhookEndpoint.get(id=created["id"])
    assert row.warned_at is None


async def test_status_disabled_is_not_set_through_the_api(client: httpx.AsyncClient, auth: Keys) -> None:
    created = await register(client, auth.integrator)

    response = await client.patch(
        f"/webhooks/{created['id']}", json={"status": "disabled"}, headers=auth.integrator
    )

    assert _error(response)[0] == "status"


async def test_a_deleted_endpoint_is_gone_and_what_was_queued_for_it_is_not_sent(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    created = await register(client, auth.integrator)
    queued = await queue(created["id"], "queued")
    sent = await queue(created["id"], "sent")

    deleted = await client.delete(f"/webhooks/{created['id']}", headers=auth.integrator)

    assert deleted.status_code == 204
    assert _problem(await client.get(f"/webhooks/{created['id']}", headers=auth.integrator), 404)
    assert (await Delivery.get(id=queued)).status == "skipped"
    assert (await Delivery.get(id=sent)).status == "sent"


# --- secrets -------------------------------------------------------------------------------------------


async def test_a_rotation_keeps_the_old_secret_signing_for_the_configured_window(
    client: httpx.AsyncClient, auth: Keys, settings: Settings
) -> None:
    created = await register(client, auth.integrator)

    rotated = await client.post(f"/webhooks/{created['id']}/rotate-secret", headers=auth.integrator)

    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["secret"].startswith("whsec_")
    assert body["secret"] != created["secret"]
    window = timedelta(seconds=settings.webhook_secret_rotation_s)
    assert body["previous_secret_expires_at"] == _z(CURRENT_TIME + window)
    row = await WebhookEndpoint.get(id=created["id"])
    assert (row.secret, row.previous_secret) == (body["secret"], created["secret"])
    read = await client.get(f"/webhooks/{created['id']}", headers=auth.integrator)
    assert body["secret"] not in read.text
    assert created["secret"] not in read.text


@pytest.mark.parametrize(("window_s", "expected"), [(600, timedelta(seconds=600)), (0, None)])
async def test_a_rotation_may_choose_its_window(
    client: httpx.AsyncClient, auth: Keys, window_s: int, expected: timedelta | None
) -> None:
    created = await register(client, auth.integrator)

    rotated = await client.post(
        f"/webhooks/{created['id']}/rotate-secret",
        json={"previous_secret_valid_s": window_s},
        headers=auth.integrator,
    )

    until = rotated.json()["previous_secret_expires_at"]
    assert until == (None if expected is None else _z(CURRENT_TIME + expected))
    row = await WebhookEndpoint.get(id=created["id"])
    assert row.previous_secret == (None if expected is None else created["secret"])


async def test_a_rotation_window_beyond_a_week_is_refused(client: httpx.AsyncClient, auth: Keys) -> None:
    created = await register(client, auth.integrator)

    response = await client.post(
        f"/webhooks/{created['id']}/rotate-secret",
        json={"previous_secret_valid_s": 8 * 86_400},
        headers=auth.integrator,
    )

    assert _error(response)[0] == "previous_secret_valid_s"
    assert (await WebhookEndpoint.get(id=created["id"])).secret == created["secret"]


# --- test messages, attempts, replays ------------------------------------------------------------------


async def test_a_test_message_is_queued_due_now_and_wakes_the_dispatcher(
    client: httpx.AsyncClient, auth: Keys, fired: list[int]
) -> None:
    created = await register(client, auth.integrator)

    first = await client.post(f"/webhooks/{created['id']}/test", headers=auth.integrator)
    second = await client.post(f"/webhooks/{created['id']}/test", headers=auth.integrator)

    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["available_at"] == _z(CURRENT_TIME)
    rows = await Delivery.filter(endpoint_id=created["id"]).order_by("id")
    assert [r.id for r in rows] == [first.json()["delivery_id"], second.json()["delivery_id"]]
    assert {(r.channel, r.kind, r.target, r.status, r.attempts) for r in rows} == {
        ("webhook", "test", f"webhook:{created['id']}", "queued", 0)
    }
    assert rows[0].available_at == CURRENT_TIME
    assert rows[0].dedupe_key != rows[1].dedupe_key
    assert len(fired) == 2


async def test_attempts_are_listed_newest_first_with_their_event_type(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    created = await register(client, auth.integrator)
    other = await register(client, auth.integrator, url=f"{URL}/other")
    advance = await queue(created["id"], "dead", kind="advance")
    test = await queue(created["id"], "sent", kind="test")
    for n, (delivery, status) in enumerate([(advance, 500), (advance, None), (test, 200)]):
        await DeliveryAttempt.create(
            delivery_id=delivery,
            endpoint_id=created["id"],
            attempted_at=CURRENT_TIME + timedelta(minutes=n),
            outcome="sent" if status == 200 else "failed",
            status_code=status,
            latency_ms=12.5,
            error=None if status else "timed out",
            response_excerpt="ok" if status else None,
        )
    await DeliveryAttempt.create(
        delivery_id=await queue(other["id"], "sent"),
        endpoint_id=other["id"],
        attempted_at=CURRENT_TIME,
        outcome="sent",
        status_code=200,
    )

    first = (await client.get(f"/webhooks/{created['id']}/attempts?limit=2", headers=auth.integrator)).json()
    rest = await client.get(
        f"/webhooks/{created['id']}/attempts",
        params={"limit": 2, "cursor": first["next_cursor"]},
        headers=auth.integrator,
    )

    attempts = first["items"] + rest.json()["items"]
    assert rest.json()["next_cursor"] is None
    assert [(a["delivery_id"], a["event_type"], a["status_code"], a["error"]) for a in attempts] == [
        (test, "webhook.test", 200, None),
        (advance, "job.stage_changed", None, "timed out"),
        (advance, "job.stage_changed", 500, None),
    ]
    assert attempts[0]["attempted_at"] == _z(CURRENT_TIME + timedelta(minutes=2))
    assert (attempts[0]["latency_ms"], attempts[0]["response_excerpt"]) == (12.5, "ok")


async def test_dead_deliveries_since_a_time_are_requeued_with_a_fresh_schedule(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock, fired: list[int]
) -> None:
    created = await register(client, auth.integrator)
    other = await register(client, auth.integrator, url=f"{URL}/other")
    since = CURRENT_TIME - timedelta(hours=12)
    old_dead = await queue(created["id"], "dead", at=since - timedelta(hours=1))
    dead = await queue(created["id"], "dead", at=since + timedelta(hours=1))
    sent = await queue(created["id"], "sent", at=since + timedelta(hours=2))
    retrying = await queue(created["id"], "queued", at=CURRENT_TIME + timedelta(hours=5))
    sending = await queue(created["id"], "queued", at=since + timedelta(hours=3), claim="c1")
    others_dead = await queue(other["id"], "dead", at=since + timedelta(hours=1))
    clock.advance(minutes=1)

    response = await client.post(
        f"/webhooks/{created['id']}/replay", json={"since": _z(since)}, headers=auth.integrator
    )

    assert response.status_code == 202, response.text
    assert response.json() == {"requeued": 2}  # the dead one, and the one waiting for its retry
    for requeued in (dead, retrying):
        row = await Delivery.get(id=requeued)
        assert (row.status, row.attempts, row.available_at) == ("queued", 0, clock.now)
    statuses = [(await Delivery.get(id=d)).status for d in (old_dead, sent, sending, others_dead)]
    assert statuses == ["dead", "sent", "queued", "dead"]
    assert (await Delivery.get(id=sending)).available_at == since + timedelta(hours=3)
    assert len(fired) == 1


async def test_replaying_all_since_a_time_also_resends_what_was_sent(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    created = await register(client, auth.integrator)
    dead = await queue(created["id"], "dead")
    sent = await queue(created["id"], "sent")

    response = await client.post(
        f"/webhooks/{created['id']}/replay",
        json={"since": "2026-01-01T00:00:00+01:00", "status": "all"},
        headers=auth.integrator,
    )

    assert response.json() == {"requeued": 2}
    assert {(await Delivery.get(id=d)).status for d in (dead, sent)} == {"queued"}


async def test_one_dead_delivery_is_replayed(client: httpx.AsyncClient, auth: Keys, fired: list[int]) -> None:
    created = await register(client, auth.integrator)
    dead = await queue(created["id"], "dead")
    other_dead = await queue(created["id"], "dead")

    response = await client.post(
        f"/webhooks/{created['id']}/replay", json={"delivery_id": dead}, headers=auth.integrator
    )

    assert response.json() == {"requeued": 1}
    assert [(await Delivery.get(id=d)).status for d in (dead, other_dead)] == ["queued", "dead"]
    assert len(fired) == 1


async def test_a_delivery_is_replayed_only_when_its_state_allows(
    client: httpx.AsyncClient, auth: Keys, fired: list[int]
) -> None:
    created = await register(client, auth.integrator)
    other = await register(client, auth.integrator, url=f"{URL}/other")
    sent = await queue(created["id"], "sent")
    sending = await queue(created["id"], "queued", claim="c1")
    retrying = await queue(created["id"], "queued", at=CURRENT_TIME + timedelta(hours=5))
    others = await queue(other["id"], "dead")
    path = f"/webhooks/{created['id']}/replay"

    not_dead = await client.post(path, json={"delivery_id": sent}, headers=auth.integrator)
    on_its_way = await client.post(
        path, json={"delivery_id": sending, "status": "all"}, headers=auth.integrator
    )
    elsewhere = await client.post(path, json={"delivery_id": others}, headers=auth.integrator)
    resent = await client.post(path, json={"delivery_id": sent, "status": "all"}, headers=auth.integrator)
    brought_forward = await client.post(path, json={"delivery_id": retrying}, headers=auth.integrator)

    assert _problem(not_dead, 409)["code"] == "delivery_not_replayable"
    assert _problem(on_its_way, 409)["code"] == "delivery_not_replayable"
    assert _problem(elsewhere, 404)["detail"] == f"delivery {others} does not exist"
    assert resent.json() == {"requeued": 1}
    assert brought_forward.json() == {"requeued": 1}  # the receiver is back: no wait for the retry
    assert (await Delivery.get(id=retrying)).available_at == CURRENT_TIME
    assert len(fired) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "delivery_id"),
        ({"delivery_id": 1, "since": "2026-01-01T00:00:00Z"}, "delivery_id"),
        ({"since": "2026-01-01T00:00:00"}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-01-01T00:00:00Z", "status": "sent"}, "status"),
        ({"since": "9999-12-31T23:00:00-05:00"}, "since"),
        ({"since": "0001-01-01T00:00:00+05:00"}, "since"),
    ],
)
async def test_a_bad_replay_is_refused_naming_the_field(
    client: httpx.AsyncClient, auth: Keys, body: dict[str, Any], field: str
) -> None:
    created = await register(client, auth.integrator)

    response = await client.post(f"/webhooks/{created['id']}/replay", json=body, headers=auth.integrator)

    assert _error(response)[0] == field


# --- the catalogue -------------------------------------------------------------------------------------


async def test_the_catalogue_describes_every_webhook_type_with_a_schema_and_a_valid_example(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    response = await client.get("/event-types", headers=auth.integrator)

    assert response.status_code == 200, response.text
    catalogue = response.json()
    assert [entry["type"] for entry in catalogue] == [
        "job.at_risk",
        "job.back_on_track",
        "job.cancelled",
        "job.completed",
        "job.cost_changed",
        "job.created",
        "job.eta_changed",
        "job.note_added",
        "job.on_hold",
        "job.reopened",
        "job.resumed",
        "job.stage_changed",
        "job.stuck",
        "webhook.test",
    ]
    for entry in catalogue:
        assert entry["description"]
        assert entry["example"]["type"] == entry["type"]
        assert datetime.fromisoformat(entry["example"]["timestamp"]).tzinfo is not None
        jsonschema_rs.validator_for(entry["data_schema"]).validate(entry["example"]["data"])


async def test_the_catalogue_schema_fits_the_job_as_the_api_shows_it(
    client: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]
) -> None:
    job = await create_job(client, auth.staff, shop["account"]["id"])
    read = (await client.get(f"/jobs/{job['id']}", headers=auth.integrator)).json()
    catalogue = {e["type"]: e for e in (await client.get("/event-types", headers=auth.staff)).json()}
    stage_changed = catalogue["job.stage_changed"]

    validator = jsonschema_rs.validator_for(stage_changed["data_schema"])

    validator.validate({"job": read, "change": stage_changed["example"]["data"]["change"]})
    assert not validator.is_valid({"job": {**read, "stage": "repair"}, "change": {}})
