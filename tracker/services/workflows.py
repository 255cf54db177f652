"""Workflows: versioned stage definitions. A change adds a version; jobs keep the version they started on."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from tracker.db.models import Stage, Workflow
from tracker.domain.errors import Conflict, InvalidInput, NotFound
from tracker.domain.money import check_currency
from tracker.domain.workflow import StageDefinition, ThreePointEstimate, WorkflowDefinition
from tracker.estimates.calendar import BusinessCalendar
from tracker.services.calendars import calendar_from_spec

WORKFLOW_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
MAX_NAME_LENGTH = 200
MAX_CAPACITY = 2_147_483_647
"""The limits of the columns that hold a workflow's name and a stage's capacity."""


@dataclass(frozen=True)
class StoredWorkflow:
    row: Workflow
    definition: WorkflowDefinition


@dataclass(frozen=True)
class WorkflowVersion:
    key: str
    version: int
    currency: str
    definition: WorkflowDefinition
    calendar: BusinessCalendar


def _definition_from_rows(workflow: Workflow, stages: list[Stage]) -> WorkflowDefinition:
    return WorkflowDefinition(
        name=workflow.name,
        stages=tuple(
            StageDefinition(
                key=stage.key,
                labels=dict(stage.labels),
                duration=ThreePointEstimate(
                    stage.optimistic_hours, stage.most_likely_hours, stage.pessimistic_hours
                ),
                planned_cost=stage.planned_cost,
                capacity=stage.capacity,
                customer_visible=stage.customer_visible,
            )
            for stage in sorted(stages, key=lambda s: s.position)
        ),
    )


async def load_version(workflow_id: int) -> WorkflowVersion:
    """Read one workflow version from the database (`WorkflowVersions` reads each one once)."""
    workflow = await Workflow.get(id=workflow_id)
    definition = _definition_from_rows(workflow, await Stage.filter(workflow_id=workflow_id))
    return WorkflowVersion(
        workflow.key, workflow.version, workflow.currency, definition, calendar_from_spec(workflow.calendar)
    )


@dataclass
class WorkflowVersions:
    """Workflow versions by id, each read once: a version never changes once written.

    One per app, built by `build_services`: a fresh app (a test's) starts with a fresh one.
    """

    _cache: dict[int, WorkflowVersion] = field(default_factory=dict)

    async def get(self, workflow_id: int) -> WorkflowVersion:
        cached = self._cache.get(workflow_id)
        if cached is None:
            cached = self._cache[workflow_id] = await load_version(workflow_id)
        return cached


async def _stored(workflow: Workflow) -> StoredWorkflow:
    stages = await Stage.filter(workflow_id=workflow.id)
    return StoredWorkflow(workflow, _definition_from_rows(workflow, stages))


def _check_storable(definition: WorkflowDefinition) -> None:
    """Refuse what the database columns cannot hold, as bad input rather than a database error."""
    if len(definition.name) > MAX_NAME_LENGTH:
        raise InvalidInput("name", f"must be at most {MAX_NAME_LENGTH} characters")
    for index, stage in enumerate(definition.stages):
        if stage.capacity is not None and stage.capacity > MAX_CAPACITY:
            raise InvalidInput(f"stages[{index}].capacity", f"must be at most {MAX_CAPACITY}")


async def _write_version(
    key: str,
    version: int,
    definition: WorkflowDefinition,
    currency: str,
    calendar: dict[str, Any] | None,
    now: datetime,
) -> Workflow:
    workflow = await Workflow.create(
        key=key,
        version=version,
        name=definition.name,
        currency=currency,
        is_current=True,
        calendar=calendar,
        created_at=now,
    )
    await Stage.bulk_create(
        [
            Stage(
                workflow_id=workflow.id,
                position=position,
                key=stage.key,
                labels=dict(stage.labels),
                optimistic_hours=stage.duration.optimistic,
                most_likely_hours=stage.duration.most_likely,
                pessimistic_hours=stage.duration.pessimistic,
                planned_cost=stage.planned_cost,
                capacity=stage.capacity,
                customer_visible=stage.customer_visible,
            )
            for position, stage in enumerate(definition.stages)
        ]
    )
    return workflow


async def create_workflow(
    key: str,
    definition: WorkflowDefinition,
    currency: str,
    *,
    now: datetime,
    calendar: dict[str, Any] | None = None,
) -> StoredWorkflow:
    if not WORKFLOW_KEY.fullmatch(key):
        raise InvalidInput("key", "use lower-case letters, digits, - and _ (at most 63)")
    _check_storable(definition)
    duplicate = Conflict(f"a workflow with key {key!r} exists already", code="duplicate_key")
    try:
        async with in_transaction():
            if await Workflow.exists(key=key):
                raise duplicate
            workflow = await _write_version(key, 1, definition, check_currency(currency), calendar, now)
    except IntegrityError:
        # Another request created the same key between the check and the insert.
        raise duplicate from None
    return await _stored(workflow)


async def replace_workflow(
    key: str,
    definition: WorkflowDefinition,
    currency: str,
    *,
    now: datetime,
    calendar: dict[str, Any] | None = None,
) -> StoredWorkflow:
    """Publish a new version; jobs already running stay on the version they started with."""
    _check_storable(definition)
    async with in_transaction():
        await _lock(key)
        current = await _current(key)
        if current.archived:
            raise Conflict(f"workflow {key!r} is archived", code="archived")
        await Workflow.filter(key=key).update(is_current=False)
        workflow = await _write_version(
            key, current.version + 1, definition, check_currency(currency), calendar, now
        )
    return await _stored(workflow)


def _check_named(key: str) -> None:
    """A key no workflow can have (too long for the column, which Tortoise refuses to compare) names none."""
    if not WORKFLOW_KEY.fullmatch(key):
        raise NotFound("workflow", key)


async def _lock(key: str) -> None:
    """Serialise changes to one workflow: lock its first version, the one row every key keeps."""
    _check_named(key)
    if await Workflow.select_for_update().get_or_none(key=key, version=1) is None:
        raise NotFound("workflow", key)


async def _current(key: str) -> Workflow:
    _check_named(key)
    workflow = await Workflow.get_or_none(key=key, is_current=True)
    if workflow is None:
        raise NotFound("workflow", key)
    return workflow


async def get_workflow(key: str, version: int | None = None) -> StoredWorkflow:
    if version is None:
        return await _stored(await _current(key))
    _check_named(key)
    workflow = await Workflow.get_or_none(key=key, version=version)
    if workflow is None:
        raise NotFound("workflow version", f"{key} v{version}")
    return await _stored(workflow)


async def list_workflows(*, include_archived: bool = False) -> list[StoredWorkflow]:
    query = Workflow.filter(is_current=True)
    if not include_archived:
        query = query.filter(archived=False)
    return [await _stored(workflow) for workflow in await query.order_by("key")]


async def list_versions(key: str) -> list[StoredWorkflow]:
    _check_named(key)
    rows = await Workflow.filter(key=key).order_by("version")
    if not rows:
        raise NotFound("workflow", key)
    return [await _stored(workflow) for workflow in rows]


async def archive_workflow(key: str) -> None:
    """Stop new jobs from using a workflow; its running jobs and their history stay."""
    await _set_archived(key, archived=True)


async def restore_workflow(key: str) -> StoredWorkflow:
    """Undo an archive: new jobs may use the workflow again (restoring an active one changes nothing)."""
    await _set_archived(key, archived=False)
    return await get_workflow(key)


async def _set_archived(key: str, *, archived: bool) -> None:
    async with in_transaction():
        await _lock(key)
        await _current(key)
        await Workflow.filter(key=key).update(archived=archived)
