"""Builders for request bodies and for records made through the API."""

from __future__ import annotations

from typing import Any

import httpx


def stage(
    key: str, *, hours: tuple[int, int, int] = (2, 4, 8), cost: str = "100.00", **extra: Any
) -> dict[str, Any]:
    return {
        "key": key,
        "labels": {"en": key.title(), "fr": f"{key} (fr)", "nl": f"{key} (nl)"},
        "duration_hours": {
            "optimistic": str(hours[0]),
            "most_likely": str(hours[1]),
            "pessimistic": str(hours[2]),
        },
        "planned_cost": cost,
        **extra,
    }


def workflow_body(
    key: str = "car-repair", stages: tuple[str, ...] = ("intake", "repair", "check", "ready"), **extra: Any
) -> dict[str, Any]:
    return {
        "key": key,
        "name": key.replace("-", " ").title(),
        "currency": "EUR",
        "stages": [stage(k) for k in stages],
        **extra,
    }


async def create_workflow(client: httpx.AsyncClient, admin: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    response = await client.post("/workflows", json=workflow_body(**kwargs), headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


async def create_account(
    client: httpx.AsyncClient,
    staff: dict[str, str],
    *,
    kind: str = "individual",
    name: str = "Marie Dubois",
    contacts: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    if contacts is None:
        contacts = [
            {"name": name, "email": "marie@example.com", "locale": "fr_FR", "time_zone": "Europe/Paris"}
        ]
    response = await client.post(
        "/accounts", json={"kind": kind, "name": name, "contacts": contacts}, headers=staff
    )
    assert response.status_code == 201, response.text
    return response.json()


async def create_fleet_account(client: httpx.AsyncClient, staff: dict[str, str]) -> dict[str, Any]:
    """An institutional account with two contacts, Ann and Bob."""
    contacts = [{"name": "Ann", "email": "ann@fleet.example"}, {"name": "Bob", "email": "bob@fleet.example"}]
    return await create_account(client, staff, kind="institutional", name="Fleet BV", contacts=contacts)


def job_body(account_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "workflow": "car-repair",
        "title": "Brake discs",
        "quote": {"amount": "640.00", "currency": "EUR"},
        **extra,
    }


async def create_job(
    client: httpx.AsyncClient, headers: dict[str, str], account_id: int, **extra: Any
) -> dict[str, Any]:
    response = await client.post("/jobs", json=job_body(account_id, **extra), headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def act(
    client: httpx.AsyncClient, headers: dict[str, str], job: dict[str, Any], action: str, **body: Any
) -> httpx.Response:
    return await client.post(
        f"/jobs/{job['id']}/{action}", json={"version": job["version"], **body}, headers=headers
    )
