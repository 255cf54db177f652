"""Dashboard sessions: a signed cookie naming the API key that signed in, never the key itself.

The cookie holds the key's id, an expiry and a random nonce, signed with HMAC-SHA256 under the server's
session secret. The CSRF token of every form is an HMAC of the nonce, so it is tied to one session and
needs no storage. The key is looked up again on each request: revoking it or letting it expire ends its
sessions. The signing key is derived from `TRACKER_SECRET_KEY`, so sessions last as long as it does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from notifications.ratelimit import Rate

COOKIE = "tracker_session"
SIGN_IN_RATE = Rate(per_second=1 / 12, burst=5)
"""Five sign-in attempts at once per client, then one every 12 seconds."""


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
    def from_secret_key(cls, secret_key: str, max_age_s: int) -> SessionSigner:
        """Sessions get a key of their own, derived from the app's `TRACKER_SECRET_KEY`."""
        derived = hmac.new(secret_key.encode(), b"tracker dashboard sessions", hashlib.sha256).digest()
        return cls(derived, timedelta(seconds=max_age_s))

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
