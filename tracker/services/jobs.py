"""Jobs: creation, changes and stage transitions. Each call is one transaction.

Every change to a job names the version the caller read. The write is a compare-and-set on that
version (`UPDATE ... WHERE id = ? AND version = ?`), so of two staff advancing the same job at the same
moment exactly one wins on every database, and the loser changes nothing.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from tracker.db.models import (
    Account,
    CostEntry,
    Job,
    JobEstimate,
    JobEvent,
    Note,
    StageVisit,
    Workflow,
    fits_column,
)
from tracker.domain import workflow as rules
from tracker.domain.errors import Conflict, InvalidInput, NotFound, StaleVersion
from tracker.domain.events import (
    CostAddedPayload,
    CreatedPayload,
    EventType,
    NewEvent,
    NoteAddedPayload,
    TransitionPayload,
)
from tracker.domain.money import LARGEST, Money, parse_amount
from tracker.domain.workflow import JobPosition, JobStatus, Transition, TransitionKind
from tracker.estimates.calendar import BusinessCalendar
from tracker.services import audit
from tracker.services.audit import AuditAction
from tracker.services.events import Listeners, record_events
from tracker.services.pages import Page, Sort, paginate
from tracker.services.signals import DeliveriesQueued
from tracker.services.snapshots import JobSnapshot, JobSnapshots
from tracker.services.versions import ExpectedVersion
from tracker.services.workflows import WorkflowVersions

REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")
REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
MAX_TEXT = 10_000

AfterChange = Callable[[int, datetime], Awaitable[Sequence[NewEvent]]]
"""Run inside each job's transaction after every change, with the job's id; returns the events it found
(the estimator plugs in here), recorded with the change's own."""


class CostKind(StrEnum):
    LABOUR = "labour"
    MATERIAL = "material"


