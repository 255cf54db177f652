"""The email composer: turns a claimed email delivery into the message a person reads, in their language.

Customer emails speak from the job snapshot (the one read model the API, webhooks and pages show), in
the contact's language and time zone; `tracker.domain.emails` decides when they go and what they fold.
Every email about one job answers the job's root `Message-ID`, so mail clients thread them; each has its
own, derived from the delivery id, so a retry is recognisably the same message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jinja2
from babel.dates import format_date, format_datetime, format_skeleton
from babel.numbers import format_currency
from tortoise.connection import get_connection
from tortoise.queryset import QuerySet

from notifications import (
    Mailbox,
    MailMerge,
    OutgoingEmail,
    RenderedEmail,
    merge_email,
    message_id,
    render_email,
    validate_address,
)
from notifications.email import InvalidEmail
from notifications.i18n import language_of, localized_environments
from tracker.db import bulk
from tracker.db.models import (
    Account,
    Contact,
    Delivery,
    Job,
    JobEvent,
    Question,
    WebhookEndpoint,
)
from tracker.domain.emails import (
    OPPOSITE_ALERTS,
    EmailRules,
    Moot,
    Preference,
    QueuedRow,
    QuietHours,
    SendNow,
    WaitUntil,
    category_of,
    plan_timing,
    skip_reason,
)
from tracker.domain.events import EMAIL_CATEGORIES, EmailCategory, EventType
from tracker.domain.money import Money
from tracker.domain.workflow import JobStatus
from tracker.services.accounts import OPEN_STATUSES
from tracker.services.events import PREFERENCE_COLUMNS
from tracker.services.outbox import ComposedEmail, DeferEmail, EmailPlan, QueuedEmail, SkipEmail
from tracker.services.preferences import ensure_page_token, is_suppressed, page_token_of, preference_for
from tracker.services.snapshots import JobSnapshot, JobSnapshots
from tracker.services.status_pages import QUESTION_KIND
from tracker.settings import Settings

FALLBACK_DOMAIN = "tracker.invalid"
FOLDED = frozenset({EmailCategory.PROGRESS, EmailCategory.ESTIMATES})
"""Categories whose emails fold into one another (see `tracker.domain.emails`)."""
NEIGHBOURLY = FOLDED | {EmailCategory.ALERTS}
"""Categories whose timing looks at the job's other queued emails (alerts: to be taken back, and to
carry the progress queued before them)."""
RENDERED_KEPT = 256
PERSONAL_FIELDS = ("contact_name", "preferences_url", "unsubscribe_url")
"""What differs between the readers of one job update: the rest is rendered once for them all."""


def mail_domain(settings: Settings) -> str:
    """The domain of our Message-IDs: the sender's, else the public site's, else a reserved one."""
    candidates = [
        parseaddr(settings.mail_from)[1].rpartition("@")[2],
        urlsplit(settings.public_base_url).hostname,
    ]
    for domain in candidates:
        try:
            return message_id("x", domain or "").removeprefix("<x@").removesuffix(">")
        except InvalidEmail:
            continue
    return FALLBACK_DOMAIN


def sender_of(settings: Settings) -> Mailbox:
    name, address = parseaddr(settings.mail_from)
    return Mailbox(validate_address(address, "TRACKER_MAIL_FROM"), name)


def email_rules(settings: Settings) -> EmailRules:
    return EmailRules(
        fold=timedelta(seconds=settings.email_fold_s),
        estimate_interval=timedelta(seconds=settings.estimate_email_interval_s),
        quiet_hours=QuietHours.parse(settings.quiet_hours),
    )


@dataclass(frozen=True)
class Formats:
    """Babel formatting in one language and time zone."""

    language: str
    zone: ZoneInfo

    def day(self, instant: datetime) -> str:
        return format_skeleton("MMMEd", instant.astimezone(self.zone), locale=self.language)

    def moment(self, instant: datetime) -> str:
        return format_datetime(
            instant.astimezone(self.zone), "medium", tzinfo=self.zone, locale=self.language
        )

    def calendar_day(self, value: date) -> str:
        return format_date(value, "medium", locale=self.language)

    def money(self, money: Money) -> str:
        return format_currency(money.amount, money.currency, locale=self.language)

    def eta(self, snapshot: JobSnapshot) -> dict[str, str] | None:
        """The expected completion as days: earliest (P50) and latest (P90), one day when they agree."""
        if snapshot.estimate is None:
            return None
        earliest, latest = snapshot.estimate.completion_p50, snapshot.estimate.completion_p90
        same = earliest.astimezone(self.zone).date() == latest.astimezone(self.zone).date()
        return {"earliest": self.day(earliest), "latest": self.day(latest), "same_day": "yes" if same else ""}


def headline(kinds: Sequence[EventType], status: JobStatus) -> str:
    """What the email's subject says changed, from the events it covers and where the job is now."""
    if status is JobStatus.COMPLETED:
        return "completed"  # whatever the email carries, the subject never shows a closed job as open
    if status is JobStatus.CANCELLED:
        return "cancelled"
    kind_set = set(kinds)
    if EventType.AT_RISK in kind_set:
        return "at_risk"  # urgent: it leads even when it carries stage changes
    for kind, words in (
        (EventType.AT_RISK, "at_risk"),
        (EventType.STUCK, "stuck"),
        (EventType.BACK_ON_TRACK, "back_on_track"),
        (EventType.NOTE_ADDED, "note"),
        (EventType.ETA_MOVED, "eta"),
        (EventType.COST_MOVED, "cost"),
    ):
        if kind in kind_set and not kind_set & {EventType.ADVANCE, EventType.MOVE, EventType.HOLD}:
            return words
    if status is JobStatus.ON_HOLD:
        return "on_hold"
    return "stage"


