"""`Idempotency-Key` on POST: a retried request gets the first response and is not applied twice.

The action and the stored response commit in one transaction. Of two copies of a request racing each other
only one can commit: the other either fails to insert its record (unique per key and API key) or finds the
job already changed; either way it rolls back whole and replays the winner's response.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from litestar import Request, Response

from tracker.domain.errors import Conflict, InvalidInput
from tracker.services.idempotency import StoredResponse, once
from tracker.services.keys import Principal

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 200
REPLAYED_HEADERS = ("etag", "location")
"""What a response says of the resource it made or changed, so a retry learns it too."""


async def _fingerprint(request: Request[Any, Any, Any]) -> str:
    body = await request.body()
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.url.path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _replay(stored: StoredResponse, fingerprint: str) -> Response[bytes]:
    if stored.fingerprint != fingerprint:
        raise Conflict("this Idempotency-Key was used for a different request", code="idempotency_key_reused")
    return Response(
        stored.body.encode(),
        status_code=stored.status_code,
        media_type="application/json",
        headers={**stored.headers, "Idempotent-Replayed": "true"},
    )


def _as_stored(response: Response[bytes]) -> tuple[int, str, dict[str, str]]:
    headers = {name: value for name, value in response.headers.items() if name.lower() in REPLAYED_HEADERS}
    return int(response.status_code or 200), bytes(response.content).decode(), headers


async def idempotent(
    request: Request[Any, Any, Any], now: datetime, produce: Callable[[], Awaitable[Response[bytes]]]
) -> Response[bytes]:
    key = request.headers.get(HEADER)
    if key is None:
        return await produce()
    if not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput("header.Idempotency-Key", f"must be 1 to {MAX_KEY_LENGTH} printable characters")
    principal = request.user
    assert isinstance(principal, Principal)
    fingerprint = await _fingerprint(request)
    result = await once(principal.key_id, key, fingerprint, produce, _as_stored, now=now)
    return _replay(result, fingerprint) if isinstance(result, StoredResponse) else result
