"""The staff dashboard's read side (the board, a job's page) and its one use case of its own: answering a
customer's question, which is a public note through `JobService.add_note` and the question marked answered,
in one transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from tortoise.functions import Count, Max, Min
from tortoise.queryset import QuerySet
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
from tracker.services.jobs import JobService, NoteItem, NoteVisibility
from tracker.services.snapshots import FLAG_COLUMNS, FlagFields, Flags, JobSnapshot, JobSnapshots
from tracker.services.versions import ExpectedVersion
from tracker.services.workflows import WorkflowVersion

FAILED_DELIVERIES = ("dead", "bounced")
SHOWN = 10
"""How many jobs each stage column and each flag list shows (the count says how many there are)."""
LISTED = 50
"""How many jobs a page of a whole column or flag list shows."""
FLAG_NAMES = tuple(flag.name for flag in fields(Flags))
RECENT = 20
"""How many recent failures, suppressions, survey comments the board lists."""
ACCURACY_JOBS = 30
"""The newest completed jobs drawn one by one on the first/last estimate chart."""
ACCURACY_MONTHS = 12


@dataclass(frozen=True)
class StageColumn:
    workflow: str
    workflow_key: str
    key: str
    label: str
    count: int
    """Open jobs in the stage (its work in progress)."""
    jobs: tuple[JobSnapshot, ...]
    """The first `SHOWN` of them, longest in the stage first."""


@dataclass(frozen=True)
class FlaggedJobs:
    count: int
    """Open jobs with the flag."""
    jobs: tuple[JobSnapshot, ...]
    """The first `SHOWN` of them, longest in their stage first."""


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
    at_risk: FlaggedJobs
    over_budget: FlaggedJobs
    stuck: FlaggedJobs
    overdue: FlaggedJobs
    questions: tuple[WaitingQuestion, ...]
    failures: tuple[Delivery, ...]
    suppressions: tuple[Suppression, ...]
    satisfaction: Satisfaction
    accuracy: Accuracy
    time_zone: str
    """What the board's times are shown in (see `Settings.staff_time_zone`)."""


async def board(snapshots: JobSnapshots, *, now: datetime, locale: str, staff_time_zone: str = "") -> Board:
    """The board reads a few columns of every open job (counts and flags) and builds snapshots only of
    the jobs it shows, so its cost stays in the database's hands however many jobs are open."""
    workflows = [
        (workflow, await snapshots.versions.get(workflow.id))
        for workflow in await Workflow.filter(is_current=True, archived=False).order_by("key")
    ]
    flagged = await _flagged(snapshots)
    counts, first = await _stages()
    shown = {job_id for ids in (*first.values(), *flagged.values()) for job_id in ids[:SHOWN]}
    jobs = await snapshots.of_many(list(await Job.filter(id__in=list(shown))), locale=locale)
    snapshot_of = {job.id: job for job in jobs}

    def listed(ids: Sequence[int]) -> FlaggedJobs:
        return FlaggedJobs(len(ids), tuple(snapshot_of[job_id] for job_id in ids[:SHOWN]))

    columns = _columns(workflows, counts, {where: listed(ids).jobs for where, ids in first.items()}, locale)
    return Board(
        columns=columns,
        at_risk=listed(flagged["at_risk"]),
        over_budget=listed(flagged["over_budget"]),
        stuck=listed(flagged["stuck"]),
        overdue=listed(flagged["overdue"]),
        questions=await waiting_questions(),
        failures=tuple(
            await Delivery.filter(status__in=FAILED_DELIVERIES).order_by("-created_at", "-id").limit(RECENT)
        ),
        suppressions=tuple(await Suppression.all().order_by("-created_at", "-id").limit(RECENT)),
        satisfaction=await _satisfaction(),
        accuracy=await forecast_accuracy(now),
        time_zone=staff_time_zone or _shared_zone(version for _, version in workflows),
    )


async def board_time_zone(snapshots: JobSnapshots, staff_time_zone: str = "") -> str:
    """The zone the board's times are shown in: `Settings.staff_time_zone`, else the one the current
    workflows' calendars share, else UTC."""
    if staff_time_zone:
        return staff_time_zone
    current = await Workflow.filter(is_current=True, archived=False)
    return _shared_zone([await snapshots.versions.get(workflow.id) for workflow in current])


def _shared_zone(versions: Iterable[WorkflowVersion]) -> str:
    zones = {version.calendar.timezone.key for version in versions}
    return zones.pop() if len(zones) == 1 else "UTC"


def _open_jobs() -> QuerySet[Job]:
    return Job.filter(status__in=[status.value for status in OPEN_STATUSES])


