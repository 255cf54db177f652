"""API keys: shown once at creation, stored as a SHA-256 digest, looked up by a short public prefix.

A key is 256 random bits, so a fast digest is enough; a slow password hash would only slow every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tracker.db.models import ApiKey
from tracker.domain.errors import InvalidInput, NotFound

KEY_PREFIX = "trk"


class Role(StrEnum):
    ADMIN = "admin"
    STAFF = "staff"
    INTEGRATOR = "integrator"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the API key behind a request."""

    key_id: int
    name: str
    role: Role

    @property
    def actor(self) -> str:
        return f"{self.role.value}:{self.name}"


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


async def create_key(name: str, role: str, *, now: datetime) -> IssuedKey:
    clean_name = name.strip()
    if not clean_name or len(clean_name) > 100:
        raise InvalidInput("name", "must be 1 to 100 characters")
    try:
        key_role = Role(role)
    except ValueError:
        raise InvalidInput("role", f"must be one of {', '.join(r.value for r in Role)}") from None
    prefix = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    record = await ApiKey.create(
        name=clean_name, role=key_role.value, prefix=prefix, secret_hash=_digest(secret), created_at=now
    )
    return IssuedKey(record, secret)


async def authenticate(token: str) -> Principal | None:
    prefix = _split(token)
    if prefix is None:
        return None
    record = await ApiKey.get_or_none(prefix=prefix, revoked_at=None)
    if record is None or not hmac.compare_digest(record.secret_hash, _digest(token)):
        return None
    return Principal(record.id, record.name, Role(record.role))


async def list_keys() -> list[ApiKey]:
    return await ApiKey.all().order_by("id")


async def revoke_key(key_id: int, *, now: datetime) -> ApiKey:
    record = await ApiKey.get_or_none(id=key_id)
    if record is None:
        raise NotFound("API key", key_id)
    if record.revoked_at is None:
        record.revoked_at = now
        await record.save(update_fields=["revoked_at"])
    return record
