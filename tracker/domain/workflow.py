"""Workflow definitions and the rules for moving a job between stages.

Everything here is pure: a transition function looks at where a job is and returns where it goes, or
raises `IllegalTransition` with a reason the caller can show to the person who asked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from tracker.domain.errors import IllegalTransition, InvalidInput

STAGE_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
MAX_REASON_LENGTH = 1000


class JobStatus(StrEnum):
    OPEN = "open"
    ON_HOLD = "on_hold"
    COMPLETED = "completed"
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        """Still work to do: open or on hold. An open job has an estimate; a closed one has none."""
        return self in OPEN_STATUSES


OPEN_STATUSES = frozenset({JobStatus.OPEN, JobStatus.ON_HOLD})
"""The statuses of a job not yet closed (an on-hold job is open: it will resume)."""
CLOSED_STATUSES = frozenset(JobStatus) - OPEN_STATUSES


class TransitionKind(StrEnum):
    ADVANCE = "advance"
    MOVE = "move"
    HOLD = "hold"
    RESUME = "resume"
    COMPLETE = "complete"
    CANCEL = "cancel"
    REOPEN = "reopen"


@dataclass(frozen=True)
class ThreePointEstimate:
    """A planned duration in working hours: optimistic <= most likely <= pessimistic."""

    optimistic: Decimal
    most_likely: Decimal
    pessimistic: Decimal

    def __post_init__(self) -> None:
        for name in ("optimistic", "most_likely", "pessimistic"):
            if not getattr(self, name).is_finite():
                raise InvalidInput(f"duration.{name}", "must be a finite number")
        if self.optimistic < 0:
            raise InvalidInput("duration.optimistic", "must not be negative")
        if not self.optimistic <= self.most_likely <= self.pessimistic:
            raise InvalidInput("duration", "needs optimistic <= most_likely <= pessimistic")
        if self.pessimistic == 0:
            raise InvalidInput("duration.pessimistic", "must be more than zero hours")

    @property
    def pert_mean(self) -> Decimal:
        return (self.optimistic + 4 * self.most_likely + self.pessimistic) / 6


@dataclass(frozen=True)
class StageDefinition:
    key: str
    labels: Mapping[str, str]
    """Customer-facing label by locale (`en`, `fr`, `nl`, ...); `en` is required."""
    duration: ThreePointEstimate
    planned_cost: Decimal
    capacity: int | None = None
    """Parallel slots; None means no limit."""
    customer_visible: bool = True

    def label(self, locale: str) -> str:
        language = locale.replace("-", "_").split("_")[0]
        return self.labels.get(locale) or self.labels.get(language) or self.labels["en"]


@dataclass(frozen=True)
class WorkflowDefinition:
    name: str
    stages: tuple[StageDefinition, ...]

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InvalidInput("name", "must not be empty")
        if not self.stages:
            raise InvalidInput("stages", "a workflow needs at least one stage")
        seen: set[str] = set()
        for index, stage in enumerate(self.stages):
            where = f"stages[{index}]"
            if not STAGE_KEY.fullmatch(stage.key):
                raise InvalidInput(f"{where}.key", "use lower-case letters, digits, - and _ (at most 63)")
            if stage.key in seen:
                raise InvalidInput(f"{where}.key", f"{stage.key!r} appears twice")
            seen.add(stage.key)
            if not stage.labels.get("en", "").strip():
                raise InvalidInput(f"{where}.labels", "an English (en) label is required")
            if not stage.planned_cost.is_finite():
                raise InvalidInput(f"{where}.planned_cost", "must be a finite number")
            if stage.planned_cost < 0:
                raise InvalidInput(f"{where}.planned_cost", "must not be negative")
            if stage.capacity is not None and stage.capacity < 1:
                raise InvalidInput(f"{where}.capacity", "must be at least 1 when given")

    @property
    def first(self) -> StageDefinition:
        return self.stages[0]

    @property
    def last(self) -> StageDefinition:
        return self.stages[-1]

    def index_of(self, key: str) -> int:
        for index, stage in enumerate(self.stages):
            if stage.key == key:
                return index
        raise IllegalTransition(f"the workflow has no stage {key!r}", code="unknown_stage")

    def stage(self, key: str) -> StageDefinition:
        return self.stages[self.index_of(key)]


@dataclass(frozen=True)
class JobPosition:
    status: JobStatus
    stage_key: str


@dataclass(frozen=True)
class Transition:
    kind: TransitionKind
    before: JobPosition
    after: JobPosition
    reason: str | None = None

    @property
    def closes_visit(self) -> bool:
        """The job leaves the stage it was in (the current stage visit ends)."""
        return self.kind in {
            TransitionKind.ADVANCE,
            TransitionKind.MOVE,
            TransitionKind.COMPLETE,
            TransitionKind.CANCEL,
        }

    @property
    def opens_visit(self) -> bool:
        """The job enters a stage (a new stage visit starts)."""
        return self.kind in {TransitionKind.ADVANCE, TransitionKind.MOVE, TransitionKind.REOPEN}


def start(workflow: WorkflowDefinition, stage_key: str | None = None) -> JobPosition:
    """Where a new job begins: the first stage, or a named one (for work taken over midway)."""
    key = workflow.first.key if stage_key is None else workflow.stage(stage_key).key
    return JobPosition(JobStatus.OPEN, key)


def _required_reason(reason: str | None, action: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise InvalidInput("reason", f"is required to {action} a job")
    if len(text) > MAX_REASON_LENGTH:
        raise InvalidInput("reason", f"must be at most {MAX_REASON_LENGTH} characters")
    return text


def _optional_reason(reason: str | None) -> str | None:
    text = (reason or "").strip()
    return _required_reason(text, "") if text else None


def _require_open(position: JobPosition, action: str) -> None:
    if position.status is not JobStatus.OPEN:
        resumable = position.status is JobStatus.ON_HOLD and action != "put on hold"
        hint = " (resume it first)" if resumable else ""
        raise IllegalTransition(
            f"cannot {action} a job that is {position.status.value}{hint}", code="job_not_open"
        )


def advance(position: JobPosition, workflow: WorkflowDefinition) -> Transition:
    _require_open(position, "advance")
    index = workflow.index_of(position.stage_key)
    if index == len(workflow.stages) - 1:
        raise IllegalTransition(
            "the job is at the last stage: complete it instead", code="already_at_last_stage"
        )
    after = JobPosition(JobStatus.OPEN, workflow.stages[index + 1].key)
    return Transition(TransitionKind.ADVANCE, position, after)


def move_to(
    position: JobPosition, workflow: WorkflowDefinition, stage_key: str, reason: str | None
) -> Transition:
    """Skip ahead, or send the job back for rework; either way a reason is kept."""
    _require_open(position, "move")
    workflow.index_of(stage_key)
    if stage_key == position.stage_key:
        raise IllegalTransition(f"the job is already at stage {stage_key!r}", code="same_stage")
    text = _required_reason(reason, "move")
    return Transition(TransitionKind.MOVE, position, JobPosition(JobStatus.OPEN, stage_key), text)


def hold(position: JobPosition, reason: str | None) -> Transition:
    _require_open(position, "put on hold")
    text = _required_reason(reason, "put on hold")
    return Transition(TransitionKind.HOLD, position, JobPosition(JobStatus.ON_HOLD, position.stage_key), text)


def resume(position: JobPosition, reason: str | None = None) -> Transition:
    if position.status is not JobStatus.ON_HOLD:
        raise IllegalTransition(
            f"only a job on hold can resume; this one is {position.status.value}", code="not_on_hold"
        )
    after = JobPosition(JobStatus.OPEN, position.stage_key)
    return Transition(TransitionKind.RESUME, position, after, _optional_reason(reason))


def complete(
    position: JobPosition, workflow: WorkflowDefinition, *, force: bool = False, reason: str | None = None
) -> Transition:
    """Complete from the last stage; from an earlier stage only when forced, with a reason."""
    _require_open(position, "complete")
    at_last = workflow.index_of(position.stage_key) == len(workflow.stages) - 1
    if not at_last and not force:
        raise IllegalTransition(
            f"the job is at stage {position.stage_key!r}, not the last one; force it with a reason",
            code="not_at_last_stage",
        )
    text = _required_reason(reason, "force-complete") if not at_last else _optional_reason(reason)
    after = JobPosition(JobStatus.COMPLETED, position.stage_key)
    return Transition(TransitionKind.COMPLETE, position, after, text)


def cancel(position: JobPosition, reason: str | None) -> Transition:
    if not position.status.is_open:
        raise IllegalTransition(f"the job is already {position.status.value}", code="job_closed")
    text = _required_reason(reason, "cancel")
    return Transition(
        TransitionKind.CANCEL, position, JobPosition(JobStatus.CANCELLED, position.stage_key), text
    )


def reopen(position: JobPosition, reason: str | None) -> Transition:
    """Bring a completed or cancelled job back to work, in the stage it ended in."""
    if position.status.is_open:
        raise IllegalTransition(
            f"only a completed or cancelled job can reopen; this one is {position.status.value}",
            code="job_not_closed",
        )
    text = _required_reason(reason, "reopen")
    return Transition(TransitionKind.REOPEN, position, JobPosition(JobStatus.OPEN, position.stage_key), text)
