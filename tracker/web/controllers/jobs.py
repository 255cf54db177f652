"""Staff API for jobs: CRUD, stage actions, costs, notes and history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter, SkipValidation
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from tracker.domain.errors import InvalidInput
from tracker.domain.money import Money
from tracker.domain.workflow import JobStatus, TransitionKind
from tracker.services import access, jobs as job_queries
from tracker.services.access import Readable
from tracker.services.jobs import JobChanges, JobFilters, JobService, NewJob
from tracker.services.keys import Principal, Role
from tracker.services.pages import Sort
from tracker.web import schemas as s, views
from tracker.web.auth import reads, requires
from tracker.web.deps import (
    Estimates,
    IdempotencyKey,
    IfMatch,
    Jobs,
    Now,
    PageCursor,
    PageLimit,
    etag,
    expected_version,
    json_response,
)
from tracker.web.idempotency import idempotent
from tracker.web.openapi import MAY_CONFLICT

STAFF = requires(Role.STAFF)
READERS = reads(Readable.JOBS)


@dataclass(frozen=True)
class JobAction:
    """What every stage action shares (who asks, when, the version read, replayed retries), so an action's
    handler only names its transition and its body's fields."""

    request: Request[Any, Any, Any]
    jobs: JobService
    principal: Principal
    now: datetime
    if_match: str | None

    async def run(
        self, job_id: int, kind: TransitionKind, body_version: int | None, **params: Any
    ) -> Response[bytes]:
        async def produce() -> Response[bytes]:
            job = await self.jobs.act(
                job_id,
                expected_version(self.if_match, body_version),
                kind,
                actor=self.principal.actor,
                now=self.now,
                **params,
            )
            return json_response(views.job_out(job), headers=etag(job.version))

        return await idempotent(self.request, self.now, produce)


def provide_job_action(
    request: Request[Any, Any, Any],
    jobs: Jobs,
    principal: NamedDependency[Principal],
    now: Now,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,  # documented here, read by `idempotent`
) -> JobAction:
    return JobAction(request, jobs, principal, now, if_match)


JobActionDependency = NamedDependency[SkipValidation[JobAction]]


