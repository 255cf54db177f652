"""How a job's progress looks to its customer: the stage stepper and how sure the estimate is, in words.

Pure: the caller passes the workflow, the job's position and `now`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tracker.domain.workflow import JobStatus, WorkflowDefinition


class StepState(StrEnum):
    DONE = "done"
    CURRENT = "current"
    NEXT = "next"


@dataclass(frozen=True)
class Step:
    key: str
    label: str
    state: StepState


def steps(workflow: WorkflowDefinition, stage_key: str, status: JobStatus, locale: str) -> list[Step]:
    """The customer-visible stages in order, each done, current or next.

    Hidden stages are never shown: while the job is in one, the last visible stage before it stays current
    (the customer saw it begin and has not yet seen the next one). A completed job has every step done.
    """
    position = workflow.index_of(stage_key)
    visible = [(index, stage) for index, stage in enumerate(workflow.stages) if stage.customer_visible]
    current = max((index for index, _ in visible if index <= position), default=None)
    result = []
    for index, stage in visible:
        if status is JobStatus.COMPLETED or (current is not None and index < current):
            state = StepState.DONE
        elif index == current:
            state = StepState.CURRENT
        else:
            state = StepState.NEXT
        result.append(Step(stage.key, stage.label(locale), state))
    return result


def shown_stage(progress: list[Step]) -> str:
    """The label of the stage the customer sees the job in: the current step, else the last one done."""
    current = [step for step in progress if step.state is StepState.CURRENT]
    shown = current or [step for step in progress if step.state is StepState.DONE] or progress
    return shown[-1].label if shown else ""


class Confidence(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


NARROW = 0.25
"""A P50-to-P90 spread up to this share of the time left is a confident estimate."""
WIDE = 0.75
"""Beyond this share it is a rough one."""
MIN_HORIZON = timedelta(days=1)
"""A spread of a few hours is narrow for any job, however close its end."""


def confidence(completion_p50: datetime, completion_p90: datetime, basis: str, now: datetime) -> Confidence:
    """How sure the estimate is: the spread between its likely and its safe end against the time left.

    An estimate from the plan alone (basis `planned`, no history to learn from) is never more than medium.
    """
    spread = completion_p90 - completion_p50
    horizon = max(completion_p50 - now, MIN_HORIZON)
    ratio = spread / horizon
    if ratio <= NARROW:
        level = Confidence.HIGH
    elif ratio <= WIDE:
        level = Confidence.MEDIUM
    else:
        level = Confidence.LOW
    if basis == "planned" and level is Confidence.HIGH:
        return Confidence.MEDIUM
    return level
