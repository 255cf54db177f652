"""Map the services' read models to wire schemas: a field-by-field mapping, no rule and no query."""

from __future__ import annotations

import math
from dataclasses import asdict
from decimal import Decimal
from typing import TYPE_CHECKING

from tracker.domain.money import Money
from tracker.services.accounts import AccountKind
from tracker.services.estimates import Explanation
from tracker.services.jobs import (
    CostItem,
    CostKind,
    EstimateItem,
    EventItem,
    NoteItem,
    NoteVisibility,
    VisitItem,
)
from tracker.services.keys import Role
from tracker.services.snapshots import EstimateSnapshot, JobSnapshot
from tracker.services.status_pages import StatusView
from tracker.services.webhooks import AttemptItem, EndpointItem, IssuedSecret
from tracker.services.workflows import StoredWorkflow
from tracker.web import schemas as s

if TYPE_CHECKING:  # accounts, contacts, keys and audit entries still come as rows of their services
    from tracker.db.models import Account, ApiKey, AuditEntry, Contact


def money(amount: Decimal, currency: str) -> s.MoneyOut:
    """Amounts are stored with four places; show them with the currency's own minor units."""
    return money_out(Money.in_minor_units(amount, currency))


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
        version=contact.version,
    )


def account_out(account: Account, contacts: list[Contact]) -> s.AccountOut:
    return s.AccountOut(
        id=account.id,
        kind=AccountKind(account.kind),
        name=account.name,
        contacts=[contact_out(c) for c in sorted(contacts, key=lambda c: c.id)],
        created_at=account.created_at,
        updated_at=account.updated_at,
        version=account.version,
    )


def money_out(value: Money) -> s.MoneyOut:
    return s.MoneyOut(amount=str(value.amount), currency=value.currency)


def estimate_out(estimate: EstimateSnapshot | None) -> s.EstimateOut | None:
    if estimate is None:
        return None
    return s.EstimateOut(
        completion=s.RangeOut(p50=estimate.completion_p50, p90=estimate.completion_p90),
        cost=s.MoneyRangeOut(p50=money_out(estimate.cost_p50), p90=money_out(estimate.cost_p90)),
        basis=estimate.basis,
        overdue=estimate.overdue,
        at_risk=estimate.at_risk,
        over_budget=estimate.over_budget,
        stuck=estimate.stuck,
        computed_at=estimate.computed_at,
    )


def job_out(job: JobSnapshot) -> s.JobOut:
    return s.JobOut(
        id=job.id,
        reference=job.reference,
        account_id=job.account_id,
        workflow=s.WorkflowRef(key=job.workflow_key, version=job.workflow_version),
        title=job.title,
        quote=money_out(job.quote),
        promised_on=job.promised_on,
        status=job.status,
        stage=s.StageRef(key=job.stage.key, label=job.stage.label, entered_at=job.stage.entered_at),
        version=job.version,
        status_page_url=job.public_url,
        created_at=job.created_at,
        updated_at=job.updated_at,
        closed_at=job.closed_at,
        actual_cost=money_out(job.actual_cost),
        estimate=estimate_out(job.estimate),
    )


def cost_out(entry: CostItem) -> s.CostOut:
    return s.CostOut(
        id=entry.id,
        kind=CostKind(entry.kind),
        amount=money_out(entry.amount),
        stage=entry.stage,
        note=entry.note,
        created_at=entry.created_at,
        created_by=entry.created_by,
    )


def note_out(note: NoteItem) -> s.NoteOut:
    return s.NoteOut(
        id=note.id,
        visibility=NoteVisibility(note.visibility),
        body=note.body,
        created_at=note.created_at,
        created_by=note.created_by,
    )


def event_out(event: EventItem) -> s.EventOut:
    return s.EventOut(
        id=event.id,
        type=event.type,
        job_version=event.job_version,
        actor=event.actor,
        occurred_at=event.occurred_at,
        data=event.data,
    )


