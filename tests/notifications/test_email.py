"""Email messages, and sending them to a real aiosmtpd server in the test's own loop."""

from __future__ import annotations

import asyncio
import dataclasses
import email.policy
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path

import pytest
import trustme

from notifications.attempts import Outcome
from notifications.email import (
    InvalidEmail,
    Mailbox,
    OutgoingEmail,
    SmtpSecurity,
    SmtpSender,
    SmtpSettings,
    build_message,
    message_id,
    new_message_id,
    one_line,
)
from notifications.render import make_environment, render_email
from tests.notifications.smtp_server import SmtpServer

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DOMAIN = "tracker.example"
ROOT = message_id("job-42", DOMAIN)
TEMPLATES = Path(__file__).parent / "templates"


EMAIL = OutgoingEmail(
    sender=Mailbox("notify@tracker.example", "Garage Dupont"),
    recipient=Mailbox("ana@customer.example", "Ana Lopes"),
    subject="Your Renault Clio: in paint",
    text="Now in paint.\n",
    html="<p>Now in paint.</p>\n",
    message_id=message_id("job-42.7", DOMAIN),
    thread_id=ROOT,
    unsubscribe_url="https://tracker.example/unsubscribe/tok_abc",
    unsubscribe_mailto="mailto:unsubscribe@tracker.example?subject=tok_abc",
)


def outgoing(**changes) -> OutgoingEmail:
    return dataclasses.replace(EMAIL, **changes)


