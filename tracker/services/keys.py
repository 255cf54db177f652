"""API keys: shown once at creation, stored as a SHA-256 digest, looked up by a short public prefix.

A key is 256 random bits, so a fast digest is enough; a slow password hash would only slow every request.
A key may carry an expiry; its last use is recorded to the minute, so a busy key costs one write a minute.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from tortoise.transactions import in_transaction

from tracker.db.models import ApiKey, JobEvent, column_length, fits_column
from tracker.domain.errors import Conflict, InvalidInput, NotFound

KEY_PREFIX = "trk"
LAST_USE_RESOLUTION = timedelta(minutes=1)
"""`last_used_at` is rewritten only when the one stored is at least this old."""


class Role(StrEnum):
    ADMIN = "admin"
    STAFF = "staff"
    INTEGRATOR = "integrator"


NAME_MAX = column_length(JobEvent, "actor") - max(len(role.value) for role in Role) - 1
"""A key's name: its actor, `role:name`, must fit the columns that record who did what (`actor`,
`entered_by`, `created_by`..., all as long)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the API key behind a request."""

    key_id: int
    name: str
    role: Role

    @property
    def actor(self) -> str:
        return f"{self.role.value}:{self.name}"


def person_of(actor: str) -> str:
    """The person an actor name stands for: a key's actor (``staff:Ann``) is the key's name (``Ann``),
    as an event log names the same person, so history imported from a log carries over to the jobs
    that person moves on through the API. Other actors (``import:history``) stay whole."""
    role, colon, name = actor.partition(":")
    return name if colon and role in _ROLES else actor


_ROLES = frozenset(role.value for role in Role)


class KeyRefused(Exception):
    """The request's key does not authenticate it; `code` says why, for the caller."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class IssuedKey:
    record: ApiKey
    secret: str
    """The full key; it exists only here, once."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(token: str) -> str | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    return parts[1]


def _is_active(key: ApiKey, now: datetime) -> bool:
    return key.revoked_at is None and (key.expires_at is None or key.expires_at > now)


async def create_key(name: str, role: str, *, now: datetime, expires_at: datetime | None = None) -> IssuedKey:
    clean_name = name.strip()
    if not clean_name or len(clean_name) > NAME_MAX:
        raise InvalidInput("name", f"must be 1 to {NAME_MAX} characters")
    try:
        key_role = Role(role)
    except ValueError:
        raise InvalidInput("role", f"must be one of {', '.join(r.value for r in Role)}") from None
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise InvalidInput("expires_at", "needs a time zone offset, such as Z or +01:00")
        if expires_at <= now:
            raise InvalidInput("expires_at", "must be in the future")
        expires_at = expires_at.astimezone(UTC)
    prefix = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    record = await ApiKey.create(
        name=clean_name,
        role=key_role.value,
        prefix=prefix,
        secret_hash=_digest(secret),
        created_at=now,
        expires_at=expires_at,
    )
    return IssuedKey(record, secret)


async def authenticate(token: str, *, now: datetime) -> Principal:
    """The caller behind `token`, or `KeyRefused`; notes the key's use at most once a minute."""
    prefix = _split(token)
    known = prefix is not None and fits_column(ApiKey, "prefix", prefix)
    record = await ApiKey.get_or_none(prefix=prefix) if known else None
    if record is None or not hmac.compare_digest(record.secret_hash, _digest(token)):
        raise KeyRefused("key_unknown", "the API key is unknown")
    if record.revoked_at is not None:
        raise KeyRefused("key_revoked", "the API key is revoked")
    if not _is_active(record, now):
        raise KeyRefused("key_expired", "the API key has expired")
    last_used = record.last_used_at
    if last_used is None or now - last_used >= LAST_USE_RESOLUTION:
        # Compare-and-set: of several processes seeing the same stale time, one writes.
        await ApiKey.filter(id=record.id, last_used_at=last_used).update(last_used_at=now)
    return Principal(record.id, record.name, Role(record.role))


async def key_principal(key_id: int, *, now: datetime) -> Principal | None:
    """Who a key is while it is active (a session opened with it ends when it is revoked or expires)."""
    record = await ApiKey.get_or_none(id=key_id)
    if record is None or not _is_active(record, now):
        return None
    return Principal(record.id, record.name, Role(record.role))


async def list_keys() -> list[ApiKey]:
    return await ApiKey.all().order_by("id")


async def revoke_key(key_id: int, *, now: datetime, by: Principal | None = None) -> ApiKey:
    """Revoke a key, unless it is the caller's own (`by`) or the last active admin key.

    Both rules keep someone able to manage keys through the API; the CLI stays the way back in.
    """
    async with in_transaction():
        # Lock every admin key, always in the same order, so two admins revoking each other's keys at
        # once are serialised (one of them then sees the other's key as the last one) and cannot deadlock.
        admins = await ApiKey.filter(role=Role.ADMIN.value).select_for_update().order_by("id")
        record = await ApiKey.select_for_update().get_or_none(id=key_id)
        if record is None:
            raise NotFound("API key", key_id)
        if by is not None and by.key_id == key_id:
            raise Conflict("a key cannot revoke itself: revoke it with another admin key", code="own_key")
        if record.revoked_at is not None:
            return record
        active_admins = {key.id for key in admins if _is_active(key, now)}
        if active_admins == {key_id}:
            raise Conflict(
                "this is the last active admin key: create another admin key first",
                code="last_admin_key",
            )
        record.revoked_at = now
        await record.save(update_fields=["revoked_at"])
    return record
