"""The read and write side of the customer pages: a job's status page and a contact's account page.

Everything a page shows comes from the job snapshot (`tracker.services.snapshots`) plus what only a page
needs: the stepper, the estimate it replaced, public notes, the timeline, the hold reason, the survey.
A page is found by its unguessable token alone; an unknown token is `NotFound`, which says nothing more.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from notifications.i18n import language_of
from tracker.db.models import (
    Account,
    Contact,
    Delivery,
    Job,
    JobEstimate,
    JobEvent,
    Note,
    Question,
    SurveyResponse,
    fits_column,
)
from tracker.domain.emails import Preference
from tracker.domain.errors import Conflict, InvalidInput, NotFound
from tracker.domain.events import EmailCategory, EventType
from tracker.domain.progress import Confidence, Step, confidence, shown_stage, steps
from tracker.domain.workflow import JobStatus
from tracker.services.accounts import OPEN_STATUSES
from tracker.services.events import queued_email
from tracker.services.jobs import get_job, get_job_by_token
from tracker.services.preferences import contact_by_page_token, preferences_of
from tracker.services.signals import DeliveriesQueued
from tracker.services.snapshots import JobSnapshot, JobSnapshots

QUESTION_MAX_CHARS = 2000
QUESTION_KIND = "question"
"""The delivery kind of the staff email about a customer's question."""
COMMENT_MAX_CHARS = 2000
RECENTLY_CLOSED = timedelta(days=90)
"""The account page lists closed jobs this long after they closed."""
ESTIMATES_LOOKED_BACK = 50
ACCOUNT_JOBS_SHOWN = 200
"""The account page shows the newest this many jobs of its filter."""
TIMELINE_TYPES = (
    EventType.CREATED,
    EventType.ADVANCE,
    EventType.MOVE,
    EventType.HOLD,
    EventType.RESUME,
    EventType.COMPLETE,
    EventType.CANCEL,
    EventType.REOPEN,
    EventType.ETA_MOVED,
)
"""The events a customer sees in the timeline (public notes are listed with the notes)."""


@dataclass(frozen=True)
class Audience:
    """Who the page speaks to: the account's first contact's language and time zone."""

    locale: str
    time_zone: ZoneInfo


@dataclass(frozen=True)
class TimelineEntry:
    type: EventType
    occurred_at: datetime
    stage_label: str | None
    """The stage the job went to, for stage changes."""
    reason: str | None


@dataclass(frozen=True)
class PublicNote:
    body: str
    created_at: datetime


@dataclass(frozen=True)
class EtaRange:
    completion_p50: datetime
    completion_p90: datetime


@dataclass(frozen=True)
class StatusView:
    token: str
    snapshot: JobSnapshot
    audience: Audience
    steps: list[Step]
    confidence: Confidence | None
    previous_eta: EtaRange | None
    """The last estimate whose days differ from the current one (in the customer's zone), if it moved."""
    hold_reason: str | None
    notes: list[PublicNote]
    timeline: list[TimelineEntry]
    survey_score: int | None
    """The customer's answer once given; None before."""

    @property
    def stage_label(self) -> str:
        """The stage the customer sees the job in (a hidden stage is never named)."""
        return shown_stage(self.steps)

    @property
    def last_updated(self) -> datetime:
        """When what the page shows last changed: the job itself, or the newest update or public note
        listed (a moved estimate leaves the job's own record as it was)."""
        listed = [entry.occurred_at for entry in self.timeline] + [note.created_at for note in self.notes]
        return max([self.snapshot.updated_at, *listed])

    @property
    def survey_open(self) -> bool:
        return self.snapshot.status is JobStatus.COMPLETED and self.survey_score is None


class QuestionOutcome(StrEnum):
    STORED = "stored"


async def audience_of(account_id: int, fallback_locale: str = "en") -> Audience:
    contact = await Contact.filter(account_id=account_id).order_by("id").first()
    if contact is None:
        return Audience(fallback_locale, ZoneInfo("UTC"))
    return Audience(contact.locale, ZoneInfo(contact.time_zone))


