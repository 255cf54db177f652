"""What one delivery attempt gave: the sender's classification, read by the retry policy and the store."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

EXCERPT_BYTES = 2048


class Outcome(StrEnum):
    """How an attempt ended, in the terms the retry policy decides on."""

    DELIVERED = "delivered"
    FAILED = "failed"
    """Worth another try on the normal schedule: 5xx, 3xx, other 4xx, connection refused, SMTP 4xx."""
    THROTTLED = "throttled"
    """Timeout or HTTP 429: the receiver is overloaded, so the next try waits at least a minute."""
    GONE = "gone"
    """HTTP 410: the receiver asks us to stop; the endpoint is disabled."""
    BOUNCED = "bounced"
    """SMTP 5xx at RCPT or DATA: the address does not take mail; it is suppressed."""
    INVALID = "invalid"
    """The message cannot be sent as it is (a malformed address or header): trying again would not help."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt as the attempt log shows it; never holds the message body or a secret."""

    outcome: Outcome
    latency_ms: float
    status_code: int | None = None
    """HTTP status, or the SMTP reply code."""
    error: str | None = None
    """Why the attempt failed, for people (the exception type and message, or the SMTP reply)."""
    response_excerpt: str = ""
    """The first 2 KB of the response body (webhooks) or the server's reply text (email)."""
    retry_after: str | None = None
    """The raw `Retry-After` header, read by the retry policy against its own `now`."""
