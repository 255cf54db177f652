"""The catalogue of job events: every type a job's history can hold, and the payload each one carries.

This is what notifications and webhooks publish, so each payload is declared here once, as a TypedDict of
JSON values (instants as ISO 8601 text, money as decimal text). `EVENT_PAYLOADS` maps each type to its
payload, from which a JSON Schema per type can be generated; `tracker.services.events.record_events`, the
one place events are written, refuses a payload that does not match its type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypedDict

from tracker.domain.workflow import TransitionKind


class EventType(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    ADVANCE = "advance"
    MOVE = "move"
    HOLD = "hold"
    RESUME = "resume"
    COMPLETE = "complete"
    CANCEL = "cancel"
    REOPEN = "reopen"
    COST_ADDED = "cost_added"
    NOTE_ADDED = "note_added"
    IMPORTED = "imported"
    ETA_MOVED = "eta_moved"
    COST_MOVED = "cost_moved"
    AT_RISK = "at_risk"
    BACK_ON_TRACK = "back_on_track"
    STUCK = "stuck"

    @classmethod
    def of_transition(cls, kind: TransitionKind) -> EventType:
        return cls(kind.value)


class MoneyPayload(TypedDict):
    amount: str
    currency: str


class WorkflowPayload(TypedDict):
    key: str
    version: int


class PositionPayload(TypedDict):
    status: str
    stage: str


class CreatedPayload(TypedDict):
    """A job was opened (through the API, the demo or as a finished job of the past)."""

    reference: str
    workflow: WorkflowPayload
    stage: str
    quote: MoneyPayload
    promised_on: str | None


class UpdatedPayload(TypedDict, total=False):
    """Fields of the job changed by staff; only the fields changed are present."""

    title: str
    quote_amount: str
    promised_on: str | None
    account_id: int


TransitionPayload = TypedDict(
    "TransitionPayload",
    {"from": PositionPayload, "to": PositionPayload, "reason": str | None, "forced": bool},
)
"""A stage or status change (advance, move, hold, resume, complete, cancel, reopen)."""


class CostAddedPayload(TypedDict):
    kind: str
    amount: str
    currency: str
    stage: str
    note: str


class NoteAddedPayload(TypedDict):
    visibility: str
    body: str


class ImportedPayload(TypedDict):
    """A finished case of an event log, imported as a completed job."""

    case: str
    events: int


class EtaMovedPayload(TypedDict):
    """The P50 completion moved from the one last announced (`old`) to `new` by more than the threshold."""

    type: str
    old: str
    new: str
    moved_working_s: float
    threshold_working_s: float


class CostMovedPayload(TypedDict):
    """The P50 projected cost moved from the amount last announced (`old`) to `new`."""

    type: str
    old: str
    new: str
    change_fraction: float | None


class RiskPayload(TypedDict):
    """The P90 completion (`new`) crossed the end of the promised day (`old`), in working time."""

    type: str
    old: str
    new: str
    late_by_working_s: float


class StuckPayload(TypedDict):
    """The job has been in its stage (`new` working seconds) longer than the stage's P90 (`old`)."""

    type: str
    old: float
    new: float
    stage_visit_id: str


EVENT_PAYLOADS: Mapping[EventType, type[object]] = {
    EventType.CREATED: CreatedPayload,
    EventType.UPDATED: UpdatedPayload,
    EventType.ADVANCE: TransitionPayload,
    EventType.MOVE: TransitionPayload,
    EventType.HOLD: TransitionPayload,
    EventType.RESUME: TransitionPayload,
    EventType.COMPLETE: TransitionPayload,
    EventType.CANCEL: TransitionPayload,
    EventType.REOPEN: TransitionPayload,
    EventType.COST_ADDED: CostAddedPayload,
    EventType.NOTE_ADDED: NoteAddedPayload,
    EventType.IMPORTED: ImportedPayload,
    EventType.ETA_MOVED: EtaMovedPayload,
    EventType.COST_MOVED: CostMovedPayload,
    EventType.AT_RISK: RiskPayload,
    EventType.BACK_ON_TRACK: RiskPayload,
    EventType.STUCK: StuckPayload,
}
"""The payload of each event type."""


class EmailCategory(StrEnum):
    """What a contact chooses to hear about by email, each `each`, `digest` or `off` (Contact columns)."""

    PROGRESS = "progress"
    ESTIMATES = "estimates"
    ALERTS = "alerts"
    NOTES = "notes"


EMAIL_CATEGORIES: Mapping[EventType, EmailCategory] = {
    EventType.CREATED: EmailCategory.PROGRESS,
    EventType.ADVANCE: EmailCategory.PROGRESS,
    EventType.MOVE: EmailCategory.PROGRESS,
    EventType.HOLD: EmailCategory.PROGRESS,
    EventType.RESUME: EmailCategory.PROGRESS,
    EventType.COMPLETE: EmailCategory.PROGRESS,
    EventType.CANCEL: EmailCategory.PROGRESS,
    EventType.REOPEN: EmailCategory.PROGRESS,
    EventType.ETA_MOVED: EmailCategory.ESTIMATES,
    EventType.COST_MOVED: EmailCategory.ESTIMATES,
    EventType.AT_RISK: EmailCategory.ALERTS,
    EventType.BACK_ON_TRACK: EmailCategory.ALERTS,
    EventType.STUCK: EmailCategory.ALERTS,
    EventType.NOTE_ADDED: EmailCategory.NOTES,
}
"""The events customers may be emailed about (public notes only), by category; the others are internal."""

WEBHOOK_TYPES: Mapping[EventType, str] = {
    EventType.CREATED: "job.created",
    EventType.ADVANCE: "job.stage_changed",
    EventType.MOVE: "job.stage_changed",
    EventType.HOLD: "job.on_hold",
    EventType.RESUME: "job.resumed",
    EventType.NOTE_ADDED: "job.note_added",
    EventType.COMPLETE: "job.completed",
    EventType.CANCEL: "job.cancelled",
    EventType.REOPEN: "job.reopened",
    EventType.ETA_MOVED: "job.eta_changed",
    EventType.COST_MOVED: "job.cost_changed",
    EventType.AT_RISK: "job.at_risk",
    EventType.BACK_ON_TRACK: "job.back_on_track",
    EventType.STUCK: "job.stuck",
}
"""The webhook type each published event goes out as (public notes only); `webhook.test` is sent on demand."""

STAFF_ALERTS: frozenset[EventType] = frozenset({EventType.AT_RISK, EventType.STUCK})
"""Events that staff (`TRACKER_STAFF_ALERT_EMAILS`) hear about as they happen."""


@dataclass(frozen=True)
class NewEvent:
    """One event about to be recorded in a job's history."""

    job_id: int
    job_version: int
    """The job's version right after the change the event tells of."""
    type: EventType
    payload: Mapping[str, object]
    """Shaped as `EVENT_PAYLOADS[type]` says."""
    actor: str
    occurred_at: datetime
