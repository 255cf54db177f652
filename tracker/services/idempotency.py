"""The stored first responses behind `Idempotency-Key` (see `tracker.web.idempotency` for the HTTP side)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from tracker.db.models import IdempotencyRecord
from tracker.domain.errors import DomainError

R = TypeVar("R")


@dataclass(frozen=True)
class StoredResponse:
    fingerprint: str
    """Digest of the request that produced it: another request with the same key must not replay it."""
    status_code: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    """The headers that say what the response made (ETag, Location), replayed with it."""


async def _stored(api_key_id: int, key: str) -> StoredResponse | None:
    record = await IdempotencyRecord.get_or_none(api_key_id=api_key_id, key=key)
    if record is None:
        return None
    return StoredResponse(record.fingerprint, record.status_code, record.body, record.headers or {})


async def once(
    api_key_id: int,
    key: str,
    fingerprint: str,
    produce: Callable[[], Awaitable[R]],
    stored_as: Callable[[R], tuple[int, str, dict[str, str]]],
    *,
    now: datetime,
) -> R | StoredResponse:
    """Produce the response and store it in one transaction, or return the one stored for the key before.

    Of two copies racing each other only one can commit: the other either fails to insert its record
    (unique per key and API key) or finds the job already changed; either way it rolls back whole and
    gets the winner's response.
    """
    existing = await _stored(api_key_id, key)
    if existing is not None:
        return existing
    try:
        async with in_transaction():
            response = await produce()
            status_code, body, headers = stored_as(response)
            await IdempotencyRecord.create(
                api_key_id=api_key_id,
                key=key,
                fingerprint=fingerprint,
                status_code=status_code,
                body=body,
                headers=headers,
                created_at=now,
            )
    except IntegrityError:
        winner = await _stored(api_key_id, key)
        assert winner is not None
        return winner
    except DomainError:
        # A copy racing ours may have applied the action first, making ours stale: answer as it did.
        first = await _stored(api_key_id, key)
        if first is None:
            raise
        return first
    return response