class JobController(Controller):
    path = "/jobs"
    tags = ["Jobs"]
    dependencies = {"action": Provide(provide_job_action, sync_to_thread=False)}

    @post(
        guards=[STAFF],
        operation_id="CreateJob",
        status_code=HTTP_201_CREATED,
        responses={201: ResponseSpec(s.JobOut)},
    )
    async def create_job(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[s.JobIn],
        jobs: Jobs,
        principal: NamedDependency[Principal],
        now: Now,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        async def produce() -> Response[bytes]:
            job = await jobs.create(
                NewJob(
                    account_id=data.account_id,
                    workflow_key=data.workflow,
                    title=data.title,
                    quote=Money.parse(data.quote.amount, data.quote.currency, field="quote"),
                    reference=data.reference,
                    promised_on=data.promised_on,
                    start_stage=data.start_stage,
                ),
                actor=principal.actor,
                now=now,
            )
            return json_response(
                views.job_out(job),
                status=201,
                headers={**etag(job.version), "Location": f"/jobs/{job.id}"},
            )

        return await idempotent(request, now, produce)

    @get(guards=[READERS], operation_id="ListJobs")
    async def list_jobs(
        self,
        jobs: Jobs,
        status: Annotated[list[JobStatus] | None, QueryParameter()] = None,
        stage: Annotated[str | None, QueryParameter(pattern=s.STAGE)] = None,
        account_id: Annotated[int | None, QueryParameter(ge=1, le=s.INT32_MAX)] = None,
        workflow: Annotated[str | None, QueryParameter(pattern=s.KEY)] = None,
        promised_before: Annotated[date | None, QueryParameter()] = None,
        updated_since: Annotated[datetime | None, QueryParameter()] = None,
        q: Annotated[
            str | None,
            QueryParameter(max_length=200, pattern=s.PLAIN, description="Text in reference or title"),
        ] = None,
        sort: Annotated[Sort, QueryParameter()] = Sort.NEWEST,
        limit: PageLimit = 50,
        cursor: PageCursor = None,
    ) -> s.JobList:
        if updated_since is not None and updated_since.tzinfo is None:
            raise InvalidInput("query.updated_since", "needs a time zone offset, such as Z or +01:00")
        filters = JobFilters(
            status=tuple(status or ()),
            stage=stage,
            account_id=account_id,
            workflow_key=workflow,
            promised_before=promised_before,
            updated_since=updated_since,
            text=q,
        )
        page = await jobs.list_page(filters, sort=sort, limit=limit, cursor=cursor)
        return s.JobList(items=[views.job_out(job) for job in page.items], next_cursor=page.next_cursor)

    @get("/{job_id:int}", guards=[READERS], operation_id="GetJob", responses={200: ResponseSpec(s.JobOut)})
    async def get_job(self, job_id: FromPath[int], jobs: Jobs) -> Response[bytes]:
        job = await jobs.get(job_id)
        return json_response(views.job_out(job), headers=etag(job.version))

    @patch("/{job_id:int}", guards=[STAFF], operation_id="UpdateJob", responses={200: ResponseSpec(s.JobOut)})
    async def update_job(
        self,
        job_id: FromPath[int],
        data: JSONBody[s.JobUpdate],
        jobs: Jobs,
        principal: NamedDependency[Principal],
        now: Now,
        if_match: IfMatch = None,
    ) -> Response[bytes]:
        quote = None
        if not isinstance(data.quote, msgspec.UnsetType):
            quote = Money.parse(data.quote.amount, data.quote.currency, field="quote")
        promised = data.promised_on
        changes = JobChanges(
            title=None if isinstance(data.title, msgspec.UnsetType) else data.title,
            quote=quote,
            promised_on=promised if isinstance(promised, date) else None,
            clear_promised_on=promised is None,
            account_id=None if isinstance(data.account_id, msgspec.UnsetType) else data.account_id,
        )
        job = await jobs.update(
            job_id, expected_version(if_match, data.version), changes, actor=principal.actor, now=now
        )
        return json_response(views.job_out(job), headers=etag(job.version))

    @delete(
        "/{job_id:int}",
        guards=[requires(Role.ADMIN)],
        operation_id="DeleteJob",
        status_code=HTTP_204_NO_CONTENT,
    )
    async def delete_job(
        self,
        job_id: FromPath[int],
        data: JSONBody[s.RequiredReasonIn],
        jobs: Jobs,
        principal: NamedDependency[Principal],
        now: Now,
        if_match: IfMatch = None,
    ) -> None:
        """Delete a completed or cancelled job for good, with a reason kept in the audit log.

        Only an admin may; staff cancel a job instead. An open job is refused (409 `job_not_closed`).
        """
        await jobs.delete(
            job_id,
            expected_version(if_match, data.version),
            reason=data.reason,
            actor=principal.actor,
            now=now,
        )

    @post(
        "/{job_id:int}/advance",
        guards=[STAFF],
        operation_id="AdvanceJob",
        status_code=200,
        responses={200: ResponseSpec(s.JobOut)},
    )
    async def advance(
        self, job_id: FromPath[int], action: JobActionDependency, data: JSONBody[s.VersionIn | None] = None
    ) -> Response[bytes]:
        """Move the job to the next stage of its workflow."""
        return await action.run(job_id, TransitionKind.ADVANCE, data.version if data else None)

    @post(
        "/{job_id:int}/move",
        guards=[STAFF],
        operation_id="MoveJob",
        status_code=200,
        responses={200: ResponseSpec(s.JobOut)},
    )
    async def move(
        self, job_id: FromPath[int], action: JobActionDependency, data: JSONBody[s.MoveIn]
    ) -> Response[bytes]:
        """Skip ahead to a later stage or send the job back for rework, with a reason."""
        return await action.run(
            job_id, TransitionKind.MOVE, data.version, stage=data.stage, reason=data.reason
        )

    @post(
        "/{job_id:int}/hold",
        guards=[STAFF],
        operation_id="HoldJob",
        status_code=200,
        responses={200: ResponseSpec(s.JobOut)},
    )
    async def hold(
        self, job_id: FromPath[int], action: JobActionDependency, data: JSONBody[s.RequiredReasonIn]
    ) -> Response[bytes]:
        """Put the job on hold, with a reason; the clock stops until it resumes."""
        return await action.run(job_id, TransitionKind.HOLD, data.version, reason=data.reason)

    @post(
        "/{job_id:int}/resume",
        guards=[STAFF],
        operation_id="ResumeJob",
        status_code=200,
        responses={200: ResponseSpec(s.JobOut)},
    )
    async def resume(
        self, job_id: FromPath[int], action: JobActionDependency, data: JSONBody[s.ReasonIn | None] = None
    ) -> Response[bytes]:
        body = data or s.ReasonIn()
        return await action.run(job_id, TransitionKind.RESUME, body.version, reason=body.reason)

    @post(
        "/{job_id:int}/complete",
        guards=[STAFF],
        operation_id="CompleteJob",
        status_code=200,
        responses={200: ResponseSpec(s.JobOut)},
    )
    async def complete(
        self, job_id: FromPath[int], action: JobActionDependency, data: JSONBody[s.CompleteIn | None] = None
    ) -> Response[bytes]:
        """Complete the job from its last stage, or from an earlier one with `force` and a reason."""
        body = data or s.CompleteIn()
        return await action.run(
            job_id, TransitionKind.COMPLETE, body.version, force=body.force, reason=body.reason
        )

    @post(
        "/{job_id:int}/cancel",
        guards=[STAFF],
        operation_id="CancelJob",
        status_code=200,
        responses={200: ResponseSpec(s.JobOut)},
    )
    async def cancel(
        self, job_id: FromPath[int], action: JobActionDependency, data: JSONBody[s.RequiredReasonIn]
    ) -> Response[bytes]:
        return await action.run(job_id, TransitionKind.CANCEL, data.version, reason=data.reason)

    @post(
        "/{job_id:int}/reopen",
        guards=[STAFF],
        operation_id="ReopenJob",
        status_code=200,
        responses={200: ResponseSpec(s.JobOut)},
    )
    async def reopen(
        self, job_id: FromPath[int], action: JobActionDependency, data: JSONBody[s.RequiredReasonIn]
    ) -> Response[bytes]:
        return await action.run(job_id, TransitionKind.REOPEN, data.version, reason=data.reason)

    @post(
        "/{job_id:int}/costs",
        guards=[STAFF],
        operation_id="AddCost",
        status_code=HTTP_201_CREATED,
        responses={201: ResponseSpec(s.CostAdded)},
    )
    async def add_cost(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[int],
        data: JSONBody[s.CostIn],
        jobs: Jobs,
        principal: NamedDependency[Principal],
        now: Now,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        async def produce() -> Response[bytes]:
            job, entry = await jobs.add_cost(
                job_id,
                expected_version(if_match, data.version),
                kind=data.kind,
                amount=data.amount,
                currency=data.currency,
                note=data.note,
                stage=data.stage,
                actor=principal.actor,
                now=now,
            )
            added = s.CostAdded(job=views.job_out(job), cost=views.cost_out(entry))
            return json_response(added, status=201, headers=etag(job.version))

        return await idempotent(request, now, produce)

    @get("/{job_id:int}/costs", guards=[reads(Readable.COST_ENTRIES)], operation_id="ListCosts")
    async def list_costs(self, job_id: FromPath[int]) -> list[s.CostOut]:
        return [views.cost_out(entry) for entry in await job_queries.job_costs(job_id)]

    @post(
        "/{job_id:int}/notes",
        guards=[STAFF],
        operation_id="AddNote",
        status_code=HTTP_201_CREATED,
        responses={201: ResponseSpec(s.NoteAdded)},
    )
    async def add_note(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[int],
        data: JSONBody[s.NoteIn],
        jobs: Jobs,
        principal: NamedDependency[Principal],
        now: Now,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        async def produce() -> Response[bytes]:
            job, note = await jobs.add_note(
                job_id,
                expected_version(if_match, data.version),
                visibility=data.visibility,
                body=data.body,
                actor=principal.actor,
                now=now,
            )
            added = s.NoteAdded(job=views.job_out(job), note=views.note_out(note))
            return json_response(added, status=201, headers=etag(job.version))

        return await idempotent(request, now, produce)

    @get("/{job_id:int}/notes", guards=[READERS], operation_id="ListNotes")
    async def list_notes(
        self, job_id: FromPath[int], principal: NamedDependency[Principal]
    ) -> list[s.NoteOut]:
        """The job's notes, oldest first; an integrator key sees the public ones only."""
        notes = await job_queries.job_notes(job_id)
        return [views.note_out(n) for n in notes if access.shows_note(principal.role, n.visibility)]

    @get("/{job_id:int}/history", guards=[READERS], operation_id="JobHistory")
    async def history(
        self,
        job_id: FromPath[int],
        principal: NamedDependency[Principal],
        after: Annotated[
            # gt=-1, not ge=0: Litestar leaves a zero minimum out of the OpenAPI document.
            int | None,
            QueryParameter(gt=-1, le=s.BIGINT_MAX, description="Last event id seen"),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> s.HistoryOut:
        """Everything that happened to the job, oldest first (an append-only log).

        An integrator key does not see events about internal notes or costs, so its pages may hold fewer
        than `limit` items: follow `next_after` until it is null.
        """
        events = await job_queries.job_history(job_id, after=after, limit=limit)
        return s.HistoryOut(
            items=[views.event_out(e) for e in events if access.shows_event(principal.role, e.type, e.data)],
            next_after=events[-1].id if len(events) == limit else None,
        )

    @get("/{job_id:int}/visits", guards=[READERS], operation_id="JobVisits")
    async def visits(self, job_id: FromPath[int]) -> list[s.VisitOut]:
        """The stages the job entered and left, oldest first."""
        return [views.visit_out(v) for v in await job_queries.job_visits(job_id)]

    @get("/{job_id:int}/estimates", guards=[READERS], operation_id="JobEstimateHistory")
    async def estimate_history(
        self, job_id: FromPath[int], limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100
    ) -> list[s.EstimateHistoryOut]:
        """How the job's estimate moved, newest first (a row whenever it moved noticeably)."""
        return [
            views.estimate_history_out(item) for item in await job_queries.job_estimates(job_id, limit=limit)
        ]

    @get(
        "/{job_id:int}/estimate",
        guards=[READERS],
        operation_id="ExplainJobEstimate",
        opt={MAY_CONFLICT: True},
    )
    async def explain_estimate(
        self,
        job_id: FromPath[int],
        estimates: Estimates,
        jobs: Jobs,
        now: Now,
    ) -> s.EstimateExplanationOut:
        """The current estimate and what it is made of: stages ahead, queue, non-working days, basis."""
        explained = await estimates.explain(job_id, now=now)
        job = await jobs.get(job_id)
        return views.explanation_out(explained, job)