def _days(eta: EtaRange, zone: ZoneInfo) -> tuple[Any, Any]:
    return eta.completion_p50.astimezone(zone).date(), eta.completion_p90.astimezone(zone).date()


async def _previous_eta(job: Job, zone: ZoneInfo) -> EtaRange | None:
    if job.eta_p50 is None or job.eta_p90 is None:
        return None
    current = _days(EtaRange(job.eta_p50, job.eta_p90), zone)
    rows = await JobEstimate.filter(job_id=job.id).order_by("-id").limit(ESTIMATES_LOOKED_BACK)
    for row in rows:
        earlier = EtaRange(row.eta_p50, row.eta_p90)
        if _days(earlier, zone) != current:
            return earlier
    return None


def _timeline_entry(event: JobEvent, snapshot_labels: dict[str, str]) -> TimelineEntry:
    data: dict[str, Any] = event.data
    destination = data.get("to", {}).get("stage") if isinstance(data.get("to"), dict) else None
    if event.type == EventType.CREATED:
        destination = data.get("stage")
    return TimelineEntry(
        type=EventType(event.type),
        occurred_at=event.occurred_at,
        stage_label=snapshot_labels.get(destination) if destination else None,
        reason=data.get("reason") if event.type == EventType.HOLD else None,
    )


@dataclass
class StatusPages:
    snapshots: JobSnapshots

    async def view(self, token: str, *, locale: str | None, now: datetime) -> StatusView:
        """The status page of the job with `token`, in `locale` (else its first contact's)."""
        job = await get_job_by_token(token)
        audience = await audience_of(job.account_id)
        language = language_of(locale or audience.locale)
        snapshot = await self.snapshots.of(job, locale=language)
        workflow = await self.snapshots.versions.get(job.workflow_id)
        labels = {stage.key: stage.label(language) for stage in workflow.definition.stages}
        hidden = {stage.key for stage in workflow.definition.stages if not stage.customer_visible}
        events = await JobEvent.filter(job_id=job.id, type__in=[t.value for t in TIMELINE_TYPES]).order_by(
            "-id"
        )
        timeline = [
            _timeline_entry(event, labels)
            for event in events
            if not _moved_to_hidden(event, hidden)  # a hidden stage is never named nor hinted at
        ]
        hold = next((entry for entry in timeline if entry.type is EventType.HOLD), None)
        notes = await Note.filter(job_id=job.id, visibility="public").order_by("-id")
        survey = await SurveyResponse.get_or_none(job_id=job.id)
        estimate = snapshot.estimate
        return StatusView(
            token=token,
            snapshot=snapshot,
            audience=Audience(language, audience.time_zone),
            steps=steps(workflow.definition, job.stage_key, snapshot.status, language),
            confidence=None
            if estimate is None
            else confidence(estimate.completion_p50, estimate.completion_p90, estimate.basis, now),
            previous_eta=None if estimate is None else await _previous_eta(job, audience.time_zone),
            hold_reason=hold.reason if hold is not None and snapshot.status is JobStatus.ON_HOLD else None,
            notes=[PublicNote(note.body, note.created_at) for note in notes],
            timeline=timeline,
            survey_score=None if survey is None else survey.score,
        )

    async def revision(self, token: str) -> tuple[int, datetime]:
        """What changes whenever the page would (one small query): the job's version, every change of
        the job raises it, and the time of its last estimate, which the scheduler refreshes."""
        found = (
            await Job.filter(public_token=token).limit(1).values_list("version", "estimated_at", "updated_at")
            if fits_column(Job, "public_token", token)
            else []
        )
        if not found:
            raise NotFound("job", "for that link")
        version, estimated_at, updated_at = found[0]
        return version, estimated_at or updated_at


def _moved_to_hidden(event: JobEvent, hidden: set[str]) -> bool:
    destination = event.data.get("to")
    return isinstance(destination, dict) and destination.get("stage") in hidden


