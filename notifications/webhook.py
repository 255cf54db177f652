"""Sending one signed webhook: check the URL, connect to the checked address, POST, classify the answer.

Every attempt looks the host up again and judges its addresses (see `ssrf`), then connects to one of those
addresses: the HTTP client's network backend is handed the checked addresses for the request at hand and
has no way to look the name up itself. The URL, `Host` header and TLS server name stay the endpoint's.
Redirects are never followed (a 3xx is a failure), and at most 2 KB of the answer is read.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpcore
import httpx

from notifications.attempts import EXCERPT_BYTES, Attempt, Outcome
from notifications.signing import signature_headers
from notifications.ssrf import Resolver, Target, UnsafeURL, URLPolicy, system_resolver, validate_url

USER_AGENT = "tracker-webhooks/1"
_EVENT_TYPE = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")


@dataclass(frozen=True, slots=True)
class WebhookTimeouts:
    connect: float = 5.0
    total: float = 15.0
    """For the whole attempt: lookup, connection, request and the capped read of the answer."""


@dataclass(frozen=True, slots=True)
class WebhookMessage:
    """One delivery to one endpoint; the same id and body on every attempt, so receivers can deduplicate."""

    message_id: str
    url: str
    body: bytes
    signing_secrets: tuple[str, ...]
    """The endpoint's current secret, then, during a rotation, the one it replaces."""


def encode_payload(event_type: str, timestamp: datetime, data: Mapping[str, Any]) -> bytes:
    """The request body: `{"type", "timestamp", "data"}` as compact JSON, the exact bytes that are signed."""
    if not _EVENT_TYPE.fullmatch(event_type):
        raise ValueError("an event type is dot-separated parts of letters, digits and '_'")
    if timestamp.tzinfo is None:
        raise ValueError("the event's timestamp must be timezone-aware")
    moment = timestamp.astimezone(UTC).isoformat().replace("+00:00", "Z")
    document = {"type": event_type, "timestamp": moment, "data": data}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def classify_status(status_code: int) -> Outcome:
    if 200 <= status_code < 300:
        return Outcome.DELIVERED
    if status_code == 410:
        return Outcome.GONE
    if status_code == 429:
        return Outcome.THROTTLED
    return Outcome.FAILED


_checked_target: contextvars.ContextVar[Target | None] = contextvars.ContextVar(
    "checked_target", default=None
)


class _CheckedAddressBackend(httpcore.AsyncNetworkBackend):
    """Connects to the addresses checked for the current request, never to what a fresh lookup says."""

    def __init__(self) -> None:
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        target = _checked_target.get()
        if target is None or target.host != host or target.port != port:
            raise httpcore.ConnectError(f"no checked address for {host}:{port}")
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in target.addresses:
            try:
                return await self._network.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None  # a Target always holds at least one address
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


class _CheckedAddressTransport(httpx.AsyncHTTPTransport):
    def __init__(self, ssl_context: ssl.SSLContext, limits: httpx.Limits) -> None:
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        # httpx takes no network backend of its own, so its pool is rebuilt with ours; the rest of the
        # transport (request conversion, exception mapping) is httpx's.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_CheckedAddressBackend(),
        )


class WebhookSender:
    """Sends webhooks over one pooled HTTP client; use as an async context manager, or call `aclose`."""

    def __init__(
        self,
        policy: URLPolicy,
        clock: Callable[[], datetime],
        *,
        resolver: Resolver = system_resolver,
        timeouts: WebhookTimeouts = WebhookTimeouts(),
        max_connections: int = 100,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._resolver = resolver
        self._timeouts = timeouts
        transport = _CheckedAddressTransport(
            ssl_context or ssl.create_default_context(),
            httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            timeout=httpx.Timeout(timeouts.total, connect=timeouts.connect),
            trust_env=False,
        )

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, message: WebhookMessage) -> Attempt:
        """One attempt; every failure is classified into the returned `Attempt`, none is raised."""
        started = time.perf_counter()

        def elapsed_ms() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        try:
            timestamp = int(self._clock().timestamp())
            headers = {
                "content-type": "application/json",
                "user-agent": USER_AGENT,
                "accept-encoding": "identity",  # so the 2 KB we keep is readable, and no compressed bomb
                **signature_headers(message.message_id, timestamp, message.body, message.signing_secrets),
            }
            request = self._client.build_request("POST", message.url, content=message.body, headers=headers)
        except (
            ValueError,
            httpx.InvalidURL,
        ) as invalid:  # a malformed id, secret or URL: no attempt can succeed
            return Attempt(Outcome.INVALID, elapsed_ms(), error=f"cannot send: {invalid}")
        try:
            async with asyncio.timeout(self._timeouts.total):
                target = await validate_url(message.url, self._policy, self._resolver)
                status, retry_after, excerpt = await self._post(target, request)
        except UnsafeURL as refusal:
            return Attempt(Outcome.FAILED, elapsed_ms(), error=f"refused: {refusal}")
        except (TimeoutError, httpx.TimeoutException) as timeout:
            error = f"timed out ({type(timeout).__name__}) after {elapsed_ms():.0f} ms"
            return Attempt(Outcome.THROTTLED, elapsed_ms(), error=error)
        except httpx.HTTPError as failure:
            return Attempt(Outcome.FAILED, elapsed_ms(), error=f"{type(failure).__name__}: {failure}")
        return Attempt(
            classify_status(status),
            elapsed_ms(),
            status_code=status,
            response_excerpt=excerpt,
            retry_after=retry_after,
        )

    async def _post(self, target: Target, request: httpx.Request) -> tuple[int, str | None, str]:
        token = _checked_target.set(target)
        try:
            response = await self._client.send(request, stream=True)
            try:
                kept = bytearray()
                async for chunk in response.aiter_raw():
                    kept += chunk
                    if len(kept) >= EXCERPT_BYTES:
                        break
            finally:
                await response.aclose()
        finally:
            _checked_target.reset(token)
        excerpt = bytes(kept[:EXCERPT_BYTES]).decode("utf-8", errors="replace")
        return response.status_code, response.headers.get("retry-after"), excerpt
