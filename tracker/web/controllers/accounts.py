"""Staff API for accounts and their contacts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from tracker.domain.emails import Preference
from tracker.domain.errors import InvalidInput
from tracker.domain.events import EmailCategory
from tracker.services import accounts, preferences
from tracker.services.accounts import AccountFilters, AccountKind, ContactFields
from tracker.services.keys import Role
from tracker.services.pages import Sort
from tracker.web import schemas as s, views
from tracker.web.auth import requires
from tracker.web.deps import (
    IdempotencyKey,
    IfMatchOptional,
    Now,
    PageCursor,
    PageLimit,
    etag,
    expected_version,
    json_response,
    tagged,
)
from tracker.web.idempotency import idempotent
from tracker.web.openapi import VERSION_OPTIONAL


def _fields(contact: s.ContactIn) -> ContactFields:
    return ContactFields(contact.name, contact.email, contact.locale, contact.time_zone)


def _created(resource: s.AccountOut | s.ContactOut, location: str) -> Response[bytes]:
    return json_response(resource, status=201, headers={**etag(resource.version), "Location": location})


async def _account_out(account_id: int) -> s.AccountOut:
    account = await accounts.get_account(account_id)
    return views.account_out(account, await accounts.contacts_of(account_id))


class AccountController(Controller):
    path = "/accounts"
    tags = ["Accounts"]
    guards = [requires(Role.STAFF)]

    @post(
        operation_id="CreateAccount",
        status_code=HTTP_201_CREATED,
        responses={201: ResponseSpec(s.AccountOut)},
    )
    async def create_account(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[s.AccountIn],
        now: Now,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        async def produce() -> Response[bytes]:
            account = await accounts.create_account(
                data.kind, data.name, [_fields(c) for c in data.contacts], now=now
            )
            created = await _account_out(account.id)
            return _created(created, f"/accounts/{account.id}")

        return await idempotent(request, now, produce)

    @get(operation_id="ListAccounts")
    async def list_accounts(
        self,
        kind: Annotated[AccountKind | None, QueryParameter()] = None,
        q: Annotated[
            str | None, QueryParameter(max_length=200, pattern=s.PLAIN, description="Text in the name")
        ] = None,
        updated_since: Annotated[datetime | None, QueryParameter()] = None,
        sort: Annotated[Sort, QueryParameter()] = Sort.NEWEST,
        limit: PageLimit = 50,
        cursor: PageCursor = None,
    ) -> s.AccountList:
        """Accounts with their contacts, newest first unless `sort` says otherwise; follow `next_cursor`."""
        if updated_since is not None and updated_since.tzinfo is None:
            raise InvalidInput("query.updated_since", "needs a time zone offset, such as Z or +01:00")
        filters = AccountFilters(kind=kind, text=q, updated_since=updated_since)
        page = await accounts.list_accounts(filters, sort=sort, limit=limit, cursor=cursor)
        return s.AccountList(
            items=[views.account_out(a, list(a.contacts)) for a in page.items], next_cursor=page.next_cursor
        )

    @get("/{account_id:int}", operation_id="GetAccount")
    async def get_account(self, account_id: FromPath[int]) -> Response[s.AccountOut]:
        return tagged(await _account_out(account_id))

    @patch("/{account_id:int}", operation_id="UpdateAccount", opt={VERSION_OPTIONAL: True})
    async def update_account(
        self,
        account_id: FromPath[int],
        data: JSONBody[s.AccountUpdate],
        now: Now,
        if_match: IfMatchOptional = None,
    ) -> Response[s.AccountOut]:
        await accounts.update_account(
            account_id,
            name=None if isinstance(data.name, msgspec.UnsetType) else data.name,
            kind=None if isinstance(data.kind, msgspec.UnsetType) else data.kind,
            now=now,
            expected=expected_version(if_match, None),
        )
        return tagged(await _account_out(account_id))

    @delete("/{account_id:int}", operation_id="DeleteAccount", status_code=HTTP_204_NO_CONTENT)
    async def delete_account(self, account_id: FromPath[int]) -> None:
        await accounts.delete_account(account_id)

    @get("/{account_id:int}/contacts", operation_id="ListContacts")
    async def list_contacts(
        self,
        account_id: FromPath[int],
        q: Annotated[
            str | None,
            QueryParameter(max_length=200, pattern=s.PLAIN, description="Text in the name or email address"),
        ] = None,
        sort: Annotated[Sort, QueryParameter()] = Sort.CREATED,
        limit: PageLimit = 50,
        cursor: PageCursor = None,
    ) -> s.ContactList:
        """The account's contacts, oldest first unless `sort` says otherwise; follow `next_cursor`."""
        page = await accounts.list_contacts(account_id, text=q, sort=sort, limit=limit, cursor=cursor)
        return s.ContactList(items=[views.contact_out(c) for c in page.items], next_cursor=page.next_cursor)

    @post(
        "/{account_id:int}/contacts",
        operation_id="AddContact",
        status_code=HTTP_201_CREATED,
        responses={201: ResponseSpec(s.ContactOut)},
    )
    async def add_contact(
        self,
        request: Request[Any, Any, Any],
        account_id: FromPath[int],
        data: JSONBody[s.ContactIn],
        now: Now,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        async def produce() -> Response[bytes]:
            contact = await accounts.add_contact(account_id, _fields(data), now=now)
            return _created(views.contact_out(contact), f"/contacts/{contact.id}")

        return await idempotent(request, now, produce)


class ContactController(Controller):
    path = "/contacts"
    tags = ["Accounts"]
    guards = [requires(Role.STAFF)]

    @get("/{contact_id:int}", operation_id="GetContact")
    async def get_contact(self, contact_id: FromPath[int]) -> Response[s.ContactOut]:
        return tagged(views.contact_out(await accounts.get_contact(contact_id)))

    @patch("/{contact_id:int}", operation_id="UpdateContact", opt={VERSION_OPTIONAL: True})
    async def update_contact(
        self,
        contact_id: FromPath[int],
        data: JSONBody[s.ContactUpdate],
        now: Now,
        if_match: IfMatchOptional = None,
    ) -> Response[s.ContactOut]:
        changes = {
            name: value
            for name, value in msgspec.structs.asdict(data).items()
            if not isinstance(value, msgspec.UnsetType)
        }
        expected = expected_version(if_match, None)
        return tagged(
            views.contact_out(await accounts.update_contact(contact_id, changes, now=now, expected=expected))
        )

    @delete("/{contact_id:int}", operation_id="DeleteContact", status_code=HTTP_204_NO_CONTENT)
    async def delete_contact(self, contact_id: FromPath[int]) -> None:
        await accounts.delete_contact(contact_id)

    @get("/{contact_id:int}/preferences", operation_id="GetEmailPreferences")
    async def get_preferences(self, contact_id: FromPath[int]) -> s.PreferencesIO:
        """What the contact hears about by email, per category (`each` unless changed)."""
        return _preferences_out(await preferences.get_preferences(contact_id))

    @put("/{contact_id:int}/preferences", operation_id="SetEmailPreferences")
    async def set_preferences(
        self, contact_id: FromPath[int], data: JSONBody[s.PreferencesIO], now: Now
    ) -> s.PreferencesIO:
        """Set every category; emails already queued are checked against it before they go."""
        choices = {
            EmailCategory(name): Preference(value) for name, value in msgspec.structs.asdict(data).items()
        }
        return _preferences_out(await preferences.set_preferences(contact_id, choices, now=now))


def _preferences_out(chosen: dict[EmailCategory, Preference]) -> s.PreferencesIO:
    return s.PreferencesIO(**{category.value: choice.value for category, choice in chosen.items()})
