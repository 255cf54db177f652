"""What each contact wants to hear about by email, per category: read, changed, and unsubscribed.

Staff set preferences through the API, the contact through their preferences page (`/a/<page token>`) or
the one-click unsubscribe link of an email; all go through here. The sender reads them again just before
each email, so a change stops what is already queued.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime

from tortoise.transactions import in_transaction

from tracker.db.models import Contact, Suppression, fits_column
from tracker.domain.emails import Preference
from tracker.domain.errors import InvalidInput, NotFound
from tracker.domain.events import EmailCategory
from tracker.services.events import PREFERENCE_COLUMNS
from tracker.services.pages import Page, Sort, paginate

COLUMNS = PREFERENCE_COLUMNS
"""The Contact column that holds each category's preference (the fan-out reads the same)."""


def new_page_token() -> str:
    return secrets.token_urlsafe(32)


def preferences_of(contact: Contact) -> dict[EmailCategory, Preference]:
    return {category: Preference(getattr(contact, column)) for category, column in COLUMNS.items()}


def preference_for(contact: Contact, category: EmailCategory) -> Preference:
    return Preference(getattr(contact, COLUMNS[category]))


async def _contact(contact_id: int) -> Contact:
    contact = await Contact.get_or_none(id=contact_id)
    if contact is None:
        raise NotFound("contact", contact_id)
    return contact


async def get_preferences(contact_id: int) -> dict[EmailCategory, Preference]:
    return preferences_of(await _contact(contact_id))


async def set_preferences(
    contact_id: int, changes: Mapping[EmailCategory, Preference], *, now: datetime
) -> dict[EmailCategory, Preference]:
    """Change the given categories (the others stay as they are); the contact's preferences after."""
    async with in_transaction():
        contact = await Contact.select_for_update().get_or_none(id=contact_id)
        if contact is None:
            raise NotFound("contact", contact_id)
        for category, preference in changes.items():
            setattr(contact, COLUMNS[category], preference.value)
        contact.updated_at = now
        await contact.save(update_fields=[*(COLUMNS[c] for c in changes), "updated_at"])
    return preferences_of(contact)


async def contact_by_page_token(token: str) -> Contact:
    known = token and fits_column(Contact, "page_token", token)
    contact = await Contact.get_or_none(page_token=token) if known else None
    if contact is None:
        raise NotFound("page", token[:8])
    return contact


def parse_category(raw: str | None) -> EmailCategory | None:
    """The `c` of an unsubscribe link: a category, or None (absent) for every category."""
    if raw is None or raw == "":
        return None
    try:
        return EmailCategory(raw)
    except ValueError:
        choices = ", ".join(category.value for category in EmailCategory)
        raise InvalidInput("query.c", f"must be one of {choices}") from None


async def unsubscribe(token: str, category: EmailCategory | None, *, now: datetime) -> Contact:
    """Turn off one category (or every one) for the contact holding `token` (RFC 8058 one-click)."""
    contact = await contact_by_page_token(token)
    categories = list(COLUMNS) if category is None else [category]
    await set_preferences(contact.id, dict.fromkeys(categories, Preference.OFF), now=now)
    return await _contact(contact.id)


async def ensure_page_token(contact: Contact) -> str:
    """The contact's page token, made now for a contact from before tokens (only one writer wins)."""
    if not contact.page_token:
        contact.page_token = await page_token_of(contact.id, None)
    return contact.page_token


async def page_token_of(contact_id: int, known: str | None) -> str:
    """The page token of a contact whose token was read as `known`: made now if it had none."""
    if known:
        return known
    await Contact.filter(id=contact_id, page_token__isnull=True).update(page_token=new_page_token())
    token = (await Contact.get(id=contact_id)).page_token
    assert token is not None
    return token


async def is_suppressed(address: str) -> bool:
    return await Suppression.exists(address=address.lower())


async def list_suppressions(*, sort: Sort, limit: int, cursor: str | None) -> Page[Suppression]:
    return await paginate(Suppression.all(), sort, limit=limit, cursor=cursor)


async def clear_suppression(address: str) -> None:
    """Email the address again (staff checked it works); NotFound when it was not suppressed."""
    normalised = address.strip().lower()
    fits = fits_column(Suppression, "address", normalised)
    deleted = fits and await Suppression.filter(address=normalised).delete()
    if not deleted:
        raise NotFound("suppression", address)
