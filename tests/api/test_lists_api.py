"""Accounts and contacts are listed like jobs: keyset pages with a cursor, filters and a stable order."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import FakeClock, Keys
from tests.factories import create_account


def _person(number: int) -> dict[str, str]:
    return {"name": f"Person {number}", "email": f"p{number}@example.com"}


async def _accounts(client: httpx.AsyncClient, auth: Keys, clock: FakeClock, count: int) -> list[int]:
    ids = []
    for number in range(count):
        clock.advance(minutes=1)
        kind = "institutional" if number % 2 else "individual"
        name = f"{'Garage' if number % 2 else 'Marie'} {number}"
        ids.append((await create_account(client, auth.staff, kind=kind, name=name, contacts=[]))["id"])
    return ids


async def _walk(client: httpx.AsyncClient, auth: Keys, path: str, **params: Any) -> list[list[int]]:
    """Every page of a list, as lists of ids."""
    pages: list[list[int]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query, headers=auth.staff)
        assert response.status_code == 200, response.text
        pages.append([item["id"] for item in response.json()["items"]])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return pages


def _flat(pages: list[list[int]]) -> list[int]:
    return [item for page in pages for item in page]


@pytest.mark.parametrize(("sort", "reverse"), [("created", False), ("-created", True)])
async def test_accounts_page_through_every_account_once(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock, sort: str, reverse: bool
) -> None:
    ids = await _accounts(client, auth, clock, 7)

    pages = await _walk(client, auth, "/accounts", limit=3, sort=sort)

    assert [len(page) for page in pages] == [3, 3, 1]
    assert _flat(pages) == (ids[::-1] if reverse else ids)


async def test_accounts_are_newest_first_by_default_and_honour_the_limit(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock
) -> None:
    ids = await _accounts(client, auth, clock, 4)

    response = await client.get("/accounts", params={"limit": 2}, headers=auth.staff)

    assert [a["id"] for a in response.json()["items"]] == ids[:1:-1]
    assert response.json()["next_cursor"]


async def test_accounts_changed_at_the_same_moment_keep_a_stable_order_across_pages(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock
) -> None:
    ids = await _accounts(client, auth, clock, 6)
    clock.advance(hours=1)
    for account_id in ids[::-1]:
        renamed = await client.patch(f"/accounts/{account_id}", json={"name": "Same"}, headers=auth.staff)
        assert renamed.status_code == 200, renamed.text

    ascending = await _walk(client, auth, "/accounts", limit=4, sort="updated")
    descending = await _walk(client, auth, "/accounts", limit=4, sort="-updated")

    assert _flat(ascending) == ids
    assert _flat(descending) == ids[::-1]


async def test_a_new_account_does_not_shift_the_pages_being_read(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock
) -> None:
    ids = await _accounts(client, auth, clock, 4)
    first = (await client.get("/accounts", params={"limit": 2}, headers=auth.staff)).json()
    await _accounts(client, auth, clock, 1)

    rest = await client.get(
        "/accounts", params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth.staff
    )

    assert [a["id"] for a in first["items"] + rest.json()["items"]] == ids[::-1]


async def test_accounts_are_filtered_by_kind_name_and_update_time(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock
) -> None:
    ids = await _accounts(client, auth, clock, 5)
    since = clock.advance(hours=1)
    await client.patch(f"/accounts/{ids[0]}", json={"name": "Marie Dubois"}, headers=auth.staff)

    async def listed(**params: Any) -> list[int]:
        response = await client.get("/accounts", params={"sort": "created", **params}, headers=auth.staff)
        assert response.status_code == 200, response.text
        return [a["id"] for a in response.json()["items"]]

    assert await listed(kind="institutional") == [ids[1], ids[3]]
    assert await listed(q="GARAGE") == [ids[1], ids[3]]
    assert await listed(q="dubois") == [ids[0]]
    assert await listed(q="garage 3", kind="institutional") == [ids[3]]
    assert await listed(updated_since=since.isoformat()) == [ids[0]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": 201}, "query.limit"),
        ({"kind": "company"}, "query.kind"),
        ({"sort": "name"}, "query.sort"),
        ({"cursor": "garbage"}, "query.cursor"),
        ({"updated_since": "2026-03-01T10:00:00"}, "query.updated_since"),
    ],
)
async def test_listing_accounts_refuses_bad_parameters(
    client: httpx.AsyncClient, auth: Keys, params: dict[str, Any], field: str
) -> None:
    response = await client.get("/accounts", params=params, headers=auth.staff)

    assert response.status_code in {400, 422}, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_a_cursor_for_another_order_is_refused(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock
) -> None:
    await _accounts(client, auth, clock, 3)
    page = (await client.get("/accounts", params={"limit": 1}, headers=auth.staff)).json()

    response = await client.get(
        "/accounts", params={"sort": "updated", "cursor": page["next_cursor"]}, headers=auth.staff
    )

    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["query.cursor"]


async def test_an_account_lists_its_contacts_oldest_first_in_pages(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock
) -> None:
    account = await create_account(client, auth.staff, kind="institutional", name="Fleet BV", contacts=[])
    other = await create_account(client, auth.staff, kind="institutional", name="Other", contacts=[])
    ids = []
    for number in range(5):
        clock.advance(minutes=1)
        added = await client.post(
            f"/accounts/{account['id']}/contacts", json=_person(number), headers=auth.staff
        )
        ids.append(added.json()["id"])
    await client.post(f"/accounts/{other['id']}/contacts", json=_person(9), headers=auth.staff)
    path = f"/accounts/{account['id']}/contacts"

    pages = await _walk(client, auth, path, limit=2)
    newest_first = await _walk(client, auth, path, limit=2, sort="-created")
    found = await client.get(path, params={"q": "P3@EXAMPLE"}, headers=auth.staff)

    assert pages == [ids[:2], ids[2:4], ids[4:]]
    assert _flat(newest_first) == ids[::-1]
    assert [c["email"] for c in found.json()["items"]] == ["p3@example.com"]
    first = (await client.get(path, headers=auth.staff)).json()["items"][0]
    assert first == (await client.get(f"/contacts/{ids[0]}", headers=auth.staff)).json()


async def test_the_contacts_of_an_unknown_account_are_not_found(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    response = await client.get("/accounts/4242/contacts", headers=auth.staff)

    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not_found"
