"""Map models to wire schemas."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal

from babel.numbers import get_currency_precision

from tracker.db.models import (
    Account,
    ApiKey,
    AuditEntry,
    Contact,
    CostEntry,
    Job,
    JobEstimate,
    JobEvent,
    Note,
    StageVisit,
)
from tracker.domain.workflow import JobStatus
from tracker.services.accounts import AccountKind
from tracker.services.estimates import is_overdue
from tracker.services.jobs import CostKind, NoteVisibility
from tracker.services.keys import Role
from tracker.services.workflows import StoredWorkflow, WorkflowVersion, version_of
from tracker.web import schemas as s


def money(amount: Decimal, currency: str) -> s.MoneyOut:
    """Amounts are stored with four places; show them with the currency's own minor units."""
    places = get_currency_precision(currency)
    return s.MoneyOut(amount=str(amount.quantize(Decimal(1).scaleb(-places))), currency=currency)


def workflow_out(stored: StoredWorkflow) -> s.WorkflowOut:
    row = stored.row
    return s.WorkflowOut(
        key=row.key,
        version=row.version,
        name=row.name,
        currency=row.currency,
        current=row.is_current,
        archived=row.archived,
        created_at=row.created_at,
        stages=[
            s.StageOut(
                key=stage.key,
                labels=dict(stage.labels),
                duration_hours=s.DurationOut(
                    optimistic=str(stage.duration.optimistic),
                    most_likely=str(stage.duration.most_likely),
                    pessimistic=str(stage.duration.pessimistic),
                ),
                planned_cost=money(stage.planned_cost, row.currency),
                capacity=stage.capacity,
                customer_visible=stage.customer_visible,
            )
            for stage in stored.definition.stages
        ],
        calendar=None
        if row.calendar is None
        else s.CalendarOut(
            time_zone=row.calendar["time_zone"],
            country=row.calendar["country"],
            subdivision=row.calendar["subdivision"],
            opening_hours=row.calendar["opening_hours"],
            closures=row.calendar["closures"],
        ),
    )


def contact_out(contact: Contact) -> s.ContactOut:
    return s.ContactOut(
        id=contact.id,
        account_id=contact.account_id,
        name=contact.name,
        email=contact.email,
        locale=contact.locale,
        time_zone=contact.time_zone,
        created_at=contact.created_at,
        updated_at=contact.updated_at,
    )


def account_out(account: Account, contacts: list[Contact]) -> s.AccountOut:
    return s.AccountOut(
        id=account.id,
        kind=AccountKind(account.kind),
        name=account.name,
        contacts=[contact_out(c) for c in sorted(contacts, key=lambda c: c.id)],
        created_at=account.created_at,
        updated_at=account.updated_at,
    )


def estimate_out(job: Job, workflow: WorkflowVersion) -> s.EstimateOut | None:
    if job.eta_p50 is None or job.eta_p90 is None or job.cost_p50 is None or job.cost_p90 is None:
        return None
    assert job.estimated_at is not None
    promised_end = (
        None
        if job.promised_on is None
        else datetime.combine(job.promised_on + timedelta(days=1), time(), workflow.calendar.timezone)
    )
    return s.EstimateOut(
        completion=s.RangeOut(p50=job.eta_p50, p90=job.eta_p90),
        cost=s.MoneyRangeOut(p50=money(job.cost_p50, job.currency), p90=money(job.cost_p90, job.currency)),
        basis=job.estimate_basis or "planned",
        overdue=is_overdue(job.announced, job.estimated_at),
        at_risk=promised_end is not None and job.eta_p90 > promised_end,
        over_budget=job.cost_p50 > job.quote_amount,
        computed_at=job.estimated_at,
    )


async def job_out(job: Job, public_base_url: str) -> s.JobOut:
    workflow = await version_of(job.workflow_id)
    stage = workflow.definition.stage(job.stage_key)
    return s.JobOut(
        id=job.id,
        reference=job.reference,
        account_id=job.account_id,
        workflow=s.WorkflowRef(key=workflow.key, version=workflow.version),
        title=job.title,
        quote=money(job.quote_amount, job.currency),
        promised_on=job.promised_on,
        status=JobStatus(job.status),
        stage=s.StageRef(key=job.stage_key, label=stage.label("en"), entered_at=job.stage_entered_at),
        version=job.version,
        status_page_url=f"{public_base_url.rstrip('/')}/status/{job.public_token}",
        created_at=job.created_at,
        updated_at=job.updated_at,
        closed_at=job.closed_at,
        actual_cost=money(job.actual_cost, job.currency),
        estimate=estimate_out(job, workflow) if job.status in {"open", "on_hold"} else None,
    )


def cost_out(entry: CostEntry) -> s.CostOut:
    return s.CostOut(
        id=entry.id,
        kind=CostKind(entry.kind),
        amount=money(entry.amount, entry.currency),
        stage=entry.stage_key,
        note=entry.note,
        created_at=entry.created_at,
        created_by=entry.created_by,
    )


def note_out(note: Note) -> s.NoteOut:
    return s.NoteOut(
        id=note.id,
        visibility=NoteVisibility(note.visibility),
        body=note.body,
        created_at=note.created_at,
        created_by=note.created_by,
    )


def event_out(event: JobEvent) -> s.EventOut:
    return s.EventOut(
        id=event.id,
        type=event.type,
        job_version=event.job_version,
        actor=event.actor,
        occurred_at=event.occurred_at,
        data=dict(event.data),
    )


def visit_out(visit: StageVisit) -> s.VisitOut:
    return s.VisitOut(
        stage=visit.stage_key,
        entered_at=visit.entered_at,
        left_at=visit.left_at,
        entered_by=visit.entered_by,
        left_by=visit.left_by,
    )


def key_out(key: ApiKey) -> s.KeyOut:
    return s.KeyOut(
        id=key.id,
        name=key.name,
        role=Role(key.role),
        prefix=key.prefix,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
    )


def estimate_history_out(row: JobEstimate, currency: str) -> s.EstimateHistoryOut:
    return s.EstimateHistoryOut(
        computed_at=row.computed_at,
        completion=s.RangeOut(p50=row.eta_p50, p90=row.eta_p90),
        cost=s.MoneyRangeOut(p50=money(row.cost_p50, currency), p90=money(row.cost_p90, currency)),
        basis=row.basis,
        overdue=row.overdue,
    )


def audit_entry_out(entry: AuditEntry) -> s.AuditEntryOut:
    return s.AuditEntryOut(
        id=entry.id,
        occurred_at=entry.occurred_at,
        actor=entry.actor,
        action=entry.action,
        subject=entry.subject,
        reason=entry.reason,
        detail=dict(entry.detail),
    )
