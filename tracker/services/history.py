"""Gather a workflow's past and running jobs as stage-visit histories, in working time.

Finished visits are durations; visits still running are censored observations (their working time so far).
Time on hold is not part of a visit's duration. Cancelled jobs are left out: they did not finish, and no
remaining time can be learned from them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np

from tracker.db.models import CostEntry, Job, JobEstimate, StageVisit
from tracker.domain.workflow import JobStatus
from tracker.estimates.cost import CostHistory, stage_shares
from tracker.estimates.history import CaseHistory, PlannedStage, VisitRecord
from tracker.estimates.model import CalibrationEvidence
from tracker.services.keys import person_of
from tracker.services.workflows import WorkflowVersion, WorkflowVersions

HOUR = 3600.0
EVIDENCE = 1000
"""Jobs whose earlier estimates a refit calibrates P90 on (and completed jobs that say how old is old
enough)."""
ROWS_PER_JOB = 5  # kept estimates read per job wanted, to find that many distinct jobs


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


async def estimate_outcomes(
    workflow_key: str, versions: WorkflowVersions, *, now: datetime, size: int = EVIDENCE
) -> CalibrationEvidence | None:
    """What became of a workflow's earlier estimates, to calibrate its P90 on.

    The newest estimate of each of ``size`` jobs made long enough ago for most jobs to have closed
    since (longer ago than four in five of the newest completed jobs took from creation to
    completion): each with the P50 and the P90 before calibration it gave, the working time from it
    to now and, for a completed job, to its completion. Newer ones would be decided mostly by the
    jobs that closed early. One estimate per job: a job running late has its estimate kept at every
    recompute that moves it, and would otherwise outweigh the jobs on time.
    Estimates made from the plan alone (before any fit) and those of cancelled jobs are left out, as
    are those kept before estimates recorded their P90 before calibration. None when none is left.
    """
    spans = await (
        Job.filter(workflow__key=workflow_key, status=JobStatus.COMPLETED.value, closed_at__isnull=False)
        .order_by("-closed_at")
        .limit(size)
        .values_list("created_at", "closed_at")
    )
    if not spans:
        return None
    took = np.array([(closed - created).total_seconds() for created, closed in spans])
    cutoff = now - timedelta(seconds=float(np.quantile(took, 0.8)))
    newest: dict[int, dict[str, Any]] = {}
    for row in (
        await JobEstimate.filter(
            job__workflow__key=workflow_key,
            job__status__in=[status.value for status in LEARNED_FROM],
            computed_at__lte=cutoff,
        )
        .exclude(basis__startswith="planned")
        .order_by("-computed_at", "-id")
        .limit(size * ROWS_PER_JOB)
        .values("job_id", "computed_at", "detail", "job__status", "job__closed_at", "job__workflow_id")
    ):
        if "raw_p90_s" in row["detail"]:
            newest.setdefault(row["job_id"], row)
    rows = list(newest.values())[:size]
    if not rows:
        return None
    at = np.array([row["computed_at"].timestamp() for row in rows])
    over = JobStatus.COMPLETED.value
    completed = np.array([row["job__status"] == over and row["job__closed_at"] is not None for row in rows])
    end = np.array(
        [
            row["job__closed_at"].timestamp() if done else now.timestamp()
            for row, done in zip(rows, completed, strict=True)
        ]
    )
    since, observed = np.zeros(at.size), np.zeros(at.size)
    workflow_ids = np.array([row["job__workflow_id"] for row in rows])
    for workflow_id in np.unique(workflow_ids).tolist():
        calendar = (await versions.get(workflow_id)).calendar
        mine = workflow_ids == workflow_id
        since[mine] = calendar.working_seconds_between_many(at[mine], now.timestamp())
        observed[mine] = calendar.working_seconds_between_many(at[mine], np.maximum(end[mine], at[mine]))
    return CalibrationEvidence(
        raw_p90_s=np.array([float(row["detail"]["raw_p90_s"]) for row in rows]),
        observed_s=observed,
        resolved=completed,
        since_s=since,
        raw_p50_s=np.array([float(row["detail"]["remaining_p50_s"]) for row in rows]),
    )
