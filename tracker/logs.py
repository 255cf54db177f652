"""Structured JSON logs; every line written while serving a request carries its request id."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
access_log = logging.getLogger("tracker.access")
REQUEST_ID_HEADER = "x-request-id"
PRIVATE_SEGMENT = re.compile(r"^(/(?:status|a|unsubscribe|suppressions)/)[^/]+?(\.json|\.ics)?(?=/|$)")
"""The token of a customer's link (`/status/<token>.json`, `/a/<token>/preferences`, `/unsubscribe/<token>`):
it opens the page, so whoever reads the logs must not get it; and the address of `/suppressions/<address>`,
a customer's personal data."""
NOISY_LOGGERS = ("tortoise", "aiosqlite", "asyncpg", "apscheduler", "httpx", "httpcore")
"""Libraries that log every query or request at INFO; httpx and httpcore write each webhook's full URL,
and URLs such as Slack's carry their credential in the path."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (current := request_id.get()) is not None:
            entry["request_id"] = current
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, *, as_json: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _loggable_path(path: str) -> str:
    """The request path with a customer's link token or address replaced by `…` (the query is never
    logged)."""
    return PRIVATE_SEGMENT.sub(r"\g<1>…\g<2>", path)


def _valid_request_id(raw: str | None) -> str | None:
    if raw and len(raw) <= 128 and all(c.isalnum() or c in "-_.:" for c in raw):
        return raw
    return None


class RequestLogging:
    """Outermost ASGI layer: take the caller's X-Request-ID (or make one), put it on the response and on
    every log line of the request, and write one access line with the final status (errors included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        incoming = headers.get(REQUEST_ID_HEADER.encode())
        rid = _valid_request_id(incoming.decode("latin-1") if incoming else None) or secrets.token_hex(8)
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableScopeHeaders.from_message(message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            access_log.info(
                "request",
                extra={
                    "fields": {
                        "method": scope.get("method"),
                        "path": _loggable_path(scope.get("path", "")),
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    }
                },
            )
            request_id.reset(token)
