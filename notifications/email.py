"""Building and sending one notification email.

A message is multipart text + HTML with its own `Message-ID`; all messages of one thread (one job) answer a
per-thread root id through `In-Reply-To`/`References`, so mail clients group them. One-click unsubscribe
follows RFC 8058. Nothing a customer typed can add a header: names and subjects are folded onto one line,
addresses and ids are validated, and anything else is refused before a byte is sent.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import re
import secrets
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from enum import StrEnum

import aiosmtplib

from notifications.attempts import Attempt, Outcome

_LOCAL_PART = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z0-9-]{0,61}[A-Za-z0-9]"
_ADDRESS = re.compile(rf"{_LOCAL_PART}@{_DOMAIN}")
_MESSAGE_ID = re.compile(rf"<{_LOCAL_PART}@{_DOMAIN}>")
_HTTPS_URL = re.compile(r"https://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_MAILTO = re.compile(rf"mailto:{_LOCAL_PART}@{_DOMAIN}(?:\?[A-Za-z0-9\-._~=&%+]*)?")
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029\s]+")
_MAX_ADDRESS = 254


class InvalidEmail(ValueError):
    """The message cannot be sent as it is; `field` names what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def one_line(text: str) -> str:
    """`text` with every line break, control character and run of spaces folded into one space."""
    return _LINE_BREAKING.sub(" ", text).strip()


def validate_address(address: str, field: str = "address") -> str:
    if len(address) > _MAX_ADDRESS or not _ADDRESS.fullmatch(address):
        raise InvalidEmail(field, "not a valid email address")
    return address


def new_message_id(domain: str) -> str:
    """A fresh, unguessable `Message-ID` under `domain`."""
    return message_id(uuid.uuid4().hex, domain)


def message_id(local: str, domain: str) -> str:
    """A stable `Message-ID` such as the root of a job's thread: `message_id("job-42", "tracker.example")`."""
    value = f"<{local}@{domain}>"
    if not _MESSAGE_ID.fullmatch(value):
        raise InvalidEmail("message_id", f"{value!r} is not a valid message id")
    return value


@dataclass(frozen=True, slots=True)
class Mailbox:
    address: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """One email to one recipient; the same `message_id` on every attempt, so duplicates can be dropped."""

    sender: Mailbox
    recipient: Mailbox
    subject: str
    text: str
    html: str
    message_id: str
    thread_id: str | None = None
    """The thread's root `Message-ID`; every message but the root itself answers it."""
    unsubscribe_url: str | None = None
    """An https URL taking the RFC 8058 one-click POST; its token is the only credential."""
    unsubscribe_mailto: str | None = None


_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LINE = 78
"""Header lines are folded to this length where they can be (RFC 5322 recommends it)."""
_MAX_LINE = 998
"""No line of a message may be longer (RFC 5322); a header that cannot fold under it is refused."""
_WORD_BYTES = 42
"""UTF-8 bytes per encoded-word: base64 makes 56 characters of them, 68 with `=?utf-8?b?...?=`, so one
fits on a line after "Subject: "."""
_NOT_7BIT = re.compile(r"[^\t\n\x20-\x7e]")