def built(sent: OutgoingEmail) -> EmailMessage:
    """The message as a mail client reads the bytes `build_message` makes."""
    message = message_from_bytes(build_message(sent, NOW), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> dict[str, str]:
    """Each part's text, its lines ended as in Python (the wire's are CRLF)."""
    return {
        part.get_content_type(): part.get_content().replace("\r\n", "\n") for part in message.iter_parts()
    }


def test_a_message_is_multipart_text_then_html_with_its_own_id_in_its_thread():
    message = built(outgoing())
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert parts(message) == {"text/plain": "Now in paint.\n", "text/html": "<p>Now in paint.</p>\n"}
    assert message["Message-ID"] == "<job-42.7@tracker.example>"
    assert message["In-Reply-To"] == message["References"] == "<job-42@tracker.example>"
    assert message["From"] == "Garage Dupont <notify@tracker.example>"
    assert message["To"] == "Ana Lopes <ana@customer.example>"
    assert message["Date"] == "Mon, 02 Mar 2026 09:00:00 +0000"
    assert message["Auto-Submitted"] == "auto-generated"


def test_the_root_of_a_thread_answers_nothing():
    message = built(outgoing(message_id=ROOT))
    assert message["Message-ID"] == ROOT
    assert message["In-Reply-To"] is None and message["References"] is None
    unthreaded = built(outgoing(thread_id=None))
    assert unthreaded["In-Reply-To"] is None


def test_new_message_ids_are_unique_and_well_formed():
    ids = {new_message_id(DOMAIN) for _ in range(100)}
    assert len(ids) == 100
    assert all(value.startswith("<") and value.endswith("@tracker.example>") for value in ids)


def test_one_click_unsubscribe_follows_rfc_8058():
    message = built(outgoing())
    assert message["List-Unsubscribe"] == (
        "<https://tracker.example/unsubscribe/tok_abc>, <mailto:unsubscribe@tracker.example?subject=tok_abc>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https_only = built(outgoing(unsubscribe_mailto=None))
    assert https_only["List-Unsubscribe"] == "<https://tracker.example/unsubscribe/tok_abc>"
    mailto_only = built(outgoing(unsubscribe_url=None))
    assert mailto_only["List-Unsubscribe"] == "<mailto:unsubscribe@tracker.example?subject=tok_abc>"
    assert mailto_only["List-Unsubscribe-Post"] is None  # one-click needs the https URL
    neither = built(outgoing(unsubscribe_url=None, unsubscribe_mailto=None))
    assert neither["List-Unsubscribe"] is None


@pytest.mark.parametrize(
    ("changes", "header", "expected"),
    [
        ({"subject": "Clio\r\nBcc: thief@evil.example"}, "Subject", "Clio Bcc: thief@evil.example"),
        ({"subject": "Clio\nX-Injected: 1"}, "Subject", "Clio X-Injected: 1"),
        ({"subject": "Clio\x00\x1b\u2028done  \t"}, "Subject", "Clio done"),
        (
            {"recipient": Mailbox("ana@customer.example", "Ana\r\nBcc: thief@evil.example")},
            "To",
            '"Ana Bcc: thief@evil.example" <ana@customer.example>',
        ),
        (
            {"sender": Mailbox("notify@tracker.example", "Garage\nDupont")},
            "From",
            "Garage Dupont <notify@tracker.example>",
        ),
        (
            {"recipient": Mailbox("ana@customer.example", 'Zoë, "la" <chef>')},
            "To",
            '"Zoë, \\"la\\" <chef>" <ana@customer.example>',
        ),
    ],
)
def test_names_and_subjects_are_folded_onto_one_line(changes, header, expected):
    message = built(outgoing(**changes))
    assert message[header] == expected
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert "\r\nBcc" not in message.as_string() and "\nBcc" not in message.as_string()


def test_the_message_is_7_bit_with_short_header_lines_and_non_ascii_words_encoded():
    name = " ".join(["Zoë Ñúñez-Lopès"] * 6)
    subject = "Votre Renault Clio : prête — " + "très " * 30 + "bientôt"
    raw = build_message(outgoing(recipient=Mailbox("ana@customer.example", name), subject=subject), NOW)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert raw.isascii()
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert b"=?utf-8?b?" in head
    # Read as RFC 2047 says (Python's address parser keeps the space between two encoded-words).
    headers = message_from_bytes(raw)
    assert str(make_header(decode_header(headers["Subject"]))) == one_line(subject)
    assert str(make_header(decode_header(headers["To"]))) == f"{name} <ana@customer.example>"


def test_an_ascii_word_a_reader_would_decode_is_encoded_itself():
    word = "=?utf-8?b?SGk=?="  # "Hi", were it decoded
    message = built(outgoing(subject=f"{word} there", recipient=Mailbox("a@b.example", word)))
    assert message["Subject"] == f"{word} there"
    assert message["To"].addresses[0].display_name == word


def test_unsubscribe_links_stay_plain_urls_on_the_wire():
    url = "https://tracker.example/unsubscribe/" + "t" * 180
    raw = build_message(outgoing(unsubscribe_url=url), NOW)
    assert f"List-Unsubscribe: <{url}>,\r\n <mailto:".encode() in raw


def test_a_header_too_long_for_one_line_is_refused():
    with pytest.raises(InvalidEmail) as refused:
        build_message(outgoing(unsubscribe_url="https://tracker.example/u/" + "t" * 1000), NOW)
    assert refused.value.field == "unsubscribe_url"


@pytest.mark.parametrize(
    "text",
    [
        "Now in paint.\n",
        "Zoë's Clio: prête à 100 %\n",
        ".\n..leading dots\nFrom the workshop\n",
        "x" * 2000 + "\nend",
        "old\r\nmac\rmixed\nends  \n\ttabbed\n",
        "bell\x07 and = and =?utf-8?b?SGk=?=\n",
        "--=_ not a boundary\n",
    ],
)
def test_every_body_arrives_as_written_in_short_7_bit_lines(text):
    raw = build_message(outgoing(text=text, html=f"<pre>{text}</pre>"), NOW)
    assert raw.isascii()
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\r" not in raw.replace(b"\r\n", b"")
    message = built(outgoing(text=text, html=f"<pre>{text}</pre>"))
    written = text.replace("\r\n", "\n").replace("\r", "\n")
    assert parts(message) == {"text/plain": written, "text/html": f"<pre>{written}</pre>"}


@pytest.mark.parametrize(
    "address",
    [
        "ana@customer.example\r\nBcc: thief@evil.example",
        "ana@customer.example\n",
        "ana@customer.example>, <thief@evil.example",
        "ana@customer.example,thief@evil.example",
        "Ana <ana@customer.example>",
        "ana",
        "ana@",
        "@customer.example",
        "ana@customer",
        "ana..lopes@customer.example",
        "ana@-customer.example",
        "ana lopes@customer.example",
        "anä@customer.example",
        "a" * 250 + "@customer.example",
        "",
    ],
)
def test_invalid_addresses_are_refused(address):
    with pytest.raises(InvalidEmail, match="recipient: not a valid email address") as refused:
        built(outgoing(recipient=Mailbox(address)))
    assert refused.value.field == "recipient"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sender": Mailbox("notify@tracker.example\r\n")}, "sender"),
        ({"subject": " \r\n "}, "subject"),
        ({"message_id": "<x@tracker.example>\r\nBcc: a@b.example"}, "message_id"),
        ({"message_id": "job-42@tracker.example"}, "message_id"),
        ({"thread_id": "<job 42@tracker.example>"}, "thread_id"),
        ({"unsubscribe_url": "http://tracker.example/unsubscribe/tok"}, "unsubscribe_url"),
        ({"unsubscribe_url": "https://tracker.example/u/tok>, <https://evil.example"}, "unsubscribe_url"),
        ({"unsubscribe_url": "https://tracker.example/u/tok\r\nBcc: a@b.example"}, "unsubscribe_url"),
        ({"unsubscribe_mailto": "mailto:a@b.example>\r\nX: y"}, "unsubscribe_mailto"),
        ({"unsubscribe_mailto": "https://tracker.example/u"}, "unsubscribe_mailto"),
    ],
)
def test_doubtful_headers_are_refused(changes, field):
    with pytest.raises(InvalidEmail) as refused:
        built(outgoing(**changes))
    assert refused.value.field == field


