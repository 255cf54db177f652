"""The staff dashboard's read side (the board, a job's page) and its one use case of its own: answering a
customer's question, which is a public note through `JobService.add_note` and the question marked answered,
in one transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.functions import Count, Max, Min
from tortoise.transactions import in_transaction

from tracker.db.models import (
    Delivery,
    Job,
    JobEstimate,
    Note,
    Question,
    Suppression,
    SurveyResponse,
    Workflow,
)
from tracker.domain.errors import Conflict, NotFound
from tracker.domain.workflow import OPEN_STATUSES, JobStatus
from tracker.estimates.accuracy import ForecastOutcome, MonthShare, monthly_p90_shares
from tracker.services.jobs import ExpectedVersion, JobService, NoteItem, NoteVisibility
from tracker.services.snapshots import JobSnapshot, JobSnapshots
from tracker.services.workflows import WorkflowVersion

FAILED_DELIVERIES = ("dead", "bounced")
RECENT = 20
"""How many recent failures, suppressions, survey comments the board lists."""
ACCURACY_JOBS = 30
"""The newest completed jobs drawn one by one on the first/last estimate chart."""
ACCURACY_MONTHS = 12


@dataclass(frozen=True)
class StageColumn:
    workflow: str
    key: str
    label: str
    jobs: tuple[JobSnapshot, ...]


@dataclass(frozen=True)
class WaitingQuestion:
    id: int
    job_id: int
    reference: str
    body: str
    asked_at: datetime


@dataclass(frozen=True)
class SurveyComment:
    job_id: int
    reference: str
    score: int
    comment: str
    answered_at: datetime


@dataclass(frozen=True)
class Satisfaction:
    by_score: tuple[int, int, int, int, int]
    """How many responses gave 1, 2, 3, 4 and 5."""
    comments: tuple[SurveyComment, ...]

    @property
    def responses(self) -> int:
        return sum(self.by_score)

    @property
    def average(self) -> float | None:
        if not self.responses:
            return None
        return sum(score * count for score, count in enumerate(self.by_score, start=1)) / self.responses


@dataclass(frozen=True)
class Board:
    columns: tuple[StageColumn, ...]
    at_risk: tuple[JobSnapshot, ...]
    over_budget: tuple[JobSnapshot, ...]
    stuck: tuple[JobSnapshot, ...]
    overdue: tuple[JobSnapshot, ...]
    questions: tuple[WaitingQuestion, ...]
    failures: tuple[Delivery, ...]
    suppressions: tuple[Suppression, ...]
    satisfaction: Satisfaction
    accuracy: Accuracy
    time_zone: str
    """What the board's times are shown in (see `Settings.staff_time_zone`)."""


async def board(snapshots: JobSnapshots, *, now: datetime, locale: str, staff_time_zone: str = "") -> Board:
    open_jobs = await Job.filter(status__in=[s.value for s in OPEN_STATUSES]).order_by(
        "stage_entered_at", "id"
    )
    jobs = await snapshots.of_many(open_jobs, locale=locale)
    estimated = [(job, job.estimate) for job in jobs if job.estimate is not None]
    workflows = [
        (workflow, await snapshots.versions.get(workflow.id))
        for workflow in await Workflow.filter(is_current=True, archived=False).order_by("key")
    ]
    zones = {version.calendar.timezone.key for _, version in workflows}
    return Board(
        columns=_columns(workflows, jobs, locale),
        at_risk=tuple(job for job, estimate in estimated if estimate.at_risk),
        over_budget=tuple(job for job, estimate in estimated if estimate.over_budget),
        stuck=tuple(job for job, estimate in estimated if estimate.stuck),
        overdue=tuple(job for job, estimate in estimated if estimate.overdue),
        questions=await waiting_questions(),
        failures=tuple(
            await Delivery.filter(status__in=FAILED_DELIVERIES).order_by("-created_at", "-id").limit(RECENT)
        ),
        suppressions=tuple(await Suppression.all().order_by("-created_at", "-id").limit(RECENT)),
        satisfaction=await _satisfaction(),
        accuracy=await forecast_accuracy(now),
        time_zone=staff_time_zone or (zones.pop() if len(zones) == 1 else "UTC"),
    )


def _columns(
    workflows: Sequence[tuple[Workflow, WorkflowVersion]], jobs: Sequence[JobSnapshot], locale: str
) -> tuple[StageColumn, ...]:
    """A column per stage of every current workflow, in its order, even when empty (a WIP of 0)."""
    by_stage: dict[tuple[str, str], list[JobSnapshot]] = defaultdict(list)
    for job in jobs:
        by_stage[(job.workflow_key, job.stage.key)].append(job)
    columns: list[StageColumn] = []
    for workflow, version in workflows:
        for stage in version.definition.stages:
            waiting = by_stage.pop((workflow.key, stage.key), [])
            columns.append(StageColumn(workflow.name, stage.key, stage.label(locale), tuple(waiting)))
    # Jobs on a stage the current version dropped (or of an archived workflow) still show.
    for (workflow_key, stage_key), waiting in by_stage.items():
        columns.append(StageColumn(workflow_key, stage_key, waiting[0].stage.label, tuple(waiting)))
    return tuple(columns)


