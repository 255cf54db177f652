"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.

Our own signer rather than the `standardwebhooks` package, whose `sign()` takes a datetime and gets the epoch
wrong for one that is aware but not in UTC; we take integer seconds. During a secret rotation the old and the
new secret both sign, space-separated, so receivers verify with either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
SECRET_BYTES = 32
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_\-]{1,128}")


def generate_secret(size: int = SECRET_BYTES) -> str:
    """A new endpoint secret: `whsec_` + base64 of `size` random bytes."""
    if not MIN_SECRET_BYTES <= size <= MAX_SECRET_BYTES:
        raise ValueError(f"a secret has {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(size)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret, refusing anything the spec does not allow."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is base64 after its prefix") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")
    return key


def sign(message_id: str, timestamp: int, body: bytes, signing_secrets: Sequence[str]) -> str:
    """The `webhook-signature` value: one `v1,` signature per secret, space-separated."""
    if not _MESSAGE_ID.fullmatch(message_id):
        # The id is part of the signed text, so it must not hold the "." that separates its parts.
        raise ValueError("a webhook id is 1 to 128 letters, digits, '_' or '-'")
    if not signing_secrets:
        raise ValueError("at least one secret signs a webhook")
    signed = b"%s.%d.%s" % (message_id.encode("ascii"), timestamp, body)
    return " ".join(
        "v1," + base64.b64encode(hmac.digest(secret_key(secret), signed, hashlib.sha256)).decode("ascii")
        for secret in signing_secrets
    )


def signature_headers(
    message_id: str, timestamp: int, body: bytes, signing_secrets: Sequence[str]
) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt (`timestamp` is that attempt's, in seconds)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(message_id, timestamp, body, signing_secrets),
    }