async def _flagged(snapshots: JobSnapshots) -> dict[str, list[int]]:
    """The ids of the estimated open jobs with each flag, longest in their stage first, each flag read
    by the snapshot's own rule from the job's stored columns."""
    flagged: dict[str, list[int]] = {name: [] for name in FLAG_NAMES}
    rows = (
        await _open_jobs()
        .filter(eta_p90__not_isnull=True, cost_p50__not_isnull=True, estimated_at__not_isnull=True)
        .order_by("stage_entered_at", "id")
        .values_list("workflow_id", *FLAG_COLUMNS)
    )
    calendars = {
        workflow_id: (await snapshots.versions.get(workflow_id)).calendar
        for workflow_id in {row[0] for row in rows}
    }
    for workflow_id, *columns in rows:
        job = FlagFields(*columns)
        flags = snapshots.flags(job, calendars[workflow_id])
        for name, ids in flagged.items():
            if getattr(flags, name):
                ids.append(job.id)
    return flagged


async def _stages() -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], list[int]]]:
    """Open jobs per (workflow key, stage), every version of a workflow together: how many, and the ids
    of the first `SHOWN`, longest in the stage first."""
    key_of: dict[int, str] = dict(await Workflow.all().values_list("id", "key"))
    versions: dict[str, list[int]] = defaultdict(list)
    for workflow_id, key in key_of.items():
        versions[key].append(workflow_id)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    grouped = (
        await _open_jobs()
        .annotate(count=Count("id"))
        .group_by("workflow_id", "stage_key")
        .values_list("workflow_id", "stage_key", "count")
    )
    for workflow_id, stage_key, count in grouped:
        counts[(key_of[workflow_id], stage_key)] += count
    first: dict[tuple[str, str], list[int]] = {}
    for key, stage_key in counts:
        longest = (
            _open_jobs()
            .filter(workflow_id__in=versions[key], stage_key=stage_key)
            .order_by("stage_entered_at", "id")
            .limit(SHOWN)
        )
        first[(key, stage_key)] = [job_id for (job_id,) in await longest.values_list("id")]
    return dict(counts), first


def _columns(
    workflows: Sequence[tuple[Workflow, WorkflowVersion]],
    counts: Mapping[tuple[str, str], int],
    jobs: Mapping[tuple[str, str], tuple[JobSnapshot, ...]],
    locale: str,
) -> tuple[StageColumn, ...]:
    """A column per stage of every current workflow, in its order, even when empty (a WIP of 0)."""
    left = dict(counts)
    columns: list[StageColumn] = []
    for workflow, version in workflows:
        for stage in version.definition.stages:
            where = (workflow.key, stage.key)
            label = stage.label(locale)
            columns.append(
                StageColumn(
                    workflow.name, workflow.key, stage.key, label, left.pop(where, 0), jobs.get(where, ())
                )
            )
    # Jobs on a stage the current version dropped (or of an archived workflow) still show.
    for (workflow_key, stage_key), count in left.items():
        shown = jobs[(workflow_key, stage_key)]
        columns.append(StageColumn(workflow_key, workflow_key, stage_key, shown[0].stage.label, count, shown))
    return tuple(columns)


@dataclass(frozen=True)
class JobList:
    """One page of the open jobs in a stage, or with a flag, longest in their stage first."""

    count: int
    jobs: tuple[JobSnapshot, ...]
    page: int
    pages: int


async def stage_jobs(
    snapshots: JobSnapshots, workflow_key: str, stage_key: str, *, page: int, locale: str
) -> JobList:
    """The board's column `stage_key` of the workflow `workflow_key` (every version), in full."""
    versions = [workflow_id for (workflow_id,) in await Workflow.filter(key=workflow_key).values_list("id")]
    in_stage = _open_jobs().filter(workflow_id__in=versions, stage_key=stage_key)
    count = await in_stage.count()
    rows = await in_stage.order_by("stage_entered_at", "id").offset((page - 1) * LISTED).limit(LISTED)
    return JobList(count, tuple(await snapshots.of_many(list(rows), locale=locale)), page, _pages(count))


async def stage_heading(
    snapshots: JobSnapshots, workflow_key: str, stage_key: str, *, locale: str
) -> tuple[str, str] | None:
    """The workflow's name and the stage's label for a column's page; None for a stage that no version
    of the workflow has (or a workflow that never existed). A stage the current version dropped keeps
    the label of the newest version that had it."""
    newest_first = await Workflow.filter(key=workflow_key).order_by("-is_current", "-version")
    for workflow in newest_first:
        stages = {stage.key: stage for stage in (await snapshots.versions.get(workflow.id)).definition.stages}
        if stage_key in stages:
            return newest_first[0].name, stages[stage_key].label(locale)
    return None


async def flagged_jobs(snapshots: JobSnapshots, flag: str, *, page: int, locale: str) -> JobList:
    """The board's list of the jobs with `flag` (a field of `Flags`), in full."""
    ids = (await _flagged(snapshots))[flag]
    shown = ids[(page - 1) * LISTED : page * LISTED]
    snapshot_of = {
        job.id: job for job in await snapshots.of_many(list(await Job.filter(id__in=shown)), locale=locale)
    }
    return JobList(len(ids), tuple(snapshot_of[job_id] for job_id in shown), page, _pages(len(ids)))


def _pages(count: int) -> int:
    return max(-(-count // LISTED), 1)


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
