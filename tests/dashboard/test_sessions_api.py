"""Signing in to the dashboard, the session cookie, CSRF, expiry, revocation and sign-out."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from tests.conftest import FakeClock, Keys
from tests.dashboard.conftest import csrf_of, key_of, sign_in
from tracker.services import keys
from tracker.web.dashboard_sessions import COOKIE


async def test_the_dashboard_asks_for_a_key_with_strict_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard")
    assert response.status_code == 200
    assert 'name="key"' in response.text and 'type="password"' in response.text
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-robots-tag"] == "noindex, nofollow"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_staff_key_opens_a_signed_httponly_strict_session_that_never_holds_the_key(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    response = await sign_in(client, auth.staff)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/dashboard" in cookie
    assert "Max-Age=28800" in cookie
    assert "Secure" not in cookie  # plain HTTP here; see the HTTPS test
    secret = key_of(auth.staff)
    assert secret not in cookie and secret.split("_", 2)[2] not in cookie
    board = await client.get("/dashboard")
    assert "Signed in as test staff" in board.text


async def test_an_admin_key_signs_in_too(client: httpx.AsyncClient, auth: Keys) -> None:
    assert (await sign_in(client, auth.admin)).status_code == 303


async def test_over_https_the_session_cookie_is_secure(client: httpx.AsyncClient, auth: Keys) -> None:
    response = await client.post("https://tracker.test/dashboard/sign-in", data={"key": key_of(auth.staff)})
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


async def test_an_integrator_key_cannot_sign_in(client: httpx.AsyncClient, auth: Keys) -> None:
    response = await sign_in(client, auth.integrator)
    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    assert "sign in with a key of role staff or admin" in response.text


@pytest.mark.parametrize("key", ["trk_000000000000_nothing", f"trk_{'0' * 17}_nothing"])
async def test_an_unknown_key_is_refused_without_a_session(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post("/dashboard/sign-in", data={"key": key})
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert "That API key is unknown." in response.text


async def test_sign_in_attempts_are_rate_limited_per_client(
    client: httpx.AsyncClient, clock: FakeClock, auth: Keys
) -> None:
    statuses = [
        (await client.post("/dashboard/sign-in", data={"key": "trk_0_guess"})).status_code for _ in range(5)
    ]
    assert statuses == [401] * 5
    refused = await sign_in(client, auth.staff)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "set-cookie" not in refused.headers
    clock.advance(seconds=12)
    assert (await sign_in(client, auth.staff)).status_code == 303


async def test_the_session_ends_after_its_lifetime(staff: httpx.AsyncClient, clock: FakeClock) -> None:
    assert "Sign out" in (await staff.get("/dashboard")).text
    clock.advance(hours=8, seconds=1)
    page = await staff.get("/dashboard")
    assert 'name="key"' in page.text and "Sign out" not in page.text
    assert (await staff.get("/dashboard/jobs/1")).status_code == 303


async def test_revoking_the_key_ends_its_sessions(staff: httpx.AsyncClient, auth: Keys) -> None:
    keys = (await staff.get("/keys", headers=auth.admin)).json()
    staff_key = next(key for key in keys if key["role"] == "staff")
    revoked = await staff.delete(f"/keys/{staff_key['id']}", headers=auth.admin)
    assert revoked.status_code == 200, revoked.text
    assert 'name="key"' in (await staff.get("/dashboard")).text


async def test_a_tampered_cookie_is_no_session(client: httpx.AsyncClient, auth: Keys) -> None:
    await sign_in(client, auth.staff)
    value = client.cookies[COOKIE]
    body, signature = value.split(".")
    client.cookies.clear()
    client.cookies.set(COOKIE, f"{body}x.{signature}", domain="tracker.test", path="/dashboard")
    assert 'name="key"' in (await client.get("/dashboard")).text


async def test_sign_out_needs_the_session_csrf_token_and_ends_the_session(staff: httpx.AsyncClient) -> None:
    token = csrf_of((await staff.get("/dashboard")).text)
    forged = await staff.post("/dashboard/sign-out", data={"csrf": "forged"})
    assert forged.status_code == 403
    assert "Sign out" in (await staff.get("/dashboard")).text
    response = await staff.post("/dashboard/sign-out", data={"csrf": token})
    assert response.status_code == 303
    assert 'name="key"' in (await staff.get("/dashboard")).text


async def test_a_form_from_another_origin_is_refused(staff: httpx.AsyncClient, auth: Keys) -> None:
    token = csrf_of((await staff.get("/dashboard")).text)
    response = await staff.post(
        "/dashboard/sign-out", data={"csrf": token}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    foreign_sign_in = await staff.post(
        "/dashboard/sign-in", data={"key": key_of(auth.staff)}, headers={"Origin": "https://evil.example"}
    )
    assert foreign_sign_in.status_code == 403


async def test_a_session_ends_when_its_key_expires(client: httpx.AsyncClient, clock: FakeClock) -> None:
    issued = await keys.create_key("temp", "staff", now=clock.now, expires_at=clock.now + timedelta(hours=1))
    assert (await sign_in(client, {"Authorization": f"Bearer {issued.secret}"})).status_code == 303
    assert "Sign out" in (await client.get("/dashboard")).text
    clock.advance(hours=1)
    assert 'name="key"' in (await client.get("/dashboard")).text