MOVES = ("eta_moved", "cost_moved")


def net_moves(changes: list[dict[str, str]], now: Mapping[str, str]) -> list[dict[str, str]]:
    """The changes an email lists, with the estimate's moves netted: one line per kind, from where the
    first move started to where the estimate is `now` (the email also shows the current estimate, and a
    line ending elsewhere would contradict it), none when it is back where it started."""
    netted: list[dict[str, str]] = []
    for change in changes:
        kind = change["kind"]
        if kind not in MOVES:
            netted.append(change)
        elif not any(earlier["kind"] == kind for earlier in netted):
            netted.append({**change, "new": now.get(kind, change["new"])})
    return [change for change in netted if change["kind"] not in MOVES or change["old"] != change["new"]]


def _estimate_now(snapshot: JobSnapshot, formats: Formats) -> dict[str, str]:
    """The current estimate as the move lines word it."""
    estimate = snapshot.estimate
    if estimate is None:
        return {}
    return {"eta_moved": formats.day(estimate.completion_p50), "cost_moved": formats.money(estimate.cost_p50)}


def _job_context(snapshot: JobSnapshot, formats: Formats) -> dict[str, Any]:
    """What every email shows of a job, from its snapshot, formatted for the reader."""
    estimate = snapshot.estimate
    return {
        "title": snapshot.title,
        "reference": snapshot.reference,
        "stage": snapshot.stage.label,
        "status": snapshot.status.value,
        "eta": formats.eta(snapshot),
        "cost": None if estimate is None else formats.money(estimate.cost_p50),
        "promised": None if snapshot.promised_on is None else formats.calendar_day(snapshot.promised_on),
    }