@pytest.mark.parametrize("local", ["job 42", "job<42", "", "a@b"])
def test_message_ids_are_validated(local):
    with pytest.raises(InvalidEmail, match="message_id"):
        message_id(local, DOMAIN)


def plain(server: SmtpServer, **options) -> SmtpSender:
    settings = SmtpSettings(
        "127.0.0.1", server.port, SmtpSecurity.NONE, timeout=5.0, local_hostname="tracker.example"
    )
    return SmtpSender(settings, lambda: NOW, **options)


async def test_a_rendered_email_arrives_with_its_headers_and_both_parts(smtp_server: SmtpServer):
    rendered = render_email(
        make_environment(TEMPLATES),
        "stage_changed",
        {
            "contact": {"name": "Zoë"},
            "job": {"title": "Your Renault Clio", "stage": "Paint"},
            "note": "<script>alert(1)</script> & done",
            "status_url": "https://tracker.example/s/tok",
        },
    )
    email = outgoing(subject=rendered.subject, text=rendered.text, html=rendered.html)
    async with plain(smtp_server) as sender:
        attempt = await sender.send(email)
    assert (attempt.outcome, attempt.status_code, attempt.error) == (Outcome.DELIVERED, 250, None)
    assert "accepted" in attempt.response_excerpt
    [received] = smtp_server.inbox.messages
    assert smtp_server.inbox.envelopes == [("notify@tracker.example", ["ana@customer.example"])]
    assert smtp_server.inbox.ehlo_names == ["tracker.example"]
    assert received["Subject"] == "Your Renault Clio: Paint"
    assert received["Message-ID"] == "<job-42.7@tracker.example>"
    assert received["In-Reply-To"] == received["References"] == ROOT
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received["List-Unsubscribe"].startswith("<https://tracker.example/unsubscribe/tok_abc>")
    body = parts(received)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; done" in body["text/html"]
    assert "<script>" not in body["text/html"]
    assert "Note from the workshop: <script>alert(1)</script> & done" in body["text/plain"]
    assert "Hello Zoë," in body["text/plain"]


async def test_a_long_unsubscribe_url_arrives_whole(smtp_server: SmtpServer):
    url = "https://tracker.example/unsubscribe/" + "t" * 180
    async with plain(smtp_server) as sender:
        await sender.send(outgoing(unsubscribe_url=url, unsubscribe_mailto=None))
    [received] = smtp_server.inbox.messages
    assert received["List-Unsubscribe"] == f"<{url}>"


async def test_an_injection_attempt_reaches_only_the_recipient(smtp_server: SmtpServer):
    email = outgoing(
        subject="Clio\r\nBcc: thief@evil.example",
        recipient=Mailbox("ana@customer.example", "Ana\r\nCc: thief@evil.example"),
    )
    async with plain(smtp_server) as sender:
        assert (await sender.send(email)).outcome is Outcome.DELIVERED
    [received] = smtp_server.inbox.messages
    assert smtp_server.inbox.envelopes[0][1] == ["ana@customer.example"]
    assert received["Bcc"] is None and received["Cc"] is None
    assert received["Subject"] == "Clio Bcc: thief@evil.example"