@dataclass(frozen=True)
class Questions:
    """Customers' questions from the status page; each alerts every staff address by email."""

    staff_addresses: Sequence[str]
    deliveries_queued: DeliveriesQueued

    async def ask(self, token: str, body: str, *, now: datetime) -> Question:
        """Store the question and, in the same transaction, one `question` email per staff address (the
        dashboard lists the unanswered ones)."""
        text = body.strip()
        if not text:
            raise InvalidInput("question", "must not be empty")
        if len(text) > QUESTION_MAX_CHARS:
            raise InvalidInput("question", f"must be at most {QUESTION_MAX_CHARS} characters")
        job = await get_job_by_token(token)
        async with in_transaction():
            question = await Question.create(job_id=job.id, body=text, asked_at=now)
            await Delivery.bulk_create(
                [
                    queued_email(
                        f"q{question.id}:{address.lower()}",
                        QUESTION_KIND,
                        address,
                        now,
                        job_id=job.id,
                        question_id=question.id,
                    )
                    for address in self.staff_addresses
                ],
                ignore_conflicts=True,
            )
        if self.staff_addresses:
            self.deliveries_queued.fire()
        return question


async def answer_survey(token: str, score: int, comment: str, *, now: datetime) -> SurveyResponse:
    """Record the customer's satisfaction with a completed job, once."""
    if not 1 <= score <= 5:
        raise InvalidInput("score", "must be a whole number from 1 to 5")
    text = comment.strip()
    if len(text) > COMMENT_MAX_CHARS:
        raise InvalidInput("comment", f"must be at most {COMMENT_MAX_CHARS} characters")
    job = await get_job_by_token(token)
    if job.status != JobStatus.COMPLETED.value:
        raise Conflict("the survey opens when the job is completed", code="job_not_completed")
    try:
        async with in_transaction():
            return await SurveyResponse.create(job_id=job.id, score=score, comment=text, answered_at=now)
    except IntegrityError:
        raise Conflict("this job's survey is already answered", code="already_answered") from None


async def regenerate_token(job_id: int) -> Job:
    """Give the job a new status-page token; the old link stops working at once."""
    job = await get_job(job_id)
    job.public_token = secrets.token_urlsafe(24)
    await job.save(update_fields=["public_token"])
    return job


@dataclass(frozen=True)
class AccountView:
    contact: Contact
    audience: Audience
    account_name: str
    preferences: dict[EmailCategory, Preference]
    jobs: list[JobSnapshot]
    tokens: dict[int, str]
    """Each listed job's status-page token, by job id."""
    stage_labels: dict[int, str]
    """Each listed job's stage as its customer sees it (a hidden stage is never named), by job id."""


class JobsShown(StrEnum):
    ALL = "all"
    OPEN = "open"
    CLOSED = "closed"


@dataclass
class AccountPages:
    snapshots: JobSnapshots

    async def view(
        self, token: str, *, locale: str | None, shown: JobsShown, search: str, now: datetime
    ) -> AccountView:
        """The account's open jobs and those closed in the last `RECENTLY_CLOSED`, newest first."""
        contact = await contact_by_page_token(token)
        language = language_of(locale or contact.locale)
        is_open, recently_closed = Q(status__in=OPEN_STATUSES), Q(closed_at__gte=now - RECENTLY_CLOSED)
        listed = {JobsShown.ALL: is_open | recently_closed, JobsShown.OPEN: is_open}.get(
            shown, recently_closed
        )
        query = Job.filter(listed, account_id=contact.account_id)
        needle = search.strip().lower()
        if needle:
            query = query.filter(title_search__contains=needle)
        rows = await query.order_by("-id").limit(ACCOUNT_JOBS_SHOWN)
        labels: dict[int, str] = {}
        for job in rows:
            workflow = await self.snapshots.versions.get(job.workflow_id)
            labels[job.id] = shown_stage(
                steps(workflow.definition, job.stage_key, JobStatus(job.status), language)
            )
        account = await Account.get(id=contact.account_id)
        return AccountView(
            contact=contact,
            audience=Audience(language, ZoneInfo(contact.time_zone)),
            account_name=account.name,
            preferences=preferences_of(contact),
            jobs=await self.snapshots.of_many(rows, locale=language),
            tokens={job.id: job.public_token for job in rows},
            stage_labels=labels,
        )
