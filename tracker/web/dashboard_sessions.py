"""Dashboard sessions: a signed cookie naming the API key that signed in, never the key itself.

The cookie holds the key's id, an expiry and a random nonce, signed with HMAC-SHA256 under the server's
session secret. The CSRF token of every form is an HMAC of the nonce, so it is tied to one session and
needs no storage. The key is looked up again on each request: revoking it or letting it expire ends its
sessions. Signing in is rate-limited per client with a token bucket.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from notifications.ratelimit import Rate, TokenBucket

COOKIE = "tracker_session"
SIGN_IN_RATE = Rate(per_second=1 / 12, burst=5)
"""Five sign-in attempts at once per client, then one every 12 seconds."""
MAX_CLIENTS = 10_000
"""Clients remembered at once; past this the limiter starts afresh (a bound on its memory: reaching it
already takes that many addresses, each of which has its own burst)."""


@dataclass(frozen=True)
class Session:
    key_id: int
    expires_at: datetime
    nonce: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SessionSigner:
    secret: bytes = field(repr=False)
    max_age: timedelta

    @classmethod
    def from_setting(cls, secret: str, max_age_s: int) -> SessionSigner:
        """Unset, a random secret for this process: sessions do not outlive it."""
        raw = secret.encode() if secret else secrets.token_bytes(32)
        return cls(raw, timedelta(seconds=max_age_s))

    def _mac(self, purpose: str, message: bytes) -> bytes:
        return hmac.new(self.secret, purpose.encode() + b"\0" + message, hashlib.sha256).digest()

    def issue(self, key_id: int, now: datetime) -> tuple[Session, str]:
        session = Session(key_id, now + self.max_age, secrets.token_urlsafe(16))
        body = json.dumps(
            {"k": key_id, "e": int(session.expires_at.timestamp()), "n": session.nonce}, separators=(",", ":")
        ).encode()
        return session, f"{_b64(body)}.{_b64(self._mac('session', body))}"

    def read(self, cookie: str | None, now: datetime) -> Session | None:
        """The session of a cookie that is ours, intact and not expired; None otherwise."""
        if not cookie or cookie.count(".") != 1:
            return None
        encoded, signature = cookie.split(".")
        try:
            body = _unb64(encoded)
            if not hmac.compare_digest(_unb64(signature), self._mac("session", body)):
                return None
            fields = json.loads(body)
            session = Session(
                int(fields["k"]), datetime.fromtimestamp(int(fields["e"]), tz=now.tzinfo), str(fields["n"])
            )
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires_at > now else None

    def csrf_token(self, session: Session) -> str:
        return _b64(self._mac("csrf", session.nonce.encode()))

    def csrf_matches(self, session: Session, token: str) -> bool:
        return hmac.compare_digest(self.csrf_token(session).encode(), token.encode())


@dataclass
class SignInLimiter:
    """Per-client token buckets for sign-in attempts; `now` is in seconds."""

    rate: Rate = SIGN_IN_RATE
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def attempt(self, client: str, now: float) -> float | None:
        """None when the attempt may go ahead; otherwise the seconds until one may."""
        if len(self.buckets) >= MAX_CLIENTS:
            self.buckets.clear()
        bucket = self.buckets.get(client) or TokenBucket.full(self.rate, now)
        reservation = bucket.reserve(now, max_wait=0.0)
        if not reservation.granted:
            return reservation.wait
        self.buckets[client] = reservation.bucket
        return None
