"""The account API: individual and institutional accounts and the contacts who hear about their jobs."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import CURRENT_TIME, FakeClock, Keys
from tests.factories import create_account, create_job, create_workflow

PROBLEM_JSON = "application/problem+json"
NOW = CURRENT_TIME.isoformat().replace("+00:00", "Z")


def contact(name: str = "Sanne de Vries", email: str = "sanne@example.nl", **extra: str) -> dict[str, str]:
    return {"name": name, "email": email, "locale": "nl_NL", "time_zone": "Europe/Amsterdam", **extra}


def _fields(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.text
    return [error["field"] for error in response.json().get("errors", [])]


async def test_an_individual_account_is_created_with_its_one_contact(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    response = await client.post(
        "/accounts",
        json={
            "kind": "individual",
            "name": "  Marie Dubois ",
            "contacts": [
                {
                    "name": "Marie Dubois",
                    "email": " marie@example.com ",
                    "locale": "fr-FR",
                    "time_zone": "Europe/Paris",
                }
            ],
        },
        headers=auth.staff,
    )

    assert response.status_code == 201, response.text
    account = response.json()
    assert isinstance(account["id"], int)
    assert {k: v for k, v in account.items() if k not in {"id", "contacts"}} == {
        "kind": "individual",
        "name": "Marie Dubois",
        "created_at": NOW,
        "updated_at": NOW,
        "version": 1,
    }
    [only] = account["contacts"]
    assert isinstance(only["id"], int)
    assert {k: v for k, v in only.items() if k != "id"} == {
        "account_id": account["id"],
        "name": "Marie Dubois",
        "email": "marie@example.com",
        "locale": "fr_FR",
        "time_zone": "Europe/Paris",
        "created_at": NOW,
        "updated_at": NOW,
        "version": 1,
    }
    fetched = await client.get(f"/accounts/{account['id']}", headers=auth.staff)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == account


async def test_a_contact_without_locale_or_time_zone_gets_english_and_utc(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    account = await create_account(
        client, auth.staff, contacts=[{"name": "Jo Smith", "email": "jo@example.org"}]
    )

    [only] = account["contacts"]
    assert (only["locale"], only["time_zone"]) == ("en", "UTC")


async def test_an_institutional_account_may_have_several_contacts(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    account = await create_account(
        client,
        auth.staff,
        kind="institutional",
        name="Van den Berg Facilities BV",
        contacts=[contact(), contact("Tom Peeters", "tom@example.be", locale="en_GB")],
    )

    assert account["kind"] == "institutional"
    assert [(c["name"], c["email"], c["locale"]) for c in account["contacts"]] == [
        ("Sanne de Vries", "sanne@example.nl", "nl_NL"),
        ("Tom Peeters", "tom@example.be", "en_GB"),
    ]

    added = await client.post(
        f"/accounts/{account['id']}/contacts",
        json=contact("Eva Jansen", "eva@example.nl"),
        headers=auth.staff,
    )
    assert added.status_code == 201, added.text
    assert added.json()["account_id"] == account["id"]
    assert added.json()["email"] == "eva@example.nl"
    fetched = await client.get(f"/accounts/{account['id']}", headers=auth.staff)
    assert [c["name"] for c in fetched.json()["contacts"]] == ["Sanne de Vries", "Tom Peeters", "Eva Jansen"]


async def test_an_individual_account_is_refused_a_second_contact(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    account = await create_account(client, auth.staff)

    response = await client.post(f"/accounts/{account['id']}/contacts", json=contact(), headers=auth.staff)

    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["code"] == "individual_has_contact"
    fetched = await client.get(f"/accounts/{account['id']}", headers=auth.staff)
    assert len(fetched.json()["contacts"]) == 1


async def test_an_individual_account_cannot_be_created_with_two_contacts(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    response = await client.post(
        "/accounts",
        json={"kind": "individual", "name": "Marie", "contacts": [contact(), contact("Tom", "t@example.be")]},
        headers=auth.staff,
    )

    assert response.status_code == 422, response.text
    assert _fields(response) == ["contacts"]
    assert (await client.get("/accounts", headers=auth.staff)).json()["items"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "two@@example.com"}, "email"),
        ({"email": "marie@localhost"}, "email"),
        ({"email": "marie dubois@example.com"}, "email"),
        ({"locale": "xx_YY"}, "locale"),
        ({"locale": "not a locale"}, "locale"),
        ({"locale": ""}, "locale"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"time_zone": "../etc/passwd"}, "time_zone"),
        ({"time_zone": ""}, "time_zone"),
        ({"time_zone": "zone.tab"}, "time_zone"),
        ({"name": "   "}, "name"),
    ],
)
async def test_a_bad_contact_is_refused_naming_the_field(
    client: httpx.AsyncClient, auth: Keys, change: dict[str, str], field: str
) -> None:
    body = {"kind": "institutional", "name": "Acme", "contacts": [contact(**change)]}
    created = await client.post("/accounts", json=body, headers=auth.staff)
    assert created.status_code == 422, created.text
    assert _fields(created) == [f"contacts[0].{field}"]
    assert (await client.get("/accounts", headers=auth.staff)).json()["items"] == []

    account = await create_account(client, auth.staff, kind="institutional", contacts=[])
    added = await client.post(
        f"/accounts/{account['id']}/contacts", json=contact(**change), headers=auth.staff
    )
    assert added.status_code == 422, added.text
    assert _fields(added) == [field]

    account = await create_account(client, auth.staff, name="Other")
    contact_id = account["contacts"][0]["id"]
    patched = await client.patch(f"/contacts/{contact_id}", json=change, headers=auth.staff)
    assert patched.status_code == 422, patched.text
    assert _fields(patched) == [field]
    unchanged = await client.get(f"/contacts/{contact_id}", headers=auth.staff)
    assert unchanged.json() == account["contacts"][0]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "company", "name": "Acme"}, "kind"),
        ({"kind": "individual", "name": "  "}, "name"),
        ({"kind": "individual", "name": "n" * 201}, "name"),
        ({"kind": "individual"}, "name"),
        ({"kind": "individual", "name": "Acme", "vat": "BE0123"}, "vat"),
    ],
)
async def test_a_bad_account_is_refused_naming_the_field(
    client: httpx.AsyncClient, auth: Keys, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/accounts", json=body, headers=auth.staff)

    assert response.status_code == 422, response.text
    assert _fields(response) == [field]
    assert (await client.get("/accounts", headers=auth.staff)).json()["items"] == []


async def test_accounts_are_listed_with_their_contacts(client: httpx.AsyncClient, auth: Keys) -> None:
    marie = await create_account(client, auth.staff)
    acme = await create_account(
        client, auth.staff, kind="institutional", name="Acme", contacts=[contact(), contact("Tom", "t@x.be")]
    )

    response = await client.get("/accounts", headers=auth.staff)

    assert response.status_code == 200, response.text
    assert response.json() == {"items": [acme, marie], "next_cursor": None}


async def test_patching_an_account_changes_only_the_given_fields(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock
) -> None:
    account = await create_account(client, auth.staff)
    later = clock.advance(hours=2)

    response = await client.patch(
        f"/accounts/{account['id']}", json={"name": "Marie Dubois-Martin"}, headers=auth.staff
    )

    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["name"] == "Marie Dubois-Martin"
    assert patched["kind"] == "individual"
    assert patched["created_at"] == NOW
    assert patched["updated_at"] == later.isoformat().replace("+00:00", "Z")
    assert patched["contacts"] == account["contacts"]
    fetched = await client.get(f"/accounts/{account['id']}", headers=auth.staff)
    assert fetched.json() == patched


async def test_an_account_with_several_contacts_cannot_become_individual(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    account = await create_account(
        client, auth.staff, kind="institutional", name="Acme", contacts=[contact(), contact("Tom", "t@x.be")]
    )

    refused = await client.patch(
        f"/accounts/{account['id']}", json={"kind": "individual"}, headers=auth.staff
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "too_many_contacts"

    bad_kind = await client.patch(f"/accounts/{account['id']}", json={"kind": "company"}, headers=auth.staff)
    assert bad_kind.status_code == 422, bad_kind.text
    assert _fields(bad_kind) == ["kind"]
    assert (await client.get(f"/accounts/{account['id']}", headers=auth.staff)).json() == account


async def test_patching_a_contact_changes_only_the_given_fields(
    client: httpx.AsyncClient, auth: Keys, clock: FakeClock
) -> None:
    account = await create_account(client, auth.staff)
    original = account["contacts"][0]
    later = clock.advance(minutes=5)

    response = await client.patch(
        f"/contacts/{original['id']}",
        json={"email": "marie.dubois@example.fr", "time_zone": "America/Montreal"},
        headers=auth.staff,
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        **original,
        "email": "marie.dubois@example.fr",
        "time_zone": "America/Montreal",
        "updated_at": later.isoformat().replace("+00:00", "Z"),
        "version": original["version"] + 1,
    }
    fetched = await client.get(f"/contacts/{original['id']}", headers=auth.staff)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == response.json()


async def test_account_and_contact_changes_may_name_the_version_they_read(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    account = await create_account(client, auth.staff)
    contact = account["contacts"][0]
    read = await client.get(f"/accounts/{account['id']}", headers=auth.staff)
    assert (read.headers["etag"], read.json()["version"]) == ('"1"', 1)

    renamed = await client.patch(
        f"/accounts/{account['id']}", json={"name": "Marie D."}, headers={**auth.staff, "If-Match": '"1"'}
    )
    assert (renamed.status_code, renamed.headers["etag"]) == (200, '"2"')
    stale = await client.patch(
        f"/accounts/{account['id']}", json={"name": "Marie Dupont"}, headers={**auth.staff, "If-Match": '"1"'}
    )
    assert stale.status_code == 412, stale.text
    assert (stale.json()["code"], stale.json()["current_version"]) == ("stale_version", 2)
    assert (await client.get(f"/accounts/{account['id']}", headers=auth.staff)).json()["name"] == "Marie D."

    # A contact's change is the account's too: the account shows its contacts.
    moved = await client.patch(
        f"/contacts/{contact['id']}",
        json={"time_zone": "Europe/Brussels"},
        headers={**auth.staff, "If-Match": '"1"'},
    )
    assert (moved.status_code, moved.headers["etag"]) == (200, '"2"')
    again = await client.patch(
        f"/contacts/{contact['id']}",
        json={"time_zone": "Europe/Paris"},
        headers={**auth.staff, "If-Match": '"1"'},
    )
    assert again.status_code == 412, again.text
    account_now = await client.get(f"/accounts/{account['id']}", headers=auth.staff)
    assert account_now.json()["version"] == 3
    assert account_now.json()["contacts"][0]["time_zone"] == "Europe/Brussels"
    unconditional = await client.patch(
        f"/accounts/{account['id']}", json={"name": "M. D."}, headers=auth.staff
    )
    assert (unconditional.status_code, unconditional.json()["version"]) == (200, 4)
    wildcard = await client.patch(
        f"/accounts/{account['id']}", json={"name": "Any"}, headers={**auth.staff, "If-Match": "*"}
    )
    assert (wildcard.status_code, wildcard.json()["version"]) == (200, 5)
    listed = await client.patch(
        f"/accounts/{account['id']}", json={"name": "Listed"}, headers={**auth.staff, "If-Match": '"4", "5"'}
    )
    assert (listed.status_code, listed.json()["version"]) == (200, 6)


async def test_a_deleted_contact_is_gone_and_its_account_stays(client: httpx.AsyncClient, auth: Keys) -> None:
    account = await create_account(client, auth.staff)
    contact_id = account["contacts"][0]["id"]

    deleted = await client.delete(f"/contacts/{contact_id}", headers=auth.staff)

    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    gone = await client.get(f"/contacts/{contact_id}", headers=auth.staff)
    assert gone.status_code == 404, gone.text
    assert gone.json()["code"] == "not_found"
    fetched = await client.get(f"/accounts/{account['id']}", headers=auth.staff)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["contacts"] == []
    again = await client.delete(f"/contacts/{contact_id}", headers=auth.staff)
    assert again.status_code == 404, again.text


async def test_an_individual_account_may_take_a_new_contact_after_its_old_one_is_deleted(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    account = await create_account(client, auth.staff)
    assert (
        await client.delete(f"/contacts/{account['contacts'][0]['id']}", headers=auth.staff)
    ).status_code == 204

    added = await client.post(f"/accounts/{account['id']}/contacts", json=contact(), headers=auth.staff)

    assert added.status_code == 201, added.text
    assert added.json()["name"] == "Sanne de Vries"


async def test_an_account_with_jobs_cannot_be_deleted(client: httpx.AsyncClient, auth: Keys) -> None:
    await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)
    job = await create_job(client, auth.staff, account["id"])

    response = await client.delete(f"/accounts/{account['id']}", headers=auth.staff)

    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["code"] == "account_has_jobs"
    assert (await client.get(f"/accounts/{account['id']}", headers=auth.staff)).status_code == 200
    assert (await client.get(f"/jobs/{job['id']}", headers=auth.staff)).status_code == 200


async def test_an_account_without_jobs_is_deleted_with_its_contacts(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    account = await create_account(client, auth.staff)
    contact_id = account["contacts"][0]["id"]

    deleted = await client.delete(f"/accounts/{account['id']}", headers=auth.staff)

    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    gone = await client.get(f"/accounts/{account['id']}", headers=auth.staff)
    assert gone.status_code == 404, gone.text
    assert gone.json()["code"] == "not_found"
    assert (await client.get(f"/contacts/{contact_id}", headers=auth.staff)).status_code == 404
    assert (await client.get("/accounts", headers=auth.staff)).json()["items"] == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/accounts/999", None),
        ("PATCH", "/accounts/999", {"name": "X"}),
        ("DELETE", "/accounts/999", None),
        ("POST", "/accounts/999/contacts", contact()),
        ("GET", "/contacts/999", None),
        ("PATCH", "/contacts/999", {"name": "X"}),
        ("DELETE", "/contacts/999", None),
    ],
)
async def test_an_unknown_account_or_contact_is_not_found(
    client: httpx.AsyncClient, auth: Keys, method: str, path: str, body: dict[str, str] | None
) -> None:
    response = await client.request(method, path, json=body, headers=auth.staff)

    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["code"] == "not_found"


async def test_an_integrator_may_not_see_or_change_accounts(client: httpx.AsyncClient, auth: Keys) -> None:
    account = await create_account(client, auth.staff)
    contact_id = account["contacts"][0]["id"]
    requests: list[tuple[str, str, Any]] = [
        ("GET", "/accounts", None),
        ("POST", "/accounts", {"kind": "individual", "name": "X"}),
        ("GET", f"/accounts/{account['id']}", None),
        ("PATCH", f"/accounts/{account['id']}", {"name": "X"}),
        ("DELETE", f"/accounts/{account['id']}", None),
        ("POST", f"/accounts/{account['id']}/contacts", contact()),
        ("GET", f"/contacts/{contact_id}", None),
        ("PATCH", f"/contacts/{contact_id}", {"name": "X"}),
        ("DELETE", f"/contacts/{contact_id}", None),
    ]

    for method, path, body in requests:
        response = await client.request(method, path, json=body, headers=auth.integrator)
        assert response.status_code == 403, (method, path, response.text)
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert (await client.get("/accounts", headers=auth.staff)).json()["items"] == [account]


async def test_an_admin_may_manage_accounts(client: httpx.AsyncClient, auth: Keys) -> None:
    account = await create_account(client, auth.admin)

    listed = await client.get("/accounts", headers=auth.admin)

    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == [account]


async def test_concurrent_contacts_for_an_individual_account_leave_it_with_one(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    account = await create_account(client, auth.staff, contacts=[])
    path = f"/accounts/{account['id']}/contacts"

    responses = await asyncio.gather(
        *(
            client.post(path, json=contact(f"Person {n}", f"p{n}@example.com"), headers=auth.staff)
            for n in range(6)
        )
    )

    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409, 409], [
        r.text for r in responses
    ]
    fetched = await client.get(f"/accounts/{account['id']}", headers=auth.staff)
    assert len(fetched.json()["contacts"]) == 1


async def test_a_retried_account_or_contact_creation_makes_one(client: httpx.AsyncClient, auth: Keys) -> None:
    body = {
        "kind": "institutional",
        "name": "De Vries Bouw",
        "contacts": [
            {"name": "Anna", "email": "anna@example.nl", "locale": "nl_NL", "time_zone": "Europe/Amsterdam"}
        ],
    }
    headers = {**auth.staff, "Idempotency-Key": "new-customer-1"}
    first, again = [await client.post("/accounts", json=body, headers=headers) for _ in range(2)]
    assert (first.status_code, again.status_code) == (201, 201), first.text
    account = first.json()
    assert again.json() == account
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    for response in (first, again):
        assert (response.headers["location"], response.headers["etag"]) == (
            f"/accounts/{account['id']}",
            '"1"',
        )
    named = (await client.get("/accounts", params={"q": "De Vries Bouw"}, headers=auth.staff)).json()["items"]
    assert [a["id"] for a in named] == [account["id"]]

    contact = {
        "name": "Joost",
        "email": "joost@example.nl",
        "locale": "nl_NL",
        "time_zone": "Europe/Amsterdam",
    }
    url = f"/accounts/{account['id']}/contacts"
    headers = {**auth.staff, "Idempotency-Key": "second-contact"}
    added, retried = [await client.post(url, json=contact, headers=headers) for _ in range(2)]
    assert (added.status_code, retried.status_code) == (201, 201), added.text
    assert retried.json() == added.json()
    assert retried.headers["location"] == added.headers["location"] == f"/contacts/{added.json()['id']}"
    assert len((await client.get(url, headers=auth.staff)).json()["items"]) == 2
    reused = await client.post(url, json={**contact, "name": "Other"}, headers=headers)
    assert (reused.status_code, reused.json()["code"]) == (409, "idempotency_key_reused")