class DatabaseEmailComposer:
    """`tracker.services.outbox.EmailComposer` over the database."""

    def __init__(
        self,
        settings: Settings,
        snapshots: JobSnapshots,
        environments: Mapping[str, jinja2.Environment] | None = None,
    ) -> None:
        self._snapshots = snapshots
        self._environments = environments or localized_environments(settings.templates_dir)
        self._rules = email_rules(settings)
        self._domain = mail_domain(settings)
        self._sender = sender_of(settings)
        self._base = settings.public_base_url.rstrip("/")
        self._rendered: dict[tuple[str, str], MailMerge] = {}
        """Job updates rendered lately, by language and everything they show: a fan-out claimed in many
        batches renders each once."""
        self._staff_formats = Formats(settings.staff_language, settings.staff_zone)

    async def compose(self, email: QueuedEmail, now: datetime) -> EmailPlan:
        """The plan of one email (`compose_batch` of one); raises what composing it raised."""
        (plan,) = await self.compose_batch([email], now)
        if isinstance(plan, Exception):
            raise plan
        return plan

    async def compose_batch(
        self, emails: Sequence[QueuedEmail], now: datetime
    ) -> list[EmailPlan | Exception]:
        customers = [email for email in emails if _customer_category(email) is not None]
        batch = await _CustomerBatch.load(customers, now)
        plans: list[EmailPlan | Exception] = []
        for email in emails:
            try:
                plans.append(await self._compose(email, batch, now))
            except Exception as error:  # one email's failure is its own; the store defers it
                plans.append(error)
        return plans

    async def _compose(self, email: QueuedEmail, batch: _CustomerBatch, now: datetime) -> EmailPlan:
        if email.kind == "digest":
            return await self._digest(email, now)
        if email.kind in {"staff_alert", "staff_summary"}:
            return await self._staff(email, now)
        if email.kind in {"endpoint_warning", "endpoint_disabled"}:
            return await self._endpoint(email)
        if email.kind == QUESTION_KIND:
            return await self._question(email)
        category = _customer_category(email)
        if category is None:
            return SkipEmail(f"no customer email is made for {email.kind}")
        return await self._customer(email, category, batch, now)

    # -- customer emails about a job

    async def _customer(
        self, email: QueuedEmail, category: EmailCategory, batch: _CustomerBatch, now: datetime
    ) -> EmailPlan:
        contact = batch.contacts.get(email.contact_id or 0)
        job = batch.jobs.get(email.job_id or 0)
        if contact is None or job is None:
            return SkipEmail("the contact or the job no longer exists")
        reason = skip_reason(
            contact.preferences[category],
            suppressed=contact.suppressed,
            category=category,
            job_closed=not JobStatus(job.status).is_open,
        )
        if reason is not None:
            return SkipEmail(reason)
        zone = ZoneInfo(contact.time_zone)
        timing = await self._timing(email, category, contact, batch, zone, now)
        if isinstance(timing, WaitUntil):
            return DeferEmail(timing.until)
        if isinstance(timing, Moot):
            return SkipEmail(timing.reason)
        event_ids = {email.id: email.event_id, **batch.event_ids}
        covered = {event_ids.get(i) for i in timing.covers}
        events = [event for event_id, event in sorted(batch.events.items()) if event_id in covered]
        if not all(_public(e) for e in events):
            return SkipEmail("the note is internal")
        merge = await self._job_update(batch, job, events, Formats(language_of(contact.locale), zone))
        token = await page_token_of(contact.id, contact.page_token)
        unsubscribe_url = f"{self._base}/unsubscribe/{token}?c={category.value}"
        rendered = merge.fill(
            {
                "contact_name": contact.name,
                "preferences_url": f"{self._base}/a/{token}",
                "unsubscribe_url": unsubscribe_url,
            }
        )
        message = self._outgoing(
            email.id,
            Mailbox(contact.email, contact.name),
            rendered,
            thread_id=self._thread_id(job.id),
            unsubscribe_url=unsubscribe_url,
        )
        return ComposedEmail(message, folded=tuple(i for i in timing.covers if i != email.id))

    async def _job_update(
        self, batch: _CustomerBatch, job: Job, events: list[JobEvent], formats: Formats
    ) -> MailMerge:
        """The update telling of `events`, rendered once a batch for its readers of one language and
        time zone; each reader's own name and links fill it."""
        key = (job.id, tuple(event.id for event in events), formats.language, formats.zone.key)
        merge = batch.merges.get(key)
        if merge is None:
            snapshot, job_context = await batch.job_view(self._snapshots, job, formats)
            context = {
                **job_context,
                "headline": headline([EventType(e.type) for e in events], snapshot.status),
                "changes": net_moves(
                    [await self._change(e, job, formats) for e in events], _estimate_now(snapshot, formats)
                ),
                "notes": [str(e.data["body"]) for e in events if e.type == EventType.NOTE_ADDED],
                "status_url": f"{snapshot.public_url}?lang={formats.language}",
            }
            rendered_key = (formats.language, repr(context))
            merge = self._rendered.get(rendered_key)
            if merge is None:
                environment = self._environments[formats.language]
                merge = merge_email(environment, "job_update", context, PERSONAL_FIELDS)
                self._rendered[rendered_key] = merge
                if len(self._rendered) > RENDERED_KEPT:
                    del self._rendered[next(iter(self._rendered))]
            batch.merges[key] = merge
        return merge

    async def _timing(
        self,
        email: QueuedEmail,
        category: EmailCategory,
        contact: _Recipient,
        batch: _CustomerBatch,
        zone: ZoneInfo,
        now: datetime,
    ) -> SendNow | WaitUntil | Moot:
        """When the email goes and what it covers; progress, estimates and alerts look at the job's other
        queued emails for the contact."""
        row = QueuedRow(email.id, email.kind, email.created_at)
        same_category: list[QueuedRow] = []
        related: list[QueuedRow] = []
        last_sent = None
        last_risk_told = None
        if category in NEIGHBOURLY:
            neighbours = batch.queued.get((email.job_id or 0, email.contact_id or 0), [])
            same_category = [q for q in neighbours if category_of(q.kind) is category]
            other = EmailCategory.ESTIMATES if category is EmailCategory.PROGRESS else EmailCategory.PROGRESS
            if contact.preferences[other] is Preference.EACH:
                related = [q for q in neighbours if category_of(q.kind) is other]
            if category is EmailCategory.ALERTS:
                last_risk_told = await _last_risk_told(email)
            if category is EmailCategory.ESTIMATES:
                kinds = [kind.value for kind, of in EMAIL_CATEGORIES.items() if of is category]
                last_sent = await _last_sent_at(
                    Delivery.filter(
                        channel="email",
                        status="sent",
                        job_id=email.job_id,
                        contact_id=email.contact_id,
                        kind__in=kinds,
                    )
                )
        return plan_timing(
            row,
            same_category=same_category,
            last_sent_in_category=last_sent,
            rules=self._rules,
            zone=zone,
            now=now,
            related=related,
            last_risk_told=last_risk_told,
        )

    async def _change(self, event: JobEvent, job: Job, formats: Formats) -> dict[str, str]:
        """One line of what changed, its values formatted for the reader (the template words it)."""
        data = event.data
        change = {"kind": event.type}
        kind = EventType(event.type)
        if kind in {EventType.ADVANCE, EventType.MOVE, EventType.REOPEN, EventType.STUCK}:
            key = data["to"]["stage"] if "to" in data else job.stage_key
            workflow = await self._snapshots.versions.get(job.workflow_id)
            change["stage"] = workflow.definition.stage(key).label(formats.language)
        elif kind is EventType.HOLD and data.get("reason"):
            change["reason"] = str(data["reason"])
        elif kind is EventType.ETA_MOVED:
            change["old"] = formats.day(datetime.fromisoformat(data["old"]))
            change["new"] = formats.day(datetime.fromisoformat(data["new"]))
        elif kind is EventType.COST_MOVED:
            change["old"] = formats.money(Money.in_minor_units(Decimal(data["old"]), job.currency))
            change["new"] = formats.money(Money.in_minor_units(Decimal(data["new"]), job.currency))
        return change

    # -- the daily digest, staff and endpoint owners

    async def _digest(self, email: QueuedEmail, now: datetime) -> EmailPlan:
        contact = await Contact.get_or_none(id=email.contact_id)
        if contact is None:
            return SkipEmail("the contact no longer exists")
        if await is_suppressed(contact.email):
            return SkipEmail("address suppressed")
        digest_categories = {c for c in EmailCategory if preference_for(contact, c) is Preference.DIGEST}
        if not digest_categories:
            return SkipEmail("contact takes no digest any more")
        last_digest = await _last_sent_at(
            Delivery.filter(channel="email", status="sent", contact_id=contact.id, kind="digest")
        )
        since = last_digest or now - timedelta(days=1)
        language = language_of(contact.locale)
        formats = Formats(language, ZoneInfo(contact.time_zone))
        jobs = await Job.filter(account_id=contact.account_id, status__in=OPEN_STATUSES).order_by("id")
        digest_kinds = [k.value for k, c in EMAIL_CATEGORIES.items() if c in digest_categories]
        lines = []
        for job in jobs:
            snapshot = await self._snapshots.of(job, locale=language)
            events = await JobEvent.filter(
                job_id=job.id, occurred_at__gt=since, type__in=digest_kinds
            ).order_by("id")
            lines.append(
                {
                    **_job_context(snapshot, formats),
                    "status_url": f"{snapshot.public_url}?lang={language}",
                    "changes": [await self._change(e, job, formats) for e in events if _public(e)],
                }
            )
        if not lines:
            return SkipEmail("the account has no open job")
        token = await ensure_page_token(contact)
        unsubscribe_url = f"{self._base}/unsubscribe/{token}"
        context = {
            "contact_name": contact.name,
            "day": formats.day(now),
            "jobs": lines,
            "preferences_url": f"{self._base}/a/{token}",
            "unsubscribe_url": unsubscribe_url,
        }
        rendered = render_email(self._environments[language], "digest", context)
        return ComposedEmail(
            self._outgoing(
                email.id, Mailbox(contact.email, contact.name), rendered, unsubscribe_url=unsubscribe_url
            )
        )

    async def _staff(self, email: QueuedEmail, now: datetime) -> EmailPlan:
        address = await _staff_address(email)
        if isinstance(address, SkipEmail):
            return address
        formats = self._staff_formats
        environment = self._environments[self._staff_formats.language]
        thread = None
        if email.kind == "staff_alert":
            job = await Job.get_or_none(id=email.job_id)
            event = await JobEvent.get_or_none(id=email.event_id)
            if job is None or event is None:
                return SkipEmail("the job or the event no longer exists")
            snapshot = await self._snapshots.of(job, locale=self._staff_formats.language)
            account = await Account.get(id=job.account_id)
            context = {
                **_job_context(snapshot, formats),
                "account": account.name,
                "alert": event.type,
                "change": await self._change(event, job, formats),
                "dashboard_url": f"{self._base}/dashboard/jobs/{job.id}",
            }
            rendered = render_email(environment, "staff_alert", context)
            thread = self._thread_id(job.id)
        else:
            rendered = render_email(environment, "staff_summary", await self._summary(formats, now))
        return ComposedEmail(self._outgoing(email.id, Mailbox(address), rendered, thread_id=thread))

    async def _summary(self, formats: Formats, now: datetime) -> dict[str, Any]:
        """The morning summary: open jobs needing attention (the snapshot's flags), failed deliveries."""
        sections: dict[str, list[dict[str, Any]]] = {
            "at_risk": [],
            "stuck": [],
            "overdue": [],
            "over_budget": [],
        }
        jobs = await Job.filter(status__in=OPEN_STATUSES).order_by("id")
        for job in jobs:
            snapshot = await self._snapshots.of(job, locale=self._staff_formats.language)
            estimate = snapshot.estimate
            if estimate is None:
                continue
            line = {
                **_job_context(snapshot, formats),
                "dashboard_url": f"{self._base}/dashboard/jobs/{job.id}",
            }
            for flag in sections:
                if getattr(estimate, flag):
                    sections[flag].append(line)
        failures = await Delivery.filter(
            status__in=["dead", "bounced"], created_at__gte=now - timedelta(days=1)
        ).order_by("id")
        return {
            "day": formats.day(now),
            "sections": sections,
            "failures": [
                {
                    "channel": d.channel,
                    "kind": d.kind,
                    "target": d.target,
                    "status": d.status,
                    "error": d.last_error or "",
                }
                for d in failures
            ],
        }

    async def _question(self, email: QueuedEmail) -> EmailPlan:
        """A customer asked a question on the status page: what, about which job, and where to answer."""
        address = await _staff_address(email)
        if isinstance(address, SkipEmail):
            return address
        row = await Delivery.get(id=email.id)
        question = await Question.get_or_none(id=row.question_id)
        job = await Job.get_or_none(id=email.job_id)
        if question is None or job is None:
            return SkipEmail("the question or its job no longer exists")
        formats = self._staff_formats
        snapshot = await self._snapshots.of(job, locale=self._staff_formats.language)
        account = await Account.get(id=job.account_id)
        context = {
            **_job_context(snapshot, formats),
            "account": account.name,
            "question": question.body,
            "asked_at": formats.moment(question.asked_at),
            "dashboard_url": f"{self._base}/dashboard/jobs/{job.id}#question-{question.id}",
        }
        rendered = render_email(self._environments[self._staff_formats.language], "staff_question", context)
        return ComposedEmail(
            self._outgoing(email.id, Mailbox(address), rendered, thread_id=self._thread_id(job.id))
        )

    async def _endpoint(self, email: QueuedEmail) -> EmailPlan:
        if email.address is None:
            return SkipEmail("the endpoint has no owner address")
        if await is_suppressed(email.address):
            return SkipEmail("address suppressed")
        row = await Delivery.get(id=email.id)
        endpoint = await WebhookEndpoint.get_or_none(id=row.endpoint_id)
        if endpoint is None:
            return SkipEmail("the endpoint no longer exists")
        formats = self._staff_formats
        context = {
            "disabled": email.kind == "endpoint_disabled",
            "url": endpoint.url,
            "description": endpoint.description,
            "since": None if endpoint.failing_since is None else formats.moment(endpoint.failing_since),
            "reason": endpoint.disabled_reason or "",
        }
        rendered = render_email(self._environments[self._staff_formats.language], "endpoint_notice", context)
        return ComposedEmail(self._outgoing(email.id, Mailbox(email.address), rendered))

    def _outgoing(
        self,
        delivery_id: int,
        recipient: Mailbox,
        rendered: RenderedEmail,
        *,
        thread_id: str | None = None,
        unsubscribe_url: str | None = None,
    ) -> OutgoingEmail:
        """The email as sent: our sender, its own Message-ID from the delivery (the same on a retry)."""
        return OutgoingEmail(
            sender=self._sender,
            recipient=recipient,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=self._message_id(delivery_id),
            thread_id=thread_id,
            # RFC 8058 one-click needs https; a development site on http shows the link in the body only.
            unsubscribe_url=unsubscribe_url
            if unsubscribe_url and unsubscribe_url.startswith("https://")
            else None,
        )

    def _message_id(self, delivery_id: int) -> str:
        return message_id(f"delivery-{delivery_id}", self._domain)

    def _thread_id(self, job_id: int) -> str:
        return message_id(f"job-{job_id}", self._domain)


