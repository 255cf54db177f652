"""Our Standard Webhooks signatures, verified by the `standardwebhooks` and `svix` packages."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
import standardwebhooks
import svix.webhooks

from notifications.signing import generate_secret, secret_key, sign, signature_headers

BODY = json.dumps(
    {"type": "job.stage_changed", "timestamp": "2026-03-02T09:00:00Z", "data": {"é": 1}}
).encode()


def verify_with_both(secret: str, body: bytes, headers: dict[str, str]) -> None:
    assert standardwebhooks.Webhook(secret).verify(body, headers) == json.loads(body)
    svix.webhooks.Webhook(secret).verify(body, headers)


def refused_by_both(secret: str, body: bytes, headers: dict[str, str]) -> None:
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(body, headers)
    with pytest.raises(svix.webhooks.WebhookVerificationError):
        svix.webhooks.Webhook(secret).verify(body, headers)


def test_a_signed_request_verifies_with_both_libraries():
    secret = generate_secret()
    headers = signature_headers("msg_2f1c", int(time.time()), BODY, [secret])
    assert headers["webhook-id"] == "msg_2f1c"
    assert headers["webhook-signature"].startswith("v1,")
    verify_with_both(secret, BODY, headers)


def test_during_a_rotation_both_secrets_verify():
    old, new = generate_secret(), generate_secret()
    headers = signature_headers("msg_rotating", int(time.time()), BODY, [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    verify_with_both(old, BODY, headers)
    verify_with_both(new, BODY, headers)
    refused_by_both(generate_secret(), BODY, headers)


def test_a_changed_body_id_or_timestamp_is_refused():
    secret = generate_secret()
    now = int(time.time())
    headers = signature_headers("msg_1", now, BODY, [secret])
    refused_by_both(secret, BODY + b" ", headers)
    refused_by_both(secret, BODY, {**headers, "webhook-id": "msg_2"})
    refused_by_both(secret, BODY, {**headers, "webhook-timestamp": str(now + 1)})


def test_each_attempt_signs_its_own_timestamp():
    secret = generate_secret()
    now = int(time.time())
    first = signature_headers("msg_1", now - 30, BODY, [secret])
    retry = signature_headers("msg_1", now, BODY, [secret])
    assert first["webhook-id"] == retry["webhook-id"]
    assert first["webhook-signature"] != retry["webhook-signature"]
    verify_with_both(secret, BODY, first)
    verify_with_both(secret, BODY, retry)


def test_the_signature_matches_the_spec_by_hand():
    key = bytes(range(24))
    secret = "whsec_" + base64.b64encode(key).decode()
    expected = base64.b64encode(hmac.new(key, b"msg_a.1700000000." + BODY, hashlib.sha256).digest()).decode()
    assert sign("msg_a", 1700000000, BODY, [secret]) == f"v1,{expected}"


@pytest.mark.parametrize("size", [24, 32, 64])
def test_generated_secrets_hold_enough_random_bytes(size):
    secret = generate_secret(size)
    assert secret.startswith("whsec_")
    assert len(secret_key(secret)) == size
    assert generate_secret(size) != secret


@pytest.mark.parametrize("size", [0, 16, 23, 65])
def test_secret_sizes_outside_the_spec_are_refused(size):
    with pytest.raises(ValueError, match="24 to 64"):
        generate_secret(size)
    with pytest.raises(ValueError, match="24 to 64"):
        secret_key("whsec_" + base64.b64encode(b"k" * size).decode())


@pytest.mark.parametrize(
    "secret",
    ["", "c2VjcmV0", "whsec_!!!not-base64!!!", "whsk_" + base64.b64encode(b"k" * 32).decode()],
)
def test_malformed_secrets_are_refused(secret):
    with pytest.raises(ValueError, match="webhook secret"):
        secret_key(secret)


@pytest.mark.parametrize("message_id", ["", "msg.1", "msg 1", "msg\r\n1", "é", "m" * 129])
def test_ids_that_would_blur_the_signed_text_are_refused(message_id):
    with pytest.raises(ValueError, match="webhook id"):
        sign(message_id, 1700000000, BODY, [generate_secret()])


def test_signing_needs_a_secret():
    with pytest.raises(ValueError, match="at least one secret"):
        sign("msg_1", 1700000000, BODY, [])