async def test_an_invalid_message_is_never_sent(smtp_server: SmtpServer):
    async with plain(smtp_server) as sender:
        attempt = await sender.send(
            outgoing(recipient=Mailbox("ana@customer.example\r\nRCPT TO:<x@y.example>"))
        )
    assert attempt.outcome is Outcome.INVALID
    assert attempt.error == "recipient: not a valid email address"
    assert smtp_server.inbox.messages == []


@pytest.mark.parametrize(
    ("rcpt_reply", "data_reply", "outcome", "code"),
    [
        ("550 5.1.1 No such user", None, Outcome.BOUNCED, 550),
        ("553 5.1.3 Bad address", None, Outcome.BOUNCED, 553),
        ("451 4.3.0 Try again later", None, Outcome.FAILED, 451),
        ("452 4.2.2 Mailbox full", None, Outcome.FAILED, 452),
        (None, "554 5.7.1 Message refused", Outcome.BOUNCED, 554),
        (None, "451 4.3.0 Local problem", Outcome.FAILED, 451),
    ],
)
async def test_smtp_replies_are_classified(smtp_server: SmtpServer, rcpt_reply, data_reply, outcome, code):
    if rcpt_reply is not None:
        smtp_server.inbox.refuse_rcpt["ana@customer.example"] = rcpt_reply
    smtp_server.inbox.data_reply = data_reply
    async with plain(smtp_server) as sender:
        attempt = await sender.send(outgoing())
    assert (attempt.outcome, attempt.status_code) == (outcome, code)
    assert attempt.error is not None and str(code) in attempt.error
    assert smtp_server.inbox.messages == []


