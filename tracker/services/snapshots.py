"""The job snapshot: what a job looks like to the people it concerns, built in one place.

API responses show it now; webhook payloads, emails and the status page show it next, so the four never
disagree. Its flags read the rules of `tracker.estimates` (at risk, overdue: `tracker.estimates.changes`;
over budget: `tracker.estimates.cost`), the same ones the estimator's events read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from tracker.db.models import Job
from tracker.domain.money import Money
from tracker.domain.workflow import JobStatus
from tracker.estimates.calendar import BusinessCalendar
from tracker.estimates.changes import (
    ChangeThresholds,
    is_overdue,
    p90_at_risk,
    promise_deadline,
    stage_visit_id,
    was_found_stuck,
)
from tracker.estimates.cost import is_over_budget
from tracker.services.workflows import WorkflowVersions


@dataclass(frozen=True)
class StageSnapshot:
    key: str
    label: str
    """In the snapshot's language."""
    entered_at: datetime


@dataclass(frozen=True)
class EstimateSnapshot:
    completion_p50: datetime
    completion_p90: datetime
    cost_p50: Money
    cost_p90: Money
    basis: str
    overdue: bool
    at_risk: bool
    over_budget: bool
    stuck: bool
    computed_at: datetime


class FlagFields(NamedTuple):
    """The columns of an estimated job that its flags are read from, in :data:`FLAG_COLUMNS` order."""

    id: int
    promised_on: date | None
    eta_p90: datetime
    announced: dict[str, Any] | None
    estimated_at: datetime
    cost_p50: Decimal
    quote_amount: Decimal
    stages_completed: int


FLAG_COLUMNS = FlagFields._fields


@dataclass(frozen=True)
class Flags:
    overdue: bool
    at_risk: bool
    over_budget: bool
    stuck: bool


@dataclass(frozen=True)
class JobSnapshot:
    id: int
    reference: str
    account_id: int
    workflow_key: str
    workflow_version: int
    title: str
    quote: Money
    promised_on: date | None
    status: JobStatus
    stage: StageSnapshot
    version: int
    public_url: str
    """The customer's status page of the job."""
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    actual_cost: Money
    estimate: EstimateSnapshot | None
    """None once the job is closed."""
    locale: str


@dataclass
class JobSnapshots:
    """Builds job snapshots; one per app, from `build_services`."""

    versions: WorkflowVersions
    public_base_url: str
    over_budget_tolerance: Decimal
    """How far above the quote the P50 cost may go before the job is over budget (0.05: 5 %)."""
    thresholds: ChangeThresholds = field(default_factory=ChangeThresholds)

    def public_url(self, public_token: str) -> str:
        return f"{self.public_base_url.rstrip('/')}/status/{public_token}"

    async def of(self, job: Job, *, locale: str = "en") -> JobSnapshot:
        workflow = await self.versions.get(job.workflow_id)
        status = JobStatus(job.status)
        return JobSnapshot(
            id=job.id,
            reference=job.reference,
            account_id=job.account_id,
            workflow_key=workflow.key,
            workflow_version=workflow.version,
            title=job.title,
            quote=Money.in_minor_units(job.quote_amount, job.currency),
            promised_on=job.promised_on,
            status=status,
            stage=StageSnapshot(
                key=job.stage_key,
                label=workflow.definition.stage(job.stage_key).label(locale),
                entered_at=job.stage_entered_at,
            ),
            version=job.version,
            public_url=self.public_url(job.public_token),
            created_at=job.created_at,
            updated_at=job.updated_at,
            closed_at=job.closed_at,
            actual_cost=Money.in_minor_units(job.actual_cost, job.currency),
            estimate=self._estimate(job, workflow.calendar) if status.is_open else None,
            locale=locale,
        )

    async def of_many(self, jobs: list[Job], *, locale: str = "en") -> list[JobSnapshot]:
        return [await self.of(job, locale=locale) for job in jobs]

    def flags(self, job: FlagFields, calendar: BusinessCalendar) -> Flags:
        """The flags of an estimated job, from its stored columns alone (so the board can read them for
        every open job without building their snapshots)."""
        return Flags(
            overdue=is_overdue(job.announced, job.estimated_at),
            at_risk=p90_at_risk(
                None if job.promised_on is None else promise_deadline(job.promised_on, calendar),
                job.eta_p90,
                calendar=calendar,
                thresholds=self.thresholds,
            ),
            over_budget=is_over_budget(job.cost_p50, job.quote_amount, self.over_budget_tolerance),
            stuck=was_found_stuck(job.announced, stage_visit_id(job.id, job.stages_completed)),
        )

    def _estimate(self, job: Job, calendar: BusinessCalendar) -> EstimateSnapshot | None:
        if job.eta_p50 is None or job.eta_p90 is None or job.cost_p50 is None or job.cost_p90 is None:
            return None
        assert job.estimated_at is not None
        flags = self.flags(
            FlagFields(
                job.id,
                job.promised_on,
                job.eta_p90,
                job.announced,
                job.estimated_at,
                job.cost_p50,
                job.quote_amount,
                job.stages_completed,
            ),
            calendar,
        )
        return EstimateSnapshot(
            completion_p50=job.eta_p50,
            completion_p90=job.eta_p90,
            cost_p50=Money.in_minor_units(job.cost_p50, job.currency),
            cost_p90=Money.in_minor_units(job.cost_p90, job.currency),
            basis=job.estimate_basis or "planned",
            overdue=flags.overdue,
            at_risk=flags.at_risk,
            over_budget=flags.over_budget,
            stuck=flags.stuck,
            computed_at=job.estimated_at,
        )
