"""Staff API for jobs: CRUD, stage actions, costs, notes and history."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.serialization import encode_json
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from tracker.db.models import JobEstimate
from tracker.domain.errors import Conflict, InvalidInput
from tracker.domain.money import Money
from tracker.domain.workflow import JobStatus, TransitionKind
from tracker.services import access, jobs as job_queries
from tracker.services.access import Readable
from tracker.services.estimates import EstimateService
from tracker.services.jobs import JobChanges, JobFilters, JobService, NewJob
from tracker.services.keys import Principal, Role
from tracker.services.pages import Sort
from tracker.services.workflows import version_of
from tracker.settings import Settings
from tracker.web import schemas as s, views
from tracker.web.auth import reads, requires
from tracker.web.deps import IdempotencyKey, IfMatch, Now, PageCursor, PageLimit, etag, expected_version
from tracker.web.idempotency import idempotent
from tracker.web.openapi import MAY_CONFLICT

STAFF = requires(Role.STAFF)
READERS = reads(Readable.JOBS)


def _json(
    value: msgspec.Struct, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response[bytes]:
    """Encode like Litestar's own responses (its serializer also takes datetime subclasses)."""
    return Response(encode_json(value), status_code=status, media_type="application/json", headers=headers)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class JobController(Controller):
    path = "/jobs"
    tags = ["Jobs"]

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
        jobs: NamedDependency[JobService],
        settings: NamedDependency[Settings],
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
            return _json(
                await views.job_out(job, settings.public_base_url),
                status=201,
                headers={**etag(job.version), "Location": f"/jobs/{job.id}"},
            )

        return await idempotent(request, now, produce)

    @get(guards=[READERS], operation_id="ListJobs")
    async def list_jobs(
        self,
        settings: NamedDependency[Settings],
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
        page = await job_queries.list_jobs(filters, sort=sort, limit=limit, cursor=cursor)
        return s.JobList(
            items=[await views.job_out(job, settings.public_base_url) for job in page.items],
            next_cursor=page.next_cursor,
        )

    @get("/{job_id:int}", guards=[READERS], operation_id="GetJob", responses={200: ResponseSpec(s.JobOut)})
    async def get_job(self, job_id: FromPath[int], settings: NamedDependency[Settings]) -> Response[bytes]:
        job = await job_queries.get_job(job_id)
        return _json(await views.job_out(job, settings.public_base_url), headers=etag(job.version))

    @patch("/{job_id:int}", guards=[STAFF], operation_id="UpdateJob", responses={200: ResponseSpec(s.JobOut)})
    async def update_job(
        self,
        job_id: FromPath[int],
        data: JSONBody[s.JobUpdate],
        jobs: NamedDependency[JobService],
        settings: NamedDependency[Settings],
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
        return _json(await views.job_out(job, settings.public_base_url), headers=etag(job.version))

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
        jobs: NamedDependency[JobService],
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

    async def _act(
        self,
        request: Request[Any, Any, Any],
        job_id: int,
        kind: TransitionKind,
        jobs: JobService,
        settings: Settings,
        principal: Principal,
        now: datetime,
        if_match: str | None,
        body_version: int | None,
        **params: Any,
    ) -> Response[bytes]:
        async def produce() -> Response[bytes]:
            job = await jobs.act(
                job_id,
                expected_version(if_match, body_version),
                kind,
                actor=principal.actor,
                now=now,
                **params,
            )
            return _json(await views.job_out(job, settings.public_base_url), headers=etag(job.version))

        return await idempotent(request, now, produce)

    @post(
        "/{job_id:int}/advance",
        guards=[STAFF],
        operation_id="AdvanceJob",
        status_code=200,
        responses={200: ResponseSpec(s.JobOut)},
    )
    async def advance(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[int],
        jobs: NamedDependency[JobService],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
        now: Now,
        data: JSONBody[s.VersionIn | None] = None,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        """Move the job to the next stage of its workflow."""
        return await self._act(
            request,
            job_id,
            TransitionKind.ADVANCE,
            jobs,
            settings,
            principal,
            now,
            if_match,
            data.version if data else None,
        )

    @post(
        "/{job_id:int}/move",
        guards=[STAFF],
        operation_id="MoveJob",
        status_code=200,
        responses={200: ResponseSpec(s.JobOut)},
    )
    async def move(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[int],
        data: JSONBody[s.MoveIn],
        jobs: NamedDependency[JobService],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
        now: Now,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        """Skip ahead to a later stage or send the job back for rework, with a reason."""
        return await self._act(
            request,
            job_id,
            TransitionKind.MOVE,
            jobs,
            settings,
            principal,
            now,
            if_match,
            data.version,
            stage=data.stage,
            reason=data.reason,
        )

    @post(
        "/{job_id:int}/hold",
        guards=[STAFF],
        operation_id="HoldJob",
        status_code=200,
        responses={200: ResponseSpec(s.JobOut)},
    )
    async def hold(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[int],
        data: JSONBody[s.RequiredReasonIn],
        jobs: NamedDependency[JobService],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
        now: Now,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        """Put the job on hold, with a reason; the clock stops until it resumes."""
        return await self._act(
            request,
            job_id,
            TransitionKind.HOLD,
            jobs,
            settings,
            principal,
            now,
            if_match,
            data.version,
            reason=data.reason,
        )

    @post(
        "/{job_id:int}/resume",
        guards=[STAFF],
        operation_id="ResumeJob",
        status_code=200,
        responses={200: ResponseSpec(s.JobOut)},
    )
    async def resume(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[int],
        jobs: NamedDependency[JobService],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
        now: Now,
        data: JSONBody[s.ReasonIn | None] = None,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        return await self._act(
            request,
            job_id,
            TransitionKind.RESUME,
            jobs,
            settings,
            principal,
            now,
            if_match,
            data.version if data else None,
            reason=data.reason if data else None,
        )

    @post(
        "/{job_id:int}/complete",
        guards=[STAFF],
        operation_id="CompleteJob",
        status_code=200,
        responses={200: ResponseSpec(s.JobOut)},
    )
    async def complete(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[int],
        jobs: NamedDependency[JobService],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
        now: Now,
        data: JSONBody[s.CompleteIn | None] = None,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        """Complete the job from its last stage, or from an earlier one with `force` and a reason."""
        body = data or s.CompleteIn()
        return await self._act(
            request,
            job_id,
            TransitionKind.COMPLETE,
            jobs,
            settings,
            principal,
            now,
            if_match,
            body.version,
            force=body.force,
            reason=body.reason,
        )

    @post(
        "/{job_id:int}/cancel",
        guards=[STAFF],
        operation_id="CancelJob",
        status_code=200,
        responses={200: ResponseSpec(s.JobOut)},
    )
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[int],
        data: JSONBody[s.RequiredReasonIn],
        jobs: NamedDependency[JobService],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
        now: Now,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        return await self._act(
            request,
            job_id,
            TransitionKind.CANCEL,
            jobs,
            settings,
            principal,
            now,
            if_match,
            data.version,
            reason=data.reason,
        )

    @post(
        "/{job_id:int}/reopen",
        guards=[STAFF],
        operation_id="ReopenJob",
        status_code=200,
        responses={200: ResponseSpec(s.JobOut)},
    )
    async def reopen(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[int],
        data: JSONBody[s.RequiredReasonIn],
        jobs: NamedDependency[JobService],
        settings: NamedDependency[Settings],
        principal: NamedDependency[Principal],
        now: Now,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        return await self._act(
            request,
            job_id,
            TransitionKind.REOPEN,
            jobs,
            settings,
            principal,
            now,
            if_match,
            data.version,
            reason=data.reason,
        )

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
        jobs: NamedDependency[JobService],
        settings: NamedDependency[Settings],
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
            added = s.CostAdded(
                job=await views.job_out(job, settings.public_base_url), cost=views.cost_out(entry)
            )
            return _json(added, status=201, headers=etag(job.version))

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
        jobs: NamedDependency[JobService],
        settings: NamedDependency[Settings],
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
            added = s.NoteAdded(
                job=await views.job_out(job, settings.public_base_url), note=views.note_out(note)
            )
            return _json(added, status=201, headers=etag(job.version))

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
        job = await job_queries.get_job(job_id)
        rows = await JobEstimate.filter(job_id=job_id).order_by("-id").limit(limit)
        return [views.estimate_history_out(row, job.currency) for row in rows]

    @get(
        "/{job_id:int}/estimate",
        guards=[READERS],
        operation_id="ExplainJobEstimate",
        opt={MAY_CONFLICT: True},
    )
    async def explain_estimate(
        self,
        job_id: FromPath[int],
        estimates: NamedDependency[EstimateService],
        now: Now,
    ) -> s.EstimateExplanationOut:
        """The current estimate and what it is made of: stages ahead, queue, non-working days, basis."""
        job = await job_queries.get_job(job_id)
        if job.status not in {"open", "on_hold"}:
            raise Conflict(f"the job is {job.status}: it has no estimate", code="job_closed")
        workflow = await version_of(job.workflow_id)
        explained = await estimates.explain(job, now=now)
        remaining = explained.remaining
        labels = {stage.key: stage.label("en") for stage in workflow.definition.stages}
        return s.EstimateExplanationOut(
            estimate=views.estimate_out(job, workflow),
            current_stage=job.stage_key,
            working_hours_in_stage=round(explained.elapsed_s / 3600, 2),
            current_stage_remaining_working_hours=(
                None
                if remaining.current_stage_remaining_s is None
                else round(remaining.current_stage_remaining_s / 3600, 2)
            ),
            queue_wait_working_hours=round(explained.queue_wait_s / 3600, 2),
            remaining_working_hours=s.HoursRangeOut(
                p50=round(remaining.p50_s / 3600, 2), p90=round(remaining.p90_s / 3600, 2)
            ),
            stages_ahead=[
                s.StageAheadOut(
                    stage=stage.key,
                    label=labels.get(stage.key, stage.key),
                    probability=round(stage.probability, 3),
                    expected_visits=round(stage.expected_visits, 3),
                    expected_working_hours=round(stage.expected_duration_s / 3600, 2),
                    samples=stage.samples,
                    basis=stage.basis,
                )
                for stage in remaining.stages
            ],
            non_working_days=explained.non_working_days,
            calendar_time_zone=explained.time_zone,
            basis=remaining.basis,
            samples=remaining.samples,
            p90_calibration=s.CalibrationOut(
                factor=explained.calibration.p90_factor,
                coverage=_finite(explained.calibration.coverage),
                samples=explained.calibration.samples,
            ),
            estimator=s.EstimatorOut(chosen=explained.selection.estimator, reason=explained.selection.reason),
        )