def _encoded_words(text: str) -> list[str]:
    """`text` as RFC 2047 encoded-words (base64 of UTF-8), each under 76 characters, none splitting a
    character."""
    data = text.encode()
    words = []
    start = 0
    while start < len(data):
        end = min(start + _WORD_BYTES, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # a continuation byte: not a character start
            end -= 1
        words.append(f"=?utf-8?b?{base64.b64encode(data[start:end]).decode('ascii')}?=")
        start = end
    return words


def _plain_words(text: str) -> list[str] | None:
    """The words of `text` if it can go in a header as it is: ASCII, short words, nothing a reader
    would take for an encoded-word."""
    words = text.split(" ")
    if not text.isascii() or "=?" in text or any(len(word) > _LINE - 10 for word in words):
        return None
    return words


def _phrase(name: str) -> list[str]:
    """A display name as header words: atoms as they are, other ASCII quoted, anything else encoded."""
    words = _plain_words(name) if _ATOMS.fullmatch(name) else None
    if words is None:
        words = _plain_words('"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return words if words is not None else _encoded_words(name)


def _address(mailbox: Mailbox, field: str) -> list[str]:
    address = validate_address(mailbox.address, field)
    name = one_line(mailbox.name)
    return [*_phrase(name), f"<{address}>"] if name else [address]


def _header(name: str, words: list[str], field: str) -> str:
    """`name: words`, folded between words so that lines keep under 78 characters where they can."""
    lines = []
    line = f"{name}:"
    for word in words:
        if len(line) + 1 + len(word) > _LINE and line != f"{name}:":
            lines.append(line)
            line = " " + word
        else:
            line += " " + word
    lines.append(line)
    if any(len(line) > _MAX_LINE for line in lines):
        raise InvalidEmail(field, "too long for a header line")
    return "\r\n".join(lines) + "\r\n"


def _list_unsubscribe(email: OutgoingEmail) -> list[str]:
    links = []
    if email.unsubscribe_url is not None:
        if not _HTTPS_URL.fullmatch(email.unsubscribe_url):
            raise InvalidEmail("unsubscribe_url", "one-click unsubscribe needs a plain https URL")
        links.append(f"<{email.unsubscribe_url}>")
    if email.unsubscribe_mailto is not None:
        if not _MAILTO.fullmatch(email.unsubscribe_mailto):
            raise InvalidEmail("unsubscribe_mailto", "not a plain mailto: URL")
        links.append(f"<{email.unsubscribe_mailto}>")
    return [f"{link}," for link in links[:-1]] + links[-1:]


@functools.lru_cache(maxsize=4)
def _date(second: datetime) -> str:
    """The Date header; a fan-out sends many messages in the same second."""
    return f"Date: {format_datetime(second)}\r\n"


def _part(subtype: str, text: str) -> str:
    """One text part in UTF-8: as it is when it is short-lined printable ASCII, else quoted-printable
    (so the message is 7-bit throughout and needs no 8BITMIME of any server)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isascii() or _NOT_7BIT.search(text) or max(map(len, text.split("\n"))) > _MAX_LINE:
        encoding = "quoted-printable"
        text = binascii.b2a_qp(text.encode(), istext=True).decode("ascii")
    else:
        encoding = "7bit"
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n" + text.replace("\n", "\r\n") + "\r\n"
    )


def build_message(email: OutgoingEmail, now: datetime) -> bytes:
    """The message for `email`, dated `now`, as the bytes that go after SMTP's DATA: 7-bit, CRLF lines,
    non-ASCII names and subjects as RFC 2047 encoded-words. Raises InvalidEmail rather than emit a
    doubtful header.

    Written directly rather than through `email.message.EmailMessage`, whose header parsing and
    refolding cost more than the rest of sending an email does.
    """
    subject = one_line(email.subject)
    if not subject:
        raise InvalidEmail("subject", "must not be empty")
    for name, value in (("message_id", email.message_id), ("thread_id", email.thread_id)):
        if value is not None and not _MESSAGE_ID.fullmatch(value):
            raise InvalidEmail(name, "not a valid message id")
    headers = [
        _header("From", _address(email.sender, "sender"), "sender"),
        _header("To", _address(email.recipient, "recipient"), "recipient"),
        _header("Subject", _plain_words(subject) or _encoded_words(subject), "subject"),
        _date(now.replace(microsecond=0)),
        _header("Message-ID", [email.message_id], "message_id"),
    ]
    if email.thread_id is not None and email.thread_id != email.message_id:
        headers.append(_header("In-Reply-To", [email.thread_id], "thread_id"))
        headers.append(_header("References", [email.thread_id], "thread_id"))
    links = _list_unsubscribe(email)
    if links:
        headers.append(_header("List-Unsubscribe", links, "unsubscribe_url"))
    if email.unsubscribe_url is not None:
        headers.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    headers.append("Auto-Submitted: auto-generated\r\n")  # RFC 3834: no out-of-office replies to us
    text, html = _part("plain", email.text), _part("html", email.html)
    boundary = f"=_{secrets.token_hex(16)}"  # "=_" is never in quoted-printable; 7-bit parts are checked
    while boundary in text or boundary in html:
        boundary = f"=_{secrets.token_hex(16)}"
    return (
        "".join(headers)
        + "MIME-Version: 1.0\r\n"
        + f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'
        + f"--{boundary}\r\n{text}--{boundary}\r\n{html}--{boundary}--\r\n"
    ).encode("ascii")


class SmtpSecurity(StrEnum):
    STARTTLS = "starttls"
    TLS = "tls"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    security: SmtpSecurity
    """Explicit, never opportunistic: with `starttls` a server that does not offer it gets no mail."""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    tls_context: ssl.SSLContext | None = None
    local_hostname: str | None = None
    """The name we give in EHLO; without it every connection first looks up this host's FQDN."""


_RECIPIENT_REPLIES = (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError)


def _reply_outcome(code: int) -> Outcome:
    return Outcome.BOUNCED if 500 <= code < 600 else Outcome.FAILED


class SmtpSender:
    """Sends email as the settings say over a pool of at most `max_connections` connections.

    Sends beyond that wait for a connection rather than open one more, so a burst reuses a few
    connections instead of opening (and greeting) one per message. A connection goes back to the idle
    pool only after a message it carried was accepted, and is not reused once it has been idle for
    `idle_timeout` seconds (servers drop idle clients after a while). If a reused connection turns out to
    have been dropped, the message goes once more on a new one. Use as an async context manager, or call
    `aclose`.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        clock: Callable[[], datetime],
        *,
        max_connections: int = 8,
        idle_timeout: float = 30.0,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._connections: asyncio.Queue[None] = asyncio.Queue()
        """One item per connection that may be open; a send takes one. (A semaphore would do, but its
        every acquire looks through all the sends waiting for it: a dispatcher keeps a hundred waiting.)"""
        for _ in range(max_connections):
            self._connections.put_nowait(None)
        self._idle_timeout = idle_timeout
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []

    async def __aenter__(self) -> SmtpSender:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for client, _ in idle:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
            client.close()

    async def _connect(self) -> aiosmtplib.SMTP:
        settings = self._settings
        client = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            use_tls=settings.security is SmtpSecurity.TLS,
            start_tls=settings.security is SmtpSecurity.STARTTLS,
            tls_context=settings.tls_context,
            timeout=settings.timeout,
            local_hostname=settings.local_hostname,
        )
        await client.connect()
        return client

    def _take_idle(self) -> aiosmtplib.SMTP | None:
        now = asyncio.get_running_loop().time()
        while self._idle:
            client, since = self._idle.pop()
            if client.is_connected and now - since < self._idle_timeout:
                return client
            client.close()
        return None

    async def _transmit(self, message: bytes, email: OutgoingEmail) -> str:
        """Send over a pooled connection, waiting for one while all are busy; the DATA reply."""
        await self._connections.get()
        try:
            return await self._transmit_pooled(message, email)
        finally:
            self._connections.put_nowait(None)

    async def _transmit_pooled(self, message: bytes, email: OutgoingEmail) -> str:
        """Send over an idle connection or a new one; the DATA reply when accepted, else raises."""
        reused = self._take_idle()
        client = reused or await self._connect()
        try:
            try:
                _, reply = await client.sendmail(email.sender.address, [email.recipient.address], message)
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPResponseException) as failure:
                closing = isinstance(failure, aiosmtplib.SMTPServerDisconnected) or failure.code == 421
                if reused is None or not closing:
                    raise
                # The server hung up on the idle connection (421, or just closed it): nothing was
                # accepted on it, so the message goes once more on a new connection.
                client.close()
                client = await self._connect()
                _, reply = await client.sendmail(email.sender.address, [email.recipient.address], message)
        except BaseException:
            client.close()
            raise
        self._idle.append((client, asyncio.get_running_loop().time()))
        return reply

    async def send(self, email: OutgoingEmail) -> Attempt:
        """One attempt; every failure is classified into the returned `Attempt`, none is raised."""
        started = time.perf_counter()

        def elapsed_ms() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        try:
            reply = await self._transmit(build_message(email, self._clock()), email)
        except InvalidEmail as invalid:
            return Attempt(Outcome.INVALID, elapsed_ms(), error=str(invalid))
        except aiosmtplib.SMTPRecipientsRefused as refused:
            first = refused.recipients[0]
            error = f"recipient refused: {first.code} {first.message}"
            return Attempt(_reply_outcome(first.code), elapsed_ms(), first.code, error, first.message)
        except _RECIPIENT_REPLIES as rejected:
            error = f"{type(rejected).__name__}: {rejected.code} {rejected.message}"
            return Attempt(
                _reply_outcome(rejected.code), elapsed_ms(), rejected.code, error, rejected.message
            )
        except aiosmtplib.SMTPTimeoutError as timeout:
            return Attempt(Outcome.THROTTLED, elapsed_ms(), error=f"{type(timeout).__name__}: {timeout}")
        except aiosmtplib.SMTPResponseException as failure:
            # Refused at connection, HELO, AUTH or MAIL FROM: our side or the server's, not the address.
            error = f"{type(failure).__name__}: {failure.code} {failure.message}"
            return Attempt(Outcome.FAILED, elapsed_ms(), failure.code, error, failure.message)
        except (aiosmtplib.SMTPException, OSError) as failure:
            return Attempt(Outcome.FAILED, elapsed_ms(), error=f"{type(failure).__name__}: {failure}")
        # aiosmtplib returns only when DATA was accepted, which is a 250.
        return Attempt(Outcome.DELIVERED, elapsed_ms(), 250, response_excerpt=reply)