def visit_out(visit: VisitItem) -> s.VisitOut:
    return s.VisitOut(
        stage=visit.stage,
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


def estimate_history_out(item: EstimateItem) -> s.EstimateHistoryOut:
    return s.EstimateHistoryOut(
        computed_at=item.computed_at,
        completion=s.RangeOut(p50=item.completion_p50, p90=item.completion_p90),
        cost=s.MoneyRangeOut(p50=money_out(item.cost_p50), p90=money_out(item.cost_p90)),
        basis=item.basis,
        overdue=item.overdue,
    )


def _hours(seconds: float) -> float:
    return round(seconds / 3600, 2)


def _measured(value: float) -> float | None:
    """A figure that could not be measured (NaN) is null."""
    return value if math.isfinite(value) else None


def explanation_out(explained: Explanation, job: JobSnapshot) -> s.EstimateExplanationOut:
    remaining_in_stage = explained.current_stage_remaining_s
    return s.EstimateExplanationOut(
        estimate=estimate_out(job.estimate),
        current_stage=explained.current_stage,
        working_hours_in_stage=_hours(explained.elapsed_s),
        current_stage_remaining_working_hours=None
        if remaining_in_stage is None
        else _hours(remaining_in_stage),
        queue_wait_working_hours=_hours(explained.queue_wait_s),
        remaining_working_hours=s.HoursRangeOut(
            p50=_hours(explained.remaining_p50_s), p90=_hours(explained.remaining_p90_s)
        ),
        stages_ahead=[
            s.StageAheadOut(
                stage=stage.key,
                label=stage.label,
                current=stage.current,
                probability=round(stage.probability, 3),
                expected_visits=round(stage.expected_visits, 3),
                expected_working_hours=_hours(stage.expected_duration_s),
                samples=stage.samples,
                basis=stage.basis,
            )
            for stage in explained.stages_ahead
        ],
        non_working_days=explained.non_working_days,
        calendar_time_zone=explained.time_zone,
        basis=explained.basis,
        samples=explained.samples,
        p90_calibration=s.CalibrationOut(
            factor=explained.calibration.p90_factor,
            coverage=_measured(explained.calibration.coverage),
            samples=explained.calibration.samples,
            source=explained.calibration.source,
        ),
        estimator=s.EstimatorOut(
            chosen=explained.selection.estimator,
            reason=explained.selection.reason,
            why=explained.selection.why,
            outcomes=explained.selection.outcomes,
        ),
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


def public_status_out(view: StatusView) -> s.PublicStatusOut:
    job, estimate = view.snapshot, view.snapshot.estimate
    return s.PublicStatusOut(
        reference=job.reference,
        title=job.title,
        status=job.status,
        language=view.audience.locale,
        stage=view.stage_label,
        steps=[s.StepOut(key=step.key, label=step.label, state=step.state) for step in view.steps],
        estimate=None
        if estimate is None or view.confidence is None
        else s.PublicEstimateOut(
            completion=s.RangeOut(p50=estimate.completion_p50, p90=estimate.completion_p90),
            confidence=view.confidence,
            overdue=estimate.overdue,
            projected_cost=money_out(estimate.cost_p50),
        ),
        quote=money_out(job.quote),
        actual_cost=money_out(job.actual_cost),
        promised_on=job.promised_on,
        on_hold_reason=view.hold_reason,
        notes=[s.PublicNoteOut(body=note.body, created_at=note.created_at) for note in view.notes],
        version=job.version,
        updated_at=job.updated_at,
        closed_at=job.closed_at,
    )


def webhook_out(endpoint: EndpointItem) -> s.WebhookOut:
    return s.WebhookOut(**asdict(endpoint))


def webhook_with_secret(issued: IssuedSecret) -> s.WebhookWithSecret:
    return s.WebhookWithSecret(**asdict(issued.endpoint), secret=issued.secret)


def attempt_out(attempt: AttemptItem) -> s.AttemptOut:
    return s.AttemptOut(**asdict(attempt))