def _customer_category(email: QueuedEmail) -> EmailCategory | None:
    """The category of a customer email about a job; None for any other email."""
    if email.contact_id is None or email.job_id is None:
        return None
    return category_of(email.kind)


_RECIPIENTS = (
    "SELECT c.id, c.name, c.email, c.locale, c.time_zone, c.page_token, {preferences}, "
    "s.address IS NOT NULL AS suppressed "
    "FROM contact c LEFT JOIN suppression s ON s.address = lower(c.email) WHERE {among}"
)


@dataclass(frozen=True, slots=True)
class _Recipient:
    """The contact of a customer email, with what its sending reads of it: one query for a batch's
    (without Tortoise's models, whose making cost more than the rest of the batch's reading)."""

    id: int
    name: str
    email: str
    locale: str
    time_zone: str
    page_token: str | None
    preferences: dict[EmailCategory, Preference]
    suppressed: bool

    @classmethod
    async def load(cls, ids: set[int]) -> dict[int, _Recipient]:
        if not ids:
            return {}
        connection = get_connection("default")
        preferences = ", ".join(f"c.{column}" for column in PREFERENCE_COLUMNS.values())
        among, values = bulk.among_ids(connection, "c.id", sorted(ids))
        sql = _RECIPIENTS.format(preferences=preferences, among=among)
        return {
            row["id"]: cls(
                id=row["id"],
                name=row["name"],
                email=row["email"],
                locale=row["locale"],
                time_zone=row["time_zone"],
                page_token=row["page_token"],
                preferences={c: Preference(row[column]) for c, column in PREFERENCE_COLUMNS.items()},
                suppressed=bool(row["suppressed"]),
            )
            for row in await connection.execute_query_dict(sql, values)
        }