class NoteVisibility(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"


@dataclass(frozen=True)
class NewJob:
    account_id: int
    workflow_key: str
    title: str
    quote: Money
    reference: str | None = None
    promised_on: date | None = None
    start_stage: str | None = None


@dataclass(frozen=True)
class JobChanges:
    title: str | None = None
    quote: Money | None = None
    promised_on: date | None = None
    clear_promised_on: bool = False
    account_id: int | None = None


@dataclass(frozen=True)
class JobFilters:
    status: tuple[JobStatus, ...] = ()
    stage: str | None = None
    account_id: int | None = None
    workflow_key: str | None = None
    promised_before: date | None = None
    updated_since: datetime | None = None
    text: str | None = None


@dataclass(frozen=True)
class CostItem:
    id: int
    kind: str
    amount: Money
    stage: str
    note: str
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class NoteItem:
    id: int
    visibility: str
    body: str
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class EventItem:
    id: int
    type: str
    job_version: int
    actor: str
    occurred_at: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class VisitItem:
    stage: str
    entered_at: datetime
    left_at: datetime | None
    entered_by: str
    left_by: str | None


@dataclass(frozen=True)
class EstimateItem:
    """One kept estimate of a job (a row whenever it moved noticeably)."""

    computed_at: datetime
    completion_p50: datetime
    completion_p90: datetime
    cost_p50: Money
    cost_p90: Money
    basis: str
    overdue: bool


def search_text(reference: str, title: str) -> str:
    """What `?q=` searches: the lower-cased reference and title."""
    return f"{reference} {title}".lower()[:400]


def new_job_row(
    *,
    reference: str,
    account_id: int,
    workflow_id: int,
    title: str,
    quote: Money,
    stage_key: str,
    created_at: datetime,
    status: JobStatus = JobStatus.OPEN,
    stage_entered_at: datetime | None = None,
    updated_at: datetime | None = None,
    closed_at: datetime | None = None,
    promised_on: date | None = None,
    version: int = 1,
    stages_completed: int = 0,
    actual_cost: Decimal = Decimal(0),
) -> Job:
    """A job row, not yet saved: the one place job rows are built (API, imports, demo and bench alike)."""
    return Job(
        reference=reference,
        account_id=account_id,
        workflow_id=workflow_id,
        title=title,
        title_search=search_text(reference, title),
        quote_amount=quote.amount,
        currency=quote.currency,
        promised_on=promised_on,
        status=status.value,
        stage_key=stage_key,
        stage_entered_at=stage_entered_at or created_at,
        version=version,
        public_token=secrets.token_urlsafe(24),
        created_at=created_at,
        updated_at=updated_at or created_at,
        closed_at=closed_at,
        stages_completed=stages_completed,
        actual_cost=actual_cost,
    )


def created_event(
    job: Job, workflow_key: str, workflow_version: int, *, actor: str, stage: str | None = None
) -> NewEvent:
    """The `created` event of a job row (`stage`: where it started, when it has moved on since)."""
    quote = Money.in_minor_units(job.quote_amount, job.currency)
    payload: CreatedPayload = {
        "reference": job.reference,
        "workflow": {"key": workflow_key, "version": workflow_version},
        "stage": stage or job.stage_key,
        "quote": {"amount": str(quote.amount), "currency": quote.currency},
        "promised_on": job.promised_on.isoformat() if job.promised_on else None,
    }
    return NewEvent(job.id, 1, EventType.CREATED, payload, actor, job.created_at)


def transition_payload(
    before: JobPosition, after: JobPosition, reason: str | None, *, forced: bool = False
) -> TransitionPayload:
    return {
        "from": {"status": before.status.value, "stage": before.stage_key},
        "to": {"status": after.status.value, "stage": after.stage_key},
        "reason": reason,
        "forced": forced,
    }


@dataclass
class JobService:
    """Job use cases; `after_change` runs in the same transaction as every change."""

    versions: WorkflowVersions
    snapshots: JobSnapshots
    after_change: list[AfterChange] = field(default_factory=list)
    listeners: Listeners = field(default_factory=Listeners)
    deliveries_queued: DeliveriesQueued = field(default_factory=DeliveriesQueued)

    @asynccontextmanager
    async def _change(self) -> AsyncIterator[None]:
        """One change's transaction; once it has committed, the dispatcher looks for what it queued."""
        async with in_transaction():
            yield
        self.deliveries_queued.fire()

    async def _finish(self, job: Job, events: list[NewEvent], now: datetime) -> None:
        """Run the hooks and record the change's events with theirs, in the change's transaction."""
        for hook in self.after_change:
            events.extend(await hook(job.id, now))
        await record_events(events, self.listeners)
        if self.after_change:
            await job.refresh_from_db()

    async def create(self, new: NewJob, *, actor: str, now: datetime) -> JobSnapshot:
        title = _title(new.title)
        if new.reference is not None and not REFERENCE.fullmatch(new.reference):
            raise InvalidInput("reference", "use letters, digits and . _ / - (at most 64)")
        async with self._change():
            workflow = await Workflow.get_or_none(key=new.workflow_key, is_current=True)
            if workflow is None:
                raise Conflict(f"no workflow has the key {new.workflow_key!r}", code="unknown_workflow")
            if workflow.archived:
                raise Conflict(f"workflow {new.workflow_key!r} is archived", code="archived")
            if not await Account.exists(id=new.account_id):
                raise Conflict(f"account {new.account_id} does not exist", code="unknown_account")
            if new.quote.currency != workflow.currency:
                raise Conflict(
                    f"workflow {workflow.key!r} is priced in {workflow.currency}", code="currency_mismatch"
                )
            definition = (await self.versions.get(workflow.id)).definition
            try:
                position = rules.start(definition, new.start_stage)
            except Conflict:
                raise Conflict(
                    f"the workflow has no stage {new.start_stage!r}", code="unknown_stage"
                ) from None
            reference = new.reference or _generated_reference(now)
            if await Job.exists(reference=reference):
                raise Conflict(
                    f"a job with reference {reference!r} exists already", code="duplicate_reference"
                )
            job = new_job_row(
                reference=reference,
                account_id=new.account_id,
                workflow_id=workflow.id,
                title=title,
                quote=new.quote,
                promised_on=None if new.promised_on is None else _promise(new.promised_on, now),
                status=position.status,
                stage_key=position.stage_key,
                created_at=now,
            )
            try:
                await job.save()
            except IntegrityError:
                raise Conflict(
                    f"a job with reference {reference!r} exists already", code="duplicate_reference"
                ) from None
            await StageVisit.create(job=job, stage_key=position.stage_key, entered_at=now, entered_by=actor)
            await self._finish(job, [created_event(job, workflow.key, workflow.version, actor=actor)], now)
        return await self.snapshots.of(job)

    async def update(
        self, job_id: int, expected: ExpectedVersion, changes: JobChanges, *, actor: str, now: datetime
    ) -> JobSnapshot:
        async with self._change():
            job = await get_job(job_id)
            expected.check(job.version)
            updates: dict[str, Any] = {}
            if changes.title is not None:
                updates["title"] = _title(changes.title)
                updates["title_search"] = search_text(job.reference, updates["title"])
            if changes.quote is not None:
                if changes.quote.currency != job.currency:
                    raise Conflict(f"the job is priced in {job.currency}", code="currency_mismatch")
                updates["quote_amount"] = changes.quote.amount
            if changes.clear_promised_on:
                updates["promised_on"] = None
            elif changes.promised_on is not None:
                updates["promised_on"] = _promise(changes.promised_on, now)
            if changes.account_id is not None:
                if not await Account.exists(id=changes.account_id):
                    raise Conflict(f"account {changes.account_id} does not exist", code="unknown_account")
                updates["account_id"] = changes.account_id
            updates = {name: value for name, value in updates.items() if getattr(job, name) != value}
            if not updates:
                return await self.snapshots.of(job)  # nothing to change: no new version, no event
            data = {name: _jsonable(value) for name, value in updates.items() if name != "title_search"}
            job, event = await _commit(job, updates, EventType.UPDATED, data, actor=actor, now=now)
            await self._finish(job, [event], now)
        return await self.snapshots.of(job)

    async def delete(
        self, job_id: int, expected: ExpectedVersion, *, reason: str, actor: str, now: datetime
    ) -> None:
        """Delete a closed job and its history for good, leaving an audit entry (open jobs are cancelled)."""
        text = reason.strip()
        if not text or len(text) > rules.MAX_REASON_LENGTH:
            raise InvalidInput("reason", f"must be 1 to {rules.MAX_REASON_LENGTH} characters")
        async with in_transaction():
            job = await get_job(job_id)
            expected.check(job.version)
            if job.status not in {JobStatus.COMPLETED, JobStatus.CANCELLED}:
                raise Conflict(
                    f"the job is {job.status}: only a completed or cancelled job may be deleted",
                    code="job_not_closed",
                )
            # The row count may include cascaded rows on SQLite, so test for none rather than one.
            if not await Job.filter(id=job.id, version=job.version).delete():
                raise StaleVersion(await _current_version(job.id), from_header=expected.from_header)
            await audit.record(
                AuditAction.JOB_DELETED,
                subject=job.reference,
                reason=text,
                detail={
                    "job_id": job.id,
                    "status": job.status,
                    "account_id": job.account_id,
                    "title": job.title,
                    "created_at": job.created_at.isoformat(),
                    "closed_at": job.closed_at.isoformat() if job.closed_at else None,
                },
                actor=actor,
                now=now,
            )

    async def act(
        self,
        job_id: int,
        expected: ExpectedVersion,
        kind: TransitionKind,
        *,
        actor: str,
        now: datetime,
        stage: str | None = None,
        reason: str | None = None,
        force: bool = False,
    ) -> JobSnapshot:
        async with self._change():
            job = await get_job(job_id)
            expected.check(job.version)
            workflow = await self.versions.get(job.workflow_id)
            position = JobPosition(JobStatus(job.status), job.stage_key)
            transition = _transition(
                kind, position, workflow.definition, stage=stage, reason=reason, force=force
            )
            updates: dict[str, Any] = {
                "status": transition.after.status.value,
                "stage_key": transition.after.stage_key,
                **_hold_clock(job, transition, workflow.calendar, now),
            }
            if transition.after.status in {JobStatus.COMPLETED, JobStatus.CANCELLED}:
                updates["closed_at"] = now
            elif transition.kind is TransitionKind.REOPEN:
                updates["closed_at"] = None
            if transition.opens_visit:
                updates["stage_entered_at"] = now
            data = transition_payload(
                position,
                transition.after,
                transition.reason,
                forced=force and kind is TransitionKind.COMPLETE,
            )
            held_in_visit = updates.get("stage_held_seconds", job.stage_held_seconds)
            if transition.closes_visit:
                updates["stages_completed"] = job.stages_completed + 1
            if transition.opens_visit:
                updates["stage_held_seconds"] = 0.0
            job, event = await _commit(
                job, updates, EventType.of_transition(kind), data, actor=actor, now=now
            )
            if transition.closes_visit:
                await StageVisit.filter(job_id=job.id, left_at=None).update(
                    left_at=now, left_by=actor, held_seconds=held_in_visit
                )
            if transition.opens_visit:
                await StageVisit.create(
                    job_id=job.id, stage_key=transition.after.stage_key, entered_at=now, entered_by=actor
                )
            await self._finish(job, [event], now)
        return await self.snapshots.of(job)

    async def add_cost(
        self,
        job_id: int,
        expected: ExpectedVersion,
        *,
        kind: str,
        amount: Decimal | str,
        currency: str | None,
        note: str,
        stage: str | None,
        actor: str,
        now: datetime,
    ) -> tuple[JobSnapshot, CostItem]:
        try:
            cost_kind = CostKind(kind)
        except ValueError:
            raise InvalidInput("kind", "must be labour or material") from None
        if len(note) > 1000:
            raise InvalidInput("note", "must be at most 1000 characters")
        async with self._change():
            job = await get_job(job_id)
            expected.check(job.version)
            if currency is not None and currency != job.currency:
                raise Conflict(f"the job is priced in {job.currency}", code="currency_mismatch")
            if job.status in {JobStatus.COMPLETED, JobStatus.CANCELLED}:
                raise Conflict(f"the job is {job.status}: it takes no more costs", code="job_closed")
            value = parse_amount(amount, job.currency, field="amount")
            if job.actual_cost + value > LARGEST:
                raise InvalidInput(
                    "amount", f"would bring the job's costs past {LARGEST}, the most tracker keeps"
                )
            stage_key = stage or job.stage_key
            definition = (await self.versions.get(job.workflow_id)).definition
            if stage_key not in {s.key for s in definition.stages}:
                raise Conflict(f"the job's workflow has no stage {stage_key!r}", code="unknown_stage")
            # A cost belongs to work done: the current stage or one the job has been through.
            if stage_key != job.stage_key and not await StageVisit.exists(job_id=job.id, stage_key=stage_key):
                raise InvalidInput(
                    "stage", f"the job has not reached stage {stage_key!r}: costs go on a stage it visited"
                )
            payload: CostAddedPayload = {
                "kind": cost_kind.value,
                "amount": str(value),
                "currency": job.currency,
                "stage": stage_key,
                "note": note,
            }
            job, event = await _commit(
                job,
                {"actual_cost": job.actual_cost + value},
                EventType.COST_ADDED,
                payload,
                actor=actor,
                now=now,
            )
            entry = await CostEntry.create(
                job_id=job.id,
                kind=cost_kind.value,
                amount=value,
                currency=job.currency,
                stage_key=stage_key,
                note=note,
                created_at=now,
                created_by=actor,
            )
            await self._finish(job, [event], now)
        return await self.snapshots.of(job), cost_item(entry)

    async def add_note(
        self, job_id: int, expected: ExpectedVersion, *, visibility: str, body: str, actor: str, now: datetime
    ) -> tuple[JobSnapshot, NoteItem]:
        try:
            note_visibility = NoteVisibility(visibility)
        except ValueError:
            raise InvalidInput("visibility", "must be public or internal") from None
        text = body.strip()
        if not text or len(text) > MAX_TEXT:
            raise InvalidInput("body", f"must be 1 to {MAX_TEXT} characters")
        async with self._change():
            job = await get_job(job_id)
            expected.check(job.version)
            payload: NoteAddedPayload = {"visibility": note_visibility.value, "body": text}
            job, event = await _commit(job, {}, EventType.NOTE_ADDED, payload, actor=actor, now=now)
            note = await Note.create(
                job_id=job.id, visibility=note_visibility.value, body=text, created_at=now, created_by=actor
            )
            await self._finish(job, [event], now)
        return await self.snapshots.of(job), note_item(note)

    async def get(self, job_id: int) -> JobSnapshot:
        return await self.snapshots.of(await get_job(job_id))

    async def list_page(
        self, filters: JobFilters, *, sort: Sort, limit: int, cursor: str | None
    ) -> Page[JobSnapshot]:
        rows = await _list_rows(filters, sort=sort, limit=limit, cursor=cursor)
        return Page(await self.snapshots.of_many(rows.items), rows.next_cursor)


def _hold_clock(
    job: Job, transition: Transition, calendar: BusinessCalendar, now: datetime
) -> dict[str, Any]:
    """Stop the estimate clock on hold; on leaving hold, add the working time held to the stage visit."""
    if transition.after.status is JobStatus.ON_HOLD:
        return {"held_since": now}
    if job.held_since is None:
        return {}
    held = calendar.working_seconds_between(job.held_since, now)
    return {"held_since": None, "stage_held_seconds": job.stage_held_seconds + held}


def _transition(
    kind: TransitionKind,
    position: JobPosition,
    definition: rules.WorkflowDefinition,
    *,
    stage: str | None,
    reason: str | None,
    force: bool,
) -> Transition:
    match kind:
        case TransitionKind.ADVANCE:
            return rules.advance(position, definition)
        case TransitionKind.MOVE:
            if stage is None:
                raise InvalidInput("stage", "name the stage to move to")
            return rules.move_to(position, definition, stage, reason)
        case TransitionKind.HOLD:
            return rules.hold(position, reason)
        case TransitionKind.RESUME:
            return rules.resume(position, reason)
        case TransitionKind.COMPLETE:
            return rules.complete(position, definition, force=force, reason=reason)
        case TransitionKind.CANCEL:
            return rules.cancel(position, reason)
        case TransitionKind.REOPEN:
            return rules.reopen(position, reason)


async def _current_version(job_id: int) -> int:
    job = await Job.get_or_none(id=job_id).only("id", "version")
    if job is None:
        raise NotFound("job", job_id)
    return job.version


async def _commit(
    job: Job,
    updates: dict[str, Any],
    event_type: EventType,
    data: Mapping[str, object],
    *,
    actor: str,
    now: datetime,
) -> tuple[Job, NewEvent]:
    """Write `updates` only if nobody changed the job since it was read; return the event to record."""
    new_version = job.version + 1
    changed = await Job.filter(id=job.id, version=job.version).update(
        **updates, version=new_version, updated_at=now
    )
    if changed != 1:
        raise StaleVersion(await _current_version(job.id), from_header=False)
    for name, value in updates.items():
        setattr(job, name, value)
    job.version, job.updated_at = new_version, now
    return job, NewEvent(job.id, new_version, event_type, data, actor, now)


async def get_job(job_id: int) -> Job:
    job = await Job.get_or_none(id=job_id)
    if job is None:
        raise NotFound("job", job_id)
    return job


async def get_job_by_token(token: str) -> Job:
    job = await Job.get_or_none(public_token=token) if fits_column(Job, "public_token", token) else None
    if job is None:
        raise NotFound("job", "for that link")
    return job


PROMISE_HORIZON = timedelta(days=3653)
"""A promised day lies within ten years of today, either way: further off it is no promise, and the
working calendars would have to walk every day in between."""


def _promise(day: date, now: datetime) -> date:
    today = now.date()
    if not today - PROMISE_HORIZON <= day <= today + PROMISE_HORIZON:
        raise InvalidInput("promised_on", "must lie within ten years of today")
    return day


def _title(raw: str) -> str:
    title = raw.strip()
    if not title or len(title) > 300:
        raise InvalidInput("title", "must be 1 to 300 characters")
    return title


def _generated_reference(now: datetime) -> str:
    suffix = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(6))
    return f"J-{now:%Y}-{suffix}"


