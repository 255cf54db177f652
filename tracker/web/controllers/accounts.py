"""Staff API for accounts and their contacts."""

from __future__ import annotations

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from tracker.services import accounts
from tracker.services.accounts import ContactFields
from tracker.services.keys import Role
from tracker.web import schemas as s, views
from tracker.web.auth import requires
from tracker.web.deps import Now


def _fields(contact: s.ContactIn) -> ContactFields:
    return ContactFields(contact.name, contact.email, contact.locale, contact.time_zone)


async def _account_out(account_id: int) -> s.AccountOut:
    account = await accounts.get_account(account_id)
    return views.account_out(account, await accounts.contacts_of(account_id))


class AccountController(Controller):
    path = "/accounts"
    tags = ["Accounts"]
    guards = [requires(Role.STAFF)]

    @post(operation_id="CreateAccount", status_code=HTTP_201_CREATED)
    async def create_account(self, data: JSONBody[s.AccountIn], now: Now) -> s.AccountOut:
        account = await accounts.create_account(
            data.kind, data.name, [_fields(c) for c in data.contacts], now=now
        )
        return await _account_out(account.id)

    @get(operation_id="ListAccounts")
    async def list_accounts(self) -> list[s.AccountOut]:
        return [views.account_out(a, list(a.contacts)) for a in await accounts.list_accounts()]

    @get("/{account_id:int}", operation_id="GetAccount")
    async def get_account(self, account_id: FromPath[int]) -> s.AccountOut:
        return await _account_out(account_id)

    @patch("/{account_id:int}", operation_id="UpdateAccount")
    async def update_account(
        self, account_id: FromPath[int], data: JSONBody[s.AccountUpdate], now: Now
    ) -> s.AccountOut:
        await accounts.update_account(
            account_id,
            name=None if isinstance(data.name, msgspec.UnsetType) else data.name,
            kind=None if isinstance(data.kind, msgspec.UnsetType) else data.kind,
            now=now,
        )
        return await _account_out(account_id)

    @delete("/{account_id:int}", operation_id="DeleteAccount", status_code=HTTP_204_NO_CONTENT)
    async def delete_account(self, account_id: FromPath[int]) -> None:
        await accounts.delete_account(account_id)

    @post("/{account_id:int}/contacts", operation_id="AddContact", status_code=HTTP_201_CREATED)
    async def add_contact(
        self, account_id: FromPath[int], data: JSONBody[s.ContactIn], now: Now
    ) -> s.ContactOut:
        return views.contact_out(await accounts.add_contact(account_id, _fields(data), now=now))


class ContactController(Controller):
    path = "/contacts"
    tags = ["Accounts"]
    guards = [requires(Role.STAFF)]

    @get("/{contact_id:int}", operation_id="GetContact")
    async def get_contact(self, contact_id: FromPath[int]) -> s.ContactOut:
        return views.contact_out(await accounts.get_contact(contact_id))

    @patch("/{contact_id:int}", operation_id="UpdateContact")
    async def update_contact(
        self, contact_id: FromPath[int], data: JSONBody[s.ContactUpdate], now: Now
    ) -> s.ContactOut:
        changes = {
            name: value
            for name, value in msgspec.structs.asdict(data).items()
            if not isinstance(value, msgspec.UnsetType)
        }
        return views.contact_out(await accounts.update_contact(contact_id, changes, now=now))

    @delete("/{contact_id:int}", operation_id="DeleteContact", status_code=HTTP_204_NO_CONTENT)
    async def delete_contact(self, contact_id: FromPath[int]) -> None:
        await accounts.delete_contact(contact_id)
