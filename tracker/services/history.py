"""Gather a workflow's past and running jobs as stage-visit histories, in working time.

Finished visits are durations; visits still running are censored observations (their working time so far).
Time on hold is not part of a visit's duration. Cancelled jobs are left out: they did not finish, and no
remaining time can be learned from them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tracker.db.models import CostEntry, Job, StageVisit
from tracker.domain.workflow import JobStatus
from tracker.estimates.cost import CostHistory, stage_shares
from tracker.estimates.history import CaseHistory, PlannedStage, VisitRecord
from tracker.services.keys import person_of
from tracker.services.workflows import WorkflowVersion, WorkflowVersions

HOUR = 3600.0


@dataclass(frozen=True)
class WorkflowHistory:
    cases: list[CaseHistory]
    cost_by_stage: dict[str, CostHistory]
    """For each stage: what finished jobs spent from their entry into it on, against their plan."""


def planned_stages(workflow: WorkflowVersion) -> list[PlannedStage]:
    return [
        PlannedStage(
            stage.key,
            float(stage.duration.optimistic) * HOUR,
            float(stage.duration.most_likely) * HOUR,
            float(stage.duration.pessimistic) * HOUR,
        )
        for stage in workflow.definition.stages
    ]


LEARNED_FROM = (JobStatus.OPEN, JobStatus.ON_HOLD, JobStatus.COMPLETED)
"""Every job but the cancelled ones."""


async def gather_history(
    workflow_key: str, versions: WorkflowVersions, *, now: datetime, limit: int = 20_000
) -> WorkflowHistory:
    """The newest `limit` non-cancelled jobs of a workflow (all its versions), as case histories."""
    jobs = await (
        Job.filter(workflow__key=workflow_key, status__in=[status.value for status in LEARNED_FROM])
        .order_by("-created_at")
        .limit(limit)
        .values(
            "id", "workflow_id", "status", "stage_held_seconds", "held_since", "actual_cost", "quote_amount"
        )
    )
    if not jobs:
        return WorkflowHistory([], {})
    by_id = {job["id"]: job for job in jobs}
    visits: dict[int, list[StageVisit]] = defaultdict(list)
    for visit in await StageVisit.filter(job_id__in=list(by_id)).order_by("job_id", "entered_at", "id"):
        visits[visit.job_id].append(visit)
    costs: dict[int, list[CostEntry]] = defaultdict(list)
    for entry in await CostEntry.filter(job_id__in=list(by_id)).order_by("created_at", "id"):
        costs[entry.job_id].append(entry)

    cases: list[CaseHistory] = []
    ratios: dict[str, list[float]] = defaultdict(list)
    overruns: dict[str, list[Decimal]] = defaultdict(list)
    plans: dict[int, dict[str, Decimal]] = {}
    for job_id, job in by_id.items():
        version = await versions.get(job["workflow_id"])
        calendar = version.calendar
        records = []
        for visit in visits[job_id]:
            if visit.left_at is not None:
                worked = (
                    calendar.working_seconds_between(visit.entered_at, visit.left_at) - visit.held_seconds
                )
            else:
                until = job["held_since"] or now
                worked = calendar.working_seconds_between(visit.entered_at, until) - job["stage_held_seconds"]
            records.append(
                VisitRecord(
                    str(job_id),
                    visit.stage_key,
                    visit.entered_at,
                    max(worked, 0.0),
                    visit.left_at is not None,
                    None if visit.left_by is None else person_of(visit.left_by),
                )
            )
        finished = job["status"] == JobStatus.COMPLETED.value
        cases.append(CaseHistory(str(job_id), tuple(records), finished))
        if finished:
            # From each stage's entry on: what the job spent against what its budget had left there.
            final, budget = Decimal(job["actual_cost"]), Decimal(job["quote_amount"])
            if job["workflow_id"] not in plans:
                plans[job["workflow_id"]] = _share_from(version)
            share_from = plans[job["workflow_id"]]
            for visit in visits[job_id]:
                if visit.stage_key not in share_from:
                    continue
                so_far = sum((e.amount for e in costs[job_id] if _before(e, visit)), Decimal(0))
                planned = budget * share_from[visit.stage_key]
                spent = final - so_far
                if planned > 0:
                    ratios[visit.stage_key].append(float(spent / planned))
                overruns[visit.stage_key].append(spent - planned)
    cost_by_stage = {
        key: CostHistory(ratios=tuple(ratios[key]), overruns=tuple(overruns[key])) for key in overruns
    }
    return WorkflowHistory(cases, cost_by_stage)


def _before(entry: CostEntry, visit: StageVisit) -> bool:
    """The cost was recorded before the visit began (at the same instant: in another stage)."""
    if entry.created_at == visit.entered_at:
        return entry.stage_key != visit.stage_key
    return entry.created_at < visit.entered_at


def _share_from(version: WorkflowVersion) -> dict[str, Decimal]:
    """For each stage: the share of the budget planned for it and the stages after it."""
    stages = version.definition.stages
    share, after = stage_shares([stage.planned_cost for stage in stages])
    return {stage.key: Decimal(repr(float(share[i] + after[i]))) for i, stage in enumerate(stages)}
