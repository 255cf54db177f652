"""Delivery engine for tracker's notifications: outbox dispatching, email and signed webhooks.

It takes "event type + payload + recipients" and renders, signs, sends, retries and records. It knows
nothing about jobs and never imports `tracker`: tracker implements `DeliveryStore` over its outbox table,
builds `Delivery` values (a `WebhookMessage` or an `OutgoingEmail` each) and runs a `Dispatcher`.
"""

from __future__ import annotations

from notifications.attempts import Attempt, Outcome
from notifications.dispatcher import (
    Delivery,
    DeliveryStore,
    Dispatcher,
    DispatcherSettings,
    EmailSending,
    WebhookSending,
)
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
    validate_address,
)
from notifications.ratelimit import Rate, Reservation, TokenBucket
from notifications.render import MailMerge, RenderedEmail, make_environment, merge_email, render_email
from notifications.retry import (
    Decision,
    TargetAction,
    TargetHealth,
    TargetVerdict,
    Verdict,
    decide,
    judge_target,
)
from notifications.signing import generate_secret, secret_key, signature_headers
from notifications.ssrf import UnsafeURL, URLPolicy, validate_url
from notifications.webhook import WebhookMessage, WebhookSender, WebhookTimeouts, encode_payload

__all__ = [
    "Attempt",
    "Decision",
    "Delivery",
    "DeliveryStore",
    "Dispatcher",
    "DispatcherSettings",
    "EmailSending",
    "InvalidEmail",
    "MailMerge",
    "Mailbox",
    "Outcome",
    "OutgoingEmail",
    "Rate",
    "RenderedEmail",
    "Reservation",
    "SmtpSecurity",
    "SmtpSender",
    "SmtpSettings",
    "TargetAction",
    "TargetHealth",
    "TargetVerdict",
    "TokenBucket",
    "URLPolicy",
    "UnsafeURL",
    "Verdict",
    "WebhookMessage",
    "WebhookSender",
    "WebhookSending",
    "WebhookTimeouts",
    "build_message",
    "decide",
    "encode_payload",
    "generate_secret",
    "judge_target",
    "make_environment",
    "merge_email",
    "message_id",
    "new_message_id",
    "render_email",
    "secret_key",
    "signature_headers",
    "validate_address",
    "validate_url",
]
