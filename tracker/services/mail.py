"""The email sender this process uses, built from settings: an SMTP server, or the dev mailbox.

With no `TRACKER_SMTP_HOST` (as in `make run`), every email is kept in the database instead, whole, as it
would have gone out, and shown at `/dev/mailbox`: a newcomer sees what customers would get, and nothing
leaves the machine.
"""

from __future__ import annotations

import email
import email.policy
import re
import time
from dataclasses import dataclass
from email.message import EmailMessage

from notifications import (
    Attempt,
    EmailSending,
    InvalidEmail,
    Outcome,
    OutgoingEmail,
    SmtpSecurity,
    SmtpSender,
    SmtpSettings,
    build_message,
)
from notifications.email import one_line
from tracker.clock import Clock, utc_now
from tracker.db.models import DevMail
from tracker.domain.errors import NotFound
from tracker.settings import Settings

_DELIVERY_MESSAGE_ID = re.compile(r"<delivery-(\d+)@")


class DevMailbox:
    """Keeps each email as a `DevMail` row rather than sending it (the mailbox of development)."""

    def __init__(self, clock: Clock = utc_now) -> None:
        self._clock = clock

    async def send(self, message: OutgoingEmail) -> Attempt:
        started = time.perf_counter()
        now = self._clock()
        try:
            built = build_message(message, now)
        except InvalidEmail as invalid:
            return Attempt(Outcome.INVALID, 0.0, error=str(invalid))
        text = built.decode("ascii").replace("\r\n", "\n")
        delivery = _DELIVERY_MESSAGE_ID.match(message.message_id)
        await DevMail.create(
            delivery_id=int(delivery.group(1)) if delivery else None,
            recipient=message.recipient.address,
            subject=one_line(message.subject)[:500],
            message=text,
            created_at=now,
        )
        latency = round((time.perf_counter() - started) * 1000, 3)
        return Attempt(Outcome.DELIVERED, latency, 250, response_excerpt="kept in the dev mailbox")

    async def aclose(self) -> None:
        """Nothing to close (the same shape as `SmtpSender`)."""


def uses_dev_mailbox(settings: Settings) -> bool:
    return not settings.smtp_host


def email_sender(settings: Settings, clock: Clock = utc_now) -> EmailSending:
    """An SMTP sender for `settings.smtp_*`, or the dev mailbox without an SMTP host (the caller closes
    it through `aclose`)."""
    if uses_dev_mailbox(settings):
        return DevMailbox(clock)
    smtp = SmtpSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=SmtpSecurity(settings.smtp_security),
        username=settings.smtp_username or None,
        password=settings.smtp_password or None,
        timeout=float(settings.smtp_timeout_s),
    )
    return SmtpSender(smtp, clock, max_connections=settings.smtp_connections)


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def dev_mailbox_is_open(settings: Settings) -> bool:
    """Dev mode, where `/dev/mailbox` needs no key: no SMTP server, the default SQLite file (`make run`),
    and listening on loopback only. Anywhere else the mailbox needs an admin key."""
    return (
        uses_dev_mailbox(settings)
        and settings.database_url == Settings.database_url
        and settings.host in LOOPBACK_HOSTS
    )


@dataclass(frozen=True)
class KeptMail:
    """A dev mailbox email as its page shows it."""

    subject: str
    headers: list[tuple[str, str]]
    html: str
    text: str


SHOWN_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)


async def recent_dev_mails(limit: int = 200) -> list[DevMail]:
    """The newest kept emails first."""
    return await DevMail.all().order_by("-id").limit(limit)


async def kept_mail(mail_id: int) -> KeptMail:
    mail = await DevMail.get_or_none(id=mail_id)
    if mail is None:
        raise NotFound("mail", mail_id)
    message = email.message_from_string(mail.message, policy=email.policy.default)
    assert isinstance(message, EmailMessage)

    def part(kind: str) -> str:
        found = message.get_body((kind,))
        return "" if found is None else str(found.get_content())

    return KeptMail(
        subject=mail.subject,
        headers=[(name, str(message[name])) for name in SHOWN_HEADERS if message[name] is not None],
        html=part("html"),
        text=part("plain"),
    )