def _jsonable(value: object) -> object:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


async def _list_rows(filters: JobFilters, *, sort: Sort, limit: int, cursor: str | None) -> Page[Job]:
    query = Job.all()
    if filters.status:
        query = query.filter(status__in=[s.value for s in filters.status])
    if filters.stage is not None:
        query = query.filter(stage_key=filters.stage)
    if filters.account_id is not None:
        query = query.filter(account_id=filters.account_id)
    if filters.workflow_key is not None:
        query = query.filter(workflow__key=filters.workflow_key)
    if filters.promised_before is not None:
        query = query.filter(promised_on__lt=filters.promised_before)
    if filters.updated_since is not None:
        query = query.filter(updated_at__gte=filters.updated_since)
    if filters.text:
        query = query.filter(title_search__contains=filters.text.strip().lower())
    return await paginate(query, sort, limit=limit, cursor=cursor)


def cost_item(entry: CostEntry) -> CostItem:
    return CostItem(
        id=entry.id,
        kind=entry.kind,
        amount=Money.in_minor_units(entry.amount, entry.currency),
        stage=entry.stage_key,
        note=entry.note,
        created_at=entry.created_at,
        created_by=entry.created_by,
    )


def note_item(note: Note) -> NoteItem:
    return NoteItem(
        id=note.id,
        visibility=note.visibility,
        body=note.body,
        created_at=note.created_at,
        created_by=note.created_by,
    )