@dataclass
class _CustomerBatch:
    """What the customer emails of one claimed batch read, loaded with one query per table."""

    contacts: dict[int, _Recipient]
    jobs: dict[int, Job]
    queued: dict[tuple[int, int], list[QueuedRow]]
    """The queued emails of folding categories, per (job, contact) of the batch."""
    event_ids: dict[int, int | None]
    """The event of each of those queued emails, by delivery id."""
    events: dict[int, JobEvent]
    """The events of the batch's emails and of those queued emails, by id."""
    views: dict[tuple[int, str, str], tuple[JobSnapshot, dict[str, Any]]] = field(default_factory=dict)
    merges: dict[tuple[int, tuple[int, ...], str, str], MailMerge] = field(default_factory=dict)
    """The job updates rendered so far, by job, events, language and time zone."""

    @classmethod
    async def load(cls, emails: Sequence[QueuedEmail], now: datetime) -> _CustomerBatch:
        if not emails:
            return cls({}, {}, {}, {}, {})
        contacts = await _Recipient.load({e.contact_id for e in emails if e.contact_id is not None})
        jobs = {j.id: j for j in await Job.filter(id__in={e.job_id for e in emails})}
        folding = [e for e in emails if category_of(e.kind) in NEIGHBOURLY]
        queued: dict[tuple[int, int], list[QueuedRow]] = {}
        event_ids: dict[int, int | None] = {}
        if folding:
            kinds = [kind.value for kind, of in EMAIL_CATEGORIES.items() if of in NEIGHBOURLY]
            rows = await Delivery.filter(
                channel="email",
                status="queued",
                job_id__in={e.job_id for e in folding},
                contact_id__in={e.contact_id for e in folding},
                kind__in=kinds,
            ).values("id", "kind", "created_at", "job_id", "contact_id", "event_id")
            for row in rows:
                queued.setdefault((row["job_id"], row["contact_id"]), []).append(
                    QueuedRow(row["id"], row["kind"], row["created_at"])
                )
                event_ids[row["id"]] = row["event_id"]
        wanted = {e.event_id for e in emails} | set(event_ids.values())
        events = {e.id: e for e in await JobEvent.filter(id__in={i for i in wanted if i is not None})}
        return cls(contacts, jobs, queued, event_ids, events)

    async def job_view(
        self, snapshots: JobSnapshots, job: Job, formats: Formats
    ) -> tuple[JobSnapshot, dict[str, Any]]:
        """The job's snapshot in the reader's language and what every email shows of it, made once per
        batch for each language and time zone."""
        key = (job.id, formats.language, formats.zone.key)
        view = self.views.get(key)
        if view is None:
            snapshot = await snapshots.of(job, locale=formats.language)
            view = self.views[key] = (snapshot, _job_context(snapshot, formats))
        return view


async def _staff_address(email: QueuedEmail) -> str | SkipEmail:
    """Where a staff email goes, or why it cannot (no address, or the address is suppressed)."""
    if email.address is None:
        return SkipEmail("a staff email needs an address")
    if await is_suppressed(email.address):
        return SkipEmail("address suppressed")
    return email.address


async def _last_risk_told(email: QueuedEmail) -> EventType | None:
    """The last at-risk or back-on-track alert sent to the email's contact about its job."""
    last = (
        await Delivery.filter(
            channel="email",
            status="sent",
            job_id=email.job_id,
            contact_id=email.contact_id,
            kind__in=[kind.value for kind in OPPOSITE_ALERTS],
        )
        .order_by("-sent_at", "-id")
        .first()
    )
    return None if last is None else EventType(last.kind)


async def _last_sent_at(query: QuerySet[Delivery]) -> datetime | None:
    last = await query.order_by("-sent_at").first()
    return None if last is None else last.sent_at


def _public(event: JobEvent) -> bool:
    """Customers hear of public notes only (the fan-out queues no other; checked again here)."""
    return event.type != EventType.NOTE_ADDED or event.data.get("visibility") == "public"
