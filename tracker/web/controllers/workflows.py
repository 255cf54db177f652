"""Admin API for workflows; staff and integrators may read them."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, post, put
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from tracker.domain.errors import InvalidInput
from tracker.domain.money import check_currency, parse_amount
from tracker.domain.workflow import StageDefinition, ThreePointEstimate, WorkflowDefinition
from tracker.services import workflows
from tracker.services.access import Readable
from tracker.services.calendars import check_calendar
from tracker.services.keys import Role
from tracker.web import schemas as s, views
from tracker.web.auth import reads, requires
from tracker.web.deps import Now
from tracker.web.openapi import MAY_CONFLICT


def _duration(hours: s.DurationIn, index: int) -> ThreePointEstimate:
    """The estimate, with an error naming the field as the request spells it (`stages[1].duration_hours`)."""
    try:
        return ThreePointEstimate(
            Decimal(hours.optimistic), Decimal(hours.most_likely), Decimal(hours.pessimistic)
        )
    except InvalidInput as error:
        field = error.field.replace("duration", f"stages[{index}].duration_hours", 1)
        raise InvalidInput(field, error.reason) from None


def _calendar(calendar: s.CalendarIn | None) -> dict[str, Any] | None:
    return None if calendar is None else check_calendar(msgspec.structs.asdict(calendar))


def _definition(name: str, currency: str, stages: list[s.StageIn]) -> WorkflowDefinition:
    code = check_currency(currency)
    return WorkflowDefinition(
        name=name,
        stages=tuple(
            StageDefinition(
                key=stage.key,
                labels=dict(stage.labels),
                duration=_duration(stage.duration_hours, index),
                planned_cost=parse_amount(stage.planned_cost, code, field=f"stages[{index}].planned_cost"),
                capacity=stage.capacity,
                customer_visible=stage.customer_visible,
            )
            for index, stage in enumerate(stages)
        ),
    )


class WorkflowController(Controller):
    path = "/workflows"
    tags = ["Workflows"]

    @post(guards=[requires(Role.ADMIN)], operation_id="CreateWorkflow", status_code=HTTP_201_CREATED)
    async def create_workflow(self, data: JSONBody[s.WorkflowIn], now: Now) -> s.WorkflowOut:
        definition = _definition(data.name, data.currency, data.stages)
        return views.workflow_out(
            await workflows.create_workflow(
                data.key, definition, data.currency, now=now, calendar=_calendar(data.calendar)
            )
        )

    @get(guards=[reads(Readable.WORKFLOWS)], operation_id="ListWorkflows")
    async def list_workflows(
        self,
        archived: Annotated[
            bool, QueryParameter(description="Also list archived workflows (they stay readable)")
        ] = False,
    ) -> list[s.WorkflowOut]:
        return [views.workflow_out(w) for w in await workflows.list_workflows(include_archived=archived)]

    @get("/{key:str}", guards=[reads(Readable.WORKFLOWS)], operation_id="GetWorkflow")
    async def get_workflow(self, key: FromPath[str]) -> s.WorkflowOut:
        return views.workflow_out(await workflows.get_workflow(key))

    @put("/{key:str}", guards=[requires(Role.ADMIN)], operation_id="PublishWorkflowVersion")
    async def publish_version(
        self, key: FromPath[str], data: JSONBody[s.WorkflowVersionIn], now: Now
    ) -> s.WorkflowOut:
        """Publish a new version of the workflow; running jobs keep the version they started on."""
        definition = _definition(data.name, data.currency, data.stages)
        return views.workflow_out(
            await workflows.replace_workflow(
                key, definition, data.currency, now=now, calendar=_calendar(data.calendar)
            )
        )

    @delete(
        "/{key:str}",
        guards=[requires(Role.ADMIN)],
        operation_id="ArchiveWorkflow",
        status_code=HTTP_204_NO_CONTENT,
    )
    async def archive_workflow(self, key: FromPath[str]) -> None:
        """Archive the workflow: no new jobs may use it; existing jobs and history stay."""
        await workflows.archive_workflow(key)

    @post(
        "/{key:str}/restore",
        guards=[requires(Role.ADMIN)],
        operation_id="RestoreWorkflow",
        status_code=200,
        opt={MAY_CONFLICT: False},
    )
    async def restore_workflow(self, key: FromPath[str]) -> s.WorkflowOut:
        """Undo an archive: new jobs may use the workflow again. Restoring an active workflow is a no-op."""
        return views.workflow_out(await workflows.restore_workflow(key))

    @get(
        "/{key:str}/versions",
        guards=[reads(Readable.WORKFLOWS)],
        operation_id="ListWorkflowVersions",
    )
    async def list_versions(self, key: FromPath[str]) -> list[s.WorkflowOut]:
        return [views.workflow_out(w) for w in await workflows.list_versions(key)]

    @get(
        "/{key:str}/versions/{version:int}",
        guards=[reads(Readable.WORKFLOWS)],
        operation_id="GetWorkflowVersion",
    )
    async def get_version(self, key: FromPath[str], version: FromPath[int]) -> s.WorkflowOut:
        return views.workflow_out(await workflows.get_workflow(key, version))