async def job_history(job_id: int, *, after: int | None, limit: int) -> list[EventItem]:
    await get_job(job_id)
    query = JobEvent.filter(job_id=job_id)
    if after is not None:
        query = query.filter(id__gt=after)
    return [
        EventItem(
            id=event.id,
            type=event.type,
            job_version=event.job_version,
            actor=event.actor,
            occurred_at=event.occurred_at,
            data=dict(event.data),
        )
        for event in await query.order_by("id").limit(limit)
    ]


async def job_visits(job_id: int) -> list[VisitItem]:
    await get_job(job_id)
    return [
        VisitItem(
            stage=visit.stage_key,
            entered_at=visit.entered_at,
            left_at=visit.left_at,
            entered_by=visit.entered_by,
            left_by=visit.left_by,
        )
        for visit in await StageVisit.filter(job_id=job_id).order_by("id")
    ]


async def job_costs(job_id: int) -> list[CostItem]:
    await get_job(job_id)
    return [cost_item(entry) for entry in await CostEntry.filter(job_id=job_id).order_by("id")]


async def job_notes(job_id: int) -> list[NoteItem]:
    await get_job(job_id)
    return [note_item(note) for note in await Note.filter(job_id=job_id).order_by("id")]


async def job_estimates(job_id: int, *, limit: int) -> list[EstimateItem]:
    """How the job's estimate moved, newest first."""
    job = await get_job(job_id)
    rows = await JobEstimate.filter(job_id=job_id).order_by("-id").limit(limit)
    return [
        EstimateItem(
            computed_at=row.computed_at,
            completion_p50=row.eta_p50,
            completion_p90=row.eta_p90,
            cost_p50=Money.in_minor_units(row.cost_p50, job.currency),
            cost_p90=Money.in_minor_units(row.cost_p90, job.currency),
            basis=row.basis,
            overdue=row.overdue,
        )
        for row in rows
    ]
