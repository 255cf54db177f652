"""A signed-in dashboard: a shop (workflow, account) and a client holding a staff session."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.conftest import CURRENT_TIME, Keys
from tests.factories import create_account, create_workflow
from tracker.db.models import Delivery

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


async def record_delivery(
    job_id: int, *, channel: str, kind: str, target: str, status: str, **more: Any
) -> None:
    """An outbox row as the dispatcher leaves it (the dashboard only reads them)."""
    await Delivery.create(
        dedupe_key=f"{kind}-{job_id}-{target}",
        channel=channel,
        kind=kind,
        target=target,
        job_id=job_id,
        status=status,
        available_at=CURRENT_TIME,
        created_at=CURRENT_TIME,
        **more,
    )


def key_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def sign_in(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/dashboard/sign-in", data={"key": key_of(headers)})


@pytest.fixture
async def shop(client: httpx.AsyncClient, auth: Keys) -> dict[str, Any]:
    workflow = await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)
    return {"workflow": workflow, "account": account}


@pytest.fixture
async def staff(client: httpx.AsyncClient, auth: Keys) -> httpx.AsyncClient:
    """The client, signed in to the dashboard with the staff key (the cookie kept by the client)."""
    response = await sign_in(client, auth.staff)
    assert response.status_code == 303, response.text
    return client
