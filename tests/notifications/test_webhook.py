"""Webhook attempts against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import json
import ssl
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks
import svix.webhooks
import trustme

from notifications.attempts import Outcome
from notifications.signing import generate_secret
from notifications.ssrf import IPAddress, URLPolicy, validate_url
from notifications.webhook import WebhookMessage, WebhookSender, WebhookTimeouts, encode_payload
from tests.notifications.receiver import Receiver, Reply

LOOPBACK = URLPolicy.from_settings(allow_http=True, allowed_networks=["127.0.0.0/8"])
SECRET = generate_secret()
BODY = encode_payload(
    "job.stage_changed",
    datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
    {"reference": "R-1", "stage": "Bodywork", "note": "<b>ça</b>"},
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def message(url: str, message_id: str = "msg_1", secrets: tuple[str, ...] = (SECRET,)) -> WebhookMessage:
    return WebhookMessage(message_id=message_id, url=url, body=BODY, signing_secrets=secrets)


def sender(policy: URLPolicy = LOOPBACK, **options) -> WebhookSender:
    return WebhookSender(policy, Clock(), **options)


def resolving_to(*answers: Sequence[str]):
    """A resolver giving each answer in turn (the last one again when they run out)."""
    calls: list[str] = []

    async def resolve(host: str, port: int) -> Sequence[IPAddress]:
        answer = answers[min(len(calls), len(answers) - 1)]
        calls.append(host)
        return [ipaddress.ip_address(address) for address in answer]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def test_the_payload_is_compact_json_with_type_timestamp_and_data():
    assert json.loads(BODY) == {
        "type": "job.stage_changed",
        "timestamp": "2026-03-02T10:00:00Z",
        "data": {"reference": "R-1", "stage": "Bodywork", "note": "<b>ça</b>"},
    }
    assert b", " not in BODY and b": " not in BODY
    with pytest.raises(ValueError, match="timezone-aware"):
        encode_payload("job.created", datetime(2026, 3, 2), {})


@pytest.mark.parametrize(
    "event_type", ["", "job.", ".job", "job..created", "job created", "job-created", "jöb"]
)
def test_event_types_follow_the_standard_webhooks_form(event_type):
    with pytest.raises(ValueError, match="event type"):
        encode_payload(event_type, datetime(2026, 3, 2, tzinfo=UTC), {})


async def test_a_signed_json_post_arrives_and_verifies_with_both_libraries(receiver: Receiver):
    async with sender() as webhooks:
        attempt = await webhooks.send(message(receiver.url()))
    assert attempt.outcome is Outcome.DELIVERED
    assert (attempt.status_code, attempt.response_excerpt, attempt.error) == (200, "ok", None)
    assert attempt.latency_ms > 0
    [request] = receiver.requests
    assert (request.method, request.path, request.body) == ("POST", "/hook", BODY)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == "msg_1"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5
    assert (
        standardwebhooks.Webhook(SECRET).verify(request.body, request.headers)["type"] == "job.stage_changed"
    )
    svix.webhooks.Webhook(SECRET).verify(request.body, request.headers)


async def test_during_a_rotation_the_receiver_verifies_with_either_secret(receiver: Receiver):
    new, old = generate_secret(), SECRET
    async with sender() as webhooks:
        await webhooks.send(message(receiver.url(), secrets=(new, old)))
    [request] = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        standardwebhooks.Webhook(secret).verify(request.body, request.headers)
        svix.webhooks.Webhook(secret).verify(request.body, request.headers)


async def test_a_retry_keeps_its_id_and_signs_a_fresh_timestamp(receiver: Receiver):
    clock = Clock()
    clock.now = datetime.now(UTC) - timedelta(seconds=90)
    async with WebhookSender(LOOPBACK, clock) as webhooks:
        await webhooks.send(message(receiver.url()))
        clock.now += timedelta(seconds=90)
        await webhooks.send(message(receiver.url()))
    first, retry = receiver.requests
    assert first.headers["webhook-id"] == retry.headers["webhook-id"] == "msg_1"
    assert int(retry.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"]) == 90
    assert first.headers["webhook-signature"] != retry.headers["webhook-signature"]
    standardwebhooks.Webhook(SECRET).verify(retry.body, retry.headers)


@pytest.mark.parametrize(
    ("reply", "outcome", "retry_after"),
    [
        (Reply(204, body=b""), Outcome.DELIVERED, None),
        (Reply(400), Outcome.FAILED, None),
        (Reply(500, {"retry-after": "30"}), Outcome.FAILED, "30"),
        (Reply(503), Outcome.FAILED, None),
        (Reply(410), Outcome.GONE, None),
        (Reply(429, {"retry-after": "120"}), Outcome.THROTTLED, "120"),
    ],
)
async def test_the_answer_is_classified_for_the_retry_policy(receiver: Receiver, reply, outcome, retry_after):
    receiver.respond = lambda request: reply
    async with sender() as webhooks:
        attempt = await webhooks.send(message(receiver.url()))
    assert (attempt.outcome, attempt.status_code, attempt.retry_after) == (outcome, reply.status, retry_after)


async def test_a_redirect_is_a_failure_and_is_not_followed(receiver: Receiver):
    receiver.respond = lambda request: (
        Reply(301, {"location": receiver.url("/elsewhere")}) if request.path == "/hook" else Reply()
    )
    async with sender() as webhooks:
        attempt = await webhooks.send(message(receiver.url()))
    assert (attempt.outcome, attempt.status_code) == (Outcome.FAILED, 301)
    assert [request.path for request in receiver.requests] == ["/hook"]


async def test_only_the_first_two_kilobytes_of_the_answer_are_kept(receiver: Receiver):
    receiver.respond = lambda request: Reply(500, body="é".encode() + b"x" * 200_000)
    async with sender() as webhooks:
        attempt = await webhooks.send(message(receiver.url()))
    assert attempt.outcome is Outcome.FAILED
    assert attempt.response_excerpt.startswith("éxxx")
    assert len(attempt.response_excerpt.encode()) == 2048


async def test_a_receiver_that_never_answers_times_out_as_throttled(receiver: Receiver):
    receiver.respond = lambda request: None
    async with sender(timeouts=WebhookTimeouts(connect=0.2, total=0.3)) as webhooks:
        attempt = await webhooks.send(message(receiver.url()))
    assert attempt.outcome is Outcome.THROTTLED
    assert attempt.error is not None and "timed out" in attempt.error
    assert attempt.status_code is None


async def test_a_closed_port_is_a_failure(receiver: Receiver):
    url = receiver.url()
    await receiver.stop()
    async with sender() as webhooks:
        attempt = await webhooks.send(message(url))
    assert attempt.outcome is Outcome.FAILED
    assert attempt.error is not None and attempt.error.startswith("ConnectError")


async def test_connections_are_reused_across_deliveries(receiver: Receiver):
    async with sender() as webhooks:
        for number in range(5):
            assert (
                await webhooks.send(message(receiver.url(), f"msg_{number}"))
            ).outcome is Outcome.DELIVERED
    assert receiver.connections == 1


async def test_a_host_name_is_sent_to_the_checked_address_and_keeps_its_host_header(receiver: Receiver):
    # hooks.example.com does not resolve here: the request can only arrive through our own lookup.
    resolver = resolving_to(["127.0.0.1"])
    async with sender(resolver=resolver) as webhooks:
        attempt = await webhooks.send(message(receiver.url(host="hooks.example.com")))
    assert attempt.outcome is Outcome.DELIVERED
    assert receiver.requests[0].headers["host"] == f"hooks.example.com:{receiver.port}"
    assert resolver.calls == ["hooks.example.com"]


async def test_a_host_that_turns_private_at_send_time_is_refused(receiver: Receiver):
    resolver = resolving_to(["127.0.0.1"], ["10.0.0.7"])
    url = receiver.url(host="hooks.example.com")
    await validate_url(url, LOOPBACK, resolver)  # accepted at registration
    async with sender(resolver=resolver) as webhooks:
        attempt = await webhooks.send(message(url))
    assert attempt.outcome is Outcome.FAILED
    assert attempt.error == "refused: hooks.example.com resolves to 10.0.0.7 (private)"
    assert receiver.requests == []


async def test_each_attempt_looks_the_host_up_once_and_connects_to_that_answer(receiver: Receiver):
    # A rebinding resolver: a second lookup inside the same attempt would get the metadata address.
    resolver = resolving_to(["127.0.0.1"], ["169.254.169.254"])
    async with sender(resolver=resolver) as webhooks:
        assert (
            await webhooks.send(message(receiver.url(host="hooks.example.com")))
        ).outcome is Outcome.DELIVERED
        refused = await webhooks.send(message(receiver.url(host="hooks.example.com")))
    assert resolver.calls == ["hooks.example.com", "hooks.example.com"]
    assert refused.error is not None and "cloud metadata" in refused.error
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    "address", ["10.0.0.1", "169.254.169.254", "[::ffff:127.0.0.1]", "[::1]", "100.64.0.1"]
)
async def test_refused_addresses_are_never_contacted(receiver: Receiver, address):
    async with sender(URLPolicy(allow_http=True)) as webhooks:
        attempt = await webhooks.send(message(f"http://{address}:{receiver.port}/hook"))
    assert attempt.outcome is Outcome.FAILED
    assert attempt.error is not None and attempt.error.startswith("refused:")
    assert receiver.connections == 0


async def test_plain_http_is_refused_without_the_operator_setting(receiver: Receiver):
    async with sender(URLPolicy(allowed_networks=LOOPBACK.allowed_networks)) as webhooks:
        attempt = await webhooks.send(message(receiver.url()))
    assert attempt.error == "refused: the URL must use https"
    assert receiver.connections == 0


async def test_https_to_the_checked_address_keeps_the_server_name_and_verifies_its_certificate():
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("hooks.example.com").configure_cert(server_context)
    server_names: list[str | None] = []
    server_context.sni_callback = lambda connection, name, context: server_names.append(name)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    receiver = Receiver(tls=server_context)
    await receiver.start()
    try:
        policy = URLPolicy.from_settings(allow_http=False, allowed_networks=["127.0.0.0/8"])
        async with WebhookSender(
            policy, Clock(), resolver=resolving_to(["127.0.0.1"]), ssl_context=client_context
        ) as webhooks:
            delivered = await webhooks.send(message(receiver.url(host="hooks.example.com")))
            wrong_name = await webhooks.send(message(receiver.url(host="other.example.com")))
    finally:
        await receiver.stop()
    assert delivered.outcome is Outcome.DELIVERED
    assert server_names[0] == "hooks.example.com"
    assert receiver.requests[0].headers["host"] == f"hooks.example.com:{receiver.port}"
    assert wrong_name.outcome is Outcome.FAILED
    assert wrong_name.error is not None and "CERTIFICATE_VERIFY_FAILED" in wrong_name.error
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    ("host", "message_id", "secrets", "error"),
    [
        ("127.0.0.1", "msg.1", (SECRET,), "cannot send: a webhook id is"),
        ("127.0.0.1", "msg_1", ("whsec_dG9vc2hvcnQ=",), "cannot send: a webhook secret holds"),
        ("127.0.0.1", "msg_1", (), "cannot send: at least one secret"),
        ("xn--a.example.com", "msg_1", (SECRET,), "cannot send: Codepoint U+0080"),  # not a valid IDN
    ],
)
async def test_a_message_that_cannot_be_signed_or_addressed_is_invalid_and_never_sent(
    receiver: Receiver, host, message_id, secrets, error
):
    url = receiver.url(host=host)
    async with sender(resolver=resolving_to(["127.0.0.1"])) as webhooks:
        attempt = await webhooks.send(message(url, message_id, secrets))
    assert attempt.outcome is Outcome.INVALID
    assert attempt.error is not None and attempt.error.startswith(error)
    assert receiver.connections == 0


async def test_an_ipv6_address_is_reached_when_allowed():
    receiver = Receiver(bind="::1")
    await receiver.start()
    try:
        policy = URLPolicy.from_settings(allow_http=True, allowed_networks=["::1/128"])
        async with sender(policy, resolver=resolving_to(["::1"])) as webhooks:
            literal = await webhooks.send(message(f"http://[::1]:{receiver.port}/hook"))
            named = await webhooks.send(message(f"http://hooks.example.com:{receiver.port}/hook"))
    finally:
        await receiver.stop()
    assert (literal.outcome, named.outcome) == (Outcome.DELIVERED, Outcome.DELIVERED)
    assert [request.headers["host"] for request in receiver.requests] == [
        f"[::1]:{receiver.port}",
        f"hooks.example.com:{receiver.port}",
    ]