async def waiting_questions() -> tuple[WaitingQuestion, ...]:
    """Questions not yet answered, oldest first."""
    rows = await Question.filter(answered_at=None).order_by("asked_at", "id").prefetch_related("job")
    return tuple(WaitingQuestion(q.id, q.job_id, q.job.reference, q.body, q.asked_at) for q in rows)


async def _satisfaction() -> Satisfaction:
    counts = dict(
        await SurveyResponse.all().annotate(count=Count("id")).group_by("score").values_list("score", "count")
    )
    recent = (
        await SurveyResponse.exclude(comment="")
        .order_by("-answered_at", "-id")
        .limit(RECENT)
        .prefetch_related("job")
    )
    return Satisfaction(
        (counts.get(1, 0), counts.get(2, 0), counts.get(3, 0), counts.get(4, 0), counts.get(5, 0)),
        tuple(SurveyComment(r.job_id, r.job.reference, r.score, r.comment, r.answered_at) for r in recent),
    )


def first_of_month_before(now: datetime, months: int) -> datetime:
    """Midnight UTC on the first day of the month `months` before the month of `now`."""
    index = now.year * 12 + now.month - 1 - months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Accuracy:
    outcomes: tuple[ForecastOutcome, ...]
    months: tuple[MonthShare, ...]


async def forecast_accuracy(now: datetime) -> Accuracy:
    """Completed jobs of the last `ACCURACY_MONTHS` months with their first and last kept estimate."""
    since = first_of_month_before(now, ACCURACY_MONTHS - 1)
    finished = {
        job_id: (reference, closed_at)
        for job_id, reference, closed_at in await Job.filter(
            status=JobStatus.COMPLETED.value, closed_at__gte=since
        ).values_list("id", "reference", "closed_at")
    }
    if not finished:
        return Accuracy((), ())
    bounds = (
        await JobEstimate.filter(job_id__in=list(finished))
        .annotate(first=Min("id"), last=Max("id"))
        .group_by("job_id")
        .values_list("job_id", "first", "last")
    )
    wanted = {estimate_id for _, first, last in bounds for estimate_id in (first, last)}
    estimates = {row.id: row for row in await JobEstimate.filter(id__in=list(wanted))} if wanted else {}
    outcomes = sorted(
        (
            ForecastOutcome(
                reference=finished[job_id][0],
                finished_at=finished[job_id][1],
                first_p50=estimates[first].eta_p50,
                first_p90=estimates[first].eta_p90,
                last_p50=estimates[last].eta_p50,
                last_p90=estimates[last].eta_p90,
            )
            for job_id, first, last in bounds
        ),
        key=lambda outcome: outcome.finished_at,
        reverse=True,
    )
    return Accuracy(tuple(outcomes[:ACCURACY_JOBS]), tuple(monthly_p90_shares(outcomes)))


@dataclass(frozen=True)
class JobQuestion:
    id: int
    body: str
    asked_at: datetime
    answered_at: datetime | None
    answered_by: str | None
    answer: str | None


async def job_questions(job_id: int) -> tuple[JobQuestion, ...]:
    """The job's questions, oldest first, each with the public note that answered it."""
    questions = await Question.filter(job_id=job_id).order_by("asked_at", "id")
    note_ids = [q.answer_note_id for q in questions if q.answer_note_id is not None]
    answers = dict(await Note.filter(id__in=note_ids).values_list("id", "body")) if note_ids else {}
    return tuple(
        JobQuestion(
            q.id,
            q.body,
            q.asked_at,
            q.answered_at,
            q.answered_by,
            None if q.answer_note_id is None else answers.get(q.answer_note_id),
        )
        for q in questions
    )


async def job_deliveries(job_id: int) -> tuple[Delivery, ...]:
    """The notifications of a job, newest first."""
    return tuple(await Delivery.filter(job_id=job_id).order_by("-created_at", "-id").limit(100))


async def answer_question(
    jobs: JobService,
    job_id: int,
    question_id: int,
    expected: ExpectedVersion,
    *,
    body: str,
    actor: str,
    now: datetime,
) -> NoteItem:
    """Answer with a public note (its event and notifications as any note's) and mark the question
    answered by it, in one transaction: either both happen or neither."""
    async with in_transaction():
        question = await Question.get_or_none(id=question_id, job_id=job_id)
        if question is None:
            raise NotFound("question", question_id)
        if question.answered_at is not None:
            raise Conflict("the question has been answered already", code="already_answered")
        _, note = await jobs.add_note(
            job_id, expected, visibility=NoteVisibility.PUBLIC.value, body=body, actor=actor, now=now
        )
        # Compare-and-set: of two staff answering at once, one marks it; the other's note rolls back.
        marked = await Question.filter(id=question_id, answered_at=None).update(
            answered_at=now, answer_note_id=note.id, answered_by=actor
        )
        if marked != 1:
            raise Conflict("the question has been answered already", code="already_answered")
    return note
