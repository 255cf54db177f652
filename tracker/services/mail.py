"""The email sender this process uses, built from settings."""

from __future__ import annotations

from notifications import EmailSending, SmtpSecurity, SmtpSender, SmtpSettings
from tracker.clock import utc_now
from tracker.settings import Settings


def email_sender(settings: Settings) -> EmailSending:
    """An SMTP sender for `settings.smtp_*` (the caller closes it through `aclose` when it has one)."""
    smtp = SmtpSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=SmtpSecurity(settings.smtp_security),
        username=settings.smtp_username or None,
        password=settings.smtp_password or None,
        timeout=float(settings.smtp_timeout_s),
    )
    return SmtpSender(smtp, utc_now)