async def test_a_refused_connection_is_retried(smtp_server: SmtpServer):
    sender = plain(smtp_server)
    await smtp_server.stop()
    attempt = await sender.send(outgoing())
    await smtp_server.start()
    assert attempt.outcome is Outcome.FAILED
    assert attempt.error is not None and attempt.error.startswith("SMTPConnectError")


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and never greets."""
    closing = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await closing.wait()
        writer.close()

    server = await asyncio.start_server(hold, host="127.0.0.1", port=0)
    yield server.sockets[0].getsockname()[1]
    closing.set()
    server.close()
    await server.wait_closed()


async def test_a_server_that_never_answers_times_out_as_throttled(silent_server: int):
    settings = SmtpSettings("127.0.0.1", silent_server, SmtpSecurity.NONE, timeout=0.2)
    attempt = await SmtpSender(settings, lambda: NOW).send(outgoing())
    assert attempt.outcome is Outcome.THROTTLED
    assert attempt.error is not None and "Timeout" in attempt.error


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def tls_contexts(authority: trustme.CA) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("smtp.test", "127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    authority.configure_trust(client)
    return server, client


async def test_starttls_upgrades_before_sending(authority: trustme.CA):
    server_context, client_context = tls_contexts(authority)
    server = SmtpServer(tls_context=server_context, require_starttls=True)
    await server.start()
    try:
        settings = SmtpSettings(
            "127.0.0.1", server.port, SmtpSecurity.STARTTLS, timeout=5.0, tls_context=client_context
        )
        async with SmtpSender(settings, lambda: NOW) as sender:
            attempt = await sender.send(outgoing())
    finally:
        await server.stop()
    assert attempt.outcome is Outcome.DELIVERED
    assert server.inbox.over_tls == [True]


async def test_starttls_is_never_skipped_when_the_server_does_not_offer_it(smtp_server: SmtpServer):
    client = ssl.create_default_context()
    settings = SmtpSettings(
        "127.0.0.1", smtp_server.port, SmtpSecurity.STARTTLS, timeout=5.0, tls_context=client
    )
    attempt = await SmtpSender(settings, lambda: NOW).send(outgoing())
    assert attempt.outcome is Outcome.FAILED
    assert attempt.error is not None and "STARTTLS" in attempt.error
    assert smtp_server.inbox.messages == []


async def test_without_security_the_mail_goes_in_plain_text(smtp_server: SmtpServer):
    async with plain(smtp_server) as sender:
        assert (await sender.send(outgoing())).outcome is Outcome.DELIVERED
    assert smtp_server.inbox.over_tls == [False]


async def test_implicit_tls_connects_encrypted_from_the_start(authority: trustme.CA):
    server_context, client_context = tls_contexts(authority)
    server = SmtpServer(implicit_tls=server_context)
    await server.start()
    try:
        settings = SmtpSettings(
            "127.0.0.1", server.port, SmtpSecurity.TLS, timeout=5.0, tls_context=client_context
        )
        async with SmtpSender(settings, lambda: NOW) as sender:
            attempt = await sender.send(outgoing())
    finally:
        await server.stop()
    assert attempt.outcome is Outcome.DELIVERED
    assert len(server.inbox.messages) == 1


async def test_a_connection_carries_message_after_message(smtp_server: SmtpServer):
    async with plain(smtp_server) as sender:
        for number in range(3):
            assert (
                await sender.send(outgoing(message_id=message_id(f"m{number}", DOMAIN)))
            ).outcome is Outcome.DELIVERED
    assert len(smtp_server.inbox.messages) == 3
    assert smtp_server.connections == 1
    assert smtp_server.inbox.quits == 1  # closed politely


async def test_a_connection_is_not_reused_after_a_refusal(smtp_server: SmtpServer):
    smtp_server.inbox.refuse_rcpt["gone@customer.example"] = "550 5.1.1 No such user"
    async with plain(smtp_server) as sender:
        refused = await sender.send(outgoing(recipient=Mailbox("gone@customer.example")))
        delivered = await sender.send(outgoing())
    assert (refused.outcome, delivered.outcome) == (Outcome.BOUNCED, Outcome.DELIVERED)
    assert smtp_server.connections == 2


async def test_a_connection_idle_too_long_is_not_reused(smtp_server: SmtpServer):
    async with plain(smtp_server, idle_timeout=0.0) as sender:
        await sender.send(outgoing())
        await sender.send(outgoing())
    assert smtp_server.connections == 2
    assert len(smtp_server.inbox.messages) == 2


async def test_a_message_on_a_connection_the_server_dropped_goes_again_on_a_new_one():
    server = SmtpServer(idle_timeout=0.1)
    await server.start()
    try:
        async with plain(server) as sender:
            assert (await sender.send(outgoing())).outcome is Outcome.DELIVERED
            await asyncio.sleep(0.3)  # the server hangs up on its idle client
            again = await sender.send(outgoing(message_id=message_id("again", DOMAIN)))
    finally:
        await server.stop()
    assert again.outcome is Outcome.DELIVERED
    assert [message["Message-ID"] for message in server.inbox.messages] == [
        "<job-42.7@tracker.example>",
        "<again@tracker.example>",
    ]
    assert server.connections == 2


async def test_a_hang_up_on_a_reused_connection_sends_the_message_again_on_a_new_one(smtp_server: SmtpServer):
    async with plain(smtp_server) as sender:
        await sender.send(outgoing())
        smtp_server.inbox.hang_up_at_mail = 1
        again = await sender.send(outgoing(message_id=message_id("again", DOMAIN)))
    assert again.outcome is Outcome.DELIVERED
    assert smtp_server.connections == 2
    assert [message["Message-ID"] for message in smtp_server.inbox.messages] == [
        "<job-42.7@tracker.example>",
        "<again@tracker.example>",
    ]


async def test_a_hang_up_on_a_new_connection_is_a_failed_attempt(smtp_server: SmtpServer):
    smtp_server.inbox.hang_up_at_mail = 1
    async with plain(smtp_server) as sender:
        attempt = await sender.send(outgoing())
    assert attempt.outcome is Outcome.FAILED  # with the 421, or only the closed connection
    assert smtp_server.connections == 1
    assert smtp_server.inbox.messages == []


async def test_a_burst_of_sends_shares_a_bounded_pool_of_connections(smtp_server: SmtpServer):
    async with plain(smtp_server, max_connections=2) as sender:
        attempts = await asyncio.gather(
            *(sender.send(outgoing(message_id=message_id(f"burst{n}", DOMAIN))) for n in range(12))
        )
    assert {attempt.outcome for attempt in attempts} == {Outcome.DELIVERED}
    assert len(smtp_server.inbox.messages) == 12
    assert smtp_server.connections == 2  # the other ten waited for one of the two, none opened a third
    assert smtp_server.inbox.quits == 2
