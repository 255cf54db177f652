"""Accounts (an individual or an institution) and the contacts who hear about their jobs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from tracker.db.models import Account, Contact, Job
from tracker.domain.errors import Conflict, InvalidInput, NotFound
from tracker.domain.workflow import JobStatus
from tracker.services.pages import Page, Sort, paginate
from tracker.services.preferences import new_page_token
from tracker.services.versions import UNNAMED, ExpectedVersion

EMAIL = re.compile(
    r"^[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


OPEN_STATUSES = (JobStatus.OPEN.value, JobStatus.ON_HOLD.value)
"""A job in these states may still notify its account's contacts."""


class AccountKind(StrEnum):
    INDIVIDUAL = "individual"
    INSTITUTIONAL = "institutional"


@dataclass(frozen=True)
class ContactFields:
    name: str
    email: str
    locale: str
    time_zone: str


def _name(value: str, field: str) -> str:
    text = value.strip()
    if not text or len(text) > 200:
        raise InvalidInput(field, "must be 1 to 200 characters")
    return text


def _kind(value: str) -> AccountKind:
    try:
        return AccountKind(value)
    except ValueError:
        raise InvalidInput("kind", "must be individual or institutional") from None


def check_contact(fields: ContactFields) -> ContactFields:
    email = fields.email.strip()
    if len(email) > 254 or not EMAIL.match(email):
        raise InvalidInput("email", "is not a valid email address")
    try:
        locale = str(Locale.parse(fields.locale.replace("-", "_")))
    except (ValueError, UnknownLocaleError):
        raise InvalidInput("locale", f"{fields.locale!r} is not a known locale") from None
    try:
        ZoneInfo(fields.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("time_zone", f"{fields.time_zone!r} is not an IANA time zone") from None
    return ContactFields(_name(fields.name, "name"), email, locale, fields.time_zone)


async def get_account(account_id: int) -> Account:
    account = await Account.get_or_none(id=account_id)
    if account is None:
        raise NotFound("account", account_id)
    return account


async def _locked_account(account_id: int) -> Account:
    """The account, its row locked until the transaction ends (contact count rules read then write)."""
    account = await Account.select_for_update().get_or_none(id=account_id)
    if account is None:
        raise NotFound("account", account_id)
    return account


async def _changed(account_id: int) -> None:
    """A change to one of the account's contacts changes the account as the API shows it (with its
    contacts): a new version, so a change based on what was read before is refused."""
    await Account.filter(id=account_id).update(version=F("version") + 1)


async def create_account(kind: str, name: str, contacts: list[ContactFields], *, now: datetime) -> Account:
    account_kind = _kind(kind)
    checked = [check_contact(c) for c in contacts]
    if account_kind is AccountKind.INDIVIDUAL and len(checked) > 1:
        raise InvalidInput("contacts", "an individual account has one contact")
    async with in_transaction():
        account = await Account.create(
            kind=account_kind.value, name=_name(name, "name"), created_at=now, updated_at=now
        )
        for contact in checked:
            await Contact.create(
                account=account,
                name=contact.name,
                email=contact.email,
                locale=contact.locale,
                time_zone=contact.time_zone,
                page_token=new_page_token(),
                created_at=now,
                updated_at=now,
            )
    return account


async def update_account(
    account_id: int,
    *,
    name: str | None,
    kind: str | None,
    now: datetime,
    expected: ExpectedVersion = UNNAMED,
) -> Account:
    async with in_transaction():
        account = await _locked_account(account_id)
        expected.check_if_named(account.version, "account")
        if name is not None:
            account.name = _name(name, "name")
        if kind is not None:
            new_kind = _kind(kind)
            if new_kind is AccountKind.INDIVIDUAL and await Contact.filter(account_id=account_id).count() > 1:
                raise Conflict(
                    "the account has several contacts; an individual account has one",
                    code="too_many_contacts",
                )
            account.kind = new_kind.value
        account.updated_at = now
        account.version += 1
        await account.save(update_fields=["name", "kind", "updated_at", "version"])
    return account


async def delete_account(account_id: int) -> None:
    async with in_transaction():
        account = await get_account(account_id)
        if await Job.exists(account_id=account_id):
            raise Conflict("the account has jobs; it cannot be deleted", code="account_has_jobs")
        await account.delete()


@dataclass(frozen=True)
class AccountFilters:
    kind: AccountKind | None = None
    text: str | None = None
    """Part of the name, in any case."""
    updated_since: datetime | None = None


async def list_accounts(
    filters: AccountFilters, *, sort: Sort, limit: int, cursor: str | None
) -> Page[Account]:
    """One page of accounts, each with its contacts (oldest first)."""
    query = Account.all()
    if filters.kind is not None:
        query = query.filter(kind=filters.kind.value)
    if filters.text:
        query = query.filter(name__icontains=filters.text.strip())
    if filters.updated_since is not None:
        query = query.filter(updated_at__gte=filters.updated_since)
    page = await paginate(query, sort, limit=limit, cursor=cursor)
    await Account.fetch_for_list(page.items, "contacts")
    return page


async def list_contacts(
    account_id: int, *, text: str | None, sort: Sort, limit: int, cursor: str | None
) -> Page[Contact]:
    """One page of an account's contacts; `text` matches part of a name or an email address."""
    await get_account(account_id)
    query = Contact.filter(account_id=account_id)
    if text:
        query = query.filter(Q(name__icontains=text.strip()) | Q(email__icontains=text.strip()))
    return await paginate(query, sort, limit=limit, cursor=cursor)


async def contacts_of(account_id: int) -> list[Contact]:
    return await Contact.filter(account_id=account_id).order_by("id")


async def add_contact(account_id: int, fields: ContactFields, *, now: datetime) -> Contact:
    checked = check_contact(fields)
    async with in_transaction():
        account = await _locked_account(account_id)
        if account.kind == AccountKind.INDIVIDUAL and await Contact.exists(account_id=account_id):
            raise Conflict("an individual account has one contact", code="individual_has_contact")
        await _changed(account_id)
        return await Contact.create(
            account=account,
            name=checked.name,
            email=checked.email,
            locale=checked.locale,
            time_zone=checked.time_zone,
            page_token=new_page_token(),
            created_at=now,
            updated_at=now,
        )


async def get_contact(contact_id: int, *, lock: bool = False) -> Contact:
    """The contact; with ``lock``, its row locked until the transaction ends."""
    contact = await (Contact.select_for_update() if lock else Contact.all()).get_or_none(id=contact_id)
    if contact is None:
        raise NotFound("contact", contact_id)
    return contact


async def update_contact(
    contact_id: int, changes: dict[str, str], *, now: datetime, expected: ExpectedVersion = UNNAMED
) -> Contact:
    async with in_transaction():
        contact = await get_contact(contact_id, lock=True)
        expected.check_if_named(contact.version, "contact")
        merged = ContactFields(
            name=changes.get("name", contact.name),
            email=changes.get("email", contact.email),
            locale=changes.get("locale", contact.locale),
            time_zone=changes.get("time_zone", contact.time_zone),
        )
        checked = check_contact(merged)
        contact.name, contact.email = checked.name, checked.email
        contact.locale, contact.time_zone = checked.locale, checked.time_zone
        contact.updated_at = now
        contact.version += 1
        await contact.save()
        await _changed(contact.account_id)
    return contact


async def delete_contact(contact_id: int) -> None:
    """Delete a contact, unless it is the last one of an account with open jobs: their notifications
    need a recipient."""
    async with in_transaction():
        contact = await get_contact(contact_id)
        await _locked_account(contact.account_id)
        if await Contact.filter(account_id=contact.account_id).count() == 1 and await Job.exists(
            account_id=contact.account_id, status__in=OPEN_STATUSES
        ):
            raise Conflict(
                "this is the only contact of an account with open jobs: add another contact first",
                code="last_contact",
            )
        await contact.delete()
        await _changed(contact.account_id)
